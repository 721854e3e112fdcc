"""Files that appear whole or not at all: ``atomic_write``, ``atomic_folder`` and ``StagedFile``;
``uninterrupted`` keeps Ctrl-C out of a record that a long job appends to a file.

Every file emtool writes goes first to a hidden temporary file in the destination's folder
(so that the final ``os.replace`` is an atomic rename on the same file system), is flushed to
disk (fsync), and is renamed over the destination; the folder is then fsynced so that the
rename survives a crash. A failure at any point (a full disk, Ctrl-C, a bad value found
late) deletes the temporary file and leaves an existing destination untouched. A folder
(``atomic_folder``) is filled and replaced the same way, as a whole.
"""
import contextlib
import os
import secrets
import shutil
import signal
import tempfile
import threading
from pathlib import Path


def atomic_write(path, write, prefix=None, check=None):
    """Call ``write(tmp)`` on a new temporary file beside ``path``, then move it to ``path``.

    ``write`` receives the temporary path (a str; the file exists and is empty) and fills
    it. ``prefix``: the temporary file's name prefix (default ``.NAME.``), which crash
    cleanup can look for; ``check()``: called just before the rename, to refuse a
    destination that appeared meanwhile. Returns ``path`` as a Path; the file gets the
    permissions of a newly created file (umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.",
                               suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        fsync_path(tmp)
        if check is not None:
            check()
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_folder(path, fill, check=None):
    """Call ``fill(tmp)`` on a new temporary folder beside ``path``, then rename it to ``path``.

    ``fill`` receives the temporary folder (a Path, ``.NAME.tmp-HEX``; it exists and is empty)
    and fills it, fsyncing what it writes; the folder itself is fsynced here. ``check()``:
    called just before the rename, to refuse a destination that appeared meanwhile. An
    existing ``path`` is first renamed aside (``.NAME.old-HEX``) and deleted only once the new
    folder is in place; if the swap fails, it is renamed back. Returns ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")
    tmp.mkdir()
    try:
        fill(tmp)
        fsync_path(tmp)
        if check is not None:
            check()
        if path.exists():
            old = path.with_name(f".{path.name}.old-{secrets.token_hex(6)}")
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            fsync_path(path.parent)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
            fsync_path(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def fsync_path(path):
    """fsync a file or a folder (a folder after a rename makes the rename durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class StagedFile:
    """A file that a long job writes as it goes (a trajectory, a log): ``path`` is the
    destination; the data goes to ``temporary`` (``.NAME.partial`` beside it) until
    ``close(keep)`` moves it into place or deletes it. ``open(mode)`` opens the temporary
    file."""

    def __init__(self, path):
        self.path = Path(path)
        self.temporary = self.path.with_name(f".{self.path.name}.partial")

    def open(self, mode="w"):
        return open(self.temporary, mode)

    def close(self, keep=True):
        """Move the temporary file into place (``keep``) or delete it."""
        if keep and self.temporary.exists():
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def uninterrupted():
    """Hold Ctrl-C (SIGINT) back while the block runs and raise its ``KeyboardInterrupt`` when
    the block ends: a frame appended to a trajectory is then written whole, never cut off
    mid-record (ASE cannot read a file whose last frame is cut). Outside the main thread, or
    when SIGINT is not Python's default handler, the block runs as it is."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    caught = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt
