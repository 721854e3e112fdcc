"""Kernels of the selection of configurations (emtool.analysis.select): distances inside
configurations and the gains of the coverage (facility-location) rule."""
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


@jit(inline=True)
def _gain(reach, row):
    """sum_e max(0, reach[e] - row[e]), summed in the order of e."""
    total = 0.0
    for e in range(row.shape[0]):
        d = reach[e] - row[e]
        if d > 0.0:
            total += d
    return total


@jit(parallel=True)
def coverage_gains(reach, dist):
    """gain[c] = sum_e max(0, reach[e] - dist[c, e]) for every configuration c: how much c
    would lower the summed distance of the sample environments e to the training set.
    reach (S,), dist (n, S) distance of each sample environment to the nearest environment
    of c. Returns (n,) float64."""
    gains = np.empty(dist.shape[0])
    for c in numba.prange(dist.shape[0]):
        gains[c] = _gain(reach, dist[c])
    return gains


@jit
def coverage_gain(reach, row):
    """``coverage_gains`` of one configuration, row (S,): the same number, bit for bit."""
    return _gain(reach, row)


@jit(parallel=True)
def nearest_in_configurations(sample_norms2, row_norms2, products, starts, out):
    """out[c, e] = distance from sample row e to the nearest of the rows of configuration c,
    from |s_e|^2 (S,), |p_r|^2 (R,) and products[e, r] = s_e . p_r (S, R): configuration c
    holds the rows starts[c]:starts[c + 1] ((n + 1,) int64, starts[0] = 0, starts[n] = R).
    d^2 = (|s|^2 + |p|^2) - 2 s.p, clipped at 0 (rounding). out (n, S) float64, written."""
    for e in numba.prange(products.shape[0]):
        for c in range(starts.shape[0] - 1):
            best = np.inf
            for r in range(starts[c], starts[c + 1]):
                d2 = (sample_norms2[e] + row_norms2[r]) - 2.0 * products[e, r]
                if d2 < best:
                    best = d2
            out[c, e] = np.sqrt(max(best, 0.0))
