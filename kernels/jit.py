"""The one Numba policy of emtool.

Every kernel is compiled with ``cache=True`` so that the compile cost is paid once per
machine, not once per process. ``fastmath`` is never used: kernels evaluate cutoffs,
square roots and logarithms where inf/nan handling matters. ``parallel=True`` is opt-in
per kernel; such kernels only write rows they own inside ``prange`` loops.
``nogil=True`` is for kernels that Python threads run side by side (emtool.descriptors.nearest).
``inline=True`` is for small helpers called per neighbor pair: Numba then inlines them into
their callers, which removes the call and the reference counting of every array argument.
"""
import numba


def jit(func=None, *, parallel=False, inline=False, nogil=False):
    """Compile ``func`` with the project's Numba options (``nopython``, ``cache=True``);
    ``nogil``: release the GIL, for kernels that Python threads run side by side."""
    decorate = numba.njit(cache=True, parallel=parallel, error_model="numpy",
                          inline="always" if inline else "never", nogil=nogil)
    return decorate if func is None else decorate(func)
