"""SNAP derivatives against central finite differences, and invariances of B."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import displaced_bcc, fd_forces, fd_stress, random_box
from emtool import SnapParams
from emtool.potentials.snap import voigt
from emtool.descriptors.snap import (bispectrum, bispectrum_derivatives, scatter_pair_forces,
                                     snap_pair_forces, snap_pairs)


def beta_energy(atoms, params, beta):
    return float(np.sum(beta * bispectrum(atoms, params)))


def beta_forces_stress(atoms, params, beta):
    pairs = snap_pairs(atoms, params)
    dedr, _ = snap_pair_forces(params, pairs, beta)
    forces, virial = scatter_pair_forces(len(atoms), pairs.i, pairs.j, pairs.rij, dedr)
    return forces, -virial / atoms.get_volume()


def strained(atoms, eps):
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + eps).T, scale_atoms=True)
    return out


@pytest.mark.parametrize("twojmax", [2, 5, 8])
def test_beta_forces_and_stress_match_finite_differences(twojmax):
    atoms = random_box(11, natoms=12, volume_per_atom=15.9, tetragonal=False)
    params = SnapParams(twojmax=twojmax, rcutfac=4.73, bzeroflag=0)
    beta = np.random.default_rng(2).normal(size=(len(atoms), params.ncoeff))
    forces, stress = beta_forces_stress(atoms, params, beta)
    energy = lambda a: beta_energy(a, params, beta)  # noqa: E731
    fd = fd_forces(energy, atoms, range(len(atoms)), h=1e-5)
    np.testing.assert_allclose(forces, fd, atol=1e-6 * np.abs(fd).max())
    fd = fd_stress(energy, atoms)
    np.testing.assert_allclose(voigt(stress), fd, atol=1e-6 * np.abs(fd).max())


def test_per_pair_derivatives_match_finite_differences():
    atoms = displaced_bcc(3, repeat=(1, 1, 2), amplitude=0.2)
    params = SnapParams(twojmax=6, rcutfac=4.73)
    der = bispectrum_derivatives(atoms, params)
    grad = der.per_atom()
    h = 1e-5
    for a in (0, 3):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, k] += h
            minus.positions[a, k] -= h
            fd = (bispectrum(plus, params) - bispectrum(minus, params)).sum(0) / (2 * h)
            np.testing.assert_allclose(grad[a, :, k], fd, atol=1e-6 * np.abs(fd).max())
    eps = np.zeros((3, 3))
    eps[0, 2] = h
    fd = (bispectrum(strained(atoms, eps), params) - bispectrum(strained(atoms, -eps), params)).sum(0)
    np.testing.assert_allclose(-der.virial()[:, 0, 2], fd / (2 * h), atol=1e-6 * np.abs(fd / h).max())


@pytest.mark.parametrize("twojmax", [1, 2, 3, 6, 8])
def test_adjoint_forces_equal_contracted_derivatives(twojmax):
    """The force kernel's reverse-mode pass through the U recursion (``_dedr_adjoint``)
    gives the forward-mode derivatives of the dB/dr kernel, contracted with beta: odd and
    even 2J, whose mirrored rows differ."""
    atoms = random_box(5)
    params = SnapParams(twojmax=twojmax)
    beta = np.random.default_rng(0).normal(size=(len(atoms), params.ncoeff))
    pairs = snap_pairs(atoms, params)
    dedr, _ = snap_pair_forces(params, pairs, beta)
    der = bispectrum_derivatives(atoms, params)
    np.testing.assert_allclose(dedr, np.einsum("pdk,pd->pk", der.dbdr, beta[der.i]),
                               atol=1e-10 * np.abs(dedr).max())


def test_bispectrum_invariances():
    atoms = random_box(21, tetragonal=False)
    params = SnapParams(twojmax=8)
    b = bispectrum(atoms, params)
    tol = dict(rtol=1e-10, atol=1e-10 * np.abs(b).max())
    rotated = atoms.copy()
    rot = Rotation.random(random_state=4).as_matrix()
    rotated.set_cell(atoms.cell.array @ rot.T)
    rotated.positions = atoms.positions @ rot.T
    np.testing.assert_allclose(bispectrum(rotated, params), b, **tol)
    moved = atoms.copy()
    moved.positions += [0.37, -1.2, 2.9]
    np.testing.assert_allclose(bispectrum(moved, params), b, **tol)
    imaged = atoms.copy()
    imaged.positions[::3] += atoms.cell.array[0] - 2 * atoms.cell.array[2]
    np.testing.assert_allclose(bispectrum(imaged, params), b, **tol)
    order = np.random.default_rng(1).permutation(len(atoms))
    np.testing.assert_allclose(bispectrum(atoms[order], params), b[order], **tol)


def test_isolated_atom_and_bzero():
    from ase import Atoms
    atoms = Atoms("W", positions=[[0, 0, 0]], cell=[30, 30, 30], pbc=True)
    b0 = bispectrum(atoms, SnapParams(twojmax=6, bzeroflag=0))
    b1 = bispectrum(atoms, SnapParams(twojmax=6, bzeroflag=1))
    from emtool.kernels.snap_basis import snap_basis
    np.testing.assert_allclose(b0[0], snap_basis(6).idxb[:, 2] + 1.0, rtol=1e-14)
    np.testing.assert_allclose(b1, 0, atol=1e-12)


def test_derivative_pass_returns_the_bispectrum():
    from ase import Atoms
    for atoms in (random_box(8), Atoms("W2", positions=[[0, 0, 0], [9, 9, 9]], cell=[20] * 3,
                                        pbc=True)):
        for bzeroflag in (0, 1):
            params = SnapParams(twojmax=6, bzeroflag=bzeroflag)
            np.testing.assert_allclose(bispectrum_derivatives(atoms, params).b,
                                       bispectrum(atoms, params), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("twojmax", [2, 8])
def test_kept_u_gives_the_adjoint_kernels_numbers_bit_for_bit(twojmax):
    """The generator's two-pass path (B with U kept, then dE/dr from that U) returns exactly
    what ``bispectrum_kernel`` and ``beta_forces_kernel`` return, for any chunk count; an
    atom without neighbors included."""
    from ase import Atoms
    from emtool.descriptors.snap import kernel_inputs
    from emtool.kernels.snap import (beta_forces_from_u, beta_forces_kernel, bispectrum_and_u,
                                     bispectrum_kernel)
    atoms = random_box(5) + Atoms("W", positions=[[40.0, 40.0, 40.0]])
    atoms.set_cell([60.0] * 3)
    params = SnapParams(twojmax=twojmax)
    args = kernel_inputs(params, snap_pairs(atoms, params))
    beta = np.random.default_rng(2).normal(size=(len(atoms), params.ncoeff))
    for nchunk in (1, 3):
        b, kept = bispectrum_and_u(*args, nchunk)
        np.testing.assert_array_equal(b, bispectrum_kernel(*args, nchunk))
        np.testing.assert_array_equal(beta_forces_from_u(args[0], args[1], beta, kept, nchunk),
                                      beta_forces_kernel(*args, beta, nchunk)[0])
