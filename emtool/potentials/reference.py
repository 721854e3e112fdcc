"""The embedded reference potential: Ackland-Thetford Finnis-Sinclair tungsten.

Energy (eV) at interatomic distances r (Å)::

    E   = sum_i [1/2 sum_j V(r_ij) - A sqrt(rho_i)],      rho_i = sum_j phi(r_ij)
    phi(r) = (r - d)^2                                   for r < d (0 beyond)
    V(r)   = (r - c)^2 (c0 + c1 r + c2 r^2)              for r < c (0 beyond)
             + B (b0 - r)^3 exp(-alpha r)                for r < b0

with the tungsten constants of M. W. Finnis and J. E. Sinclair, Phil. Mag. A 50, 45 (1984)
(A, d, c, c0, c1, c2) and the short-range core of G. J. Ackland and R. Thetford, Phil. Mag.
A 56, 15 (1987) (B, alpha, b0). The model was fitted to a0 = 3.1652 Å, E_c = 8.90 eV and
C11/C12/C44 = 522/204/161 GPa; ``tests/test_reference.py`` checks all five.

An atom with no neighbor inside d has rho = 0, embedding energy 0, and the kernel uses
dF/drho = 0 there (the derivative of sqrt diverges, but every phi' of such an atom is 0):
isolated atoms and dimers beyond d give exact zeros, never nan. The formulas, the force and
virial conventions are in :mod:`emtool.kernels.finnis_sinclair`, which evaluates them.

Potential specs (``emtool.potentials.calculators.load_potential``): ``reference:W`` names this
potential; :func:`reference_potential` resolves such a spec.
"""
import math
import threading
from dataclasses import dataclass, fields

import numpy as np
from ase.data import chemical_symbols

from emtool.kernels import finnis_sinclair as _k
from emtool.descriptors.neighbors import neighbor_list
from emtool.errors import ParameterError, StructureError
from emtool.parallel import run_kernel
from emtool.structure import check_structure, voigt

