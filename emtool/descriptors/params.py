"""SNAP descriptor parameters, with the keyword names and defaults of LAMMPS ML-SNAP.

A ``SnapParams`` fixes everything that determines the bispectrum components B_i of an
atom: the cutoff of a pair of elements a, b is ``rcutfac * (radelem[a] + radelem[b])`` (Å),
the neighbor weight of element b is ``wj[b]``, and ``twojmax`` (= 2J, a doubled integer)
sets the number of components D.
"""
from dataclasses import dataclass, field, replace

import numpy as np
from emtool.errors import ParameterError

#: LAMMPS ``.snapparam`` / ``compute sna/atom`` keywords that emtool reads, and their defaults.
#: ``rcutfac`` and ``twojmax`` are required in LAMMPS files; emtool defaults them to the paper's
#: R = 4.73 Å and 2J = 8.
SUPPORTED_KEYWORDS = ("rcutfac", "twojmax", "rfac0", "rmin0", "switchflag", "bzeroflag",
                      "quadraticflag")

#: LAMMPS options whose only supported value is the LAMMPS default.
FIXED_KEYWORDS = {"chemflag": 0, "bnormflag": 0, "wselfallflag": 0, "switchinnerflag": 0}




def n_bispectrum(twojmax):
    """Number D of bispectrum components for ``twojmax`` (LAMMPS ``ncoeff``).

    Counts the triples j1 >= j2, j = |j1-j2|, ..., min(twojmax, j1+j2) in steps of 2 with
    j >= j1 (doubled integers). D = 5, 14, 30, 55 for twojmax 2, 4, 6, 8.
    """
    return sum(1 for j1 in range(twojmax + 1) for j2 in range(j1 + 1)
               for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2) if j >= j1)


@dataclass(frozen=True)
class SnapParams:
    """Bispectrum (SNAP) parameters, LAMMPS ML-SNAP conventions.

    Attributes
    ----------
    rcutfac : float
        Cutoff scale (Å); pair cutoff = rcutfac * (radelem[a] + radelem[b]).
    twojmax : int
        2J, the doubled angular-momentum limit (>= 0); D = n_bispectrum(twojmax).
    rfac0 : float
        Angle scale: theta0 = rfac0 * pi * (r - rmin0) / (rcut - rmin0), 0 < rfac0 <= 1.
    rmin0 : float
        Inner distance (Å) of the angular mapping and of the switching function.
    switchflag : int
        1: smooth cosine switching function f_c(r) = (cos(pi (r-rmin0)/(rcut-rmin0)) + 1) / 2;
        0: none (descriptors are discontinuous at the cutoff).
    bzeroflag : int
        1: subtract the B of an isolated atom, wself^3 (j+1), from each B_{j1 j2 j}.
    quadraticflag : int
        1: models add the products B_k B_l (LAMMPS quadratic SNAP layout).
    radelem : tuple of float
        Element radii (dimensionless, scale rcutfac), one per element.
    wj : tuple of float
        Element neighbor weights, one per element.
    elements : tuple of str
        Chemical symbols of the elements, in the order of ``radelem`` and ``wj``.
        Empty: single-species mode, every atom is element 0 whatever its symbol.
    wself : float
        Weight of the central atom's self term in U (LAMMPS fixes it at 1).
    """

    rcutfac: float = 4.73
    twojmax: int = 8
    rfac0: float = 0.99363
    rmin0: float = 0.0
    switchflag: int = 1
    bzeroflag: int = 1
    quadraticflag: int = 0
    radelem: tuple = (0.5,)
    wj: tuple = (1.0,)
    elements: tuple = field(default=())
    wself: float = 1.0

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name in ("radelem", "wj", "rcutfac", "rfac0", "rmin0", "wself", "twojmax"):
            if np.atleast_1d(getattr(self, name)).dtype.kind not in "biuf":
                raise ParameterError(f"{name} must be a number, got {getattr(self, name)!r}")
        set_("radelem", tuple(float(r) for r in np.atleast_1d(self.radelem)))
        set_("wj", tuple(float(w) for w in np.atleast_1d(self.wj)))
        set_("elements", tuple(str(e) for e in self.elements))
        if isinstance(self.twojmax, bool) or int(self.twojmax) != self.twojmax:
            raise ParameterError(f"twojmax must be an integer, got {self.twojmax!r}")
        set_("twojmax", int(self.twojmax))
        for name in ("rcutfac", "rfac0", "rmin0", "wself"):
            set_(name, float(getattr(self, name)))
            if not np.isfinite(getattr(self, name)):
                raise ParameterError(f"{name} must be finite, got {getattr(self, name)}")
        for name in ("switchflag", "bzeroflag", "quadraticflag"):
            value = getattr(self, name)
            if value not in (0, 1):
                raise ParameterError(f"{name} must be 0 or 1, got {value!r}")
            set_(name, int(value))
        if self.twojmax < 0:
            raise ParameterError(f"twojmax must be >= 0, got {self.twojmax}")
        if self.rcutfac <= 0:
            raise ParameterError(f"rcutfac must be > 0, got {self.rcutfac}")
        if not 0 < self.rfac0 <= 1:
            raise ParameterError(f"rfac0 must be in (0, 1], got {self.rfac0}")
        if self.rmin0 < 0:
            raise ParameterError(f"rmin0 must be >= 0, got {self.rmin0}")
        if len(self.radelem) == 0 or len(self.radelem) != len(self.wj):
            raise ParameterError(f"radelem and wj need one value per element, got "
                                 f"{len(self.radelem)} and {len(self.wj)}")
        if self.elements and len(self.elements) != len(self.radelem):
            raise ParameterError(f"{len(self.elements)} elements but {len(self.radelem)} radelem")
        if min(self.radelem) <= 0:
            raise ParameterError(f"radelem must be > 0, got {self.radelem}")
        if 2 * min(self.radelem) * self.rcutfac <= self.rmin0:
            raise ParameterError("every pair cutoff rcutfac*(radelem_a+radelem_b) must exceed rmin0")

    @property
    def n_elements(self):
        return len(self.radelem)

    @property
    def ncoeff(self):
        """D, the number of bispectrum components per atom."""
        return n_bispectrum(self.twojmax)

    @property
    def cutoff_matrix(self):
        """(n_elements, n_elements) pair cutoffs rcutfac * (radelem[a] + radelem[b]), Å."""
        r = np.asarray(self.radelem)
        return self.rcutfac * (r[:, None] + r[None, :])

    @property
    def cutoff(self):
        """Largest pair cutoff (Å), the neighbor-list radius."""
        return float(self.cutoff_matrix.max())

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def keywords(self):
        """{keyword: value} of the LAMMPS keywords emtool reads (``SUPPORTED_KEYWORDS``)."""
        return {name: getattr(self, name) for name in SUPPORTED_KEYWORDS}
