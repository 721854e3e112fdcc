"""Local structure type of every atom (paper Fig. 6): fcc, hcp, bcc, icosahedral by adaptive
common neighbor analysis; simple cubic, diamond-like and graphitic by coordination-shell and
bond-angle rules. The rules are in ``emtool.kernels.cna`` and ``docs/compare.md``.

Neighbors are taken over all periodic images (``emtool.descriptors.neighbors``), so cells smaller than
the neighbor shells (a 1-atom bcc cell, the 32-40-atom boxes of the training sets) are
classified like the infinite crystal they repeat.
"""
import numpy as np
from ase import Atoms

from emtool.kernels.cna import MAX_NEIGHBORS, classify_kernel
from emtool.descriptors.neighbors import neighbor_list
from emtool.structure import check_structure
from emtool.errors import StructureError

#: Names of the type codes returned by ``classify_atoms``, in code order.
STRUCTURE_TYPES = ("unknown", "fcc", "hcp", "bcc", "ico", "sc", "diamond", "graphitic")

#: First neighbor-list radius in units of (volume per atom)^(1/3): about 17 neighbors at the
#: average density; the radius grows by ``CUTOFF_GROWTH`` until every atom has
#: ``MAX_NEIGHBORS`` of them (or, in a finite system, every other atom).
CUTOFF_PER_ATOMIC_LENGTH = 1.6
CUTOFF_GROWTH = 1.5


def classify_atoms(atoms):
    """Structure type code of each atom of ``atoms`` (ASE Atoms): (N,) int64, names in
    ``STRUCTURE_TYPES``. Raises ``StructureError`` on an invalid structure."""
    if not isinstance(atoms, Atoms):
        raise StructureError(f"expected ase.Atoms, got {type(atoms).__name__}")
    positions, cell, pbc = check_structure(atoms.positions, atoms.cell.array, atoms.pbc)
    if len(positions) == 0:
        return np.zeros(0, np.int64)
    nl = _neighbors(positions, cell, pbc)
    return classify_kernel(nl.offsets, np.ascontiguousarray(nl.rij))


def classify_structures(images):
    """``classify_atoms`` of each structure of ``images`` (iterable of ASE Atoms): a list of
    (N_k,) int64 arrays."""
    return [classify_atoms(atoms) for atoms in images]


def type_fractions(labels):
    """{type name: fraction of the atoms} of an int array of type codes (all names present)."""
    labels = np.asarray(labels, dtype=np.int64).ravel()
    counts = np.bincount(labels, minlength=len(STRUCTURE_TYPES))
    total = max(len(labels), 1)
    return {name: float(counts[k]) / total for k, name in enumerate(STRUCTURE_TYPES)}


def _neighbors(positions, cell, pbc):
    """A neighbor list that meets the precondition of ``classify_kernel``."""
    n = len(positions)
    if pbc.all():
        volume = abs(np.linalg.det(cell))
    else:
        volume = np.prod(np.maximum(np.ptp(positions, axis=0), 1.0))
    cutoff = CUTOFF_PER_ATOMIC_LENGTH * (volume / n) ** (1.0 / 3.0)
    diameter = float(np.linalg.norm(np.ptp(positions, axis=0)))
    while True:
        nl = neighbor_list(positions, cell, pbc, cutoff)
        if np.diff(nl.offsets).min() >= MAX_NEIGHBORS or (not pbc.any() and cutoff > diameter):
            return nl
        cutoff *= CUTOFF_GROWTH