@dataclass(frozen=True)
class FinnisSinclairW:
    """Ackland-Thetford Finnis-Sinclair tungsten (units eV and Å; equations in the module
    docstring). Only W atoms are accepted.

    Attributes
    ----------
    A : float
        Embedding strength (eV/Å), F(rho) = -A sqrt(rho).
    d : float
        Cutoff of the density function phi (Å).
    c : float
        Cutoff of the polynomial pair term (Å).
    c0, c1, c2 : float
        Pair polynomial coefficients (eV/Å^2, eV/Å^3, eV/Å^4).
    B : float
        Core repulsion strength (eV/Å^3).
    alpha : float
        Core repulsion decay (1/Å).
    b0 : float
        Cutoff of the core repulsion (Å).
    """

    A: float = 1.896373
    d: float = 4.400224
    c: float = 3.25
    c0: float = 47.1346499
    c1: float = -33.7665655
    c2: float = 6.2541999
    B: float = 90.3
    alpha: float = 1.2
    b0: float = 2.7411

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            real = isinstance(value, (int, float, np.number))
            if isinstance(value, (bool, np.bool_)) or not real:
                raise ParameterError(f"{f.name} must be a real number, got {value!r}")
            if not math.isfinite(value):
                raise ParameterError(f"{f.name} must be finite, got {value}")
            object.__setattr__(self, f.name, float(value))
        for name in ("d", "c"):
            if getattr(self, name) <= 0.0:
                raise ParameterError(f"{name} must be > 0 (Å), got {getattr(self, name)}")
        if self.b0 < 0.0:
            raise ParameterError(f"b0 must be >= 0 (Å), got {self.b0}")

    @property
    def cutoff(self):
        """Interaction range max(c, d, b0) (Å): 4.400224 Å for the published constants."""
        return max(self.c, self.d, self.b0)

    def kernel_params(self):
        """The kernels' ``FinnisSinclairParams`` (:mod:`emtool.kernels.finnis_sinclair`)."""
        return _k.FinnisSinclairParams(*(float(v) for v in (
            self.A, self.d, self.c, self.c0, self.c1, self.c2, self.B, self.alpha, self.b0,
            self.cutoff)))

    def evaluate(self, atoms, neighbors=None):
        """Energy, per-atom energies, forces and (fully periodic cells) stress of ``atoms``.

        ``neighbors``: optional ``NeighborList`` holding every pair within ``cutoff`` at the
        positions of ``atoms`` (e.g. ``VerletList.update``'s, as MD passes); the kernel reads
        its pairs as they are and skips those beyond the cutoff, with no filtered copy. Built
        here when None. The result does not depend on it, bit for bit.

        Returns
        -------
        dict with ``energy`` (float, eV), ``energies`` (float64 (N,), eV),
        ``forces`` (float64 (N, 3), eV/Å) and, only when all three directions are
        periodic, ``stress`` (float64 (6,), eV/Å^3, ASE Voigt xx yy zz yz xz xy,
        sigma = (1/V) dE/d(strain) = -W/V).

        Raises
        ------
        ParameterError
            An atom is not W.
        StructureError
            Invalid positions, cell or pbc, or two atoms (or images) at one position.
        """
        positions, cell, nl = self._pairs(atoms, neighbors)
        energies, forces, virial, coincident = run_kernel(
            _k.fs_energy_forces, len(positions), positions, cell, nl.offsets, nl.j, nl.shift,
            self.kernel_params(), *_scratch(len(nl.j)))
        _refuse_coincident(nl, coincident)
        result = dict(energy=float(energies.sum()), energies=energies, forces=forces)
        if np.all(atoms.pbc):
            result["stress"] = -voigt(virial) / abs(np.linalg.det(cell))
        return result

    def densities(self, atoms):
        """Densities rho_i = sum_j phi(r_ij) (Å^2), float64 (N,)."""
        positions, cell, nl = self._pairs(atoms)
        rho, coincident, *_ = run_kernel(_k.fs_densities, len(positions), positions, cell,
                                         nl.offsets, nl.j, nl.shift, self.kernel_params(),
                                         *_scratch(len(nl.j)))
        _refuse_coincident(nl, coincident)
        return rho

    def _pairs(self, atoms, neighbors=None):
        """Checked positions, cell and a list holding every pair within the cutoff: the
        ``neighbors`` given (the kernels skip its pairs beyond the cutoff) or a new one."""
        if not np.all(atoms.numbers == 74):
            other = sorted({chemical_symbols[z] for z in np.unique(atoms.numbers)} - {"W"})
            raise ParameterError(f"FinnisSinclairW is a tungsten potential; atoms contain "
                                 f"{', '.join(other)}")
        positions, cell, pbc = check_structure(atoms.positions, atoms.cell.array, atoms.pbc)
        if neighbors is None:
            return positions, cell, neighbor_list(positions, cell, pbc, self.cutoff)
        if len(neighbors.offsets) != len(positions) + 1:
            raise ParameterError(f"the neighbor list is of {len(neighbors.offsets) - 1} atoms, "
                                 f"the structure has {len(positions)}")
        return positions, cell, neighbors


#: Per-thread scratch arrays of the kernels (``_scratch``).
_SCRATCH = threading.local()


def _scratch(npairs):
    """The kernels' scratch for a list of ``npairs`` pairs: (near int64 (>= P,), vectors
    float64 (>= P, 4)), kept per thread and grown when a larger list comes. Reusing them is
    what makes an MD step cheap: fresh arrays of 40 bytes per pair cost about 900 page faults
    per step at 2000 atoms, which took the step from 0.8 to 1.4 µs/atom. They hold 40 bytes
    per pair of the largest list evaluated in the thread."""
    near = getattr(_SCRATCH, "near", None)
    if near is None or len(near) < npairs:
        _SCRATCH.near = np.empty(npairs, np.int64)
        _SCRATCH.vectors = np.empty((npairs, 4))
    return _SCRATCH.near, _SCRATCH.vectors


def _refuse_coincident(nl, pair):
    """StructureError if the kernel found a pair (index ``pair`` of ``nl``; -1: none) at r = 0."""
    if pair >= 0:
        raise StructureError(f"atoms {nl.i[pair]} and {nl.j[pair]} (image "
                             f"{tuple(int(s) for s in nl.shift[pair])}) are at the same position")


#: Potentials named by ``reference:<name>`` specs.
REFERENCES = {"reference:W": FinnisSinclairW}


def reference_potential(spec):
    """The reference potential named by ``spec`` (e.g. ``"reference:W"``), default constants.

    This is what ``emtool.potentials.calculators.load_potential`` returns for specs starting with
    ``reference:``. Raises ParameterError for unknown names.
    """
    spec = str(spec)
    if spec not in REFERENCES:
        raise ParameterError(f"unknown reference potential {spec!r}; known: "
                             f"{', '.join(sorted(REFERENCES))}")
    return REFERENCES[spec]()
