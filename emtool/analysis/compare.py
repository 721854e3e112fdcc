"""Descriptor-space comparison of training sets (paper Fig. 2, ZCA paragraph, PCA, coverage).

All analyses take per-atom descriptors (rows = atomic environments, columns = the D
bispectrum components) and are defined in ``docs/compare.md``:

- ``zca_whitening``: W = C^(-1/2) of the reference covariance C, z = (x - mu) W;
- ``whitened_std_ratios`` / ``broadening``: per whitened dimension, std of another set over
  the reference's (which is 1), counts of dimensions > 1 and >= 5;
- ``principal_axes``: PCA of the reference's standardized descriptors;
- ``nearest_distances`` / ``coverage_summary`` / ``coverage_by_configuration``: distance of
  each environment to the nearest environment of a reference set, in REF-whitened units;
- ``compare_datasets``: all of the above, the descriptor entropy and the local structure
  types of several HDF5 datasets (what ``emtool compare`` runs); ``emtool.analysis.compare_report``
  writes its Markdown report and figures.

Nearest-neighbor searches are exact (``emtool.descriptors.nearest``: screened matrix products in many
dimensions, where a KD-tree prunes almost nothing). Their cost grows as N_query x N_set
(~2 ns per pair and core, bench/bench_compare.py), so ``compare_datasets`` runs them on
equal-size random samples of environments (default ``NN_ENVIRONMENTS`` per set).
"""
import logging
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from emtool.data.dataset import read_arrays, read_dataset
from emtool.errors import DatasetError, ParameterError
from emtool.kernels.entropy import entropy_from_distances
from emtool.descriptors.nearest import nearest_sq_distances
from emtool.parallel import run_indexed
from emtool.descriptors.params import SnapParams
from emtool.descriptors.snap import bispectrum
from emtool.descriptors.structure_types import STRUCTURE_TYPES, classify_atoms, type_fractions

LOG = logging.getLogger(__name__)

#: Largest accepted condition number lambda_max / lambda_min of the reference covariance.
#: Beyond it the whitened coordinates along the weakest directions are dominated by round-off
#: of the descriptors, so ``zca_whitening`` refuses (no regularization: see docs/compare.md).
MAX_CONDITION = 1e12
#: Relative round-off of the descriptors: a reference direction whose std is below this
#: fraction of the largest descriptor magnitude is round-off, not data (identical environments,
#: e.g. one perfect crystal, agree to ~1e-14).
ROUNDOFF = 1e-10
#: A set is broader than the reference in a whitened dimension when its std ratio exceeds 1,
#: and "much broader" when it is at least this factor (paper: "at least 5x broader").
MUCH_BROADER = 5.0
#: Coverage threshold: this quantile of the covering set's own leave-one-out distances.
COVERAGE_QUANTILE = 0.99
#: Quantiles reported for distance distributions.
SUMMARY_QUANTILES = (0.5, 0.9, 0.99, 1.0)
#: Default number of environments per set in the nearest-neighbor analyses.
NN_ENVIRONMENTS = 100_000
#: Default entropy floor (REF-whitened units, i.e. REF standard deviations).
ENTROPY_FLOOR = 1e-3
#: Rows per block of the streamed QR factorization of the reference (memory ~ block x D).
QR_BLOCK = 65536
#: Configurations per descriptor task of a worker process.
CONFIGS_PER_TASK = 64


class Whitening(NamedTuple):
    """ZCA whitening of a reference set: z = (x - mean) @ matrix.

    mean : (D,) reference mean; matrix : (D, D) symmetric W = C^(-1/2);
    eigenvalues : (D,) eigenvalues of the reference covariance C, descending (units of x^2).
    """

    mean: np.ndarray
    matrix: np.ndarray
    eigenvalues: np.ndarray

    def apply(self, x):
        """Whitened rows (N, D) of descriptors x (N, D)."""
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.matrix

    @property
    def condition(self):
        """lambda_max / lambda_min of the reference covariance."""
        return float(self.eigenvalues[0] / self.eigenvalues[-1])


