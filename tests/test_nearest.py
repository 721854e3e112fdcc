"""Exact nearest-neighbor distances (emtool.descriptors.nearest) against direct float64 distances and
scipy's cKDTree, including the near-ties that the float32 screening cannot resolve."""
import numpy as np
import pytest
from scipy.spatial import cKDTree

from emtool.descriptors.nearest import nearest_sq_distances
from emtool.errors import ParameterError


def direct(points, queries=None):
    """Squared distances by the definition: (M, N) differences, summed in float64."""
    loo = queries is None
    queries = points if loo else queries
    d2 = ((queries[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)
    if loo:
        np.fill_diagonal(d2, np.inf)
    return d2.min(axis=1)


@pytest.mark.parametrize("dim", [14, 30, 55])
def test_gemm_equals_kdtree(dim):
    rng = np.random.default_rng(dim)
    points = rng.normal(size=(3000, dim)) + 50.0       # far from the origin: centering
    queries = 3.0 * rng.normal(size=(1000, dim)) + 50.0
    tree = cKDTree(points)
    loo = nearest_sq_distances(points, method="gemm")
    assert np.allclose(loo, tree.query(points, k=2)[0][:, 1] ** 2, rtol=1e-13, atol=0)
    cover = nearest_sq_distances(points, queries, method="gemm")
    assert np.allclose(cover, tree.query(queries)[0] ** 2, rtol=1e-13, atol=0)
    assert np.array_equal(nearest_sq_distances(points), loo)     # auto picks gemm for D > 12


def test_near_ties_and_duplicates_are_exact():
    """Clusters of near-identical rows (differences ~1e-9, far below the float32 screening
    bound) and exact duplicates: the answer must still be the true nearest row."""
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(40, 55))
    points = np.repeat(centers, 30, axis=0) + 1e-9 * rng.normal(size=(1200, 55))
    points[::7] = points[3]                 # a big group of exact duplicates
    points = np.vstack([points, rng.normal(size=(800, 55))])
    queries = np.repeat(centers, 5, axis=0) + 1e-9 * rng.normal(size=(200, 55))
    loo = nearest_sq_distances(points, method="gemm")
    expected = direct(points)
    assert np.sum(expected == 0) > 100 and np.all(loo[expected == 0] == 0)
    assert np.allclose(loo, expected, rtol=1e-12, atol=0)
    assert np.allclose(nearest_sq_distances(points, queries, method="gemm"),
                       direct(points, queries), rtol=1e-12, atol=0)


def test_methods_agree_on_small_sets():
    rng = np.random.default_rng(2)
    points = rng.normal(size=(500, 5))
    expected = direct(points)
    for method in ("brute", "kdtree", "gemm", "auto"):
        assert np.allclose(nearest_sq_distances(points, method=method), expected, rtol=1e-13)
    assert np.array_equal(nearest_sq_distances(np.ones((4, 55)), method="gemm"), np.zeros(4))
    assert np.allclose(nearest_sq_distances(points[:2], method="gemm"),
                       np.sum((points[0] - points[1]) ** 2))


def test_bad_input():
    with pytest.raises(ParameterError, match="unknown method"):
        nearest_sq_distances(np.zeros((3, 2)), method="ball")
    with pytest.raises(ParameterError, match="at least 2 rows"):
        nearest_sq_distances(np.zeros((1, 2)))
    with pytest.raises(ParameterError, match="query dimension 3 != 2"):
        nearest_sq_distances(np.zeros((3, 2)), np.zeros((1, 3)))
    with pytest.raises(ParameterError, match="non-finite"):
        nearest_sq_distances(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ParameterError, match="'brute' is for a set searched against itself"):
        nearest_sq_distances(np.zeros((3, 2)), np.zeros((1, 2)), method="brute")
