"""Validation of atomic structures at the boundary of the Python layer.

A structure is (positions, cell, pbc) in ASE conventions: positions (N, 3) in Å, cell (3, 3)
with rows = lattice vectors in Å, pbc (3,) bools. Along a non-periodic direction the cell row
is not used (it may be zero) and atoms may lie outside the cell. Kernels assume the output of
``check_structure``.
"""
import numpy as np
from emtool.errors import StructureError

#: Smallest accepted volume of the periodic lattice vectors, normalised to unit length
#: (|det| for three, |sin angle| for two); below it they count as linearly dependent.
MIN_NORMALIZED_VOLUME = 1e-8




def check_structure(positions, cell, pbc):
    """Validate a structure once and return it as the arrays kernels expect.

    Parameters
    ----------
    positions : array_like, (N, 3)
        Cartesian positions (Å), finite.
    cell : array_like, (3, 3)
        Rows are lattice vectors (Å), finite. The rows of periodic directions must be
        linearly independent; left-handed cells (negative determinant) are valid.
    pbc : bool or array_like of 3 bools
        Periodic directions (a single bool applies to all three, as in ASE).

    Returns
    -------
    positions : float64 (N, 3), C-contiguous
    cell : float64 (3, 3), C-contiguous
    pbc : bool (3,)

    Raises
    ------
    StructureError
        On a wrong shape or type, a non-finite value, or a degenerate periodic cell.
    """
    return (check_positions(positions), *check_cell(cell, pbc))


def check_cell(cell, pbc):
    """The cell and pbc part of ``check_structure``: (cell float64 (3, 3) C-contiguous, pbc
    bool (3,)), or ``StructureError``. For a run on a fixed cell (MD's neighbor list checks
    it once and only the positions at each step)."""
    cell = _real_array(cell, "cell")
    if cell.shape != (3, 3):
        raise StructureError(f"cell must have shape (3, 3) with rows = lattice vectors, "
                             f"got {cell.shape}")
    if not np.isfinite(cell).all():
        raise StructureError("cell contains non-finite values (nan or inf)")
    pbc = _pbc(pbc)
    periodic = cell[pbc]
    lengths = np.linalg.norm(periodic, axis=1)
    for a, length in zip(np.flatnonzero(pbc), lengths):
        if length == 0.0:
            raise StructureError(f"periodic lattice vector {a} is zero")
    if len(periodic):
        unit = periodic / lengths[:, None]
        volume = np.sqrt(max(np.linalg.det(unit @ unit.T), 0.0))
        if volume < MIN_NORMALIZED_VOLUME:
            raise StructureError(f"periodic lattice vectors are linearly dependent "
                                 f"(normalized volume {volume:.3g}): zero cell volume")
    return cell, pbc


def check_positions(positions):
    """``positions`` (N, 3) Å, finite, as float64 C-contiguous: the part of
    ``check_structure`` that changes from step to step of a run on a fixed cell (MD's neighbor
    list checks its cell once and the positions at every step). Raises ``StructureError``."""
    positions = _real_array(positions, "positions")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise StructureError(f"positions must have shape (N, 3), got {positions.shape}")
    if not np.isfinite(positions).all():
        raise StructureError("positions contain non-finite values (nan or inf)")
    return positions


def _real_array(value, name):
    array = np.asarray(value)
    if array.dtype == np.float64:
        return np.ascontiguousarray(array)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer)
                                   or np.issubdtype(array.dtype, np.floating)):
        raise StructureError(f"{name} must be real numbers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float64)


def _pbc(value):
    array = np.asarray(value)
    if array.shape not in ((), (3,)):
        raise StructureError(f"pbc must be a bool or 3 bools, got shape {array.shape}")
    if array.dtype != bool:
        if not np.issubdtype(array.dtype, np.integer) or not np.isin(array, (0, 1)).all():
            raise StructureError(f"pbc must be bools, got {value!r}")
    return np.broadcast_to(array.astype(bool), (3,)).copy()


def voigt(tensor):
    """(3, 3) tensor, symmetrized, to ASE's Voigt order (6,): xx, yy, zz, yz, xz, xy."""
    t = 0.5 * (tensor + tensor.T)
    return np.array([t[0, 0], t[1, 1], t[2, 2], t[1, 2], t[0, 2], t[0, 1]])
