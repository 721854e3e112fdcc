"""Starting configurations of the generator (docs/generator.md, "Starts").

``random_start``: the paper's start (Fig. 6), a random tetragonal box (a = b != c) of random
volume and atom count with uniformly random positions. Used for K > 0, and for K < 0 with
``min_start="random"``.

``lattice_start``: the start of the entropy-minimized half by default (``min_start=
"lattice"``), a documented deviation from the paper. Random starts relaxed locally on
V = V_rep - K S with K < 0 never order (0 % crystalline atoms, docs/generator.md "Order"),
so the ordered half starts from a crystal with point defects in a tetragonal box of the
paper's volume range: a lattice type (bcc, fcc, sc, diamond) and one of its supercells whose
site count fits the atom-count range and whose box is tetragonal with c/a in the aspect
range, scaled to a random box volume; 1-2 random sites left empty (vacancies); Gaussian
displacements of random width. The relaxation at K < 0 then keeps most of the order and
relaxes the defects, which is the paper's outcome ("mostly crystalline but with defects",
perfect crystals rare).
"""
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.lattice.cubic import BodyCenteredCubic, Diamond, FaceCenteredCubic, SimpleCubic

from emtool.errors import ParameterError

#: The lattices of ``lattice_start`` (conventional cubic cells at lattice constant 1).
LATTICE_BUILDERS = {"bcc": BodyCenteredCubic, "fcc": FaceCenteredCubic, "sc": SimpleCubic,
                    "diamond": Diamond}

#: Box orientations of a cubic lattice whose a and b axes have equal length, so that its
#: supercells are tetragonal: <100> along x, y, z, and [1-10], [110], [001].
ORIENTATIONS = {"100": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
                "110": ((1, -1, 0), (1, 1, 0), (0, 0, 1))}

#: Largest repetition searched along each axis of a supercell.
MAX_REPEAT = 12

#: A lattice is seeded in a box only if its nearest-neighbor distance there is at least this
#: fraction of r_ex (a denser lattice is crushed by V_rep into disorder; the densest boxes
#: take the lattice that packs best, fcc).
MIN_NEAREST = 0.95


class Supercell(NamedTuple):
    """n_ab x n_ab x n_c repetitions of an oriented lattice unit, its site count, and the
    nearest-neighbor distance and volume per site at lattice constant 1 (nearest /
    volume^(1/3) is scale-free)."""

    lattice: str
    orientation: str
    n_ab: int
    n_c: int
    sites: int
    nearest: float
    volume: float


def random_start(params, rng):
    """A random tetragonal box and uniformly random positions (ASE Atoms, periodic)."""
    natoms = int(rng.integers(params.natoms[0], params.natoms[1] + 1))
    volume = rng.uniform(*params.box_volumes) * params.atomic_volume
    aspect = np.exp(rng.uniform(np.log(params.aspect[0]), np.log(params.aspect[1])))
    a = (volume / aspect) ** (1.0 / 3.0)
    atoms = Atoms(f"{params.element}{natoms}", cell=np.diag([a, a, a * aspect]), pbc=True)
    atoms.set_scaled_positions(rng.random((natoms, 3)))
    return atoms


def _unit(lattice, orientation, size=(1, 1, 1)):
    directions = [list(d) for d in ORIENTATIONS[orientation]]
    return LATTICE_BUILDERS[lattice](directions=directions, size=size, symbol="H",
                                     latticeconstant=1.0, pbc=True)


