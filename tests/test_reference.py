"""The embedded reference potential (Ackland-Thetford Finnis-Sinclair W, emtool.potentials.reference).

Checked against: the published fit targets (Finnis & Sinclair 1984), finite differences of
the energy, a supercell of the same structure, and LAMMPS ``pair_style eam/fs`` on a table
written from this potential. LAMMPS is required: a missing LAMMPS fails, never skips.
"""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import central_difference, displaced_bcc, fd_forces, fd_stress, random_box
from scipy.optimize import minimize_scalar

from emtool.potentials.calculators import EmtoolCalculator
from emtool.kernels import finnis_sinclair as fs
from emtool.lammps import lammps_potential
from emtool.descriptors.neighbors import neighbor_list
from emtool.errors import ParameterError, StructureError
from emtool.potentials.reference import REFERENCES, FinnisSinclairW, reference_potential

#: GPa per eV/Å^3.
EV_PER_A3_IN_GPA = 160.21766208

#: Finnis & Sinclair (1984), Table 1, W: the data the constants were fitted to.
PUBLISHED = dict(a0=3.1652, Ec=8.90, C11=522.0, C12=204.0, C44=161.0)


@pytest.fixture(scope="module")
def pot():
    return FinnisSinclairW()


def bcc_cell(a):
    return bulk("W", "bcc", a=a, cubic=True)


@pytest.fixture(scope="module")
def a0(pot):
    res = minimize_scalar(lambda a: pot.evaluate(bcc_cell(a))["energy"], bounds=(3.0, 3.3),
                          method="bounded", options=dict(xatol=1e-10))
    return res.x


# (a) published targets ---------------------------------------------------------------

def test_lattice_constant_and_cohesive_energy(pot, a0):
    atoms = bcc_cell(a0)
    result = pot.evaluate(atoms)
    assert a0 == pytest.approx(PUBLISHED["a0"], rel=0.01)
    assert -result["energy"] / len(atoms) == pytest.approx(PUBLISHED["Ec"], rel=0.01)
    assert np.abs(result["stress"]).max() < 1e-8  # the minimum is the zero-pressure state
    assert np.abs(result["forces"]).max() < 1e-12


def test_elastic_constants(pot, a0):
    """C_ij = d sigma_i / d eps_j at a0 from the analytic stress, 4th-order central
    differences of symmetric strains. Every BCC atom is an inversion centre, so no internal
    relaxation occurs for any homogeneous strain. The strain step keeps every first-neighbor
    distance on one side of b0 (r1 - b0 = 4e-5 Å at a0), where V''' jumps."""
    reference = bcc_cell(a0)

    def stress(k, m, eps):
        strain = np.eye(3)
        strain[k, m] += eps / 2
        strain[m, k] += eps / 2
        atoms = reference.copy()
        atoms.set_cell(reference.cell.array @ strain, scale_atoms=True)
        return pot.evaluate(atoms)["stress"]

    h = 1e-5
    dxx = central_difference(lambda e: stress(0, 0, e), h) * EV_PER_A3_IN_GPA
    dyz = central_difference(lambda e: stress(1, 2, e), h) * EV_PER_A3_IN_GPA
    assert dxx[0] == pytest.approx(PUBLISHED["C11"], rel=0.01)
    assert dxx[1] == pytest.approx(PUBLISHED["C12"], rel=0.01)
    assert dxx[2] == pytest.approx(dxx[1], rel=1e-6)
    assert dyz[3] == pytest.approx(PUBLISHED["C44"], rel=0.01)
    assert np.abs(dyz[[0, 1, 2, 4, 5]]).max() < 1e-4


# (b) finite differences ----------------------------------------------------------------

def small_box():
    """4 random atoms: every cell width is below the cutoff, many self-images interact."""
    return random_box(7, natoms=4, min_distance=2.0)


FD_STRUCTURES = {
    "tetragonal-0": lambda: random_box(0, min_distance=2.0),
    "tetragonal-1": lambda: random_box(1, min_distance=2.0),
    "triclinic": lambda: random_box(3, tetragonal=False, min_distance=2.0),
    "small-cell": small_box,
}


def cell_widths(atoms):
    """Distances between opposite faces of the cell (Å)."""
    return abs(atoms.cell.volume) / np.linalg.norm(np.cross(atoms.cell[[1, 2, 0]],
                                                            atoms.cell[[2, 0, 1]]), axis=1)


