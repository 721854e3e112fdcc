"""Shared fixtures: random structures of the kind emtool works on."""
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def random_box(seed, natoms=None, volume_per_atom=15.9, min_distance=1.9, tetragonal=True):
    """Random periodic W box: a = b != c (tetragonal) or a skewed triclinic cell.

    Positions are drawn uniformly and rejected closer than ``min_distance`` (Å, all images).
    """
    rng = np.random.default_rng(seed)
    n = natoms or int(rng.integers(32, 41))
    volume = n * volume_per_atom
    if tetragonal:
        ratio = rng.uniform(0.7, 1.4)
        a = (volume / ratio) ** (1 / 3)
        cell = np.diag([a, a, a * ratio])
    else:
        cell = np.eye(3) + rng.uniform(-0.3, 0.3, (3, 3))
        cell *= (volume / abs(np.linalg.det(cell))) ** (1 / 3)
    atoms = Atoms(f"W{n}", cell=cell, pbc=True)
    frac = []
    while len(frac) < n:
        trial = rng.random(3)
        ok = True
        for f in frac:
            d = trial - f
            d -= np.round(d)
            if np.linalg.norm(d @ cell) < min_distance:
                ok = False
                break
        if ok:
            frac.append(trial)
    atoms.set_scaled_positions(np.array(frac))
    return atoms


def displaced_bcc(seed, repeat=(2, 2, 2), a=3.1652, amplitude=0.15):
    """BCC W supercell with Gaussian displacements (Å)."""
    atoms = bulk("W", "bcc", a=a, cubic=True).repeat(repeat)
    atoms.positions += np.random.default_rng(seed).normal(scale=amplitude, size=atoms.positions.shape)
    return atoms


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder missing: {SHARED_DATA}")
    return SHARED_DATA


VOIGT_PAIRS = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


def central_difference(f, h):
    """Fourth-order central difference of a scalar function f(step) at step 0."""
    return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)


def fd_forces(energy, atoms, indices, h=1e-4):
    """(len(indices), 3) forces -dE/dr of the atoms ``indices`` by central differences."""
    def moved(k, d, step):
        out = atoms.copy()
        out.positions[k, d] += step
        return energy(out)
    return np.array([[-central_difference(lambda s: moved(k, d, s), h) for d in range(3)]
                     for k in indices])


def fd_stress(energy, atoms, h=1e-5):
    """(6,) ASE Voigt stress (1/V) dE/d(strain) by central differences of symmetric strains."""
    cell = atoms.cell.array.copy()

    def strained(k, m, step):
        strain = np.eye(3)
        strain[k, m] += step / 2
        strain[m, k] += step / 2
        out = atoms.copy()
        out.set_cell(cell @ strain, scale_atoms=True)
        return energy(out)
    return np.array([central_difference(lambda s: strained(k, m, s), h)
                     for k, m in VOIGT_PAIRS]) / atoms.get_volume()
