"""Expert-style ("DE-like") configuration groups for elements without public expert data.

This is NOT a published data set. It imitates the *kinds* of groups that a domain expert
curates for an elemental metal (the "domain expertise", DE, set of the paper: elastic
deformations, equations of state, thermal displacements, point defects, surfaces, gamma
surfaces, liquids), from nothing but the element, its crystal structure and lattice
constant(s). For tungsten the real DE set (FitSNAP, Wood et al. PRB 99, 184305 (2019)) is
in ``shared/data/fitsnap_W_PRB2019`` (read it with ``emtool.data.exchange.read_fitsnap_json``)
and is what comparisons with the paper should use.

Every configuration is a pure function of (spec, group, k): its random stream is
``numpy.random.default_rng([seed, code, k])`` with ``code`` the group's 1-based position in
``EXPERT_GROUPS``, and its ``info["index"]`` is ``code * INDEX_STRIDE + k``, so a group's
configurations do not depend on the counts asked for. The liquid is the exception that
proves the rule: snapshot k is step ``LIQUID_EQUILIBRATION + k * LIQUID_INTERVAL`` of one
Langevin trajectory seeded by (seed, code), so asking for more snapshots extends the same
trajectory.

Lengths in Å, temperatures in K; cells fully periodic (surfaces carry ``VACUUM`` Å of empty
space along z); no pair of atoms (over all images) closer than ``MIN_DISTANCE`` d_nn, with
d_nn the nearest-neighbor distance of the ideal crystal. Choices are justified in
docs/expert.md.
"""
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.build import bulk, surface
from ase.data import atomic_masses, atomic_numbers

from emtool.potentials.calculators import EmtoolCalculator, load_potential
from emtool.generator.generate import FireParams
from emtool.kernels.fire import fire_init, fire_step
from emtool.kernels.repulsion import repulsion_energy_forces
from emtool.descriptors.neighbors import neighbor_list
from emtool.errors import ParameterError

LOG = logging.getLogger(__name__)

#: The groups, in index order (``code`` = position + 1), and what each holds.
EXPERT_GROUPS = {
    "bulk_eos": "primitive or conventional ideal cell, volume scaled isotropically by a "
                "factor uniform in [0.9, 1.1] (equation of state)",
    "elastic": "conventional cell under a random symmetric strain, each of the six "
               "components uniform in [-0.03, 0.03] (elastic deformations)",
    "displaced": "~16 or ~54-atom supercell, Gaussian displacements of standard deviation "
                 "uniform in [0.01, 0.04] d_nn (W: 0.03-0.11 Å; thermal vibrations)",
    "vacancy": "~54 or ~128-atom supercell with one atom removed, rattled",
    "divacancy": "~54-atom supercell with two atoms removed, the second in the 1st, 2nd or "
                 "3rd neighbor shell of the first, rattled",
    "interstitial": "~54-atom supercell plus one atom at an octahedral or tetrahedral site, "
                    "overlaps relaxed away on a soft repulsion, rattled",
    "surface": "slab of one of three low-index planes (cubic: 100, 110, 111; hcp: 0001, "
               "10-10, 10-11), 2x2 surface cells, >= 4 d_nn thick, 12 Å of vacuum, rattled",
    "gamma_surface": "periodic bicrystal of a slip plane (bcc: 110, 112; fcc: 111; hcp: "
                     "0001, 10-10) whose upper half is shifted by a point of a 4x4 grid of "
                     "fractions of the in-plane cell, opened normal to the plane where needed, "
                     "rattled",
    "liquid": "snapshots of a Langevin run at twice the melting point of 128 atoms started "
              "from random positions (needs a calculator; tungsten: the embedded reference)",
}

#: Configurations per group when ``counts`` is None (300 in all, 1-128 atoms each).
DEFAULT_COUNTS = {"bulk_eos": 40, "elastic": 40, "displaced": 40, "vacancy": 30,
                  "divacancy": 20, "interstitial": 20, "surface": 30, "gamma_surface": 60,
                  "liquid": 20}

