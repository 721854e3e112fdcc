"""Neighbor lists against ASE's ``neighbor_list('ijSD')``: sorted (i, j, S) equal, rij to 1e-12.

Both kernels (direct and cell list) are compared with ASE and with each other, on the small
periodic cells of training sets (several images of one atom within the cutoff), skewed and
mixed-periodic cells, and systems of more than 10^4 atoms.
"""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from emtool.kernels.neighbors import neighbor_pairs_cells, neighbor_pairs_direct
from emtool.descriptors.neighbors import (CELLS_MIN_ATOMS, NeighborList, VerletList,
                                         neighbor_list, neighbor_list_atoms)
from emtool.errors import ParameterError, StructureError
from emtool.structure import check_structure

CUTOFF = 4.73  # Å, the paper's R
A_W = 3.1652  # Å, BCC tungsten lattice constant


def ase_sorted(atoms, cutoff):
    """ASE's (i, j, S, D), sorted by i, then j, then S."""
    i, j, shift, rij = ase_neighbor_list("ijSD", atoms, cutoff)
    order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], j, i))
    return i[order], j[order], shift[order], rij[order]


def assert_same_pairs(result, reference):
    i, j, shift, rij = result[:4]
    assert len(i) == len(reference[0])
    np.testing.assert_array_equal(i, reference[0])
    np.testing.assert_array_equal(j, reference[1])
    np.testing.assert_array_equal(shift, reference[2])
    np.testing.assert_allclose(rij, reference[3], rtol=0, atol=1e-12)


def assert_matches_ase(atoms, cutoff=CUTOFF):
    """Both methods equal ASE; returns the list."""
    reference = ase_sorted(atoms, cutoff)
    for method in ("direct", "cells"):
        result = neighbor_list_atoms(atoms, cutoff, method=method)
        assert_same_pairs(result, reference)
        for array, dtype in zip(result, (np.int64, np.int64, np.int64, np.float64, np.int64)):
            assert array.dtype == dtype
        np.testing.assert_array_equal(np.diff(result.offsets),
                                      np.bincount(result.i, minlength=len(atoms)))
    return result


def random_tetragonal(seed):
    """32-40 W atoms at random positions in a tetragonal box of 470-990 Å^3."""
    rng = np.random.default_rng(seed)
    n_atoms = rng.integers(32, 41)
    volume = rng.uniform(470.0, 990.0)
    c_over_a = rng.uniform(0.7, 1.4)
    a = (volume / c_over_a) ** (1 / 3)
    return Atoms(f"W{n_atoms}", cell=np.diag([a, a, c_over_a * a]),
                 scaled_positions=rng.random((n_atoms, 3)), pbc=True)


def random_skewed(seed, n_atoms=36, volume=700.0):
    """Random strongly skewed triclinic cell (angles far from 90°), random handedness."""
    rng = np.random.default_rng(seed)
    cell = np.eye(3) + np.tril(rng.uniform(0.6, 1.4, (3, 3)), -1) * rng.choice([-1, 1], (3, 3))
    cell = rng.permutation(cell)  # also left-handed, upper- and lower-triangular forms
    cell *= (volume / abs(np.linalg.det(cell))) ** (1 / 3)
    return Atoms(f"W{n_atoms}", cell=cell, scaled_positions=rng.random((n_atoms, 3)), pbc=True)


def displaced_bcc(repeat, seed, scale=0.1):
    rng = np.random.default_rng(seed)
    atoms = bulk("W", "bcc", a=A_W, cubic=True).repeat(repeat)
    atoms.positions += rng.normal(scale=scale, size=atoms.positions.shape)
    return atoms


@pytest.mark.parametrize("seed", range(12))
def test_random_tetragonal_training_cells(seed):
    atoms = random_tetragonal(seed)
    assert 470.0 <= atoms.cell.volume <= 990.0
    assert_matches_ase(atoms)


def test_training_cell_thinner_than_twice_the_cutoff():
    """Several images of one atom j are neighbors of i: minimum image would miss them."""
    atoms = random_tetragonal(0)
    assert atoms.cell.lengths().min() < 2 * CUTOFF
    result = neighbor_list_atoms(atoms, CUTOFF)
    pairs = np.stack([result.i, result.j], axis=1)
    assert len(np.unique(pairs, axis=0)) < len(pairs)