def _rows(x, name):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ParameterError(f"{name} must be an (N, D) array of descriptors, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ParameterError(f"{name} contains non-finite values")
    return x


def zca_whitening(ref, max_condition=MAX_CONDITION):
    """ZCA whitening (``Whitening``) of the rows of ``ref`` (N, D).

    C = (X - mu)^T (X - mu) / (N - 1) is factored without forming it: a streamed QR of the
    centered rows, X - mu = Q R, then the SVD R / sqrt(N - 1) = U S V^T gives C = V S^2 V^T
    and W = V S^-1 V^T (accurate to ~eps sqrt(cond) instead of eps cond).
    Raises ``ParameterError`` when N <= D, or when an eigenvalue is below lambda_max /
    ``max_condition`` or below (``ROUNDOFF`` max|x|)^2 (singular or ill-conditioned: a constant
    or linearly dependent component, identical environments, too few environments).
    """
    ref = _rows(ref, "reference descriptors")
    n, d = ref.shape
    if n <= d:
        raise ParameterError(f"the reference has {n} environments; whitening {d} descriptor "
                             f"dimensions needs at least {d + 1}")
    mean = ref.mean(axis=0)
    r = np.zeros((0, d))
    for start in range(0, n, QR_BLOCK):
        r = np.linalg.qr(np.vstack([r, ref[start:start + QR_BLOCK] - mean]), mode="r")
    _, s, vt = np.linalg.svd(r / np.sqrt(n - 1))
    eigenvalues = s ** 2
    floor = max(eigenvalues[0] / max_condition, (ROUNDOFF * max(ref.max(), -ref.min())) ** 2)
    weak = int(np.sum(eigenvalues <= floor))
    if weak:
        raise ParameterError(
            f"the reference covariance is singular or ill-conditioned: {weak} of {d} "
            f"eigenvalues are below {floor:.3g} (1/{max_condition:g} of the largest, "
            f"{eigenvalues[0]:.3g}, or the round-off of the descriptors); the reference needs "
            f"more varied environments")
    return Whitening(mean, (vt.T / s) @ vt, eigenvalues)


def whitened_std_ratios(whitening, other):
    """(D,) standard deviation of each whitened dimension of ``other`` (N, D) rows, i.e. its
    std over the reference's, which is 1 in every whitened dimension (ddof 1)."""
    other = _rows(other, "descriptors")
    if len(other) < 2:
        raise ParameterError("a standard deviation needs at least 2 environments")
    return whitening.apply(other).std(axis=0, ddof=1)


def broadening(ratios):
    """Counts of whitened dimensions where a set is broader than the reference.

    ratios : (D,) from ``whitened_std_ratios``. Returns dict n_dims, broader_dims (ratio > 1),
    broader5x_dims (ratio >= ``MUCH_BROADER``), and ratio_min / ratio_median / ratio_max.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    return dict(n_dims=int(ratios.size), broader_dims=int(np.sum(ratios > 1.0)),
                broader5x_dims=int(np.sum(ratios >= MUCH_BROADER)),
                ratio_min=float(ratios.min()), ratio_median=float(np.median(ratios)),
                ratio_max=float(ratios.max()))


class PrincipalAxes(NamedTuple):
    """PCA of a reference's standardized descriptors: y = ((x - mean) / scale) @ axes.

    mean, scale : (D,) reference mean and std (a constant component keeps scale 1);
    axes : (D, k) leading eigenvectors of the reference correlation matrix;
    explained : (k,) fraction of the total standardized variance along each axis.
    """

    mean: np.ndarray
    scale: np.ndarray
    axes: np.ndarray
    explained: np.ndarray

    def project(self, x):
        """(N, k) coordinates of descriptors x (N, D) on the axes."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.axes


def principal_axes(ref, k=2):
    """``PrincipalAxes`` of the rows of ``ref`` (N >= 2, D), the ``k`` leading axes, each
    with the sign that makes its largest-magnitude entry positive."""
    ref = _rows(ref, "reference descriptors")
    if len(ref) < 2 or not 1 <= k <= ref.shape[1]:
        raise ParameterError(f"PCA of {ref.shape} descriptors with {k} axes")
    mean = ref.mean(axis=0)
    scale = ref.std(axis=0, ddof=1)
    scale[scale == 0] = 1.0
    _, s, vt = np.linalg.svd((ref - mean) / scale, full_matrices=False)
    axes = vt[:k].T
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(k)])
    return PrincipalAxes(mean, scale, axes, (s[:k] ** 2) / np.sum(s ** 2))


