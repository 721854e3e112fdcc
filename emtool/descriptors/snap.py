"""Bispectrum descriptors of ASE structures and their derivatives (LAMMPS ML-SNAP conventions).

``bispectrum(atoms, params)`` equals LAMMPS ``compute sna/atom`` column for column;
``bispectrum_derivatives`` gives the per-pair dB_i/dr_k that fitting rows need, and
``snap_pair_forces`` the adjoint (Y) path for E = sum_i beta_i . B_i with per-atom beta.
"""
from typing import NamedTuple

import numpy as np

from emtool.kernels.pairs import scatter_pairs
from emtool.kernels.snap import (PairArrays, SnapSettings, beta_forces_kernel, bispectrum_kernel,
                                 dbdr_kernel)
from emtool.kernels.snap_basis import snap_basis
from emtool.descriptors.neighbors import neighbor_list
from emtool.errors import ParameterError, StructureError
from emtool.parallel import run_kernel
from emtool.structure import check_structure


class SnapPairs(NamedTuple):
    """The neighbor pairs of a structure that enter its bispectrum.

    offsets : (N+1,) int64, pairs of atom i are offsets[i]:offsets[i+1].
    i, j : (n_pairs,) int64 central atom and neighbor (indices into the structure).
    rij : (n_pairs, 3) float64 r_j - r_i + S.cell (Å); every |rij| < rcut.
    rcut : (n_pairs,) float64 pair cutoff rcutfac (radelem_i + radelem_j) (Å).
    wj : (n_pairs,) float64 weight of the neighbor's element.
    element : (N,) int64 element index of each atom in ``params``.
    volume : float, cell volume (Å^3), nan if a direction is not periodic.
    """

    offsets: np.ndarray
    i: np.ndarray
    j: np.ndarray
    rij: np.ndarray
    rcut: np.ndarray
    wj: np.ndarray
    element: np.ndarray
    volume: float


def element_indices(atoms, params):
    """(N,) int64 element index of each atom; all zeros in single-species mode."""
    if not params.elements:
        if params.n_elements != 1:
            raise ParameterError("several radelem/wj values need element names")
        return np.zeros(len(atoms), np.int64)
    lookup = {name: k for k, name in enumerate(params.elements)}
    symbols = atoms.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(lookup))
    if unknown:
        raise ParameterError(f"atoms of element(s) {', '.join(unknown)} but the SNAP parameters "
                             f"only define {', '.join(params.elements)}")
    return np.array([lookup[s] for s in symbols], np.int64)


def snap_pairs(atoms, params, neighbors=None):
    """Validate ``atoms`` and build its ``SnapPairs`` for ``params`` (a ``SnapParams``);
    ``neighbors``: optional ``NeighborList`` holding every pair within ``params.cutoff`` at
    the positions of ``atoms``, to take the pairs from (``neighbor_list``'s ``superset``)."""
    positions, cell, pbc = check_structure(atoms.positions, atoms.cell.array, atoms.pbc)
    element = element_indices(atoms, params)
    nl = neighbor_list(positions, cell, pbc, params.cutoff, superset=neighbors)
    rcut = params.cutoff_matrix[element[nl.i], element[nl.j]]
    rsq = np.einsum("pk,pk->p", nl.rij, nl.rij)
    if len(rsq) and rsq.min() == 0.0:
        p = int(np.argmin(rsq))
        raise StructureError(f"atoms {nl.i[p]} and {nl.j[p]} overlap (zero distance, "
                             f"image shift {tuple(int(v) for v in nl.shift[p])})")
    inside = rsq < rcut * rcut
    i = nl.i[inside]
    offsets = np.searchsorted(i, np.arange(len(atoms) + 1)).astype(np.int64)
    wj = np.asarray(params.wj)[element[nl.j[inside]]]
    volume = abs(np.linalg.det(cell)) if pbc.all() else float("nan")
    return SnapPairs(offsets, i, nl.j[inside], np.ascontiguousarray(nl.rij[inside]),
                     np.ascontiguousarray(rcut[inside]), wj, element, volume)


def kernel_inputs(params, pairs):
    """(SnapBasis, PairArrays, SnapSettings): the SNAP kernels' arguments for ``params`` (a
    ``SnapParams``) and ``pairs`` (a ``SnapPairs``)."""
    return (snap_basis(params.twojmax), PairArrays(pairs.offsets, pairs.rij, pairs.rcut, pairs.wj),
            SnapSettings(float(params.rfac0), float(params.rmin0), int(params.switchflag),
                         float(params.wself)))


