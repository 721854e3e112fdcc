"""Entropy-optimized configurations (paper Methods, Eq. 1, Fig. 6).

Each configuration is a pure function of (seed, index): a random tetragonal box
(a = b != c) of random volume and atom count with random positions, or for K < 0 by default
a defective crystal in such a box (``starts``), then FIRE at fixed cell on

    V = V_rep - K S({D})

with S the 1-nearest-neighbor descriptor entropy over the atoms (``kernels.entropy``),
D_i = B_i / scale the twojmax-2 bispectrum components, and V_rep the exclusion repulsion
(``kernels.repulsion``). K > 0 maximizes S (disorder), K < 0 minimizes it (order). By
default even indices use +K and odd indices -K. The choices of V_rep, scale, floor and |K|
are justified in docs/generator.md.
"""
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from ase.data import atomic_numbers, reference_states

from emtool.data.journal import DatasetWriter
from emtool.kernels.fire import FireConstants
from emtool.kernels.generator import EntropyTerms, entropy_potential, relax_entropy
from emtool.kernels.neighbors import neighbor_pairs_direct
from emtool.kernels.snap import SnapSettings
from emtool.kernels.snap_basis import snap_basis
from emtool.parallel import run_indexed, single_thread
from emtool.descriptors.params import SnapParams
from emtool.errors import ParameterError
from emtool.generator.starts import lattice_start, random_start
from emtool.descriptors.snap import bispectrum

#: Reference volumes of W (Å^3): the paper's box volumes 470-990 Å^3 at 15.9 Å^3/atom.
W_ATOMIC_VOLUME = 15.9
W_BOX_VOLUMES = (470.0, 990.0)

#: W's nearest-neighbor distance (Å) at the lattice constant 3.1652 Å: the length by which
#: W's r_ex (2.7 Å) and descriptor cutoff (4.73 Å) are scaled for other elements.
W_NEAREST = 3.1652 * np.sqrt(3.0) / 2.0

#: Volume per atom (Å^3) and nearest-neighbor distance (Å) of the lattices of ASE's
#: reference states, as functions of a (Å) and c/a.
LATTICES = {"bcc": (lambda a, c: a ** 3 / 2, lambda a, c: a * np.sqrt(3.0) / 2),
            "fcc": (lambda a, c: a ** 3 / 4, lambda a, c: a / np.sqrt(2.0)),
            "hcp": (lambda a, c: np.sqrt(3.0) / 4 * a ** 3 * c, lambda a, c: a),
            "diamond": (lambda a, c: a ** 3 / 8, lambda a, c: a * np.sqrt(3.0) / 4),
            "sc": (lambda a, c: a ** 3, lambda a, c: a)}

#: The SNAP settings of the generator's descriptors (LAMMPS's defaults; the cutoff is
#: ``GeneratorParams.rcut``).
SNAP_SETTINGS = SnapSettings(rfac0=0.99363, rmin0=0.0, switchflag=1, wself=1.0)

#: Seed of the reference sample that fixes the descriptor scale (not the user's seed:
#: the scale is a property of the method, identical for every job).
SCALE_SEED = 20211

#: Most configurations of one job (one file): 10^7 of W's 32-40 atoms are ~15 GB of HDF5
#: and a core-year of FIRE.
MAX_CONFIGURATIONS = 10 ** 7

#: Largest hard-sphere packing fraction a box may need for spheres whose diameter is the
#: pair-distance bound of the random starts' half (0.85 r_ex): random close packing; beyond
#: it a random start cannot be relaxed to respect the bound.
RANDOM_CLOSE_PACKING = 0.64

#: Documented pair-distance bound as a fraction of V_rep's radius (``exclusion_bound``).
PAIR_BOUND = 0.85