@pytest.mark.parametrize("seed", range(8))
def test_random_skewed_triclinic(seed):
    atoms = random_skewed(seed)
    assert_matches_ase(atoms)


def test_bcc_primitive_cell_one_atom():
    atoms = bulk("W", "bcc", a=A_W)
    assert len(atoms) == 1
    result = assert_matches_ase(atoms)
    # All neighbors are images of the atom itself: shells of 8, 6 and 12 within 4.73 Å.
    assert len(result.i) == 26
    assert (result.j == 0).all() and (np.abs(result.shift).sum(axis=1) > 0).all()
    distances = np.sort(np.linalg.norm(result.rij, axis=1))
    np.testing.assert_allclose(distances[[0, 8, 14]], A_W * np.sqrt([3 / 4, 1, 2]))


@pytest.mark.parametrize("second", [(1.0, 1.0, 1.0), (1.0, 0.0, 0.0), (0.3, 1.7, 0.9)])
def test_two_atoms_cubic_side_2_cutoff_6(second):
    atoms = Atoms("W2", cell=np.eye(3) * 2.0, positions=[(0.0, 0.0, 0.0), second], pbc=True)
    result = assert_matches_ase(atoms, 6.0)
    assert (np.linalg.norm(result.rij, axis=1) < 6.0).all()


def test_cutoff_is_strict():
    """Pairs at exactly the cutoff are left out, as in ASE (distances exact in binary)."""
    atoms = Atoms("W2", cell=np.eye(3) * 2.0, positions=[(0.0, 0.0, 0.0), (1.0, 0.0, 0.0)],
                  pbc=True)
    at_cutoff = neighbor_list_atoms(atoms, 6.0)
    beyond = neighbor_list_atoms(atoms, np.nextafter(6.0, 7.0))
    exact = np.linalg.norm(beyond.rij, axis=1) == 6.0
    assert exact.sum() > 0
    assert len(beyond.i) == len(at_cutoff.i) + exact.sum()
    assert_matches_ase(atoms, np.nextafter(6.0, 7.0))


@pytest.mark.parametrize("pbc", [(True, False, True), (False, True, False), (False, False, False)])
def test_mixed_and_no_periodicity(pbc):
    rng = np.random.default_rng(7)
    cell = np.array([[8.0, 0.0, 0.0], [3.0, 9.0, 0.0], [-2.0, 1.0, 8.5]])
    # Atoms extend far outside the cell along the non-periodic directions.
    positions = rng.random((40, 3)) @ cell + rng.normal(scale=6.0, size=(40, 3)) * ~np.array(pbc)
    result = assert_matches_ase(Atoms("W40", cell=cell, positions=positions, pbc=pbc))
    assert (result.shift[:, ~np.array(pbc)] == 0).all()


@pytest.mark.parametrize("cell", [np.diag([8.0, 8.5, 0.0]), np.zeros((3, 3))])
def test_zero_non_periodic_lattice_vectors(cell):
    rng = np.random.default_rng(3)
    pbc = np.linalg.norm(cell, axis=1) > 0
    positions = rng.random((35, 3)) * [8.0, 8.5, 15.0]
    assert_matches_ase(Atoms("W35", cell=cell, positions=positions, pbc=pbc))


def test_unwrapped_positions_keep_their_shifts():
    atoms = random_skewed(11)
    rng = np.random.default_rng(11)
    atoms.positions += rng.integers(-40, 40, (len(atoms), 3)) @ atoms.cell.array
    assert_matches_ase(atoms)


def test_coincident_atoms_are_listed_like_ase():
    atoms = Atoms("W3", cell=np.eye(3) * 5.0, positions=[(0, 0, 0), (0, 0, 0), (1, 2, 3)],
                  pbc=True)
    result = assert_matches_ase(atoms)
    assert (np.linalg.norm(result.rij, axis=1) == 0.0).sum() == 2