def bispectrum_from_pairs(params, pairs):
    """(N, D) linear bispectrum components B_i, bzero shift applied if ``params.bzeroflag``."""
    basis = snap_basis(params.twojmax)
    b = run_kernel(bispectrum_kernel, len(pairs.element), *kernel_inputs(params, pairs))
    if params.bzeroflag:
        b -= params.wself ** 3 * basis.bzero
    return b


def quadratic_columns(b):
    """LAMMPS quadratic layout: for k, then l >= k: B_k^2 / 2 on the diagonal, B_k B_l off it.

    b : (N, D). Returns (N, D (D+1) / 2).
    """
    d = b.shape[1]
    k, l = np.triu_indices(d)
    scale = np.where(k == l, 0.5, 1.0)
    return b[:, k] * b[:, l] * scale


def bispectrum(atoms, params):
    """Bispectrum components of every atom of ``atoms`` (ASE Atoms) for ``params``.

    Returns an (N, D) float64 array in the column order of LAMMPS ``compute sna/atom``;
    with ``params.quadraticflag`` the D (D+1)/2 quadratic columns follow (N, D + D (D+1)/2).
    Neighbors are all periodic images within the pair cutoffs.
    """
    b = bispectrum_from_pairs(params, snap_pairs(atoms, params))
    if params.quadraticflag:
        b = np.hstack([b, quadratic_columns(b)])
    return b


class BispectrumDerivatives(NamedTuple):
    """Per-pair derivatives dB_i/dr_j of a structure.

    i, j : (n_pairs,) int64 central atom and neighbor.
    rij : (n_pairs, 3) Å.
    dbdr : (n_pairs, D, 3) dB_i/dr_j (per Å); dB_i/dr_i = -sum_j dB_i/dr_j.
    natoms : int.
    b : (N, D) the bispectrum components themselves (bzero shift as in the parameters).
    """

    i: np.ndarray
    j: np.ndarray
    rij: np.ndarray
    dbdr: np.ndarray
    natoms: int
    b: np.ndarray

    def per_atom(self):
        """(N, D, 3) dB/dr_k = sum_i dB_i/dr_k, the gradient of the summed descriptor.

        A linear SNAP force is F_k = -beta . dB/dr_k. (LAMMPS ``compute snad/atom`` holds
        the negative of this, split by the element of atom i.)
        """
        flat = self.dbdr.reshape(len(self.dbdr), -1)
        minus_grad = scatter_pairs(self.natoms, self.i, self.j, flat)
        return -minus_grad.reshape((self.natoms,) + self.dbdr.shape[1:])

    def virial(self):
        """(D, 3, 3) descriptor virial W_ab = -sum_pairs dB_i/drij_a rij_b.

        It is minus the strain derivative of sum_i B_i, so a linear SNAP model has the virial
        beta . W and the ASE stress -beta . W / V (the convention of ``scatter_pair_forces``).
        """
        return -np.einsum("pda,pb->dab", self.dbdr, self.rij)


def bispectrum_derivatives(atoms, params):
    """``BispectrumDerivatives`` of ``atoms`` for ``params`` (linear components only)."""
    pairs = snap_pairs(atoms, params)
    dbdr, b = run_kernel(dbdr_kernel, len(atoms), *kernel_inputs(params, pairs))
    if params.bzeroflag:
        b -= params.wself ** 3 * snap_basis(params.twojmax).bzero
    return BispectrumDerivatives(pairs.i, pairs.j, pairs.rij, dbdr, len(atoms), b)


def snap_pair_forces(params, pairs, beta):
    """dE_i/dr_ij for each pair, E = sum_i beta_i . B_i, beta (N, D) in eV per unit of B.

    Returns (dedr (n_pairs, 3) eV/Å, B (N, D) with the bzero shift of ``params``);
    ``scatter_pair_forces`` turns dedr into forces and virial.
    """
    beta = np.ascontiguousarray(beta, dtype=np.float64)
    dedr, b = run_kernel(beta_forces_kernel, len(beta), *kernel_inputs(params, pairs), beta)
    if params.bzeroflag:
        b -= params.wself ** 3 * snap_basis(params.twojmax).bzero
    return dedr, b


def scatter_pair_forces(natoms, i, j, rij, dedr):
    """Forces (N, 3) and virial (3, 3) from per-pair derivatives dE/dr_ij (eV/Å).

    F_i += dE/dr_ij, F_j -= dE/dr_ij. The virial W_ab = -sum_pairs dE/drij_a rij_b (eV) is
    sum r_ij (x) f_j (LAMMPS's convention, positive under compression); the ASE stress is
    -W / V = (1/V) dE/d(strain).
    """
    return scatter_pairs(natoms, i, j, dedr), -(dedr.T @ rij)