def test_fd_structures_are_what_they_claim(pot):
    for name, make in FD_STRUCTURES.items():
        atoms = make()
        assert cell_widths(atoms).min() < 2 * pot.cutoff, name
        if name != "small-cell":
            assert 32 <= len(atoms) <= 40
            assert atoms.get_volume() / len(atoms) == pytest.approx(15.9)
    assert np.all(cell_widths(small_box()) < pot.cutoff)
    cell = random_box(3, tetragonal=False).cell
    assert np.abs(cell.angles() - 90).max() > 10  # skewed: angles 77, 99, 92 degrees


@pytest.mark.parametrize("name", FD_STRUCTURES)
def test_forces_are_minus_energy_gradient(pot, name):
    atoms = FD_STRUCTURES[name]()
    forces = pot.evaluate(atoms)["forces"]
    fd = fd_forces(lambda a: pot.evaluate(a)["energy"], atoms, range(len(atoms)))
    np.testing.assert_allclose(forces, fd, atol=1e-7)
    assert np.abs(forces).max() > 0.1


@pytest.mark.parametrize("name", FD_STRUCTURES)
def test_stress_is_strain_derivative(pot, name):
    atoms = FD_STRUCTURES[name]()
    stress = pot.evaluate(atoms)["stress"]
    fd = fd_stress(lambda a: pot.evaluate(a)["energy"], atoms)
    np.testing.assert_allclose(stress, fd, atol=1e-9)
    assert np.abs(stress).max() > 1e-3


# (c) supercell -------------------------------------------------------------------------