STRUCTURES = ("bcc", "fcc", "hcp")
INDEX_STRIDE = 1_000_000
MAX_ATOMS = 128

#: Hard lower bound on every pair distance, in units of d_nn (checked; draws are repeated).
MIN_DISTANCE = 0.75
#: Built-in overlaps (interstitials, gamma-surface shifts) are opened to about this (d_nn)
#: before rattling, a material-agnostic stand-in for the relaxation an expert would do.
OPEN_DISTANCE = 0.9
#: Rattle of defects, surfaces and gamma surfaces: standard deviation per component (d_nn).
RATTLE = 0.015
#: Range of the displacement standard deviation of ``displaced`` (d_nn).
DISPLACEMENT = (0.01, 0.04)
#: Volume factor range of ``bulk_eos`` and strain range of ``elastic``.
VOLUME_RANGE = (0.9, 1.1)
STRAIN = 0.03
#: Slab thickness and bicrystal height, in d_nn; vacuum of surface slabs (Å).
THICKNESS = 4.0
VACUUM = 12.0
#: Gamma-surface shifts: an n x n grid of fractions of the two in-plane cell vectors.
GAMMA_GRID = 4
#: Random draws tried before a configuration is declared impossible.
MAX_DRAWS = 100

PLANES = {"bcc": ((1, 0, 0), (1, 1, 0), (1, 1, 1)),
          "fcc": ((1, 0, 0), (1, 1, 0), (1, 1, 1)),
          "hcp": ((0, 0, 1), (1, 0, 0), (1, 0, 1))}
SLIP_PLANES = {"bcc": ((1, 1, 0), (1, 1, 2)), "fcc": ((1, 1, 1),),
               "hcp": ((0, 0, 1), (1, 0, 0))}
#: Interstitial sites as fractions of the conventional cell: cubic (bcc, fcc) or ASE's
#: orthorhombic hcp cell (atoms at 0 0 0, 1/2 1/2 0, 1/2 1/6 1/2, 0 2/3 1/2).
SITES = {"bcc": {"octahedral": (0.5, 0.5, 0.0), "tetrahedral": (0.5, 0.25, 0.0)},
         "fcc": {"octahedral": (0.5, 0.0, 0.0), "tetrahedral": (0.25, 0.25, 0.25)},
         "hcp": {"octahedral": (0.0, 1 / 3, 0.25), "tetrahedral": (0.0, 0.0, 0.375)}}

#: Liquid: atoms, volume per atom relative to the crystal, temperature / melting point,
#: steps before the first snapshot and between snapshots, Langevin friction (1/fs), and the
#: time step as the fraction of d_nn that an atom at the thermal speed sqrt(3kT/m) covers
#: in one step (W at 7390 K: 2.2 fs).
LIQUID_ATOMS = 128
LIQUID_VOLUME = 1.08
LIQUID_OVERHEAT = 2.0
LIQUID_EQUILIBRATION = 200
LIQUID_INTERVAL = 20
LIQUID_FRICTION = 0.01
LIQUID_STEP = 0.008
#: Melting point of the one element with an embedded reference potential (K).
W_MELTING_POINT = 3695.0
W_LATTICE_CONSTANT = 3.1652