@dataclass(frozen=True)
class FireParams:
    """FIRE settings (Bitzek et al. 2006; ASE's defaults), unit masses.

    dt_start, dt_max : time steps (ASE units); max_step : largest atomic displacement of one
    step (Å); n_min, f_inc, f_dec, alpha_start, f_alpha : the paper's adaptation constants.
    """

    dt_start: float = 0.1
    dt_max: float = 1.0
    max_step: float = 0.2
    n_min: int = 5
    f_inc: float = 1.1
    f_dec: float = 0.5
    alpha_start: float = 0.1
    f_alpha: float = 0.99

    def constants(self):
        """The kernels' ``FireConstants``."""
        return FireConstants(float(self.dt_start), float(self.dt_max), float(self.max_step),
                             float(self.n_min), float(self.f_inc), float(self.f_dec),
                             float(self.alpha_start), float(self.f_alpha))


@dataclass(frozen=True)
class GeneratorParams:
    """Parameters of entropy-optimized generation; defaults are tungsten's (paper Fig. 6).

    element : chemical symbol.
    atomic_volume : Å^3 per atom of the material at ambient density (W: 15.9).
    box_volumes : (min, max) box volume in units of ``atomic_volume`` (W: 470-990 Å^3).
    natoms : (min, max) atom count, inclusive (W: 32-40).
    aspect : (min, max) of c/a of the tetragonal box.
    exclusion_radius : r_ex (Å), the one material parameter of V_rep.
    min_exclusion_factor : V_rep's radius in the relaxation of the K < 0 configurations, as
        a fraction of r_ex (their lattice start is still fitted to r_ex; docs/generator.md).
    repulsion_energy : e0 (eV), the scale of V_rep.
    K : entropy weight magnitude (eV); ``sign`` "both" (even index +K, odd -K), "max" or "min".
    twojmax, rcut : descriptor settings (the paper: 5 components, twojmax 2, R = 4.73 Å).
    floor : entropy floor in scaled descriptor units.
    descriptor_scale : per-component scale of B (tuple, D values), None = derive it from a
        fixed reference sample of random boxes (``with_descriptor_scale``).
    fmax : FIRE stops when the largest force is below this (eV/Å); max_steps : step budget
        of the entropy stage; overlap_steps : budget of the first stage (V_rep alone), which
        removes the overlaps of the random start.
    skin : Verlet skin of the neighbor list (Å).
    min_start : start of the K < 0 configurations: "lattice" (a defective crystal,
        ``starts.lattice_start``; docs/generator.md) or "random" (the paper's random start).
    lattice_vacancies : (min, max) empty sites of a lattice start.
    lattice_noise : largest width of a lattice start's Gaussian displacements, in r_ex.
    """

    element: str = "W"
    atomic_volume: float = W_ATOMIC_VOLUME
    box_volumes: tuple = (W_BOX_VOLUMES[0] / W_ATOMIC_VOLUME, W_BOX_VOLUMES[1] / W_ATOMIC_VOLUME)
    natoms: tuple = (32, 40)
    aspect: tuple = (0.5, 2.0)
    exclusion_radius: float = 2.7
    repulsion_energy: float = 10.0
    K: float = 5.0
    sign: str = "both"
    twojmax: int = 2
    rcut: float = 4.73
    floor: float = 0.05
    descriptor_scale: tuple = None
    fmax: float = 0.05
    max_steps: int = 200
    overlap_steps: int = 100
    skin: float = 0.5
    min_start: str = "lattice"
    lattice_vacancies: tuple = (1, 2)
    lattice_noise: float = 0.1
    min_exclusion_factor: float = 0.85
    fire: FireParams = field(default_factory=FireParams)

    def __post_init__(self):
        if self.element not in atomic_numbers:
            raise ParameterError(f"unknown element {self.element!r}")
        lo, hi = self.box_volumes
        if not 0 < lo <= hi < np.inf:
            raise ParameterError(f"box volume range (--volume-range) must satisfy 0 < min <= max < inf,"
                                 f" got {lo * self.atomic_volume:.6g}..{hi * self.atomic_volume:.6g}"
                                 " Å^3")
        nlo, nhi = self.natoms
        if int(nlo) != nlo or int(nhi) != nhi or not 2 <= nlo <= nhi:
            raise ParameterError(f"atom count range (--natoms) must be integers 2 <= min <= max,"
                                 f" got {nlo}..{nhi}")
        if not 0 < self.aspect[0] <= self.aspect[1]:
            raise ParameterError(f"aspect range must satisfy 0 < min <= max, got {self.aspect}")
        for name in ("atomic_volume", "exclusion_radius", "repulsion_energy", "rcut", "floor",
                     "fmax", "skin"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ParameterError(f"{name} must be a positive number, got {value}")
        if self.K < 0:
            raise ParameterError("K is a magnitude (>= 0); choose its sign with sign "
                                 "(--sign) max or min")
        if self.min_start not in ("lattice", "random"):
            raise ParameterError(f"min_start must be 'lattice' or 'random', got {self.min_start!r}")
        vlo, vhi = self.lattice_vacancies
        if int(vlo) != vlo or int(vhi) != vhi or not 0 <= vlo <= vhi:
            raise ParameterError(f"lattice_vacancies must be integers 0 <= min <= max, got "
                                 f"{self.lattice_vacancies}")
        if not (np.isfinite(self.lattice_noise) and self.lattice_noise >= 0):
            raise ParameterError(f"lattice_noise must be >= 0, got {self.lattice_noise}")
        if not 0 < self.min_exclusion_factor <= 1:
            raise ParameterError(f"min_exclusion_factor must be in (0, 1], got "
                                 f"{self.min_exclusion_factor}")
        if self.sign not in ("both", "max", "min"):
            raise ParameterError(f"sign must be 'both', 'max' or 'min', got {self.sign!r}")
        for name in ("max_steps", "overlap_steps"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise ParameterError(f"{name} must be an integer >= 0, got {value}")
        if self.exclusion_radius >= self.rcut:
            raise ParameterError("exclusion_radius must be smaller than the descriptor cutoff rcut")
        densest = nhi / (lo * self.atomic_volume)
        bound = PAIR_BOUND * self.exclusion_radius
        packing = densest * np.pi / 6 * bound ** 3
        if packing > RANDOM_CLOSE_PACKING:
            raise ParameterError(
                f"exclusion radius {self.exclusion_radius} Å is too large for the densest box "
                f"({nhi} atoms in {lo * self.atomic_volume:.0f} Å^3): spheres of the pair-"
                f"distance bound {bound:.2f} Å would fill {packing:.2f} of it, "
                f"more than random close packing ({RANDOM_CLOSE_PACKING})")
        if self.descriptor_scale is not None:
            scale = tuple(float(s) for s in self.descriptor_scale)
            if len(scale) != snap_basis(self.twojmax).idxb.shape[0] or min(scale) <= 0:
                raise ParameterError("descriptor_scale needs one positive value per component")
            object.__setattr__(self, "descriptor_scale", scale)

    @property
    def exclusion_bound(self):
        """Documented lower bound (Å) of every pair distance in generated configurations:
        0.85 of the smallest radius V_rep has in the job (V_rep is a soft wall; the entropy
        force compresses it slightly)."""
        return PAIR_BOUND * self.exclusion_radius_of(1.0 if self.sign == "max" else -1.0)

    def exclusion_radius_of(self, sign):
        """V_rep's radius (Å) in the relaxation of a configuration with K of ``sign``."""
        return self.exclusion_radius * (self.min_exclusion_factor if sign < 0 else 1.0)

    def to_dict(self):
        """JSON-ready parameters (stored in the dataset to refuse mismatched resumes)."""
        return asdict(self)

    def sign_of(self, index):
        """+1 (maximize S) or -1 (minimize S) for configuration ``index``."""
        if self.sign == "both":
            return 1.0 if index % 2 == 0 else -1.0
        return 1.0 if self.sign == "max" else -1.0

    @classmethod
    def for_element(cls, element, atomic_volume=None, exclusion_radius=None, **kwargs):
        """Parameters for ``element``: W's defaults, with the lengths of another element.

        For W, the defaults above. For another element, the atomic volume (Å^3) and the
        nearest-neighbor distance d_nn (Å) of its solid in ASE's table of reference states
        (``ase.data.reference_states``: bcc, fcc, hcp, diamond or sc) replace W's: r_ex and
        the descriptor cutoff are multiplied by d_nn / d_nn(W). ``atomic_volume`` and
        ``exclusion_radius``, when given, take precedence; an element without such a
        reference state needs both (``ParameterError``). ``kwargs``: other fields.
        """
        if element not in atomic_numbers:
            raise ParameterError(f"unknown element {element!r}")
        if element == "W":
            volume, nearest = W_ATOMIC_VOLUME, W_NEAREST
        else:
            state = reference_states[atomic_numbers[element]] or {}
            lattice = LATTICES.get(state.get("symmetry"))
            if lattice is not None:
                a, c = state["a"], state.get("c/a", np.sqrt(8.0 / 3.0))
                volume, nearest = lattice[0](a, c), lattice[1](a, c)
            elif atomic_volume is None or exclusion_radius is None:
                raise ParameterError(
                    f"{element} has no bcc, fcc, hcp, diamond or sc reference state in ASE's "
                    "table: give its --atomic-volume (Å^3) and --exclusion-radius (Å)")
            else:
                volume, nearest = atomic_volume, exclusion_radius / cls.exclusion_radius * W_NEAREST
        scale = nearest / W_NEAREST
        kwargs.setdefault("rcut", cls.rcut * scale)
        return cls(element=element, atomic_volume=volume if atomic_volume is None else atomic_volume,
                   exclusion_radius=(cls.exclusion_radius * scale if exclusion_radius is None
                                     else exclusion_radius), **kwargs)

    def with_descriptor_scale(self):
        """A copy with ``descriptor_scale`` set (unchanged if already set)."""
        if self.descriptor_scale is not None:
            return self
        return replace(self, descriptor_scale=tuple(reference_scale(self)))


def _entropy_terms(params, sign, radius):
    return EntropyTerms(float(sign * params.K), float(params.floor), float(params.rcut),
                        float(radius), float(params.repulsion_energy))


def reference_scale(params, samples=8):
    """Per-component standard deviation of B over random starts (fixed seed SCALE_SEED).

    These starts are the generator's own (uniform random positions at the material's
    density), so scaled descriptors are O(1) in every direction at the start of a run.
    """
    rng = np.random.default_rng(SCALE_SEED)
    basis = snap_basis(params.twojmax)
    rows = []
    for _ in range(samples):
        atoms = random_start(params, rng)
        rows.append(_bispectrum(atoms, params, basis))
    return np.vstack(rows).std(axis=0)


def _bispectrum(atoms, params, basis):
    return bispectrum(atoms, SnapParams(twojmax=params.twojmax, rcutfac=params.rcut, bzeroflag=0))


def evaluate_potential(atoms, params, sign):
    """(V, S, V_rep, forces) of V = V_rep - sign K S for ``atoms`` (ASE Atoms, periodic), V_rep
    at the radius of a configuration with K of ``sign`` (``exclusion_radius_of``)."""
    params = params.with_descriptor_scale()
    positions = np.ascontiguousarray(atoms.positions, dtype=float)
    cell = np.ascontiguousarray(atoms.cell.array, dtype=float)
    pbc = np.ascontiguousarray(atoms.pbc, dtype=np.bool_)
    i, j, shift, _ = neighbor_pairs_direct(positions, cell, pbc, params.rcut)
    return entropy_potential(positions, cell, i, j, shift, snap_basis(params.twojmax),
                             SNAP_SETTINGS, np.asarray(params.descriptor_scale),
                             _entropy_terms(params, sign, params.exclusion_radius_of(sign)))


def _relax(atoms, params, sign, max_steps, radius=None):
    """FIRE on V = V_rep - sign K S with V_rep at ``radius`` (Å; default r_ex): (positions,
    stats of ``relax_entropy``)."""
    # one thread: the kernels' parallel regions (one chunk here) cost a thread handshake per
    # force call, 20x slower when the other core is busy
    with single_thread():
        return _relax_kernel(atoms, params, sign, max_steps,
                             params.exclusion_radius if radius is None else radius)


def _relax_kernel(atoms, params, sign, max_steps, radius):
    return relax_entropy(
        np.ascontiguousarray(atoms.positions), np.ascontiguousarray(atoms.cell.array),
        np.ones(3, np.bool_), snap_basis(params.twojmax), SNAP_SETTINGS,
        np.asarray(params.descriptor_scale), _entropy_terms(params, sign, radius),
        params.fire.constants(), params.fmax, max_steps, params.skin)


def generate_one(params, seed, index):
    """Configuration ``index`` of the job with global ``seed``: ASE Atoms, positions wrapped.

    The start is ``random_start``, or ``lattice_start`` for K < 0 with min_start "lattice".
    Two FIRE stages at fixed cell: V_rep alone (removes the overlaps of a random start), then
    V = V_rep - K S; V_rep's radius is r_ex, or min_exclusion_factor r_ex for K < 0.
    ``atoms.info`` holds index, seed, start ("random" or the lattice seed), group
    ("entropy_max" for K > 0, "entropy_min" for K < 0), K (eV, signed), entropy_random (S of
    the start), entropy_start (S after the first stage), entropy (final S), V_rep (eV), steps
    (entropy stage), overlap_steps, fmax (eV/Å) and converged (of the entropy stage).
    ``params`` must have its descriptor scale set.
    """
    if params.descriptor_scale is None:
        raise ParameterError("generate_one needs params.with_descriptor_scale()")
    rng = np.random.default_rng([seed, index])
    sign = params.sign_of(index)
    if sign < 0 and params.min_start == "lattice":
        atoms = lattice_start(params, rng)
    else:
        atoms = random_start(params, rng)
        atoms.info["start"] = "random"
    start = atoms.info["start"]
    radius = params.exclusion_radius_of(sign)
    atoms.positions, first = _relax(atoms, params, 0.0, params.overlap_steps, radius)
    atoms.positions, stats = _relax(atoms, params, sign, params.max_steps, radius)
    atoms.wrap()
    atoms.info.update(index=int(index), seed=int(seed), start=start,
                      group="entropy_max" if sign > 0 else "entropy_min",
                      K=float(sign * params.K), entropy_random=float(first[0]),
                      entropy_start=float(stats[0]), entropy=float(stats[1]),
                      V_rep=float(stats[2]), steps=int(stats[3]),
                      overlap_steps=int(first[3]), fmax=float(stats[4]),
                      converged=bool(stats[5]))
    return atoms


def generate_dataset(output, n, seed=0, params=None, workers=1, scheduler=None, progress=None):
    """Generate configurations 0..n-1 of job ``seed`` into the dataset ``output`` (HDF5).

    Resumable: indices already in ``output`` (or its journal) are skipped, so rerunning the
    same command after an interruption, or with a larger ``n``, completes the set; a file
    made with other generator parameters or seed is refused (``ParameterError``).
    ``progress(done, total)`` is called after each configuration. Returns a summary dict.
    """
    if int(n) != n or not 1 <= n <= MAX_CONFIGURATIONS:
        raise ParameterError(f"the number of configurations must be 1 to {MAX_CONFIGURATIONS:.0e}"
                             f" (more: several jobs with other seeds), got {n}")
    params = (params or GeneratorParams()).with_descriptor_scale()
    parameters = {"job": "generate", "seed": int(seed), "generator": params.to_dict()}
    start = time.perf_counter()
    summary = dict(requested=int(n), new=0, steps=0, entropy_up=0, entropy_down=0, K_positive=0,
                   K_negative=0, converged=0)
    with DatasetWriter(output, parameters) as writer:
        done = writer.done_indices()
        todo = [k for k in range(int(n)) if k not in done]

        def take(atoms):
            writer.add(atoms)
            writer.consolidate_if_due()
            info = atoms.info
            summary["new"] += 1
            summary["steps"] += info["steps"] + info["overlap_steps"]
            summary["converged"] += info["converged"]
            if info["K"] > 0:
                summary["K_positive"] += 1
                summary["entropy_up"] += info["entropy"] > info["entropy_start"]
            else:
                summary["K_negative"] += 1
                summary["entropy_down"] += info["entropy"] < info["entropy_start"]
            if progress:
                progress(summary["new"], len(todo))

        run_indexed(generate_one, (params, int(seed)), todo, take, workers, scheduler)
        writer.finish("generate", {"n": int(n), "seed": int(seed)})
    summary.update(skipped=int(n) - len(todo), seconds=time.perf_counter() - start)
    return summary
