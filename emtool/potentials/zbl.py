"""ZBL screened nuclear repulsion (LAMMPS ``pair_style zbl``): coefficients and validation.

The published W SNAP potentials (LAMMPS examples/snap, W_2940_2017_2) add ZBL with Z = 74
between r_inner = 4.0 Å and r_outer = 4.8 Å (``pair_style zbl 4.0 4.8``,
``pair_coeff * * 74 74``). The formula, units and sign conventions are documented in
:mod:`emtool.kernels.zbl`, which evaluates it.
"""
import math
from dataclasses import dataclass

import numpy as np

from emtool.kernels import zbl as _k
from emtool.descriptors.neighbors import neighbor_list
from emtool.errors import ParameterError
from emtool.parallel import run_kernel
from emtool.structure import check_structure, voigt

#: LAMMPS ``units metal``: e^2 / (4 pi eps0) in eV Å (``force->qqr2e``), elementary charge
#: (``force->qelectron``) and Å per distance unit (``force->angstrom``).
QQR2E_METAL = 14.399645
QELECTRON_METAL = 1.0
ANGSTROM_METAL = 1.0

#: ZBL screening length constants (LAMMPS ``pair_zbl_const.h``): a = A0 / (Zi^PZBL + Zj^PZBL).
PZBL = 0.23
A0 = 0.46850


@dataclass(frozen=True)
class ZBLSpec:
    """Ziegler-Biersack-Littmark repulsion overlaid on SNAP (LAMMPS ``pair_style zbl``).

    The ZBL pair energy of nuclear charges z_a, z_b is switched smoothly to zero between
    ``r_inner`` and ``r_outer`` (Å); it applies to every pair of elements.

    Attributes
    ----------
    r_inner, r_outer : float
        Switching interval (Å), 0 < r_inner <= r_outer.
    z : tuple of float
        Nuclear charge of each element, in the order of ``SnapParams.elements``.
    """

    r_inner: float
    r_outer: float
    z: tuple

    def __post_init__(self):
        object.__setattr__(self, "r_inner", float(self.r_inner))
        object.__setattr__(self, "r_outer", float(self.r_outer))
        object.__setattr__(self, "z", tuple(float(z) for z in self.z))
        if not 0 < self.r_inner <= self.r_outer < math.inf:
            raise ParameterError(f"ZBL needs 0 < r_inner <= r_outer, got {self.r_inner}, {self.r_outer}")
        if not self.z or not all(0 < z < math.inf for z in self.z):
            raise ParameterError(f"ZBL needs a positive nuclear charge per element, got {self.z}")


