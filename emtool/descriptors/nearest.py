"""Exact nearest-neighbor distances between sets of descriptor rows (entropy, coverage).

``nearest_sq_distances(points, queries=None)`` is |q - p|^2 from each query row to its nearest
row of ``points`` (or, without queries, from each row to its nearest *other* row: the
leave-one-out distances of the entropy estimator). Three exact methods, same result:

- ``"brute"``: the O(N^2) Numba kernel of the generator, for small sets;
- ``"kdtree"``: scipy's cKDTree, fast when the rows fill few dimensions;
- ``"gemm"``: screened matrix products. In 30-55 whitened descriptor dimensions a KD-tree
  prunes almost nothing and scans ~10x slower than a matrix product (bench/RESULTS.md), so
  the squared distances v = |q|^2 + |p|^2 - 2 q.p of blocks of rows are screened with float32
  BLAS products, each query keeps its ``CANDIDATES`` smallest v, and those candidates'
  distances are recomputed directly in float64. A rigorous bound on |v - |q - p|^2| (rounding
  of the float32 inputs and of a D-term dot product) decides whether any other point could be
  nearer; for the queries where it cannot (near-ties, clusters of near-identical
  environments) a float64 pass measures directly every point that the bound cannot exclude.
  The result is the minimum of directly computed float64 distances, as cKDTree's.

``"auto"`` takes brute for fewer than ``BRUTE_MAX_ROWS`` rows searched against themselves,
the KD-tree up to ``KDTREE_MAX_DIM`` dimensions and gemm above. Threads: the KD-tree uses
``workers``; gemm spreads its query blocks over ``numba.get_num_threads()`` Python threads
(``NUMBA_NUM_THREADS``), each running a BLAS product and a GIL-free merge kernel. BLAS's own
threads then contend with them: with ``OPENBLAS_NUM_THREADS=1`` two threads run 1.95x faster
than one, with BLAS on 2 threads as well there is no gain (bench/RESULTS.md).
"""
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from scipy.spatial import cKDTree

from emtool.kernels.entropy import nearest_neighbors
from emtool.kernels.nearest import merge_block, merge_exact, refine
from emtool.errors import ParameterError

#: Below this many rows a set searched against itself uses the O(N^2) kernel.
BRUTE_MAX_ROWS = 2000
#: Up to this dimension the KD-tree is used (above it prunes too little; bench_compare.py).
KDTREE_MAX_DIM = 12
#: Screening candidates kept per query.
CANDIDATES = 8
#: Rows per block of the screening products (queries x points: 8 MiB of float32).
QUERY_BLOCK, POINT_BLOCK = 1024, 2048
METHODS = ("auto", "brute", "kdtree", "gemm")