def test_empty_and_isolated():
    for positions, pbc in (([], True), ([(0.0, 0.0, 0.0)], False)):
        result = neighbor_list(np.reshape(positions, (-1, 3)), np.eye(3) * 5.0, pbc, CUTOFF)
        assert isinstance(result, NeighborList)
        assert len(result.i) == 0 and result.shift.shape == (0, 3) and result.rij.shape == (0, 3)
        np.testing.assert_array_equal(result.offsets, np.zeros(len(positions) + 1))


def test_auto_method_switches_to_cells():
    small, large = random_tetragonal(0), displaced_bcc(6, seed=0)
    assert len(small) < CELLS_MIN_ATOMS <= len(large)
    for atoms in (small, large):
        reference = ase_sorted(atoms, CUTOFF)
        assert_same_pairs(neighbor_list_atoms(atoms, CUTOFF), reference)


def kernel_arrays(atoms):
    return (np.ascontiguousarray(atoms.positions, dtype=np.float64), atoms.cell.array.copy(),
            atoms.pbc.copy(), CUTOFF)


@pytest.mark.parametrize("system", ["bcc_22", "skewed", "slab"])
def test_large_systems_cell_list_equals_direct_and_ase(system):
    if system == "bcc_22":
        atoms = displaced_bcc(22, seed=1)  # 21296 atoms
    elif system == "skewed":
        atoms = random_skewed(5, n_atoms=10000, volume=10000 * 15.9)
    else:  # periodic in x and y, vacuum along z; atoms reach outside the cell
        atoms = displaced_bcc((12, 12, 40), seed=2)
        atoms.pbc = (True, True, False)
        atoms.positions[:, 2] -= 20.0
    assert len(atoms) >= 10 ** 4
    arrays = kernel_arrays(atoms)
    cells = neighbor_pairs_cells(*arrays, CUTOFF)
    assert_same_pairs(cells, ase_sorted(atoms, CUTOFF))
    assert_same_pairs(cells, neighbor_pairs_direct(*arrays))


@pytest.mark.parametrize("bin_size", [0.4 * CUTOFF, CUTOFF, 2.5 * CUTOFF])
def test_cell_list_bin_sizes(bin_size):
    atoms = displaced_bcc(5, seed=4)
    atoms.pbc = (True, False, True)
    arrays = kernel_arrays(atoms)
    assert_same_pairs(neighbor_pairs_cells(*arrays, bin_size), neighbor_pairs_direct(*arrays))