def test_supercell_has_identical_per_atom_values(pot):
    atoms = displaced_bcc(3)
    assert len(atoms) == 16
    big = atoms.repeat(2)
    small, large = pot.evaluate(atoms), pot.evaluate(big)
    np.testing.assert_allclose(large["energies"].reshape(8, 16), np.tile(small["energies"], (8, 1)),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(large["forces"].reshape(8, 16, 3),
                               np.tile(small["forces"], (8, 1, 1)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(large["stress"], small["stress"], rtol=0, atol=1e-13)
    assert large["energy"] == pytest.approx(8 * small["energy"], rel=1e-14)


def test_invariance_under_rotation_translation_permutation(pot):
    atoms = random_box(3, tetragonal=False, min_distance=2.0)
    ref = pot.evaluate(atoms)
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    order = np.random.default_rng(1).permutation(len(atoms))
    moved = Atoms(atoms.symbols[order], positions=atoms.positions[order] @ rotation.T + 1.7,
                  cell=atoms.cell.array @ rotation.T, pbc=True)
    out = pot.evaluate(moved)
    np.testing.assert_allclose(out["energies"], ref["energies"][order], atol=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"][order] @ rotation.T, atol=1e-11)
    sigma = lambda s: s[[0, 5, 4, 5, 1, 3, 4, 3, 2]].reshape(3, 3)  # noqa: E731
    np.testing.assert_allclose(sigma(out["stress"]), rotation @ sigma(ref["stress"]) @ rotation.T,
                               atol=1e-13)


# (d) LAMMPS pair_style eam/fs ----------------------------------------------------------

#: Table of the setfl file: r and rho grids start at 0 with NR = NRHO points; the r grid ends
#: exactly at the cutoff d, the rho grid at RHO_MAX (Å^2).
NR = NRHO = 40000
RHO_MAX = 100.0


def write_setfl(path, pot):
    """Tabulate ``pot`` as a LAMMPS eam/fs setfl file (F(rho), phi(r), r V(r); eV, Å)."""
    params = pot.kernel_params()
    dr, drho = pot.cutoff / (NR - 1), RHO_MAX / (NRHO - 1)
    r, rho = np.arange(NR) * dr, np.arange(NRHO) * drho
    embedding = np.array([fs.fs_embedding(x, params)[0] for x in rho])
    density = np.array([fs.fs_density(x, params)[0] for x in r])
    r_pair = r * np.array([fs.fs_pair(x, params)[0] for x in r])
    with open(path, "w") as f:
        f.write("Ackland-Thetford Finnis-Sinclair W, tabulated by emtool tests\n\n\n1 W\n")
        f.write(f"{NRHO} {drho!r} {NR} {dr!r} {pot.cutoff!r}\n74 183.84 3.1652 bcc\n")
        for values in (embedding, density, r_pair):
            np.savetxt(f, values.reshape(-1, 5), fmt="%.17g")
    return dr


LAMMPS_STRUCTURES = {
    **FD_STRUCTURES,
    "displaced-bcc": lambda: displaced_bcc(0),
    "compressed-bcc": lambda: displaced_bcc(1, a=2.95, amplitude=0.1),
}


@pytest.fixture(scope="module")
def setfl(pot, tmp_path_factory):
    path = tmp_path_factory.mktemp("eam") / "W_AT.eam.fs"
    return path, write_setfl(path, pot)


@pytest.mark.parametrize("name", LAMMPS_STRUCTURES)
def test_matches_lammps_eam_fs(pot, setfl, name):
    """Tolerances from the tabulation error. LAMMPS interpolates each table with cubic
    Hermite pieces whose knot slopes are 5-point differences: exact for the quadratic phi,
    O(dr^4 f'''') ~ 1e-13 elsewhere for V and for sqrt at rho >= 20 Å^2 (drho = 0.005 Å^2;
    near rho = 0 the divergent slope of sqrt would not be represented, hence dense
    structures only). The stencils straddle the jumps of V'' at c (6.9 eV/Å^2) and of phi''
    at d (2), which would cost up to ~1e-4 eV/Å for a pair within 3 dr of c or within dr of
    d (the table ends at d), so the structures are checked to have no such pair; the jump of
    V''' at b0 (~20 eV/Å^3) leaves at most ~20 dr^2 / 6 = 2e-7 eV/Å for pairs near b0."""
    path, dr = setfl
    atoms = LAMMPS_STRUCTURES[name]()
    rho = pot.densities(atoms)
    assert 20.0 <= rho.min() and rho.max() < RHO_MAX
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, pot.cutoff)
    r = np.linalg.norm(nl.rij, axis=1)
    assert np.abs(r - pot.c).min() > 3 * dr and (pot.d - r).min() > dr
    ours = pot.evaluate(atoms)
    ref = lammps_potential(atoms, ["pair_style eam/fs", f"pair_coeff * * {path} W"])
    assert abs(ours["energy"] - ref["energy"]) < 1e-9
    np.testing.assert_allclose(ours["energies"], ref["energies"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours["forces"], ref["forces"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours["stress"], ref["stress"], rtol=0, atol=1e-8)
    assert np.any(r < pot.b0)  # the core repulsion is exercised


# (e) isolated atoms and the rho = 0 guard ----------------------------------------------

def test_embedding_guard_at_zero_density():
    params = FinnisSinclairW().kernel_params()
    assert fs.fs_embedding(0.0, params) == (0.0, 0.0)
    for rho in (5e-324, 1e-300, 1e-20):
        value, slope = fs.fs_embedding(rho, params)
        assert np.isfinite(value) and np.isfinite(slope) and value <= 0 and slope < 0


def dimer(r, vacuum=None):
    atoms = Atoms("W2", positions=[[0, 0, 0], [r, 0, 0]])
    if vacuum:
        atoms.center(vacuum)
        atoms.pbc = True
    return atoms


@pytest.mark.parametrize("atoms", [Atoms("W"), Atoms("W", cell=20 * np.eye(3), pbc=True),
                                   dimer(5.0), dimer(FinnisSinclairW().d), dimer(4.5, 8.0)],
                         ids=["atom", "atom-periodic", "dimer-5", "dimer-at-d", "dimer-periodic"])
def test_isolated_atoms_give_exact_zeros(pot, atoms):
    out = pot.evaluate(atoms)
    assert out["energy"] == 0.0
    assert np.all(out["energies"] == 0.0) and np.all(out["forces"] == 0.0)
    assert ("stress" in out) == bool(atoms.pbc.all())
    if "stress" in out:
        assert np.all(out["stress"] == 0.0)


def test_zero_density_with_pairs_in_range_gives_no_nan():
    """With c > d, a dimer between d and c has rho = 0 but a pair term: F'(0) * phi' must be
    0 (a plain -A / (2 sqrt(rho)) gives -inf * 0 = nan)."""
    pot = FinnisSinclairW(c=5.0)
    params = pot.kernel_params()
    r = 4.7
    out = pot.evaluate(dimer(r))
    assert out["energy"] == pytest.approx(fs.fs_pair(r, params)[0], rel=1e-14)
    assert out["forces"][0, 0] == pytest.approx(fs.fs_pair(r, params)[1], rel=1e-14)
    assert np.all(np.isfinite(out["forces"])) and out["forces"][0, 0] != 0.0


def test_dimer_just_inside_d_is_finite(pot):
    """Each atom's only neighbor: rho = (d - r)^2 -> 0, the pair force tends to 2A."""
    for r in (pot.d - 1e-3, pot.d - 1e-9, np.nextafter(pot.d, 0)):
        gap = pot.d - r
        out = pot.evaluate(dimer(r))
        assert np.all(np.isfinite(out["forces"])) and np.isfinite(out["energy"])
        assert out["energy"] == pytest.approx(-2 * pot.A * gap, rel=1e-6)
        assert out["forces"][0, 0] == pytest.approx(2 * pot.A, rel=1e-6)
        assert out["forces"][1, 0] == -out["forces"][0, 0]


# boundary, specs and the ASE calculator ------------------------------------------------

def test_rejects_other_elements_and_bad_structures(pot):
    atoms = displaced_bcc(0)
    atoms.symbols[3] = "Mo"
    atoms.symbols[5] = "Ta"
    with pytest.raises(ParameterError, match="Mo, Ta"):
        pot.evaluate(atoms)
    with pytest.raises(StructureError, match="same position"):
        pot.evaluate(Atoms("W2", positions=np.zeros((2, 3))))
    with pytest.raises(StructureError):
        pot.evaluate(Atoms("W", positions=[[np.nan, 0, 0]]))


def test_wide_lists_and_thread_counts_give_the_same_result_bit_for_bit(pot):
    """A list wider than the cutoff (as MD's Verlet skin list after the atoms moved) and any
    number of threads give the energies and forces of the list at the cutoff, bit for bit."""
    import numba
    atoms = displaced_bcc(6, 7)
    wide = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, pot.cutoff + 1.0)
    atoms.positions += np.random.default_rng(8).normal(scale=0.1, size=atoms.positions.shape)
    exact = pot.evaluate(atoms)
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            for neighbors in (None, wide):
                result = pot.evaluate(atoms, neighbors=neighbors)
                np.testing.assert_array_equal(result["energies"], exact["energies"])
                np.testing.assert_array_equal(result["forces"], exact["forces"])
                np.testing.assert_allclose(result["stress"], exact["stress"], rtol=0,
                                           atol=1e-14)
    finally:
        numba.set_num_threads(before)
    with pytest.raises(ParameterError, match="neighbor list is of 686 atoms, the structure has 685"):
        pot.evaluate(atoms[:-1], neighbors=wide)


def test_parameters_are_validated():
    assert FinnisSinclairW().cutoff == 4.400224
    assert FinnisSinclairW(c=5.0).cutoff == 5.0
    for bad in (dict(A=np.nan), dict(d=0.0), dict(c=-1.0), dict(b0=-0.1), dict(B="90.3"),
                dict(alpha=True)):
        with pytest.raises(ParameterError):
            FinnisSinclairW(**bad)
    with pytest.raises(Exception):
        FinnisSinclairW().A = 2.0


def test_reference_specs():
    assert reference_potential("reference:W") == FinnisSinclairW()
    assert REFERENCES["reference:W"] is FinnisSinclairW
    with pytest.raises(ParameterError, match="reference:W"):
        reference_potential("reference:Mo")


def test_ase_calculator(pot):
    atoms = random_box(2, min_distance=2.0)
    expected = pot.evaluate(atoms)
    atoms.calc = EmtoolCalculator(FinnisSinclairW())
    assert atoms.get_potential_energy() == expected["energy"]
    np.testing.assert_array_equal(atoms.get_potential_energies(), expected["energies"])
    np.testing.assert_array_equal(atoms.get_forces(), expected["forces"])
    np.testing.assert_array_equal(atoms.get_stress(), expected["stress"])
    atoms.positions[0] += 0.05
    assert atoms.get_potential_energy() == pot.evaluate(atoms)["energy"]
