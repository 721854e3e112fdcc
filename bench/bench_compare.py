"""Cost of the descriptor-space comparison at scale: ZCA whitening, descriptor entropy and
coverage for 10^6 environments of dimension 55, exactly, against scipy's cKDTree.

Data: synthetic, not descriptors. Two sets A and B of N rows each: isotropic Gaussian
(A ~ N(0, I), B ~ N(0, 4 I)); the REF-whitened frame of real descriptors is isotropic for REF
by construction, and a Gaussian has no clusters of near-identical rows to help a KD-tree.

Stages, each timed with its peak traced memory (tracemalloc: NumPy buffers and Python
objects; cKDTree's C++ nodes are not traced, the process peak RSS is printed at the end):

- whitening: ``zca_whitening`` of A (streamed QR + SVD) and whitening of A and B;
- entropy: leave-one-out nearest distances of all N rows of A (``emtool.descriptors.nearest``, exact)
  and the entropy from them; coverage: nearest distances of all N rows of B to A, and the
  fraction beyond A's 99th-percentile spacing. Complete, not extrapolated;
- the baseline, scipy's cKDTree (what emtool used before): its build on A, and ``--queries``
  random rows of each search timed against the full tree, extrapolated linearly to N queries
  (the full KD-tree searches take days in 55 dimensions); at ``--check`` rows a complete
  comparison of both methods, times and the largest relative difference.

``--descriptors A.npz B.npz`` (``emtool descriptors`` files, e.g. the W DE and EM sets)
instead times the four searches of ``emtool compare`` (leave-one-out in A and in B, B in A,
A in B) on ``--check`` random whitened rows of each, emtool against cKDTree, and stops.

Threads: NUMBA_NUM_THREADS sets emtool's threads (query blocks); keep OPENBLAS_NUM_THREADS=1
(BLAS threads contend with them); ``--workers`` sets cKDTree's. JIT compilation is warmed up and not timed.
"""
import argparse
import resource
import time
import tracemalloc

import numpy as np
from scipy.spatial import cKDTree

from emtool.analysis.compare import zca_whitening
from emtool.kernels.entropy import entropy_from_distances
from emtool.descriptors.nearest import nearest_sq_distances

FLOOR = 1e-3


def timed(func, repeats=1):
    """(best seconds, peak traced MiB, result) of ``repeats`` calls of ``func``."""
    best, peak, result = np.inf, 0.0, None
    for _ in range(repeats):
        tracemalloc.start()
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1] / 2 ** 20)
        tracemalloc.stop()
    return best, peak, result