def nearest_distances(points, queries=None, workers=1):
    """Euclidean distance from each query row to its nearest row of ``points``.

    points : (N, D); queries : (M, D), or None for the leave-one-out distances of ``points``
    to their nearest *other* row (N >= 2). Exact (``emtool.descriptors.nearest.nearest_sq_distances``;
    ``workers``: KD-tree threads in few dimensions). Returns (M,) or (N,) float64 in the
    units of the rows.
    """
    return np.sqrt(nearest_sq_distances(points, queries, workers=workers))


def coverage_summary(distances, covering_loo, own_loo, quantile=COVERAGE_QUANTILE):
    """Summary of query-to-set distances, judged on two scales.

    distances : (M,) nearest distances of the query environments to the covering set;
    covering_loo : (N,) leave-one-out nearest distances within the covering set;
    own_loo : (M',) leave-one-out nearest distances within the query set (any sample of it).

    - covering scale: ``threshold_covering`` = ``quantile`` of covering_loo,
      ``fraction_beyond_covering`` = share of distances above it: where a model trained on the
      covering set is farther from its data than its own data points are from each other
      (it extrapolates). A sparse covering set has a large threshold, so this says little
      about whether it contains the query set;
    - own scale: ``threshold_own`` = ``quantile`` of own_loo, ``fraction_beyond_own`` = share
      of distances above it: query environments with no covering environment as close as the
      query set's own spacing. This cannot be fooled by a sparse covering set; ``covered`` =
      1 - fraction_beyond_own.
    """
    distances = np.asarray(distances, dtype=np.float64)
    covering = float(np.quantile(covering_loo, quantile))
    own = float(np.quantile(own_loo, quantile))
    beyond_own = float(np.mean(distances > own))
    return dict(queries=int(distances.size),
                quantiles={f"{q:g}": float(np.quantile(distances, q)) for q in SUMMARY_QUANTILES},
                threshold_quantile=quantile, threshold_covering=covering,
                fraction_beyond_covering=float(np.mean(distances > covering)),
                threshold_own=own, fraction_beyond_own=beyond_own, covered=1.0 - beyond_own)


def coverage_by_configuration(ref_desc, other_desc, other_offsets, reduce="max", workers=1):
    """Per-configuration coverage score of ``other`` by ``ref``.

    ref_desc : (N_ref, D) descriptors of the reference (training) set;
    other_desc : (N, D) descriptors of the other set; other_offsets : (n + 1,) int, the rows
    of configuration k are other_offsets[k]:other_offsets[k+1] (offsets[0] = 0,
    offsets[n] = N, every configuration non-empty) — the ``config_offsets`` of
    ``emtool descriptors``. Each environment's distance to its nearest reference environment
    is measured in REF-whitened units (``zca_whitening(ref_desc)``); ``reduce`` "max" or
    "mean" over the configuration's atoms. Returns (n,) float64, e.g. for
    ``scipy.stats.spearmanr`` against per-configuration model errors.
    """
    if reduce not in ("max", "mean"):
        raise ParameterError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    other_desc = _rows(other_desc, "other descriptors")
    offsets = np.asarray(other_offsets)
    if (offsets.ndim != 1 or len(offsets) < 2 or not np.issubdtype(offsets.dtype, np.integer)
            or offsets[0] != 0 or offsets[-1] != len(other_desc) or np.any(np.diff(offsets) < 1)):
        raise ParameterError(f"other_offsets must be increasing integers from 0 to "
                             f"{len(other_desc)} with every configuration non-empty")
    whitening = zca_whitening(ref_desc)
    distances = nearest_distances(whitening.apply(ref_desc), whitening.apply(other_desc),
                                  workers)
    starts = offsets[:-1]
    if reduce == "max":
        return np.maximum.reduceat(distances, starts)
    return np.add.reduceat(distances, starts) / np.diff(offsets)


