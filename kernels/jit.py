"""The one Numba policy of emtool.

Every kernel is compiled with ``cache=True`` so that the compile cost is paid once per
machine, not once per process. ``fastmath`` is never used as a whole: kernels evaluate
cutoffs, square roots and logarithms where inf/nan handling matters. ``reassociate=True``
allows only the reordering of additions and fused multiply-adds (LLVM's ``reassoc`` and
``contract``), which lets LLVM vectorize a sum; it is for small kernels that do nothing but
such sums (dot products), and it changes their results by rounding only, the same on every
run of one machine. ``parallel=True`` is opt-in
per kernel; such kernels only write rows they own inside ``prange`` loops.
``nogil=True`` is for kernels that Python threads run side by side (emtool.descriptors.nearest).
``inline=True`` is for small helpers called per neighbor pair: Numba then inlines them into
their callers, which removes the call and the reference counting of every array argument.
"""
import numba


def jit(func=None, *, parallel=False, inline=False, nogil=False, reassociate=False):
    """Compile ``func`` with the project's Numba options (``nopython``, ``cache=True``);
    ``nogil``: release the GIL, for kernels that Python threads run side by side;
    ``reassociate``: vectorizable sums (see the module docstring)."""
    decorate = numba.njit(cache=True, parallel=parallel, error_model="numpy",
                          fastmath={"reassoc", "contract"} if reassociate else False,
                          inline="always" if inline else "never", nogil=nogil)
    return decorate if func is None else decorate(func)


@numba.njit(inline="always")
def nowrap(index):
    """``index`` (a non-negative integer) as uint64, for indexing an array inside a kernel.

    Numba indexes with a signed integer through a negative-index check (``a[-1]``) that LLVM
    cannot remove when the index is loaded or computed; in the SNAP kernels' short loops that
    check cost about as much as the arithmetic. An unsigned index skips it. Only for indices
    known to be >= 0 and in bounds (kernels never check bounds).
    """
    return numba.uint64(index)
