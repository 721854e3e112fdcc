"""Distances inside configurations, for the selection of configurations (emtool.select)."""
import numba
import numpy as np

from emtool.kernels.entropy import nearest_neighbors
from emtool.kernels.jit import jit


@jit(parallel=True)
def nearest_within(points, offsets):
    """Squared distance from each row of ``points`` (M, D) to the nearest other row of the
    same configuration, whose rows are ``offsets[c]:offsets[c + 1]`` ((n + 1,) int64).
    Returns (M,) float64; inf for a configuration of one row. Exact (direct differences)."""
    d2 = np.full(points.shape[0], np.inf)
    for c in numba.prange(offsets.shape[0] - 1):
        a, b = offsets[c], offsets[c + 1]
        if b - a >= 2:
            _, dist2 = nearest_neighbors(points[a:b])
            d2[a:b] = dist2
    return d2
