"""ZBL repulsion (emtool.potentials.zbl, emtool.kernels.zbl) against LAMMPS ``pair_style zbl`` and gradients.

Reference: LAMMPS ``pair_style zbl 4.0 4.8`` with ``pair_coeff * * 74 74`` (the W SNAP+ZBL
setting). LAMMPS is required: a missing LAMMPS fails these tests, it never skips them.
"""
import numpy as np
import pytest
from ase.build import bulk
from ase.neighborlist import neighbor_list
from conftest import displaced_bcc, fd_forces, fd_stress, random_box

from emtool.kernels.zbl import (R_INNER, R_OUTER, SW1, SW2, SW3, SW4, SW5, zbl_energy_forces,
                                zbl_pair)
from emtool.lammps import lammps_potential, open_lammps, setup_atoms
from emtool.potentials.zbl import zbl_coefficients

R_IN, R_OUT = 4.0, 4.8
LAMMPS_ZBL = [f"pair_style zbl {R_IN} {R_OUT}", "pair_coeff * * 74 74"]
TOL = 1e-9  # eV, eV/Å, eV/Å^3


@pytest.fixture(scope="module")
def coeffs():
    return zbl_coefficients(74, 74, R_IN, R_OUT)


def emtool_zbl(atoms, coeffs):
    """Energy, per-atom energies, forces and ASE stress from the kernel on an ASE full list."""
    i, j, rij = neighbor_list("ijD", atoms, R_OUT)
    order = np.argsort(i, kind="stable")
    offsets = np.r_[0, np.cumsum(np.bincount(i, minlength=len(atoms)))]
    energies, forces, virial = zbl_energy_forces(
        offsets, j[order], rij[order], np.zeros(len(atoms), np.int64), coeffs[None, None], 3)
    sigma = -virial / atoms.get_volume()
    stress = sigma[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return dict(energy=energies.sum(), energies=energies, forces=forces, stress=stress)


def compressed_bcc():
    return bulk("W", "bcc", a=2.9, cubic=True).repeat(2)


STRUCTURES = {
    "tetragonal-0": lambda: random_box(0, min_distance=1.5),
    "tetragonal-1": lambda: random_box(1, min_distance=1.5),
    "tetragonal-2": lambda: random_box(2, min_distance=1.5),
    "triclinic": lambda: random_box(3, tetragonal=False, min_distance=1.5),
    "compressed-bcc": compressed_bcc,
    "rattled-compressed-bcc": lambda: displaced_bcc(4, a=2.9, amplitude=0.15),
    "bcc-primitive-1-atom": lambda: bulk("W", "bcc", a=2.9),
}


def test_coefficients_are_validated():
    for args in [(0, 74, 4.0, 4.8), (74, -1, 4.0, 4.8), (74, 74, 4.8, 4.0), (74, 74, 4.0, 4.0),
                 (74, 74, 0.0, 4.8), (74, 74, 4.0, np.inf), (np.nan, 74, 4.0, 4.8)]:
        with pytest.raises(ValueError):
            zbl_coefficients(*args)


def test_pair_matches_lammps_pair_write(coeffs, tmp_path):
    """E(r) and -dE/dr on 2000 distances across the switching region and past r_outer."""
    from ase import Atoms

    table = tmp_path / "zbl.table"
    lmp = open_lammps()
    try:
        setup_atoms(lmp, Atoms("W", cell=20 * np.eye(3), pbc=True))
        lmp.commands_list(LAMMPS_ZBL + [f"pair_write 1 1 2000 r 0.5 5.0 {table} ZBL"])
    finally:
        lmp.close()
    _, r, energy, force = np.loadtxt(table, skiprows=5).T  # LAMMPS prints 15 digits
    ours = np.array([zbl_pair(x, coeffs) for x in r])
    assert np.any(r > R_OUT) and np.any((r > R_IN) & (r < R_OUT))
    np.testing.assert_allclose(ours[:, 0], energy, rtol=1e-14, atol=TOL)
    np.testing.assert_allclose(-ours[:, 1], force, rtol=1e-14, atol=TOL)


def test_pair_derivative_and_smooth_cutoff(coeffs):
    h = 1e-6
    for r in np.linspace(1.0, R_OUT - 1e-3, 97):
        ep, em = zbl_pair(r + h, coeffs)[0], zbl_pair(r - h, coeffs)[0]
        assert zbl_pair(r, coeffs)[1] == pytest.approx((ep - em) / (2 * h), rel=1e-7, abs=1e-9)
    # E, E', E'' vanish at r_outer: E ~ t^3 just inside; nothing beyond
    for delta in (1e-2, 1e-3):
        e, de = zbl_pair(R_OUT - delta, coeffs)
        assert abs(e) < 0.1 * delta ** 3 and abs(de) < 0.3 * delta ** 2
    assert zbl_pair(R_OUT, coeffs) == (0.0, 0.0) and zbl_pair(6.0, coeffs) == (0.0, 0.0)
    # the switch starts with zero value, slope and curvature at r_inner
    t = 1e-4
    switch = t ** 3 * (coeffs[SW3] + coeffs[SW4] * t), t ** 2 * (coeffs[SW1] + coeffs[SW2] * t)
    assert abs(switch[0]) < 1e-10 and abs(switch[1]) < 1e-6
    assert coeffs[R_INNER] == R_IN and coeffs[R_OUTER] == R_OUT and coeffs[SW5] != 0


@pytest.mark.parametrize("name", STRUCTURES)
def test_matches_lammps(name, coeffs):
    atoms = STRUCTURES[name]()
    ours = emtool_zbl(atoms, coeffs)
    ref = lammps_potential(atoms, LAMMPS_ZBL)
    assert abs(ours["energy"] - ref["energy"]) <= TOL
    for key in ("energies", "forces", "stress"):
        assert np.abs(ours[key] - ref[key]).max() <= TOL, key
    if name == "compressed-bcc":  # ASE sign: a compressed crystal has negative stress
        assert np.all(ours["stress"][:3] < -1.0)
        np.testing.assert_allclose(ours["stress"][:3], ours["stress"][0], rtol=1e-12)
        assert np.abs(ours["forces"]).max() < 1e-10


@pytest.mark.parametrize("name", ["tetragonal-0", "triclinic", "bcc-primitive-1-atom"])
def test_forces_are_minus_energy_gradient(name, coeffs):
    atoms = STRUCTURES[name]()
    forces = emtool_zbl(atoms, coeffs)["forces"]
    indices = range(min(3, len(atoms)))
    fd = fd_forces(lambda a: emtool_zbl(a, coeffs)["energy"], atoms, indices)
    np.testing.assert_allclose(forces[list(indices)], fd, atol=1e-7)


@pytest.mark.parametrize("name", ["tetragonal-0", "triclinic", "rattled-compressed-bcc"])
def test_stress_is_strain_derivative(name, coeffs):
    atoms = STRUCTURES[name]()
    stress = emtool_zbl(atoms, coeffs)["stress"]
    fd = fd_stress(lambda a: emtool_zbl(a, coeffs)["energy"], atoms)
    np.testing.assert_allclose(stress, fd, atol=1e-8)


def test_two_species_and_parallel_chunks_match_lammps():
    """ZBLPotential on a W/Be box (the charges of each pair of species), on 2 threads with
    several work chunks, against LAMMPS ``pair_coeff`` per pair of types."""
    import numba

    from emtool.parallel import PARALLEL_MIN_ATOMS, single_thread
    from emtool.potentials.zbl import ZBLPotential, ZBLSpec
    atoms = random_box(5, natoms=40, min_distance=1.5).repeat(2)     # 320 atoms: parallel
    atoms.rattle(0.05, seed=1)
    assert len(atoms) >= PARALLEL_MIN_ATOMS
    symbols = np.array(["W"] * len(atoms), dtype=object)
    symbols[::3] = "Be"
    atoms.set_chemical_symbols(list(symbols))
    potential = ZBLPotential(ZBLSpec(R_IN, R_OUT, (74.0, 4.0)), ("W", "Be"))
    threads = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        ours = potential.evaluate(atoms)
    finally:
        numba.set_num_threads(threads)
    with single_thread():
        assert potential.evaluate(atoms)["energy"] == pytest.approx(ours["energy"], abs=1e-10)
    ref = lammps_potential(atoms, [f"pair_style zbl {R_IN} {R_OUT}", "pair_coeff 1 1 74 74",
                                   "pair_coeff 1 2 74 4", "pair_coeff 2 2 4 4"],
                           elements=("W", "Be"))
    assert abs(ours["energy"] - ref["energy"]) <= TOL
    for key in ("energies", "forces", "stress"):
        assert np.abs(ours[key] - ref[key]).max() <= TOL, key