# ---------------------------------------------------------------------------------------------
# datasets

class DescriptorSet(NamedTuple):
    """Per-atom descriptors and per-configuration data of one dataset.

    path : str; descriptors : (N, D) bispectrum rows; offsets : (n + 1,) int64 row offsets of
    the configurations (file order); energy_per_atom : (n,) eV/atom, NaN when unlabeled;
    structure_types : (N,) int64 codes of ``emtool.descriptors.structure_types``, or None when not asked.
    """

    path: str
    descriptors: np.ndarray
    offsets: np.ndarray
    energy_per_atom: np.ndarray
    structure_types: np.ndarray


def _describe_block(params, path, structure_types, task):
    """(position, B rows, structure type codes or None) of one block of configurations."""
    position, keys = task
    images = read_dataset(path, indices=list(keys))
    return (position, np.vstack([bispectrum(a, params) for a in images]),
            np.concatenate([classify_atoms(a) for a in images]) if structure_types else None)


def dataset_descriptors(path, params, workers=1, scheduler=None, structure_types=True):
    """``DescriptorSet`` of the HDF5 dataset ``path`` for ``params`` (a ``SnapParams``).

    The dataset schema (docs/dataset.md) defines no descriptor cache, so the descriptors are
    computed here, in ``workers`` processes (or on the Dask ``scheduler``) over blocks of
    configurations. Without ``structure_types`` that field is None.
    Raises ``DatasetError`` for an invalid or empty dataset.
    """
    arrays = read_arrays(path, ["index", "natoms", "energy"])
    keys, natoms = arrays["index"], arrays["natoms"]
    if len(keys) == 0:
        raise DatasetError(f"{path}: empty dataset (no configurations)")
    tasks = [(k, tuple(int(i) for i in keys[start:start + CONFIGS_PER_TASK]))
             for k, start in enumerate(range(0, len(keys), CONFIGS_PER_TASK))]
    blocks = {}
    start = time.perf_counter()
    run_indexed(_describe_block, (params, str(path), structure_types), tasks,
                lambda result: blocks.__setitem__(result[0], result[1:]), workers, scheduler,
                chunk=1)
    LOG.info("%s: descriptors of %d configurations in %.1f s", path, len(keys),
             time.perf_counter() - start)
    order = sorted(blocks)
    return DescriptorSet(str(path), np.vstack([blocks[k][0] for k in order]),
                         np.concatenate([[0], np.cumsum(natoms)]).astype(np.int64),
                         arrays["energy"] / natoms,
                         np.concatenate([blocks[k][1] for k in order])
                         if structure_types else None)


def sample_rows(n_rows, size, seed, stream):
    """Sorted random subset of ``size`` of range(n_rows) (all when size >= n_rows), drawn from
    ``np.random.default_rng([seed, stream])``."""
    if size >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng([seed, stream]).choice(n_rows, size, replace=False))


class Comparison(NamedTuple):
    """Result of ``compare_datasets``: ``summary`` (JSON-serializable dict, the keys of
    docs/compare.md) and the arrays the figures need: ``sets`` (DescriptorSet per input),
    ``whitening``, ``pca``, ``ratios`` (list of (D,) per other set), ``distances`` (dict of
    nearest-distance arrays per coverage direction and per set's leave-one-out)."""

    summary: dict
    sets: list
    whitening: Whitening
    pca: PrincipalAxes
    ratios: list
    distances: dict