@dataclass(frozen=True)
class ExpertSpec:
    """Material and seed of an expert-style set.

    element : chemical symbol.
    structure : "bcc", "fcc" or "hcp".
    a : lattice constant (Å); c : hcp only, the c lattice constant (Å).
    seed : non-negative integer.
    liquid_temperature : temperature of the liquid run (K); None = twice the melting point
        when known (tungsten), else the liquid needs it.
    """

    element: str = "W"
    structure: str = "bcc"
    a: float = W_LATTICE_CONSTANT
    c: float = None
    seed: int = 0
    liquid_temperature: float = None

    def __post_init__(self):
        if self.element not in atomic_numbers or self.element == "X":
            raise ParameterError(f"unknown element {self.element!r}")
        if self.structure not in STRUCTURES:
            raise ParameterError(f"unknown structure {self.structure!r}; known: "
                                 f"{', '.join(STRUCTURES)}")
        object.__setattr__(self, "a", _positive(self.a, "lattice constant a (Å)"))
        if self.structure == "hcp":
            if self.c is None:
                raise ParameterError("hcp needs the lattice constant c (Å)")
            object.__setattr__(self, "c", _positive(self.c, "lattice constant c (Å)"))
        elif self.c is not None:
            raise ParameterError(f"c is for hcp only; {self.structure} has one lattice "
                                 f"constant")
        if isinstance(self.seed, (bool, np.bool_)) or not isinstance(self.seed, (int, np.integer)) \
                or self.seed < 0:
            raise ParameterError(f"seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        if self.liquid_temperature is not None:
            object.__setattr__(self, "liquid_temperature",
                               _positive(self.liquid_temperature, "liquid_temperature (K)"))
        if self.d_nn < 1.0:
            raise ParameterError(f"nearest-neighbor distance {self.d_nn:.3f} Å < 1 Å: check "
                                 f"the lattice constants")

    @property
    def d_nn(self):
        """Nearest-neighbor distance of the ideal crystal (Å)."""
        if self.structure == "bcc":
            return math.sqrt(3.0) / 2.0 * self.a
        if self.structure == "fcc":
            return self.a / math.sqrt(2.0)
        return min(self.a, math.sqrt(self.a ** 2 / 3.0 + self.c ** 2 / 4.0))

    def primitive(self):
        """ASE's primitive cell (1 atom; hcp 2)."""
        return bulk(self.element, self.structure, a=self.a, c=self.c)

    def conventional(self):
        """Cubic cell (bcc 2 atoms, fcc 4) or orthorhombic hcp cell (4 atoms)."""
        if self.structure == "hcp":
            return bulk(self.element, "hcp", a=self.a, c=self.c, orthorhombic=True)
        return bulk(self.element, self.structure, a=self.a, cubic=True)


def expert_groups(element="W", structure=None, a=None, seed=0, counts=None, calculator=None,
                  c=None, liquid_temperature=None):
    """Expert-style configuration groups of an elemental crystal (see ``EXPERT_GROUPS``).

    Parameters
    ----------
    element : str
        Chemical symbol.
    structure, a, c : str, float, float
        Crystal structure ("bcc", "fcc", "hcp"), lattice constant a (Å) and, for hcp, c (Å).
        For W, structure and a default to bcc and 3.1652 Å (the reference potential's);
        other elements must give them.
    seed : int
        Non-negative; with (group, k) it fixes every configuration.
    counts : dict, optional
        {group: number of configurations}; only the groups named are made. Default:
        ``DEFAULT_COUNTS`` (without the liquid when there is no calculator for it).
    calculator : ASE calculator, optional
        Runs the liquid MD. Default for W: ``emtool.calculator("reference:W")``; other
        elements need one to make liquids.
    liquid_temperature : float, optional
        K; default twice the melting point (W only: 7390 K).

    Returns
    -------
    list of ase.Atoms, groups in ``EXPERT_GROUPS`` order, ascending ``info["index"]``; every
    cell fully periodic, no calculator attached. ``info`` holds ``group``, ``index`` and
    what was drawn (``volume_factor``, ``strain``, ``rattle`` (Å), ``plane``, ``shift``,
    ``site``, ``shell``, ``temperature``, ``md_step``, ...).

    Raises
    ------
    ParameterError
        Unknown element, structure or group; non-positive lattice constant or count; a
        liquid asked for with no calculator or temperature for it.
    """
    if element == "W":
        structure = "bcc" if structure is None else structure
        a = W_LATTICE_CONSTANT if a is None and structure == "bcc" else a
    if structure is None or a is None:
        raise ParameterError(f"give structure and a for {element} (the defaults are "
                             f"tungsten's)")
    spec = ExpertSpec(element, structure, a, c, seed, liquid_temperature)
    if counts is None:
        counts = dict(DEFAULT_COUNTS)
        if calculator is None and element != "W":
            del counts["liquid"]
            LOG.warning("no liquid group: no calculator for %s (pass calculator= and "
                        "liquid_temperature= to make one)", element)
    counts = _check_counts(counts)
    temperature = None
    if counts.get("liquid"):
        calculator, temperature = _liquid_setup(spec, calculator)
    images = []
    for group, n in counts.items():
        start = time.perf_counter()
        if group == "liquid":
            images += _liquid(spec, n, calculator, temperature)
        else:
            images += [expert_config(spec, group, k) for k in range(n)]
        LOG.info("%s: %d configurations in %.2f s", group, n, time.perf_counter() - start)
    return images


def expert_config(spec, group, k, calculator=None):
    """Configuration ``k`` (>= 0) of ``group`` for the material and seed of ``spec``.

    The liquid's snapshot k needs the trajectory up to it; ``expert_groups`` runs it once.
    """
    _check_counts({group: 1})
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or \
            not 0 <= k < INDEX_STRIDE:
        raise ParameterError(f"k must be an integer in [0, {INDEX_STRIDE}), got {k!r}")
    if group == "liquid":
        return _liquid(spec, k + 1, *_liquid_setup(spec, calculator))[k]
    rng = np.random.default_rng([spec.seed, _code(group), int(k)])
    for _ in range(MAX_DRAWS):
        atoms, info = _BUILDERS[group](spec, rng, int(k))
        if _physical(atoms, spec):
            return _finish(atoms, group, k, info)
    raise RuntimeError(f"{group} {k}: no draw of {MAX_DRAWS} kept every pair above "
                       f"{MIN_DISTANCE} d_nn")


# ---------------------------------------------------------------------------------------------
# groups: each builder returns (atoms, info) from the random stream rng

def _bulk_eos(spec, rng, k):
    atoms = spec.primitive() if k % 2 == 0 else spec.conventional()
    factor = rng.uniform(*VOLUME_RANGE)
    atoms.set_cell(atoms.cell.array * factor ** (1.0 / 3.0), scale_atoms=True)
    return atoms, {"cell": "primitive" if k % 2 == 0 else "conventional",
                   "volume_factor": float(factor)}


def _elastic(spec, rng, k):
    atoms = spec.conventional()
    voigt = rng.uniform(-STRAIN, STRAIN, 6)
    strain = np.array([[voigt[0], voigt[5], voigt[4]],
                       [voigt[5], voigt[1], voigt[3]],
                       [voigt[4], voigt[3], voigt[2]]])
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return atoms, {"strain": voigt.tolist()}


def _displaced(spec, rng, k):
    atoms = _supercell(spec, 16 if k % 2 == 0 else 54)
    sigma = rng.uniform(*DISPLACEMENT) * spec.d_nn
    return _rattle(atoms, rng, sigma), {"rattle": sigma}


def _vacancy(spec, rng, k):
    atoms = _supercell(spec, 54 if k % 2 == 0 else MAX_ATOMS)
    del atoms[int(rng.integers(len(atoms)))]
    return _rattle(atoms, rng, RATTLE * spec.d_nn), {"rattle": RATTLE * spec.d_nn}


def _divacancy(spec, rng, k):
    atoms = _supercell(spec, 54)
    first = int(rng.integers(len(atoms)))
    shell = int(rng.integers(1, 4))
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, 1.9 * spec.d_nn)
    mine = nl.i == first
    distance = np.round(np.linalg.norm(nl.rij[mine], axis=1) / spec.d_nn, 6)
    in_shell = nl.j[mine][distance == np.unique(distance)[shell - 1]]
    second = int(rng.choice(np.unique(in_shell)))
    del atoms[[first, second]]
    return _rattle(atoms, rng, RATTLE * spec.d_nn), {"shell": shell,
                                                      "rattle": RATTLE * spec.d_nn}