def _checked_rows(x, name):
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ParameterError(f"{name} must be a non-empty (N, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ParameterError(f"{name} contain non-finite values")
    return x


def nearest_sq_distances(points, queries=None, method="auto", workers=1):
    """Squared distance to the nearest row of ``points`` (N, D) from each row of ``queries``
    (M, D), or, when ``queries`` is None, from each row of ``points`` to its nearest other
    row (N >= 2). Returns (M,) or (N,) float64 in squared units of the rows; exact (see the
    module docstring). ``method``: one of ``METHODS``; ``workers``: KD-tree threads.
    """
    if method not in METHODS:
        raise ParameterError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    points = _checked_rows(points, "descriptors")
    leave_one_out = queries is None
    if leave_one_out:
        if len(points) < 2:
            raise ParameterError("leave-one-out distances need at least 2 rows")
        queries = points
    else:
        queries = _checked_rows(queries, "query descriptors")
        if queries.shape[1] != points.shape[1]:
            raise ParameterError(f"query dimension {queries.shape[1]} != {points.shape[1]}")
    if method == "auto":
        if leave_one_out and len(points) < BRUTE_MAX_ROWS:
            method = "brute"
        else:
            method = "kdtree" if points.shape[1] <= KDTREE_MAX_DIM else "gemm"
    if method == "brute":
        if not leave_one_out:
            raise ParameterError("method 'brute' is for a set searched against itself")
        return nearest_neighbors(points)[1]
    if method == "kdtree":
        dist, _ = cKDTree(points).query(queries, k=2 if leave_one_out else 1, workers=workers)
        return (dist[:, 1] if leave_one_out else dist) ** 2
    return _screened(points, queries, leave_one_out)


def _screened(points, queries, leave_one_out):
    """The "gemm" method: a float32 screening keeps candidates, an exact float64 pass settles
    the queries whose candidates could not rule out every other point."""
    every = np.arange(len(queries))
    screen32 = _Screening(points, queries, every if leave_one_out else None, np.float32)
    best_v = np.full((len(queries), CANDIDATES), np.inf)
    best_j = np.full((len(queries), CANDIDATES), -1, dtype=np.int64)
    screen32.blocks(lambda block, q0, p0, q_norm2, p_norm2, skip: merge_block(
        block, q_norm2, p_norm2, q0, p0, skip, best_v, best_j))
    dist2, decided = np.empty(len(queries)), np.empty(len(queries), dtype=np.bool_)
    refine(points, queries, best_v, best_j, *screen32.bounds(), dist2, decided)
    todo = every[~decided]
    if len(todo):
        screen64 = _Screening(points, queries[todo], todo if leave_one_out else None,
                              np.float64)
        rest, rest_queries, bounds = dist2[todo], queries[todo], screen64.bounds()
        screen64.blocks(lambda block, q0, p0, q_norm2, p_norm2, skip: merge_exact(
            block, q_norm2, p_norm2, q0, p0, skip, points, rest_queries, *bounds, rest))
        dist2[todo] = rest
    return dist2


class _Screening:
    """Blocks of screening products Q P^T of centered rows in ``dtype``, with the squared
    norms (float64) of the rows actually multiplied. ``query_index`` (M,): the point each
    query skips (leave-one-out), None for none."""

    def __init__(self, points, queries, query_index, dtype):
        self.mean = points.mean(axis=0)
        self.p = (points - self.mean).astype(dtype)
        self.q = (queries - self.mean).astype(dtype)
        self.p_norm2 = np.einsum("ij,ij->i", self.p, self.p, dtype=np.float64)
        self.q_norm2 = np.einsum("ij,ij->i", self.q, self.q, dtype=np.float64)
        self.skip = (np.full(len(queries), -1, dtype=np.int64) if query_index is None
                     else np.ascontiguousarray(query_index, dtype=np.int64))
        self.unit = float(np.finfo(dtype).eps) / 2

    def bounds(self):
        """(q_norm (M,), p_max, unit, shift): the rounding-bound inputs of the kernels."""
        return (np.sqrt(self.q_norm2), float(np.sqrt(self.p_norm2.max())), self.unit,
                float(np.linalg.norm(self.mean)))

    def blocks(self, task):
        """Run ``task(block, q0, p0, q_norm2, p_norm2, skip)`` on every block of Q P^T (query
        blocks outermost), the query blocks spread over ``numba.get_num_threads()`` Python
        threads (tasks of different query blocks write different rows)."""
        n_q, n_p = len(self.q), len(self.p)

        def query_block(q0):
            q1 = min(q0 + QUERY_BLOCK, n_q)
            prod = np.empty((q1 - q0, POINT_BLOCK), dtype=self.p.dtype)
            for p0 in range(0, n_p, POINT_BLOCK):
                p1 = min(p0 + POINT_BLOCK, n_p)
                block = prod[:, :p1 - p0]
                np.matmul(self.q[q0:q1], self.p[p0:p1].T, out=block)
                task(block, q0, p0, self.q_norm2[q0:q1], self.p_norm2[p0:p1], self.skip)

        with ThreadPoolExecutor(numba.get_num_threads()) as pool:
            list(pool.map(query_block, range(0, n_q, QUERY_BLOCK)))