GOOD_POSITIONS = np.zeros((2, 3)) + [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
GOOD_CELL = np.eye(3) * 5.0


@pytest.mark.parametrize("positions, cell, pbc, message", [
    ([[0.0, np.nan, 0.0]], GOOD_CELL, True, "non-finite"),
    ([[0.0, np.inf, 0.0]], GOOD_CELL, True, "non-finite"),
    (GOOD_POSITIONS, np.diag([5.0, np.nan, 5.0]), True, "non-finite"),
    (GOOD_POSITIONS, np.diag([5.0, 5.0, np.inf]), False, "non-finite"),
    (np.zeros((2, 2)), GOOD_CELL, True, "shape"),
    (np.zeros(3), GOOD_CELL, True, "shape"),
    (GOOD_POSITIONS, np.ones(3) * 5.0, True, "shape"),
    (GOOD_POSITIONS, GOOD_CELL, (True, False), "pbc"),
    (GOOD_POSITIONS, GOOD_CELL, (1, 2, 0), "pbc"),
    (GOOD_POSITIONS.astype(complex), GOOD_CELL, True, "real"),
    ([["a", "b", "c"]], GOOD_CELL, True, "real"),
    (GOOD_POSITIONS, np.diag([5.0, 5.0, 0.0]), True, "zero"),
    (GOOD_POSITIONS, [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [5.0, 5.0, 0.0]], True, "dependent"),
    (GOOD_POSITIONS, [[5.0, 0.0, 0.0], [-10.0, 0.0, 0.0], [0.0, 0.0, 5.0]],
     (True, True, False), "dependent"),
])
def test_bad_structures_raise(positions, cell, pbc, message):
    with pytest.raises(StructureError, match=message):
        neighbor_list(positions, cell, pbc, CUTOFF)


def test_check_structure_returns_kernel_arrays():
    positions, cell, pbc = check_structure([[0, 0, 0], [1, 2, 3]], np.eye(3, dtype=int), 1)
    assert positions.dtype == np.float64 and positions.flags.c_contiguous
    assert cell.dtype == np.float64 and cell.shape == (3, 3)
    np.testing.assert_array_equal(pbc, [True, True, True])
    # The non-periodic row is unused: a zero row is accepted.
    check_structure(positions, np.diag([5.0, 5.0, 0.0]), (True, True, False))


@pytest.mark.parametrize("cutoff", [0.0, -1.0, np.nan, np.inf, "4.73", True, None])
def test_bad_cutoff_raises(cutoff):
    with pytest.raises(ParameterError, match="cutoff"):
        neighbor_list(GOOD_POSITIONS, GOOD_CELL, True, cutoff)


def test_bad_method_raises():
    with pytest.raises(ParameterError, match="method"):
        neighbor_list(GOOD_POSITIONS, GOOD_CELL, True, CUTOFF, method="brute")


def assert_identical(result, reference):
    """Bit for bit: same pairs, order, shifts, vectors and offsets."""
    for got, want in zip(result, reference):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype


@pytest.mark.parametrize("atoms", [random_tetragonal(3), displaced_bcc(6, 4)],
                         ids=["36 random atoms (direct)", "432 bcc atoms (cells)"])
def test_verlet_list_equals_a_list_built_at_every_step(atoms):
    """Random walks of 0.03 Å per step (every atom, unwrapped): each update equals the list
    built from scratch, bit for bit, and the skin list is rebuilt only after an atom moved
    more than skin / 2."""
    rng = np.random.default_rng(5)
    cell, pbc = atoms.cell.array, atoms.pbc
    verlet = VerletList(cell, pbc, CUTOFF, skin=1.0)
    positions = atoms.positions.copy()
    anchor, builds = positions.copy(), 0
    for _ in range(60):
        if builds == 0 or np.linalg.norm(positions - anchor, axis=1).max() > 0.5:
            anchor, builds = positions.copy(), builds + 1
        restricted = neighbor_list(positions, cell, pbc, CUTOFF, superset=verlet.update(positions))
        assert_identical(restricted, neighbor_list(positions, cell, pbc, CUTOFF))
        assert verlet.builds == builds
        positions = positions + rng.normal(scale=0.03, size=positions.shape)
    assert 2 <= builds <= 20


def test_zero_skin_rebuilds_on_any_move_and_bad_skins():
    atoms = random_tetragonal(1)
    verlet = VerletList(atoms.cell.array, atoms.pbc, CUTOFF, skin=0)
    verlet.update(atoms.positions)
    verlet.update(atoms.positions)
    assert verlet.builds == 1
    atoms.positions[0, 0] += 1e-12
    skin_list = verlet.update(atoms.positions)
    assert_identical(neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, CUTOFF,
                                   superset=skin_list), neighbor_list_atoms(atoms, CUTOFF))
    assert verlet.builds == 2
    for skin in (-0.1, float("nan"), "1"):
        with pytest.raises(ParameterError, match="skin"):
            VerletList(atoms.cell.array, atoms.pbc, CUTOFF, skin=skin)


def test_superset_restricts_to_the_smaller_cutoff():
    atoms = displaced_bcc(3, 2)
    wide = neighbor_list_atoms(atoms, 6.0)
    for cutoff in (2.0, 3.1, CUTOFF, 6.0):
        assert_identical(neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff,
                                       superset=wide), neighbor_list_atoms(atoms, cutoff))


def test_superset_filter_is_the_same_for_any_thread_count_and_checks_the_atom_count():
    import numba
    atoms = displaced_bcc(6, 7)
    wide = neighbor_list_atoms(atoms, CUTOFF + 1.0)
    atoms.positions += np.random.default_rng(8).normal(scale=0.1, size=atoms.positions.shape)
    results, before = [], numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, CUTOFF,
                                         superset=wide))
    finally:
        numba.set_num_threads(before)
    assert_identical(results[0], results[1])
    assert_identical(results[0], neighbor_list_atoms(atoms, CUTOFF))
    with pytest.raises(ParameterError, match="superset list is of 432 atoms"):
        neighbor_list(atoms.positions[:-1], atoms.cell.array, atoms.pbc, CUTOFF, superset=wide)
