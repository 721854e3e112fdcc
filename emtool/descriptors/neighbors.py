"""Full neighbor lists over all periodic images (Python boundary of ``emtool.kernels.neighbors``).

A pair (i, j, S) is listed when |r_ij| < cutoff, with r_ij = r_j - r_i + S @ cell (Å),
cell rows = lattice vectors and S the integer image shift (0 along non-periodic directions).
Lists are full (i -> j and j -> i) and include every periodic image within the cutoff,
images of atom i itself among them: cells of the training sets are thinner than twice the
cutoff, so minimum image would be wrong. The pair set, the order and S equal ASE's
``neighbor_list('ijSD', atoms, cutoff)`` (strict ``<`` at the cutoff, only (i, i, 0) left
out, so distinct atoms at one position are listed with r_ij = 0), sorted by i, then j,
then S.
"""
import math
from typing import NamedTuple

import numpy as np

from emtool.kernels.neighbors import neighbor_pairs_cells, neighbor_pairs_direct, pairs_within
from emtool.errors import ParameterError, StructureError
from emtool.parallel import run_kernel
from emtool.structure import check_cell, check_positions, check_structure

#: ``method="auto"`` uses the cell list from this many atoms on. Measured crossovers at
#: cutoff 4.73 Å and W density: ~150 atoms for random positions (100: direct 0.21 ms, cells
#: 0.29 ms; 200: 0.79 vs 0.54 ms), ~280 for displaced BCC W (250: 0.62 vs 0.67 ms).
CELLS_MIN_ATOMS = 200

#: Bin width of the cell list, in units of the cutoff.
BIN_SIZE_PER_CUTOFF = 1.0

METHODS = ("auto", "direct", "cells")


class NeighborList(NamedTuple):
    """A full neighbor list, sorted by i, then j, then shift.

    Attributes
    ----------
    i : int64 (P,)
        Central atom of each pair.
    j : int64 (P,)
        Neighbor atom.
    shift : int64 (P, 3)
        Image shift S of j, in lattice vectors.
    rij : float64 (P, 3)
        r_j - r_i + S @ cell (Å); |rij| < cutoff.
    offsets : int64 (N + 1,)
        CSR offsets: the pairs of atom a are ``offsets[a]:offsets[a + 1]``.
    """

    i: np.ndarray
    j: np.ndarray
    shift: np.ndarray
    rij: np.ndarray
    offsets: np.ndarray


def neighbor_list(positions, cell, pbc, cutoff, method="auto", superset=None):
    """Full neighbor list of a structure over all periodic images within ``cutoff``.

    Parameters
    ----------
    positions : array_like, (N, 3)
        Cartesian positions (Å); need not be wrapped into the cell.
    cell : array_like, (3, 3)
        Rows are lattice vectors (Å); rows of non-periodic directions are ignored.
    pbc : bool or array_like of 3 bools
        Periodic directions.
    cutoff : float
        Cutoff radius (Å), finite and > 0; pairs with |r_ij| < cutoff are listed.
    method : {"auto", "direct", "cells"}
        "direct": all pairs times reachable images, O(N^2), fastest for small cells;
        "cells": cell list, O(N); "auto": "cells" from ``CELLS_MIN_ATOMS`` atoms on.
        All give identical output.
    superset : NeighborList, optional
        A list that holds every pair within ``cutoff`` at ``positions``: one of these
        positions at a cutoff >= ``cutoff``, or ``VerletList.update``'s. The result is then
        its restriction (``method`` unused), identical to the list built from scratch.

    Returns
    -------
    NeighborList

    Raises
    ------
    StructureError
        Invalid positions, cell or pbc (see ``emtool.structure.check_structure``).
    ParameterError
        Invalid cutoff or method.
    """
    positions, cell, pbc = check_structure(positions, cell, pbc)
    cutoff = _check_cutoff(cutoff)
    if method not in METHODS:
        raise ParameterError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        method = "cells" if len(positions) >= CELLS_MIN_ATOMS else "direct"
    if superset is not None:
        if len(superset.offsets) != len(positions) + 1:
            raise ParameterError(f"the superset list is of {len(superset.offsets) - 1} atoms, "
                                 f"the structure has {len(positions)}")
        pairs = run_kernel(pairs_within, len(positions), positions, cell, superset.offsets,
                           superset.i, superset.j, superset.shift, cutoff)
    elif method == "cells":
        pairs = neighbor_pairs_cells(positions, cell, pbc, cutoff, BIN_SIZE_PER_CUTOFF * cutoff)
    else:
        pairs = neighbor_pairs_direct(positions, cell, pbc, cutoff)
    offsets = np.searchsorted(pairs[0], np.arange(len(positions) + 1)).astype(np.int64)
    return NeighborList(*pairs, offsets)


