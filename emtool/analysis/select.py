"""Which configurations deserve DFT: greedy selection by the environments they bring.

A user who can afford N DFT calculations picks N configurations of a generated pool
(``select_dataset``, ``emtool select``; docs/select.md). The scoring works on atomic
environments (rows of per-atom bispectrum descriptors), the picks are configurations.

Every descriptor row is standardized by the pool's per-component mean and standard
deviation (each direction of descriptor space counts equally, as in the generator); the
"training set" below is the existing sets plus the configurations picked so far. Methods
(``METHODS``), each greedy (the best score is picked, ties to the lowest pool position):

- ``coverage`` (default): facility location. For a sample of ``COVERAGE_SAMPLE`` pool
  environments e (``default_rng(seed)``; all of them in smaller pools) with distance r_e
  to the training set, pick the configuration c that lowers sum_e r_e the most,
  gain(c) = sum_e max(0, r_e - d(e, c)), d(e, c) the distance from e to c's nearest
  environment. It places the training set where the pool's environments are, densely
  where they are dense, so the typical environment has a close training neighbor.
  With no existing set r_e starts at a common large value: the first pick is the
  configuration nearest to all (a medoid).
- ``farthest``: farthest-point sampling on configurations. With d_e the distance of pool
  environment e to the training set and w_e the distance to the nearest other environment of
  e's own configuration, delta_e = min(d_e, w_e) is e's distance to everything the training
  set would hold with e's configuration in it; score(c) = mean of delta_e over c. Fills the
  largest gaps first, outliers included.
- ``entropy``: score(c) = mean of ln max(delta_e, floor), the Kozachenko–Leonenko entropy
  that c's environments add; the logarithm punishes any near-copy of a held environment.
- ``random``: a uniformly random subset (``default_rng(seed)``), the baseline.

``farthest`` and ``entropy`` keep d_e of every pool environment, lowered after each pick:
M x k x D work for M pool environments and a picked configuration of k atoms. ``coverage``
computes d(e, c) once for the sample and every configuration (S x M x D), all gains once
(S x n_pool), and then, per pick, only the gains of the configurations whose earlier gain
still tops every other (lazy greedy: the same picks as recomputing all). Squared distances
come from float64 matrix products |p|^2 + |s|^2 - 2 p.s in blocks (rounding ~1e-12
standardized units^2, tested against direct differences); distances to existing sets are
exact (``emtool.descriptors.nearest``). The result depends only on the inputs and the seed.
Every method reports the final distance of the sample environments to the training set.
"""
import heapq
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from emtool.analysis.compare import dataset_descriptors
from emtool.data.dataset import (dataset_info, provenance_record, read_arrays, read_dataset,
                                 write_dataset)
from emtool.errors import DatasetError, ParameterError
from emtool.kernels.select import (coverage_gain, coverage_gains, nearest_in_configurations,
                                   nearest_within)
from emtool.descriptors.nearest import nearest_sq_distances
from emtool.descriptors.params import SnapParams

LOG = logging.getLogger(__name__)

METHODS = ("coverage", "farthest", "entropy", "random")
#: Pool environments whose distance to the training set the coverage rule sums (and every
#: method reports).
COVERAGE_SAMPLE = 4096
#: Configurations per block of the coverage rule's distance table.
CONFIG_BLOCK = 256
#: Floor of delta in the entropy score (standardized units): two identical environments
#: add ln(floor) instead of minus infinity.
ENTROPY_FLOOR = 1e-3
#: A component whose pool standard deviation is below this fraction of the largest
#: descriptor magnitude is constant (round-off) and is left out of the distances.
ROUNDOFF = 1e-10
#: Pool rows per block of the distance update (block x k float64 products, ~20 MiB at k = 40).
UPDATE_BLOCK = 65536


class Selection(NamedTuple):
    """Result of ``select_rows``.

    positions : (n,) int64 positions of the picked configurations in the pool, in pick order;
    scores : (n,) float64 score of each pick when it was made (the method's units: summed
        distance gain, mean distance or mean log distance; NaN for random);
    sample : (S,) int64 rows of the pool environments in the sample;
    distances : (S,) float64 their final distance to the training set (standardized units).
    """

    positions: np.ndarray
    scores: np.ndarray
    sample: np.ndarray
    distances: np.ndarray


def standardize(pool, *others):
    """(pool, *others) rows scaled by the pool's per-component mean and std; constant
    components (std <= ROUNDOFF max|pool|) are dropped. Raises ParameterError if none vary."""
    pool = np.asarray(pool, dtype=np.float64)
    std = pool.std(axis=0)
    keep = std > ROUNDOFF * max(np.abs(pool).max(), 1e-300)
    if not keep.any():
        raise ParameterError("every descriptor component is constant over the pool: "
                             "its environments are all alike, there is nothing to choose")
    mean = pool.mean(axis=0)
    scale = lambda x: (np.asarray(x, dtype=np.float64)[:, keep] - mean[keep]) / std[keep]  # noqa: E731
    return tuple(scale(x) for x in (pool, *others))