def entropy_and_coverage(a, b, method, workers):
    """(S of A, fraction of B beyond A's 99th-percentile leave-one-out spacing, loo, cover)."""
    loo = nearest_sq_distances(a, method=method, workers=workers)
    cover = nearest_sq_distances(a, b, method=method, workers=workers)
    beyond = float(np.mean(cover > np.quantile(loo, 0.99)))
    return entropy_from_distances(loo, FLOOR), beyond, loo, cover


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="environments per set")
    parser.add_argument("--dim", type=int, default=55)
    parser.add_argument("--queries", type=int, default=20,
                        help="query rows timed against the full-size KD-tree")
    parser.add_argument("--check", type=int, default=20_000,
                        help="rows per set of the complete emtool vs cKDTree comparison")
    parser.add_argument("--workers", type=int, default=1, help="cKDTree query threads")
    parser.add_argument("--descriptors", nargs=2, metavar=("A.npz", "B.npz"),
                        help="real descriptors: time the searches of emtool compare and stop")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    warm = rng.normal(size=(3000, args.dim))
    warm[:50] = warm[0] + 1e-9 * rng.normal(size=(50, args.dim))  # near-ties: the exact pass
    start = time.perf_counter()
    entropy_and_coverage(warm, warm[:100] * 2, "gemm", 1)
    print(f"JIT warm-up (compile or cache load): {time.perf_counter() - start:.1f} s")
    if args.descriptors:
        real_descriptors(args, rng)
        return
    rows = []

    small_a = rng.normal(size=(args.check, args.dim))
    small_b = 2.0 * rng.normal(size=(args.check, args.dim))
    t_emtool, _, ours = timed(lambda: entropy_and_coverage(small_a, small_b, "gemm", 1))
    t_tree, _, theirs = timed(lambda: entropy_and_coverage(small_a, small_b, "kdtree",
                                                           args.workers))
    diff = max(float(np.max(np.abs(x - y) / y)) for x, y in zip(ours[2:], theirs[2:]))
    rows.append((f"entropy + coverage, N = {args.check}: emtool", t_emtool, 0.0,
                 f"S = {ours[0]:.6f}; cKDTree {t_tree:.1f} s (x{t_tree / t_emtool:.1f}), "
                 f"S = {theirs[0]:.6f}, max relative difference {diff:.1e}"))

    a = rng.normal(size=(args.n, args.dim))
    b = 2.0 * rng.normal(size=(args.n, args.dim))
    print(f"synthetic Gaussian sets, N = {args.n} per set, D = {args.dim}", flush=True)
    t, mem, w = timed(lambda: zca_whitening(a))
    rows.append(("zca_whitening(A)", t, mem, ""))
    t, mem, (za, zb) = timed(lambda: (w.apply(a), w.apply(b)))
    rows.append(("whiten A and B", t, mem, ""))
    a = b = None  # free the raw sets

    t, mem, tree = timed(lambda: cKDTree(za))
    rows.append(("cKDTree(A) build", t, mem, ""))
    pick = rng.choice(args.n, args.queries, replace=False)
    for name, queries, k in (("leave-one-out A in A", za[pick], 2), ("B in A", zb[pick], 1)):
        t, mem, _ = timed(lambda: tree.query(queries, k=k, workers=args.workers))
        rows.append((f"cKDTree {name}, {args.queries} queries", t, mem,
                     f"{1e3 * t / args.queries:.0f} ms/query -> {args.n} queries "
                     f"{t / args.queries * args.n / 3600:.0f} h (extrapolated)"))
    tree = None

    t_loo, mem_loo, loo = timed(lambda: nearest_sq_distances(za, method="gemm"))
    rows.append((f"emtool leave-one-out A in A, {args.n} queries", t_loo, mem_loo,
                 f"S = {entropy_from_distances(loo, FLOOR):.6f}"))
    print(f"  leave-one-out pass done in {t_loo:.0f} s", flush=True)
    t_cov, mem_cov, cover = timed(lambda: nearest_sq_distances(za, zb, method="gemm"))
    rows.append((f"emtool B in A, {args.n} queries", t_cov, mem_cov,
                 f"B beyond A's threshold: "
                 f"{100 * np.mean(cover > np.quantile(loo, 0.99)):.1f}%"))

    width = max(len(r[0]) for r in rows)
    print(f"{'stage':<{width}}  {'seconds':>9}  {'peak MiB':>9}  notes")
    for name, t, mem, note in rows:
        print(f"{name:<{width}}  {t:9.1f}  {mem:9.0f}  {note}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10
    print(f"process peak RSS: {rss:.0f} MiB")


def real_descriptors(args, rng):
    """The four nearest-neighbor searches of ``emtool compare`` on real descriptors."""
    a, b = (np.load(path)["B"] for path in args.descriptors)
    whitening = zca_whitening(a)
    za = whitening.apply(a[rng.choice(len(a), min(args.check, len(a)), replace=False)])
    zb = whitening.apply(b[rng.choice(len(b), min(args.check, len(b)), replace=False)])
    print(f"{args.descriptors[0]} (A, the whitening frame): {len(za)} of {len(a)} rows; "
          f"{args.descriptors[1]} (B): {len(zb)} of {len(b)} rows; D = {a.shape[1]}")
    print(f"{'search':<18} {'emtool s':>9} {'cKDTree s':>10} {'ratio':>6}  max rel. difference")
    for name, points, queries in (("A leave-one-out", za, None), ("B in A", za, zb),
                                  ("A in B", zb, za), ("B leave-one-out", zb, None)):
        ours = timed(lambda: nearest_sq_distances(points, queries, method="gemm"))
        theirs = timed(lambda: nearest_sq_distances(points, queries, method="kdtree",
                                                    workers=args.workers))
        diff = np.max(np.abs(ours[2] - theirs[2]) / np.maximum(theirs[2], 1e-300))
        print(f"{name:<18} {ours[0]:9.2f} {theirs[0]:10.2f} {theirs[0] / ours[0]:6.1f}  "
              f"{diff:.1e}")


if __name__ == "__main__":
    main()