def _interstitial(spec, rng, k):
    atoms = _supercell(spec, 54)
    site = "octahedral" if k % 2 == 0 else "tetrahedral"
    atoms.append(atoms[0])
    atoms.positions[-1] = np.array(SITES[spec.structure][site]) @ spec.conventional().cell.array
    _relax_overlaps(atoms, OPEN_DISTANCE * spec.d_nn)
    return _rattle(atoms, rng, RATTLE * spec.d_nn), {"site": site,
                                                      "rattle": RATTLE * spec.d_nn}


def _surface(spec, rng, k):
    miller = PLANES[spec.structure][k % 3]
    slab = _oriented(spec, miller)
    if 4 * len(slab) <= MAX_ATOMS:
        slab = slab.repeat((2, 2, 1))
    slab.cell[2] += (0.0, 0.0, VACUUM)
    slab.positions[:, 2] += VACUUM / 2.0
    return _rattle(slab, rng, RATTLE * spec.d_nn), {"plane": _label(miller),
                                                     "rattle": RATTLE * spec.d_nn}


def _gamma_surface(spec, rng, k):
    planes = SLIP_PLANES[spec.structure]
    miller = planes[k % len(planes)]
    point = (k // len(planes)) % GAMMA_GRID ** 2
    shift = [point // GAMMA_GRID / GAMMA_GRID, point % GAMMA_GRID / GAMMA_GRID]
    atoms = _oriented(spec, miller)
    z = atoms.positions[:, 2]
    levels = np.unique(np.round(z, 6))
    cut = levels[len(levels) // 2] - 1e-6
    upper = z > cut
    step = shift[0] * atoms.cell[0] + shift[1] * atoms.cell[1]
    atoms.positions[upper] += step
    atoms.cell[2] += step
    gap = _open_gap(atoms, upper, OPEN_DISTANCE * spec.d_nn, 0.01 * spec.d_nn)
    atoms.wrap()
    return _rattle(atoms, rng, RATTLE * spec.d_nn), {
        "plane": _label(miller), "shift": shift, "gap": gap, "rattle": RATTLE * spec.d_nn}


_BUILDERS = {"bulk_eos": _bulk_eos, "elastic": _elastic, "displaced": _displaced,
             "vacancy": _vacancy, "divacancy": _divacancy, "interstitial": _interstitial,
             "surface": _surface, "gamma_surface": _gamma_surface}


def _liquid_setup(spec, calculator):
    """(calculator, temperature K) of the liquid run; W defaults to the embedded reference
    potential at LIQUID_OVERHEAT times its melting point."""
    if calculator is None:
        if spec.element != "W":
            raise ParameterError(f"the liquid group of {spec.element} needs an ASE "
                                 f"calculator (calculator=); only W has an embedded one")
        calculator = EmtoolCalculator(load_potential("reference:W"))
    temperature = spec.liquid_temperature
    if temperature is None:
        if spec.element != "W":
            raise ParameterError(f"the liquid group of {spec.element} needs "
                                 f"liquid_temperature (K; e.g. twice the melting point)")
        temperature = LIQUID_OVERHEAT * W_MELTING_POINT
    return calculator, temperature


def _liquid(spec, n, calculator, temperature):
    """The first ``n`` liquid snapshots: one Langevin trajectory from random positions."""
    from ase.md.langevin import Langevin

    if n == 0:
        return []
    rng = np.random.default_rng([spec.seed, _code("liquid")])
    unit = spec.conventional()
    volume = LIQUID_ATOMS * unit.get_volume() / len(unit) * LIQUID_VOLUME
    atoms = _random_box(spec, rng, LIQUID_ATOMS, volume ** (1.0 / 3.0))
    atoms.calc = calculator
    mass = atomic_masses[atomic_numbers[spec.element]]
    speed = math.sqrt(3.0 * units.kB * temperature / mass)  # Å per ASE time unit
    dt = LIQUID_STEP * spec.d_nn / speed
    atoms.set_momenta(rng.normal(scale=math.sqrt(mass * units.kB * temperature),
                                 size=(LIQUID_ATOMS, 3)))
    md = Langevin(atoms, timestep=dt, temperature_K=temperature,
                  friction=LIQUID_FRICTION / units.fs, fixcm=False, rng=rng)
    md.run(LIQUID_EQUILIBRATION)
    step = LIQUID_EQUILIBRATION
    images = []
    for k in range(n):
        target = LIQUID_EQUILIBRATION + k * LIQUID_INTERVAL
        md.run(target - step)
        step = target
        while not _physical(atoms, spec):
            if step - target >= LIQUID_INTERVAL - 1:
                raise RuntimeError(f"liquid {k}: pairs closer than {MIN_DISTANCE} d_nn for "
                                   f"{LIQUID_INTERVAL} steps; lower the temperature")
            md.run(1)
            step += 1
        snapshot = Atoms(atoms.numbers, atoms.get_positions(wrap=True), cell=atoms.cell,
                         pbc=True)
        images.append(_finish(snapshot, "liquid", k, {
            "temperature": float(temperature), "md_step": step,
            "timestep_fs": float(dt / units.fs)}))
    return images


# ---------------------------------------------------------------------------------------------
# helpers

def _positive(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or not math.isfinite(value) or value <= 0:
        raise ParameterError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_counts(counts):
    if not isinstance(counts, dict):
        raise ParameterError(f"counts must be a dict {{group: count}}, got "
                             f"{type(counts).__name__}")
    for group, n in counts.items():
        if group not in EXPERT_GROUPS:
            raise ParameterError(f"unknown group {group!r}; known: {', '.join(EXPERT_GROUPS)}")
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or \
                not 0 <= n < INDEX_STRIDE:
            raise ParameterError(f"count of {group} must be an integer in [0, {INDEX_STRIDE}), "
                                 f"got {n!r}")
    return {group: int(counts[group]) for group in EXPERT_GROUPS if group in counts}


def _code(group):
    return list(EXPERT_GROUPS).index(group) + 1


def _finish(atoms, group, k, info):
    """A bare fully periodic copy of ``atoms`` (no calculator, momenta or tags) with info."""
    out = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell.array, pbc=True)
    out.info.update(info, group=group, index=_code(group) * INDEX_STRIDE + int(k))
    return out


def _physical(atoms, spec):
    """True when no pair (over all images) is closer than MIN_DISTANCE d_nn."""
    nl = neighbor_list(atoms.positions, atoms.cell.array, True, MIN_DISTANCE * spec.d_nn)
    return len(nl.i) == 0


def _rattle(atoms, rng, sigma):
    atoms.positions += rng.normal(scale=sigma, size=atoms.positions.shape)
    return atoms


def _supercell(spec, target):
    """Near-cubic repeat of the conventional cell with about ``target`` (<= MAX_ATOMS) atoms.

    n_i = round(L / h_i), L the side of a cube holding ``target`` atoms, h_i the cell's height
    along direction i; while above MAX_ATOMS the repeat that overshoots L most is lowered.
    bcc: 16, 54, 128 atoms for targets 16, 54, 128; fcc: 32, 32, 108; hcp: 8, 48, 96.
    """
    unit = spec.conventional()
    volume = unit.get_volume()
    heights = volume / np.linalg.norm(np.cross(unit.cell[[1, 2, 0]], unit.cell[[2, 0, 1]]),
                                      axis=1)
    side = (target * volume / len(unit)) ** (1.0 / 3.0)
    repeat = np.maximum(1, np.round(side / heights)).astype(int)
    while len(unit) * repeat.prod() > MAX_ATOMS:
        over = np.where(repeat > 1, repeat * heights / side, -np.inf)
        repeat[np.argmax(over)] -= 1
    return unit.repeat(tuple(repeat))


def _oriented(spec, miller):
    """Fully periodic cell with ``miller`` planes normal to z, cell[2] a lattice vector
    (tilted in general), at least THICKNESS d_nn high.

    ``ase.build.surface`` replaces the out-of-plane lattice vector by its projection on the
    normal, which is not a lattice vector for most planes; the true one is read off the
    atom that one repeat carries atom 0 to (in-plane wrapping only adds in-plane lattice
    vectors).
    """
    unit = spec.conventional()
    n0 = len(unit)
    one = surface(unit, miller, 2, vacuum=None)
    lattice_c = one.positions[n0] - one.positions[0]
    layers = max(1, math.ceil(THICKNESS * spec.d_nn / lattice_c[2]))
    slab = surface(unit, miller, layers, vacuum=None)
    slab.cell[2] = layers * lattice_c
    slab.pbc = True
    slab.wrap()
    return slab


def _relax_overlaps(atoms, r_ex, fmax=1e-3, max_steps=1000):
    """FIRE at fixed cell on the generator's exclusion repulsion V_rep = sum over pairs
    closer than r_ex of e0 (r_ex/r - 1)^2 (``kernels.repulsion``, e0 = 1 eV: the minimum does
    not depend on it). Pairs already beyond r_ex do not move, so only the neighborhood of an
    overlap relaxes; where the cell is too crowded for r_ex the pairs end slightly inside."""
    consts = FireParams().constants()
    positions = np.ascontiguousarray(atoms.positions)
    cell = np.ascontiguousarray(atoms.cell.array)
    v, state = fire_init(len(positions), consts)
    for _ in range(max_steps):
        nl = neighbor_list(positions, cell, True, r_ex)
        forces = repulsion_energy_forces(len(positions), nl.i, nl.j, nl.rij, r_ex, 1.0)[1]
        if np.abs(forces).max() < fmax:
            break
        fire_step(positions, forces, v, state, consts)
    atoms.positions = positions


def _open_gap(atoms, upper, distance, step):
    """Move the atoms ``upper`` and cell[2] up along z in ``step``s until no pair is closer
    than ``distance`` (the interface relaxation normal to the plane of a gamma-surface
    calculation, crudely); returns the opening (Å)."""
    gap = 0.0
    while gap <= distance:
        nl = neighbor_list(atoms.positions, atoms.cell.array, True, distance)
        if not len(nl.i):
            return gap
        atoms.positions[upper, 2] += step
        atoms.cell[2, 2] += step
        gap += step
    raise RuntimeError(f"pairs closer than {distance:.3f} Å after opening the interface by "
                       f"{gap:.3f} Å")


def _random_box(spec, rng, n, side):
    """n atoms uniformly in a cube of edge ``side`` (Å), none closer than MIN_DISTANCE d_nn
    (random sequential addition, minimum image; packing fraction 0.27 for the liquid, well
    below the 0.38 at which sequential addition jams)."""
    limit = MIN_DISTANCE * spec.d_nn
    positions = np.empty((n, 3))
    placed = 0
    for _ in range(1000 * n):
        trial = rng.uniform(0.0, side, 3)
        d = positions[:placed] - trial
        d -= side * np.round(d / side)
        if not placed or np.einsum("ij,ij->i", d, d).min() >= limit ** 2:
            positions[placed] = trial
            placed += 1
            if placed == n:
                return Atoms(f"{spec.element}{n}", positions, cell=np.eye(3) * side, pbc=True)
    raise RuntimeError(f"could not place {n} atoms {limit:.2f} Å apart in a {side:.2f} Å box")


def _label(miller):
    return "".join(str(i) for i in miller)