def _lower(distances2, points, norms2, new):
    """d2 = min(d2, min_s |p - s|^2) in place for the rows s of ``new`` (k, D)."""
    new_norms2 = np.einsum("ij,ij->i", new, new)
    for a in range(0, len(points), UPDATE_BLOCK):
        b = min(a + UPDATE_BLOCK, len(points))
        d2 = norms2[a:b, None] + new_norms2[None, :] - 2.0 * (points[a:b] @ new.T)
        np.minimum(distances2[a:b], np.maximum(d2.min(axis=1), 0.0), out=distances2[a:b])


def select_rows(descriptors, offsets, n, method="coverage", existing=None, seed=0,
                floor=ENTROPY_FLOOR, sample=COVERAGE_SAMPLE, progress=None):
    """Pick ``n`` configurations of a pool (see the module docstring).

    descriptors : (M, D) per-atom rows of the pool, configuration c in rows
        ``offsets[c]:offsets[c + 1]`` (``offsets`` (n_pool + 1,) int); existing : (E, D) rows
        of the training sets already held, or None; seed : of ``random`` and of the sample;
        floor : of the entropy score; sample : environments in the sample;
        progress : callable(done, total) after each pick.
    Returns a ``Selection``.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    n_pool = len(offsets) - 1
    if method not in METHODS:
        raise ParameterError(f"unknown selection method {method!r}; choose one of "
                             f"{', '.join(METHODS)}")
    if n_pool < 1:
        raise ParameterError("the pool holds no configurations")
    if not 1 <= n <= n_pool:
        raise ParameterError(f"cannot select {n} configurations from a pool of {n_pool}")
    if not floor > 0:
        raise ParameterError(f"the entropy floor must be > 0, got {floor}")
    existing = None if existing is None or len(existing) == 0 else existing
    points, *rest = standardize(descriptors, *([] if existing is None else [existing]))
    held = rest[0] if rest else None
    rng = np.random.default_rng(seed)
    rows = (np.arange(len(points)) if sample >= len(points)
            else np.sort(rng.choice(len(points), sample, replace=False)))
    started = time.perf_counter()

    def report(k):
        if progress:
            progress(k + 1, n)
        if (k + 1) % max(1, n // 10) == 0:
            LOG.info("select %s: %d of %d picked (%.1f s)", method, k + 1, n,
                     time.perf_counter() - started)

    if method == "random":
        positions = np.random.default_rng(seed).permutation(n_pool)[:n].astype(np.int64)
        reach2 = _initial(points[rows], held)
        for k in range(n):
            _lower(reach2, points[rows], _norms(points[rows]),
                   _rows_of(points, offsets, positions[k]))
            report(k)
        return Selection(positions, np.full(n, np.nan), rows, np.sqrt(reach2))
    if method == "coverage":
        return _coverage(points, offsets, n, held, rows, report)
    return _novelty(points, offsets, n, method, held, rows, floor, report)


def _rows_of(points, offsets, c):
    return points[offsets[c]:offsets[c + 1]]


def _norms(x):
    return np.einsum("ij,ij->i", x, x)


def _initial(points, held):
    """Squared distance of each row of ``points`` to the nearest held row (inf: none)."""
    return np.full(len(points), np.inf) if held is None else nearest_sq_distances(held, points)


def _novelty(points, offsets, n, method, held, rows, floor, report):
    """The ``farthest`` and ``entropy`` rules."""
    distances2 = _initial(points, held)
    norms2 = _norms(points)
    within2 = nearest_within(points, offsets)
    sizes, starts = np.diff(offsets), offsets[:-1]
    picked = np.zeros(len(sizes), bool)
    positions, scores = np.zeros(n, np.int64), np.zeros(n)
    for k in range(n):
        delta = np.sqrt(np.minimum(distances2, within2))
        values = delta if method == "farthest" else np.log(np.maximum(delta, floor))
        # inf (no neighbour anywhere: a one-atom configuration and nothing held yet) counts
        # as the largest finite value, so that the comparison stays well defined
        finite = values[np.isfinite(values)]
        values = np.where(np.isfinite(values), values, finite.max() if len(finite) else 0.0)
        score = np.add.reduceat(values, starts) / sizes
        score[picked] = -np.inf
        best = int(np.argmax(score))
        positions[k], scores[k] = best, score[best]
        picked[best] = True
        _lower(distances2, points, norms2, _rows_of(points, offsets, best))
        report(k)
    return Selection(positions, scores, rows, np.sqrt(distances2[rows]))


def _coverage(points, offsets, n, held, rows, report):
    """The ``coverage`` (facility-location) rule on the sample environments ``rows``."""
    sample = points[rows]
    sample_norms2 = _norms(sample)
    n_pool = len(offsets) - 1
    table = np.empty((n_pool, len(sample)))          # table[c, e] = d(e, c)
    for c0 in range(0, n_pool, CONFIG_BLOCK):
        c1 = min(c0 + CONFIG_BLOCK, n_pool)
        block = points[offsets[c0]:offsets[c1]]
        nearest_in_configurations(sample_norms2, _norms(block), sample @ block.T,
                                  offsets[c0:c1 + 1] - offsets[c0], table[c0:c1])
    # with nothing held, a common value above every distance: the first gain is then largest
    # for the configuration nearest to all sample environments
    reach = (np.sqrt(_initial(sample, held)) if held is not None
             else np.full(len(sample), 2.0 * table.max() + 1.0))
    positions, scores = greedy_coverage(table, reach, n, report)
    return Selection(positions, scores, rows, reach)


def greedy_coverage(table, reach, n, report=lambda k: None):
    """n greedy facility-location picks: each the configuration c of largest
    gain(c) = sum_e max(0, reach[e] - table[c, e]) (ties: the lowest c), after which
    reach = min(reach, table[c]). table (n_pool, S), reach (S,) (lowered in place).
    Returns (positions (n,) int64, gains (n,) float64).

    Lazy greedy (Minoux): a gain computed against an earlier, larger reach bounds the current
    one from above (the gain is submodular), so each pick recomputes only the configurations
    whose bound tops a heap ordered by (-gain, c); what it picks is what recomputing every
    gain picks, ties included (``tests/test_select.py``).
    """
    heap = [(-gain, c) for c, gain in enumerate(coverage_gains(reach, table))]
    heapq.heapify(heap)
    computed = np.zeros(len(table), np.int64)        # the pick at which each bound was computed
    positions, scores = np.zeros(n, np.int64), np.zeros(n)
    for k in range(n):
        while True:
            negative, best = heapq.heappop(heap)
            if computed[best] == k:
                break
            computed[best] = k
            heapq.heappush(heap, (-coverage_gain(reach, table[best]), best))
        positions[k], scores[k] = best, -negative
        np.minimum(reach, table[best], out=reach)
        report(k)
    return positions, scores


def _quantiles(distances):
    finite = distances[np.isfinite(distances)]
    if not len(finite):
        return None
    return {f"q{int(100 * q)}": float(np.quantile(finite, q)) for q in (0.5, 0.9, 0.99, 1.0)}


def select_dataset(pool, n, output, method="coverage", existing=(), params=None, seed=0,
                   workers=1, scheduler=None, progress=None):
    """Write the ``n`` configurations of the dataset ``pool`` that ``method`` picks, given the
    datasets ``existing`` already held, to the dataset ``output`` (see the module docstring).

    params : ``SnapParams`` of the descriptors (default 2J = 8, R = 4.73 Å); workers /
    scheduler : processes / Dask address for the descriptors. Each written configuration
    keeps its pool ``index`` and info and gains ``source_index`` (= that index),
    ``selection_rank`` (0 = first pick) and ``selection_score``; the dataset's parameters
    record the method, the inputs and the quantiles of the final distance of the sample of
    pool environments to the training set (``pool_distances``). Returns a summary dict.
    """
    params = SnapParams(twojmax=8, rcutfac=4.73, bzeroflag=0) if params is None else params
    pool, output = Path(pool), Path(output)
    existing = [Path(p) for p in existing]
    for path in (pool, *existing):
        if path.resolve() == output.resolve():
            raise ParameterError(f"{output}: the output would replace the input {path}")
    pool_info = dataset_info(pool)
    if pool_info["configs"] < 1:
        raise DatasetError(f"{pool}: empty dataset (no configurations)")
    if not 1 <= n <= pool_info["configs"]:
        raise ParameterError(f"cannot select {n} configurations from {pool}, which holds "
                             f"{pool_info['configs']}")
    for path in existing:
        other = dataset_info(path)["elements"]
        if other and set(other) - set(pool_info["elements"]):
            raise ParameterError(f"{path}: holds {', '.join(other)}, the pool "
                                 f"{', '.join(pool_info['elements'])}: their environments "
                                 f"cannot be compared")
    started = time.perf_counter()
    described = dataset_descriptors(pool, params, workers, scheduler=scheduler,
                                    structure_types=False)
    held = [dataset_descriptors(p, params, workers, scheduler=scheduler,
                                structure_types=False).descriptors for p in existing]
    selection = select_rows(described.descriptors, described.offsets, n, method,
                            np.vstack(held) if held else None, seed, progress=progress)
    keys = read_arrays(pool, ["index"])["index"][selection.positions]
    images = read_dataset(pool, indices=keys)
    for rank, (atoms, key, score) in enumerate(zip(images, keys, selection.scores)):
        atoms.info.update(source_index=int(key), selection_rank=rank,
                          selection_score=None if np.isnan(score) else float(score))
    distances = _quantiles(selection.distances)
    settings = dict(method=method, n=int(n), seed=int(seed), pool=str(pool),
                    pool_configurations=int(pool_info["configs"]),
                    existing=[str(p) for p in existing], descriptors=asdict(params),
                    entropy_floor=ENTROPY_FLOOR, sample=COVERAGE_SAMPLE,
                    pool_distances=distances)
    write_dataset(output, images, parameters=settings,
                  provenance=pool_info["provenance"] + [provenance_record("select", settings)])
    return dict(settings, output=str(output), seconds=time.perf_counter() - started)
