"""Cost of the descriptor-space comparison at scale: ZCA whitening, KD-tree entropy and
coverage for 10^6 environments of dimension 55.

Data: synthetic, not descriptors. Two sets A and B of N rows each: isotropic Gaussian
(A ~ N(0, I), B ~ N(0, 4 I)), the worst case for a KD-tree, and the REF-whitened frame of
real descriptors is close to it (the reference is isotropic there by construction).

Stages, each timed (best of ``--repeats``) with its peak traced memory (tracemalloc: NumPy
buffers and Python objects; cKDTree's C++ nodes are not traced, the process peak RSS is
printed at the end):

- whitening: ``zca_whitening`` of A (streamed QR + SVD) and whitening of A and B;
- tree: cKDTree of whitened A;
- entropy / coverage: leave-one-out queries of A in A (the entropy and the coverage
  threshold) and queries of B in A. The full 10^6 x 10^6 searches take hours in 55
  dimensions, so they are timed on ``--queries`` random query rows against the full tree and
  extrapolated linearly in the number of queries (the queries are independent); complete
  runs at smaller N (``--sizes``) show the ~N^2 growth.
"""
import argparse
import resource
import time
import tracemalloc

import numpy as np

from emtool.compare import nearest_distances, zca_whitening
from emtool.kernels.entropy import entropy_from_distances


def timed(func, repeats):
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="environments per set")
    parser.add_argument("--dim", type=int, default=55)
    parser.add_argument("--queries", type=int, default=200,
                        help="query rows timed against the full-size tree")
    parser.add_argument("--sizes", default="2500,5000,10000",
                        help="comma-separated N of the complete entropy + coverage runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="KD-tree query threads")
    args = parser.parse_args()
    from scipy.spatial import cKDTree

    entropy_from_distances(np.ones(2), 1e-3)   # JIT warm-up, not timed
    rng = np.random.default_rng(0)
    a = rng.normal(size=(args.n, args.dim))
    b = 2.0 * rng.normal(size=(args.n, args.dim))
    print(f"synthetic Gaussian sets, N = {args.n} per set, D = {args.dim}, "
          f"{args.workers} query thread(s), best of {args.repeats}")
    rows = []

    t, mem, w = timed(lambda: zca_whitening(a), args.repeats)
    rows.append(("zca_whitening(A)", t, mem, ""))
    t, mem, (za, zb) = timed(lambda: (w.apply(a), w.apply(b)), args.repeats)
    rows.append(("whiten A and B", t, mem, ""))
    a = b = None  # free the raw sets before the tree is built
    t, mem, tree = timed(lambda: cKDTree(za), args.repeats)
    rows.append(("cKDTree(A)", t, mem, ""))
    pick = rng.choice(args.n, args.queries, replace=False)
    per_query = {}
    for name, queries, k in (("entropy: A in A, leave-one-out", za[pick], 2),
                             ("coverage: B in A", zb[pick], 1)):
        t, mem, _ = timed(lambda: tree.query(queries, k=k, workers=args.workers), args.repeats)
        per_query[name] = t / args.queries
        rows.append((f"{name}, {args.queries} queries", t, mem,
                     f"{1e3 * t / args.queries:.1f} ms/query -> {args.n} queries "
                     f"{t / args.queries * args.n / 3600:.1f} h"))
    tree = za = zb = None

    for size in [int(s) for s in args.sizes.split(",") if s]:
        sa = rng.normal(size=(size, args.dim))
        sb = 2.0 * rng.normal(size=(size, args.dim))

        def full():
            loo = nearest_distances(sa, workers=args.workers)
            entropy = entropy_from_distances(loo ** 2, 1e-3)
            cover = nearest_distances(sa, sb, workers=args.workers)
            return entropy, float(np.mean(cover > np.quantile(loo, 0.99)))
        t, mem, (entropy, beyond) = timed(full, args.repeats)
        rows.append((f"entropy + coverage, N = {size}", t, mem,
                     f"S = {entropy:.4f}, B beyond A's threshold: {100 * beyond:.1f}%"))

    width = max(len(r[0]) for r in rows)
    print(f"{'stage':<{width}}  {'seconds':>9}  {'peak MiB':>9}  notes")
    for name, t, mem, note in rows:
        print(f"{name:<{width}}  {t:9.3f}  {mem:9.1f}  {note}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10
    print(f"process peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