def zbl_coefficients(z_i, z_j, r_inner, r_outer):
    """Coefficient array of the ZBL pair (z_i, z_j) switched off between r_inner and r_outer.

    Reproduces LAMMPS ``PairZBL::set_coeff``: with tc = r_outer - r_inner and the unswitched
    phi, phi', phi'' at r_outer, sw1 = A, sw2 = B, sw3 = A/3, sw4 = B/4, sw5 = C where
    A = (-3 phi' + tc phi'') / tc^2, B = (2 phi' - tc phi'') / tc^3,
    C = -phi + tc/2 phi' - tc^2/12 phi''.

    Parameters
    ----------
    z_i, z_j : float
        Nuclear charges (> 0), e.g. 74 for W.
    r_inner, r_outer : float
        Switching interval (Å), 0 < r_inner < r_outer.

    Returns
    -------
    float64 (12,), layout ``emtool.kernels.zbl.D1A ... R_OUTER``.
    """
    z_i, z_j, r_inner, r_outer = map(float, (z_i, z_j, r_inner, r_outer))
    if not all(math.isfinite(v) for v in (z_i, z_j, r_inner, r_outer)):
        raise ParameterError("ZBL charges and cutoffs must be finite")
    if z_i <= 0 or z_j <= 0:
        raise ParameterError(f"ZBL nuclear charges must be > 0, got {z_i}, {z_j}")
    if not 0 < r_inner < r_outer:
        raise ParameterError(f"ZBL cutoffs need 0 < r_inner < r_outer, got {r_inner}, {r_outer}")
    c = np.zeros(_k.N_COEFFS)
    ainv = (z_i ** PZBL + z_j ** PZBL) / (A0 * ANGSTROM_METAL)
    c[[_k.D1A, _k.D2A, _k.D3A, _k.D4A]] = [_k.D1 * ainv, _k.D2 * ainv, _k.D3 * ainv,
                                           _k.D4 * ainv]
    c[_k.ZZE] = z_i * z_j * QQR2E_METAL * QELECTRON_METAL * QELECTRON_METAL
    c[_k.R_INNER], c[_k.R_OUTER] = r_inner, r_outer
    tc = r_outer - r_inner
    fc, fcp, fcpp = _k.zbl_screened(r_outer, c)
    swa = (-3.0 * fcp + tc * fcpp) / (tc * tc)
    swb = (2.0 * fcp - tc * fcpp) / (tc * tc * tc)
    swc = -fc + (tc / 2.0) * fcp - (tc * tc / 12.0) * fcpp
    c[[_k.SW1, _k.SW2, _k.SW3, _k.SW4, _k.SW5]] = [swa, swb, swa / 3.0, swb / 4.0, swc]
    return c


class ZBLPotential:
    """ZBL repulsion alone as an emtool potential (``evaluate(atoms) -> dict``).

    ``spec`` is a ``ZBLSpec`` (r_inner, r_outer, z per element) and
    ``elements`` the element order of its charges (empty: one species). Used overlaid on
    SNAP (``SnapPotential``) and as the reference subtracted before fitting (FitSNAP's
    ``pair_style hybrid/overlay zero ... zbl ...``).
    """

    def __init__(self, spec, elements=()):
        self.spec = spec
        self.elements = tuple(elements)
        self.cutoff = spec.r_outer
        #: (n_species, n_species, 12) coefficients of each pair of species
        self._coeffs = np.array([[zbl_coefficients(za, zb, spec.r_inner, spec.r_outer)
                                  for zb in spec.z] for za in spec.z])

    def _element_index(self, atoms):
        if not self.elements:
            return np.zeros(len(atoms), np.int64)
        lookup = {name: k for k, name in enumerate(self.elements)}
        try:
            return np.array([lookup[s] for s in atoms.get_chemical_symbols()], np.int64)
        except KeyError as err:
            raise ParameterError(f"ZBL has no charge for element {err.args[0]}") from None

    def energy_forces_virial(self, atoms, neighbors=None):
        """Per-atom energies (N,) eV, forces (N, 3) eV/Å and virial (3, 3) eV. ``neighbors``:
        optional ``NeighborList`` holding every pair within r_outer at the positions of ``atoms``
        (``neighbor_list``'s ``superset``), built here when None."""
        positions, cell, pbc = check_structure(atoms.positions, atoms.cell.array, atoms.pbc)
        nl = neighbor_list(positions, cell, pbc, self.spec.r_outer, superset=neighbors)
        energies, forces, virial = run_kernel(_k.zbl_energy_forces, len(atoms), nl.offsets,
                                              nl.j, nl.rij, self._element_index(atoms),
                                              self._coeffs)
        return energies, forces, virial

    def evaluate(self, atoms, neighbors=None):
        """dict(energy, energies, forces[, stress]) in eV, eV/Å, eV/Å^3 (ASE conventions);
        ``neighbors`` as for ``energy_forces_virial``."""
        energies, forces, virial = self.energy_forces_virial(atoms, neighbors)
        result = dict(energy=float(energies.sum()), energies=energies, forces=forces)
        if np.all(atoms.pbc):
            result["stress"] = -voigt(virial) / atoms.get_volume()
        return result
