"""Linear and quadratic SNAP potentials, optionally with the ZBL repulsion overlaid.

The energy of atom i of element a (LAMMPS ``pair_style snap``, paper Eq. 3):

    E_i = c_a0 + beta_a . B_i + 1/2 B_i . alpha_a . B_i

with B_i the (bzero-shifted, if ``bzeroflag``) bispectrum components. Forces use the adjoint
path with per-atom coefficients dE_i/dB_i = beta_a + alpha_a B_i. With a ``ZBLSpec`` the
model is LAMMPS ``pair_style hybrid/overlay zbl r_inner r_outer snap``.
"""
from dataclasses import dataclass

import numpy as np

from emtool.descriptors.params import SnapParams
from emtool.errors import ParameterError
from emtool.descriptors.snap import (bispectrum_from_pairs, scatter_pair_forces, snap_pair_forces,
                                     snap_pairs)
from emtool.potentials.snapfiles import (ncoeffall, read_snap_include, read_snap_model,
                                         write_snap_model)
from emtool.potentials.zbl import ZBLPotential, ZBLSpec
from emtool.structure import voigt


def quadratic_matrix(coeffs, d):
    """(D, D) symmetric alpha from the D(D+1)/2 LAMMPS quadratic coefficients (k <= l order).

    Diagonal entries multiply B_k^2 / 2, off-diagonal ones B_k B_l, so E = 1/2 B . alpha . B.
    """
    k, l = np.triu_indices(d)
    alpha = np.zeros((d, d))
    alpha[k, l] = coeffs
    alpha[l, k] = coeffs
    return alpha


class DescriptorPotential:
    """What SNAP and network potentials share: ``params`` (SnapParams), ``coeffs`` (the fitted
    parameters) and ``zbl`` (ZBLSpec or None) attributes, and the assembly of a result."""

    @property
    def ndof(self):
        """Number of fitted parameters (NDoF of the paper's Fig. 3)."""
        return int(self.coeffs.size)

    @property
    def cutoff(self):
        """Interaction range (Å): the largest descriptor pair cutoff or the ZBL outer cutoff."""
        return max(self.params.cutoff, self.zbl.r_outer if self.zbl else 0.0)

    def result(self, atoms, pairs, energies, dedr, neighbors=None):
        """The ``evaluate`` dict from atomic energies (N,) eV and per-pair dE/dr_ij (eV/Å):
        energy, energies, forces and, for periodic cells, the ASE stress (6,) eV/Å^3 =
        (1/V) dE/d(strain); the ZBL overlay added when the model has one (its pairs taken
        from ``neighbors``, as in ``evaluate``, when given)."""
        forces, virial = scatter_pair_forces(len(atoms), pairs.i, pairs.j, pairs.rij, dedr)
        if self.zbl is not None:
            zbl = ZBLPotential(self.zbl, self.params.elements)
            e_zbl, f_zbl, w_zbl = zbl.energy_forces_virial(atoms, neighbors)
            energies = energies + e_zbl
            forces += f_zbl
            virial += w_zbl
        result = dict(energy=float(energies.sum()), energies=energies, forces=forces)
        if np.isfinite(pairs.volume):
            result["stress"] = -voigt(virial) / pairs.volume
        return result


@dataclass(frozen=True, eq=False)
class SnapPotential(DescriptorPotential):
    """A SNAP model: ``params`` (SnapParams), ``coeffs`` (n_elements, ncoeffall) in LAMMPS
    ``.snapcoeff`` order (c0, beta, then quadratic terms), ``zbl`` (ZBLSpec or None)."""

    params: SnapParams
    coeffs: np.ndarray
    zbl: ZBLSpec = None

    def __post_init__(self):
        coeffs = np.array(self.coeffs, dtype=np.float64, ndmin=2)
        expected = (self.params.n_elements, ncoeffall(self.params.twojmax, self.params.quadraticflag))
        if coeffs.shape != expected:
            raise ParameterError(f"SNAP coefficients have shape {coeffs.shape}, but twojmax="
                                 f"{self.params.twojmax} quadraticflag={self.params.quadraticflag} "
                                 f"with {expected[0]} element(s) needs {expected}")
        if not np.all(np.isfinite(coeffs)):
            raise ParameterError("SNAP coefficients must be finite")
        coeffs.flags.writeable = False
        object.__setattr__(self, "coeffs", coeffs)
        if self.zbl is not None and len(self.zbl.z) != self.params.n_elements:
            raise ParameterError(f"ZBL has {len(self.zbl.z)} charges for {self.params.n_elements} elements")

    @classmethod
    def read(cls, path):
        """From a ``.snapparam`` (``.snapcoeff`` beside it) or a LAMMPS ``.snap`` include file."""
        model = read_snap_include(path) if str(path).endswith(".snap") else read_snap_model(path)
        return cls(model.params, model.coeffs, model.zbl)

    def write(self, stem):
        """Write ``stem.snapparam``, ``stem.snapcoeff`` and the include file ``stem.snap``."""
        return write_snap_model(stem, self.params, self.coeffs, self.zbl)

    def evaluate(self, atoms, neighbors=None):
        """Energy (eV), per-atom energies (N,), forces (N, 3) eV/Å and, for periodic cells, the
        ASE stress (6,) eV/Å^3 = (1/V) dE/d(strain); returned as a dict. ``neighbors``:
        optional ``NeighborList`` holding every pair within ``cutoff`` at the positions of
        ``atoms`` (``neighbor_list``'s ``superset``, e.g. ``VerletList.update``'s, as MD
        passes); the result does not depend on it."""
        params = self.params
        d = params.ncoeff
        pairs = snap_pairs(atoms, params, neighbors)
        c = self.coeffs[pairs.element]
        beta = c[:, 1:d + 1].copy()
        if params.quadraticflag:
            b = bispectrum_from_pairs(params, pairs)
            energies = c[:, 0] + np.einsum("nd,nd->n", beta, b)
            for a in range(params.n_elements):
                mine = pairs.element == a
                ab = b[mine] @ quadratic_matrix(self.coeffs[a, d + 1:], d)
                energies[mine] += 0.5 * np.einsum("nd,nd->n", ab, b[mine])
                beta[mine] += ab
            dedr, _ = snap_pair_forces(params, pairs, beta)
        else:
            dedr, b = snap_pair_forces(params, pairs, beta)
            energies = c[:, 0] + np.einsum("nd,nd->n", beta, b)
        return self.result(atoms, pairs, energies, dedr, neighbors)
