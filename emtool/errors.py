"""The one root of the errors a user can cause: ``EmtoolError``.

Every error that bad input, a bad file or a failed run raises in emtool derives from it, so
that a program catches them all with one ``except emtool.EmtoolError`` and the command line
turns them into one line and exit code 2 in one place (``emtool.cli``). Each subclass also
derives from the builtin it refines (``ValueError`` or ``RuntimeError``), as before.
"""


class EmtoolError(Exception):
    """Root of emtool's user-facing errors; ``str(err)`` is the one-line message."""


class ParameterError(EmtoolError, ValueError):
    """An invalid or unsupported descriptor or potential parameter."""


class StructureError(EmtoolError, ValueError):
    """An invalid atomic structure (positions, cell or periodicity)."""


class DatasetError(EmtoolError, ValueError):
    """A file that is not a valid emtool dataset, or data that cannot be stored in one."""


class MDError(EmtoolError, RuntimeError):
    """The dynamics failed: the potential gave non-finite energy or forces."""


def interrupted(err):
    """Whether ``err`` is Ctrl-C (``KeyboardInterrupt``), also as the cause of another error:
    Numba turns a KeyboardInterrupt raised inside compiled code into a ``SystemError``."""
    while err is not None:
        if isinstance(err, KeyboardInterrupt):
            return True
        err = err.__cause__ or err.__context__
    return False
