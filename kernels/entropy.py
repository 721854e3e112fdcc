"""Kozachenko–Leonenko (1-nearest-neighbor) descriptor entropy of one configuration.

For descriptors D_i (N, m) of the N atoms of a configuration (paper Eq. 1, DESIGN):

    S = (1/N) sum_i ln(N delta_i),   delta_i = sqrt(|D_i - D_n(i)|^2 + floor^2)

with n(i) the nearest other atom in descriptor space. The floor keeps S finite when two
environments coincide (perfect crystals, reached when K < 0) and makes it smooth there.
The gradient is, with w_i = (D_i - D_n(i)) / (N delta_i^2),

    dS/dD_j = w_j - sum_{i: n(i) = j} w_i

(DESIGN, "Gradient"); it is exact wherever the nearest-neighbor assignment does not switch.
"""
import numpy as np

from emtool.kernels.jit import jit
from emtool.kernels.nearest import sq_distance


@jit
def nearest_neighbors(d):
    """Nearest other row of each row of d (N, m), N >= 2: (index (N,) int64, squared distance (N,)).

    Ties go to the lowest index.
    """
    n = d.shape[0]
    nearest = np.zeros(n, np.int64)
    dist2 = np.full(n, np.inf)
    for i in range(n):
        for j in range(i + 1, n):
            s = sq_distance(d, i, d, j)
            if s < dist2[i]:
                dist2[i] = s
                nearest[i] = j
            if s < dist2[j]:
                dist2[j] = s
                nearest[j] = i
    return nearest, dist2


@jit
def entropy_from_distances(dist2, floor):
    """S = (1/N) sum ln(N sqrt(dist2 + floor^2)) from squared nearest-neighbor distances."""
    n = dist2.shape[0]
    total = 0.0
    for i in range(n):
        total += 0.5 * np.log(dist2[i] + floor * floor)
    return total / n + np.log(n)


@jit
def entropy_and_gradient(d, floor):
    """S and dS/dD (N, m) of descriptors d (N, m), N >= 2 (see the module docstring)."""
    n, m = d.shape
    nearest, dist2 = nearest_neighbors(d)
    grad = np.zeros((n, m))
    for i in range(n):
        scale = 1.0 / (n * (dist2[i] + floor * floor))
        j = nearest[i]
        for k in range(m):
            w = (d[i, k] - d[j, k]) * scale
            grad[i, k] += w
            grad[j, k] -= w
    return entropy_from_distances(dist2, floor), grad