def compare_datasets(paths, params=None, components=(0, 1, 2), nn_environments=NN_ENVIRONMENTS,
                     seed=0, workers=1, entropy_floor=ENTROPY_FLOOR):
    """Compare the datasets ``paths`` (the first is the reference, REF) in descriptor space.

    params : SnapParams of the descriptors (default twojmax 8, R = 4.73 Å);
    components : bispectrum columns whose distributions are plotted;
    nn_environments : environments per set in the nearest-neighbor analyses (entropy,
    leave-one-out thresholds, coverage): every set uses the same number,
    n = min(nn_environments, smallest set), drawn at random with ``seed`` (0: smallest set);
    workers : processes for the descriptors (and KD-tree threads in few dimensions);
    entropy_floor : floor of the entropy estimator in REF-whitened units. The entropy is
    ``emtool.descriptors.entropy.descriptor_entropy`` of each set's whitened sample, evaluated from the
    leave-one-out distances already computed for the coverage threshold.
    Returns a ``Comparison``. Raises ``ParameterError`` (bad options, singular reference
    covariance) or ``DatasetError`` (unreadable or empty dataset).
    """
    params = params or SnapParams()
    paths = [str(p) for p in paths]
    if len(paths) < 2:
        raise ParameterError("compare needs a reference and at least one other dataset")
    d = params.ncoeff + (params.ncoeff * (params.ncoeff + 1) // 2 if params.quadraticflag else 0)
    components = tuple(int(c) for c in components)
    if not components or min(components) < 0 or max(components) >= d:
        raise ParameterError(f"components must be column numbers 0..{d - 1}, got {components}")
    if nn_environments < 0 or entropy_floor <= 0:
        raise ParameterError(f"need nn_environments (--max-environments) >= 0 and "
                             f"entropy_floor > 0, got {nn_environments} and {entropy_floor}")
    sets = [dataset_descriptors(path, params, workers) for path in paths]
    ref = sets[0]
    whitening = zca_whitening(ref.descriptors)
    pca = principal_axes(ref.descriptors)
    n_nn = min(len(s.descriptors) for s in sets)
    if nn_environments:
        n_nn = min(n_nn, nn_environments)
    if n_nn < 2:
        raise ParameterError(f"every set needs at least 2 environments, the smallest has {n_nn}")
    start = time.perf_counter()
    samples = [whitening.apply(s.descriptors[sample_rows(len(s.descriptors), n_nn, seed, k)])
               for k, s in enumerate(sets)]
    loo = [nearest_distances(z, workers=workers) for z in samples]
    distances = {"loo": loo, "other_by_reference": [], "reference_by_other": []}
    set_rows, others, ratios = [], [], []
    for k, s in enumerate(sets):
        labeled = np.isfinite(s.energy_per_atom)
        set_rows.append(dict(
            path=s.path, configs=len(s.offsets) - 1, environments=len(s.descriptors),
            labeled_configs=int(labeled.sum()),
            energy_per_atom=(dict(min=float(s.energy_per_atom[labeled].min()),
                                  median=float(np.median(s.energy_per_atom[labeled])),
                                  max=float(s.energy_per_atom[labeled].max()))
                             if labeled.any() else None),
            entropy=float(entropy_from_distances(loo[k] ** 2, entropy_floor)),
            duplicates=int(np.sum(loo[k] < entropy_floor)),
            loo_threshold=float(np.quantile(loo[k], COVERAGE_QUANTILE)),
            structure_types=type_fractions(s.structure_types)))
        if k == 0:
            continue
        ratios.append(whitened_std_ratios(whitening, s.descriptors))
        by_ref = nearest_distances(samples[0], samples[k], workers)
        of_ref = nearest_distances(samples[k], samples[0], workers)
        distances["other_by_reference"].append(by_ref)
        distances["reference_by_other"].append(of_ref)
        others.append(dict(path=s.path, **broadening(ratios[-1]),
                           std_ratio=[float(r) for r in ratios[-1]],
                           coverage=dict(
                               other_by_reference=coverage_summary(by_ref, loo[0], loo[k]),
                               reference_by_other=coverage_summary(of_ref, loo[k], loo[0]))))
    LOG.info("nearest-neighbor analyses on %d environments per set in %.1f s", n_nn,
             time.perf_counter() - start)
    summary = dict(
        reference=ref.path,
        descriptors=dict(params.keywords(), n_dims=d),
        whitening=dict(eigenvalue_max=float(whitening.eigenvalues[0]),
                       eigenvalue_min=float(whitening.eigenvalues[-1]),
                       condition=whitening.condition),
        pca=dict(explained=[float(e) for e in pca.explained]),
        components=list(components), nn_environments=n_nn, seed=seed,
        entropy_floor=entropy_floor, structure_types=list(STRUCTURE_TYPES),
        sets=set_rows, others=others)
    return Comparison(summary, sets, whitening, pca, ratios, distances)


def dataset_name(path):
    """Short display name of a dataset path (its file name)."""
    return Path(path).name


def error_coverage(train_path, data_path, rse, params, workers=1,
                   max_environments=NN_ENVIRONMENTS, seed=0):
    """Does the coverage of ``data_path`` by ``train_path`` explain a model's errors there?

    rse : the ``rse`` list of ``emtool.analysis.evaluate.evaluate_images`` (dicts with ``index`` and
    ``rse``, eV/atom) of a model trained on ``train_path``, on ``data_path``; params : the
    descriptor ``SnapParams``. TRAIN's environments (a random sample of at most
    ``max_environments``) define the whitened frame, the leave-one-out spacing threshold
    (``COVERAGE_QUANTILE``) and the covering set; a configuration's coverage score is the
    largest distance of its atoms to that set (``coverage_by_configuration``). Returns a dict:
    Spearman rank correlation of score and RSE, TRAIN's threshold (``threshold_covering``),
    the fraction of configurations beyond it and the median RSE within / beyond; DATA's own
    spacing threshold (``threshold_own``, from a sample of its environments) and the fraction
    of configurations beyond that (``coverage_summary`` explains both scales); and per
    configuration (index, score, rse).
    """
    from scipy.stats import spearmanr
    train = dataset_descriptors(train_path, params, workers)
    data = dataset_descriptors(data_path, params, workers)
    reference = train.descriptors[sample_rows(len(train.descriptors), max_environments, seed, 0)]
    whitening = zca_whitening(reference)
    z_ref = whitening.apply(reference)
    threshold = float(np.quantile(nearest_distances(z_ref), COVERAGE_QUANTILE))
    z_data = whitening.apply(data.descriptors)
    own = z_data[sample_rows(len(z_data), max_environments, seed, 1)]
    threshold_own = float(np.quantile(nearest_distances(own), COVERAGE_QUANTILE))
    score = np.maximum.reduceat(nearest_distances(z_ref, z_data), data.offsets[:-1])
    position = {int(k): p for p, k in enumerate(read_arrays(data_path, ["index"])["index"])}
    score = np.array([score[position[int(row["index"])]] for row in rse])
    errors = np.array([row["rse"] for row in rse])
    if len(errors) < 2:
        raise ParameterError(f"{data_path}: coverage against errors needs at least 2 "
                             f"labeled configurations")
    beyond = score > threshold
    return dict(train=str(train_path), reference_environments=len(reference),
                spearman=float(spearmanr(score, errors).statistic),
                threshold_quantile=COVERAGE_QUANTILE, threshold_covering=threshold,
                fraction_beyond_covering=float(beyond.mean()),
                threshold_own=threshold_own,
                fraction_beyond_own=float(np.mean(score > threshold_own)),
                rse_median_within=float(np.median(errors[~beyond])) if (~beyond).any() else None,
                rse_median_beyond=float(np.median(errors[beyond])) if beyond.any() else None,
                configurations=[dict(index=int(r["index"]), coverage=float(c), rse=r["rse"])
                                for r, c in zip(rse, score)])
