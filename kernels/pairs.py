"""Scatter of per-pair quantities onto atoms."""
import numpy as np

from emtool.kernels.jit import jit


@jit
def scatter_pairs(natoms, i, j, values):
    """out[i[p]] += values[p] and out[j[p]] -= values[p] for every pair p.

    i, j : (n_pairs,) int64 atom indices; values : (n_pairs, m) float64.
    Returns out : (natoms, m). With values = dE_i/dr_ij this gives the forces F = -dE/dr;
    with values = dB_i/dr_ij it gives minus the gradient of sum_i B_i.
    """
    out = np.zeros((natoms, values.shape[1]))
    for p in range(values.shape[0]):
        a = i[p]
        b = j[p]
        for k in range(values.shape[1]):
            out[a, k] += values[p, k]
            out[b, k] -= values[p, k]
    return out
