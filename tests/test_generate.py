"""Entropy-optimized generation: gradients, estimator agreement, and the generator's behavior."""
import numpy as np
import pytest

from conftest import central_difference
from emtool.descriptors.entropy import descriptor_entropy
from emtool.generator.generate import (GeneratorParams, evaluate_potential, generate_one,
                                       random_start)
from emtool.kernels.entropy import entropy_and_gradient
from emtool.descriptors.neighbors import neighbor_list_atoms

PARAMS = GeneratorParams().with_descriptor_scale()


def test_entropy_gradient_matches_finite_differences():
    d = np.random.default_rng(0).normal(size=(30, 5))
    s, grad = entropy_and_gradient(d, 1e-3)
    for i, k in [(0, 0), (7, 3), (29, 4)]:
        def shifted(h):
            e = d.copy()
            e[i, k] += h
            return entropy_and_gradient(e, 1e-3)[0]
        assert grad[i, k] == pytest.approx(central_difference(shifted, 1e-6), rel=1e-6)
    assert s == pytest.approx(descriptor_entropy(d, 1e-3))


def test_kdtree_and_kernel_agree():
    d = np.random.default_rng(1).normal(size=(3000, 55))
    assert descriptor_entropy(d, 1e-3, method="kdtree") == pytest.approx(
        descriptor_entropy(d, 1e-3, method="brute"), rel=1e-12)


def test_floor_keeps_identical_environments_finite():
    d = np.zeros((4, 5))
    assert np.isfinite(descriptor_entropy(d, 1e-3))
    s, grad = entropy_and_gradient(d, 1e-3)
    assert np.isfinite(s) and np.all(grad == 0)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_potential_forces_match_finite_differences(sign):
    atoms = random_start(PARAMS, np.random.default_rng(3))
    atoms.rattle(0.01, seed=1)
    _, _, _, forces = evaluate_potential(atoms, PARAMS, sign)

    def energy(a):
        return evaluate_potential(a, PARAMS, sign)[0]

    for a in range(0, len(atoms), 7):
        for k in range(3):
            def moved(h):
                b = atoms.copy()
                b.positions[a, k] += h
                return energy(b)
            assert forces[a, k] == pytest.approx(-central_difference(moved, 1e-6),
                                                 rel=1e-5, abs=1e-6)


@pytest.fixture(scope="module")
def generated():
    return [generate_one(PARAMS, 11, k) for k in range(40)]


def test_generator_moves_entropy_in_the_direction_of_K(generated):
    up = [a.info["entropy"] > a.info["entropy_start"] for a in generated if a.info["K"] > 0]
    down = [a.info["entropy"] < a.info["entropy_start"] for a in generated if a.info["K"] < 0]
    assert len(up) == len(down) == 20
    assert np.mean(up) >= 0.95 and np.mean(down) >= 0.95


def test_generated_configurations_respect_the_exclusion_bound(generated):
    bound = PARAMS.exclusion_bound
    for atoms in generated:
        nl = neighbor_list_atoms(atoms, bound)
        assert len(nl.i) == 0, f"pair closer than {bound} Å in configuration {atoms.info['index']}"
        assert np.isfinite(atoms.positions).all()
        assert all(np.isfinite(atoms.info[key]) for key in ("entropy", "V_rep", "fmax"))


def test_configuration_is_a_pure_function_of_seed_and_index(generated):
    again = generate_one(PARAMS, 11, 5)
    np.testing.assert_array_equal(again.positions, generated[5].positions)
    assert again.info == generated[5].info
    assert not np.array_equal(generate_one(PARAMS, 12, 5).positions, generated[5].positions)
