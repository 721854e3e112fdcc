"""Descriptor entropy of a set of atomic environments (paper Eq. 1; KL 1-NN estimator).

``descriptor_entropy(d, floor)`` = (1/N) sum_i ln(N sqrt(delta_i^2 + floor^2)) with delta_i the
distance from row i of d (N, m) to its nearest other row. Small sets (one configuration) use
the Numba kernel of the generator; large sets (whole datasets, millions of environments, any
dimension) a KD-tree (scipy cKDTree). Both give the same value.
"""
import numpy as np
from scipy.spatial import cKDTree

from emtool.kernels.entropy import entropy_from_distances, nearest_neighbors
from emtool.params import ParameterError

#: Above this many rows the KD-tree is used (the kernel is O(N^2)).
KDTREE_MIN_ROWS = 2000


def nearest_distances(d, method="auto", workers=1):
    """Squared distance (N,) from each row of d (N, m) to its nearest other row."""
    d = np.ascontiguousarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 2:
        raise ParameterError(f"descriptor entropy needs an (N >= 2, m) array, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ParameterError("descriptors contain non-finite values")
    if method == "auto":
        method = "kdtree" if d.shape[0] >= KDTREE_MIN_ROWS else "brute"
    if method == "brute":
        return nearest_neighbors(d)[1]
    if method != "kdtree":
        raise ParameterError(f"unknown method {method!r}: 'auto', 'brute' or 'kdtree'")
    dist, _ = cKDTree(d).query(d, k=2, workers=workers)
    return dist[:, 1] ** 2


def descriptor_entropy(d, floor=0.0, method="auto", workers=1):
    """S of the rows of d (N, m); floor >= 0 in the units of d (see the module docstring)."""
    if floor < 0:
        raise ParameterError(f"entropy floor must be >= 0, got {floor}")
    dist2 = nearest_distances(d, method, workers)
    if floor == 0 and dist2.min() == 0:
        raise ParameterError("identical descriptor rows: the entropy needs a floor > 0")
    return float(entropy_from_distances(dist2, floor))
