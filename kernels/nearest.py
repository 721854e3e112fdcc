"""Kernels of the exact nearest-neighbor search by screened matrix products (emtool.descriptors.nearest).

A block of query rows Q and point rows P gives the screened squared distances
v = |q|^2 + |p|^2 - 2 q.p from one matrix product Q P^T (BLAS, outside these kernels);
``merge_block`` keeps each query's k smallest v, ``refine`` recomputes the candidates'
distances directly in float64 and decides, from a bound on the error of v, whether the
smallest of them is the exact nearest distance.
"""
import numpy as np

from emtool.kernels.jit import jit


@jit(inline=True)
def sq_distance(x, i, y, j):
    """|x[i] - y[j]|^2 of rows of two (., D) float64 arrays, summed directly."""
    s = 0.0
    for d in range(x.shape[1]):
        diff = x[i, d] - y[j, d]
        s += diff * diff
    return s


@jit(inline=True)
def rounding_bound(q_norm, dist2, p_max, unit, shift, dim):
    """Bound on |v - |q - p|^2| for the points p that can be nearer than sqrt(dist2) (see
    ``refine``)."""
    r = min(p_max, q_norm + np.sqrt(dist2))
    return (dim + 8) * (2.0 * unit * (q_norm + r) ** 2 + 2.0 ** -50 * (q_norm + r + shift) ** 2)


@jit(nogil=True)
def merge_block(prod, q_norm2, p_norm2, q_start, p_start, skip, best_v, best_j):
    """Merge one block of screened squared distances into the queries' k best candidates.

    prod : (bq, bp) float32 or float64, Q P^T of queries q_start.. and points p_start..;
    q_norm2 : (bq,), p_norm2 : (bp,) float64 squared norms of those rows;
    skip : (M,) int64, a point index each query ignores (itself, when a set is searched
    against itself), -1 for none;
    best_v : (M, k) float64, ascending screened values, +inf where empty (updated);
    best_j : (M, k) int64 point indices of best_v, -1 where empty (updated).
    """
    bq, bp = prod.shape
    k = best_v.shape[1]
    for a in range(bq):
        i = q_start + a
        worst = best_v[i, k - 1]
        for b in range(bp):
            v = q_norm2[a] + p_norm2[b] - 2.0 * prod[a, b]
            if v < worst:
                j = p_start + b
                if j == skip[i]:
                    continue
                pos = k - 1
                while pos > 0 and best_v[i, pos - 1] > v:
                    best_v[i, pos] = best_v[i, pos - 1]
                    best_j[i, pos] = best_j[i, pos - 1]
                    pos -= 1
                best_v[i, pos] = v
                best_j[i, pos] = j
                worst = best_v[i, k - 1]


@jit(nogil=True)
def refine(points, queries, best_v, best_j, q_norm, p_max, unit, shift, dist2, decided):
    """Exact squared distances of the candidates; is their minimum the nearest distance?

    points : (N, D), queries : (M, D) float64; best_v, best_j : (M, k) from ``merge_block``;
    q_norm : (M,) norms of the screened (centered) queries, p_max the largest screened point
    norm, unit the unit roundoff of the screening products, shift the norm of the centering
    vector. Writes dist2 (M,), the smallest direct float64 |q - p|^2 over the candidates, and
    decided (M,) bool: True when no other point can be nearer, i.e. every non-candidate
    (screened v >= best_v[:, k-1]) has |q - p|^2 >= best_v[:, k-1] - tol >= dist2, or the
    distance is 0, or every point is a candidate. tol bounds |v - |q - p|^2|: rounding of the
    inputs to the screening precision and of the D-term dot product (each below
    2 u (|q| + |p|)^2, (D + 8) of them for margin) and of the float64 norms and centering;
    only points with |p| <= |q| + sqrt(dist2) can be nearer, which bounds |p| in it.
    """
    m, k = best_j.shape
    dim = points.shape[1]
    for i in range(m):
        best = np.inf
        for c in range(k):
            if best_j[i, c] >= 0:
                best = min(best, sq_distance(queries, i, points, best_j[i, c]))
        dist2[i] = best
        if best == 0.0 or best_j[i, k - 1] < 0:
            decided[i] = True
        else:
            tol = rounding_bound(q_norm[i], best, p_max, unit, shift, dim)
            decided[i] = best_v[i, k - 1] - tol >= best


@jit(nogil=True)
def merge_exact(prod, q_norm2, p_norm2, q_start, p_start, skip, points, queries, q_norm,
                p_max, unit, shift, dist2):
    """Exact pass over one block: every point whose screened v could be within the bound
    of the query's current nearest distance is measured directly.

    prod, q_norm2, p_norm2, q_start, p_start, skip : as ``merge_block``; points (N, D),
    queries (M, D) float64; q_norm, p_max, unit, shift : as ``refine``; dist2 (M,) the
    exact squared distance to some point (an upper bound of the nearest), lowered in place
    to the nearest over the block. A point can be nearer only if v <= dist2 + tol, tol as
    in ``refine`` (so a pass over all blocks is exact whatever the near-ties).
    """
    bq, bp = prod.shape
    dim = points.shape[1]
    for a in range(bq):
        i = q_start + a
        tol = rounding_bound(q_norm[i], dist2[i], p_max, unit, shift, dim)
        for b in range(bp):
            v = q_norm2[a] + p_norm2[b] - 2.0 * prod[a, b]
            j = p_start + b
            if v <= dist2[i] + tol and j != skip[i]:
                dist2[i] = min(dist2[i], sq_distance(queries, i, points, j))