@lru_cache(maxsize=None)
def supercells(natoms, aspect, vacancies):
    """Every tetragonal supercell of the seeded lattices that fits the ranges.

    natoms : (min, max) atom count; aspect : (min, max) c/a; vacancies : (min, max) empty
    sites. Returns a tuple of ``Supercell``. A supercell qualifies if
    sites - vacancies[1] <= natoms[1] and
    sites - vacancies[0] >= natoms[0], or, when a lattice has none of those, if it holds
    natoms[0] .. natoms[1] sites (then without vacancies).
    """
    found = []
    for lattice in LATTICE_BUILDERS:
        rows, perfect = [], []
        for orientation in ORIENTATIONS:
            unit = _unit(lattice, orientation)
            distances = unit.repeat(2).get_all_distances(mic=True)
            nearest = distances[distances > 1e-9].min()
            ab, c = unit.cell.lengths()[0], unit.cell.lengths()[2]
            for n_ab in range(1, MAX_REPEAT + 1):
                for n_c in range(1, MAX_REPEAT + 1):
                    sites = len(unit) * n_ab * n_ab * n_c
                    row = Supercell(lattice, orientation, n_ab, n_c, sites, float(nearest),
                                    unit.get_volume() / len(unit))
                    if not aspect[0] <= n_c * c / (n_ab * ab) <= aspect[1]:
                        continue
                    if sites - vacancies[1] <= natoms[1] and sites - vacancies[0] >= natoms[0]:
                        rows.append(row)
                    elif natoms[0] <= sites <= natoms[1]:
                        perfect.append(row)
        found += rows or perfect
    return tuple(found)


def lattice_start(params, rng):
    """A defective crystal in a tetragonal box of random volume (ASE Atoms, periodic).

    The box volume is drawn as in ``random_start``. Lattice types whose nearest-neighbor
    distance at that volume is >= MIN_NEAREST r_ex in at least one of their ``supercells``
    compete with equal probability, then one such supercell; the empty sites are drawn from
    ``params.lattice_vacancies`` within the atom-count range; every atom is displaced by
    Gaussian noise of width uniform in [0, ``params.lattice_noise``] r_ex.
    ``atoms.info["start"]`` names the seed, e.g. "bcc<100> 3x3x2, 1 vacancy".
    """
    cells = supercells(tuple(params.natoms), tuple(params.aspect),
                       tuple(params.lattice_vacancies))
    if not cells:
        raise ParameterError(
            f"no bcc, fcc, sc or diamond supercell with c/a in {params.aspect} holds "
            f"{params.natoms[0]}-{params.natoms[1]} atoms: use min_start='random'")
    volume = rng.uniform(*params.box_volumes) * params.atomic_volume

    def nearest(cell):
        return cell.nearest * (volume / cell.sites / cell.volume) ** (1.0 / 3.0)

    fitting = [cell for cell in cells if nearest(cell) >= MIN_NEAREST * params.exclusion_radius]
    if not fitting:
        best = max(nearest(cell) for cell in cells)
        fitting = [cell for cell in cells if nearest(cell) >= best * (1 - 1e-9)]
    types = sorted({cell.lattice for cell in fitting})
    lattice = types[rng.integers(len(types))]
    fitting = [cell for cell in fitting if cell.lattice == lattice]
    chosen = fitting[rng.integers(len(fitting))]
    orientation, n_ab, n_c, sites = chosen.orientation, chosen.n_ab, chosen.n_c, chosen.sites
    low = max(min(params.lattice_vacancies[0], sites - params.natoms[0]), sites - params.natoms[1])
    high = min(params.lattice_vacancies[1], sites - params.natoms[0])
    natoms = sites - int(rng.integers(low, high + 1))
    crystal = _unit(lattice, orientation, (n_ab, n_ab, n_c))
    crystal.set_cell(crystal.cell * (volume / crystal.get_volume()) ** (1.0 / 3.0),
                     scale_atoms=True)
    kept = np.sort(rng.permutation(sites)[:natoms])
    atoms = Atoms(f"{params.element}{natoms}", positions=crystal.positions[kept],
                  cell=crystal.cell, pbc=True)
    width = rng.uniform(0.0, params.lattice_noise) * params.exclusion_radius
    atoms.positions += rng.normal(scale=width, size=(natoms, 3))
    empty = sites - natoms
    atoms.info["start"] = (f"{lattice}<{orientation}> {n_ab}x{n_ab}x{n_c}, {empty} "
                           f"vacanc{'y' if empty == 1 else 'ies'}")
    return atoms