class VerletList:
    """Neighbor lists of one moving structure (fixed cell and pbc) at ``cutoff`` (Å), taken
    from a list at cutoff + ``skin`` that is rebuilt only when an atom has moved more than
    skin / 2 since its last build: between builds no pair can cross into the cutoff unseen.

    ``update(positions)`` returns the skin list, which holds every pair within ``cutoff`` at
    ``positions``: as ``neighbor_list``'s ``superset`` (which SNAP, networks and ZBL restrict
    to their own cutoff at the current positions; the reference potential's kernel reads it
    as it is) it gives, bit for bit, the list built from scratch.
    ``builds`` counts the builds. ``skin`` (Å) >= 0; 0 rebuilds at every move.
    """

    #: Added to the build cutoff (Å) so that rounding in the displacement test can never
    #: hide a pair that has just come within the cutoff.
    SLACK = 1e-9

    def __init__(self, cell, pbc, cutoff, skin):
        self.cutoff = _check_cutoff(cutoff)
        if not (isinstance(skin, (int, float, np.number)) and math.isfinite(skin) and skin >= 0):
            raise ParameterError(f"the neighbor skin must be finite and >= 0 (Å), got {skin!r}")
        self.skin = float(skin)
        self.cell, self.pbc = check_cell(cell, pbc)
        self.builds = 0
        self._list = self._anchor = None

    def update(self, positions):
        """The skin list for ``positions`` (N, 3) Å (a ``NeighborList`` at cutoff + skin of
        the positions of its last build; rebuilt first if an atom moved more than skin / 2)."""
        positions = check_positions(positions)   # the cell was checked once, in __init__
        if self._anchor is not None and len(positions) == len(self._anchor):
            moved = positions - self._anchor
            stale = np.einsum("ak,ak->a", moved, moved).max(initial=0.0) > (0.5 * self.skin) ** 2
        else:
            stale = True
        if stale:
            self._list = neighbor_list(positions, self.cell, self.pbc,
                                       self.cutoff + self.skin + self.SLACK)
            self._anchor = positions.copy()
            self.builds += 1
        return self._list


#: Two atoms (or periodic images) closer than this (Å) overlap. No interatomic potential is
#: meant for them (W's nearest neighbors are 2.74 Å apart; its ZBL core gives +1.8 keV at
#: 0.1 Å), so datasets (import, generate, label), the calculators and MD refuse them.
OVERLAP_DISTANCE = 0.5


def check_overlap(positions, cell, pbc, distance=OVERLAP_DISTANCE, nl=None):
    """Raise ``StructureError`` if two atoms or periodic images are closer than ``distance``
    (Å). ``positions`` (N, 3) Å, ``cell`` (3, 3) Å rows, ``pbc`` as for ``neighbor_list``;
    ``nl``: their neighbor list for a cutoff >= ``distance``, if already built."""
    if nl is None:
        nl = neighbor_list(positions, cell, pbc, distance)
    r = np.linalg.norm(nl.rij, axis=1)
    if len(r) and r.min() < distance:
        p = int(np.argmin(r))
        raise StructureError(f"overlapping atoms: {nl.i[p]} and {nl.j[p]} (image "
                             f"{tuple(int(s) for s in nl.shift[p])}) are {r[p]:.3g} Å apart, "
                             f"closer than {distance} Å")


def neighbor_list_atoms(atoms, cutoff, method="auto"):
    """``neighbor_list`` of an ASE ``Atoms`` (its positions, cell and pbc)."""
    return neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff, method)


def _check_cutoff(cutoff):
    if isinstance(cutoff, (bool, np.bool_)) or not isinstance(cutoff, (int, float, np.number)):
        raise ParameterError(f"cutoff must be a real number (Å), got {cutoff!r}")
    cutoff = float(cutoff)
    if not math.isfinite(cutoff) or cutoff <= 0.0:
        raise ParameterError(f"cutoff must be finite and > 0 (Å), got {cutoff}")
    return cutoff
