"""Descriptor-space comparison (emtool.analysis.compare, emtool compare): whitening, broadening counts,
nearest-neighbor coverage, entropy, the report and bad input."""
import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner
from conftest import displaced_bcc, random_box

from emtool import ParameterError, SnapParams
from emtool.analysis import compare
from emtool.cli import main
from emtool.analysis.compare import (broadening, compare_datasets, coverage_by_configuration,
                            nearest_distances, principal_axes, sample_rows,
                            whitened_std_ratios, zca_whitening)
from emtool.data.dataset import write_dataset
from emtool.errors import DatasetError
from emtool.descriptors.entropy import descriptor_entropy
from emtool.descriptors.structure_types import classify_atoms


def correlated(n=4000, d=12, seed=0, spread=1e3):
    """Gaussian rows with a covariance of condition number ~spread^2 and a nonzero mean."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = np.logspace(0, np.log10(spread), d)
    return rng.normal(size=(n, d)) * scales @ q.T + rng.normal(size=d) * 10


def test_whitening_of_the_reference_is_the_identity():
    ref = correlated()
    w = zca_whitening(ref)
    z = w.apply(ref)
    assert w.condition > 1e5
    assert np.abs(z.mean(axis=0)).max() < 1e-12
    assert np.abs(np.cov(z.T) - np.eye(ref.shape[1])).max() < 1e-10
    assert np.abs(w.matrix - w.matrix.T).max() < 1e-12 * np.abs(w.matrix).max()
    # ZCA: the symmetric inverse square root of the covariance (eigen-decomposition route)
    lam, v = np.linalg.eigh(np.cov(ref.T))
    assert np.allclose(w.matrix, (v / np.sqrt(lam)) @ v.T, rtol=1e-8, atol=0)
    assert np.allclose(np.sort(w.eigenvalues), lam, rtol=1e-10)


def test_broader_counts_of_a_set_scaled_in_known_whitened_directions():
    ref = correlated()
    w = zca_whitening(ref)
    d = ref.shape[1]
    scale = np.array([6.0] * 3 + [2.0] * 2 + [0.5] * (d - 5))
    other = w.apply(ref) * scale @ np.linalg.inv(w.matrix) + w.mean
    ratios = whitened_std_ratios(w, other)
    assert np.allclose(ratios, scale, rtol=1e-9)
    counts = broadening(ratios)
    assert (counts["n_dims"], counts["broader_dims"], counts["broader5x_dims"]) == (d, 5, 3)
    assert counts["ratio_min"] == pytest.approx(0.5) and counts["ratio_max"] == pytest.approx(6.0)
    assert np.allclose(whitened_std_ratios(w, ref), 1.0, atol=1e-12)


@pytest.mark.parametrize("make, message", [
    (lambda x: np.hstack([x, np.full((len(x), 1), 3.0)]), "singular or ill-conditioned"),
    (lambda x: np.hstack([x, x[:, :1] - 2 * x[:, 1:2]]), "singular or ill-conditioned"),
    (lambda x: x[:12], "needs at least 13"),
    (lambda x: np.where(np.arange(len(x))[:, None] == 5, np.nan, x), "non-finite"),
])
def test_singular_reference(make, message):
    with pytest.raises(ParameterError, match=message):
        zca_whitening(make(correlated(n=500)))


def test_nearest_distances_against_brute_force():
    rng = np.random.default_rng(1)
    points, queries = rng.normal(size=(300, 7)), rng.normal(size=(50, 7))
    all_pairs = np.linalg.norm(queries[:, None] - points[None], axis=2)
    assert np.allclose(nearest_distances(points, queries), all_pairs.min(axis=1), rtol=1e-14)
    self_pairs = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(self_pairs, np.inf)
    assert np.allclose(nearest_distances(points), self_pairs.min(axis=1), rtol=1e-14)


def test_coverage_by_configuration():
    ref = correlated(n=600, d=5)
    offsets = np.array([0, 100, 350, 600])
    assert (coverage_by_configuration(ref, ref, offsets) == 0).all()
    other = ref[:40] + 0.5
    other_offsets = np.array([0, 10, 11, 40])
    w = zca_whitening(ref)
    dist = np.linalg.norm(w.apply(other)[:, None] - w.apply(ref)[None], axis=2).min(axis=1)
    expected_max = [dist[0:10].max(), dist[10:11].max(), dist[11:40].max()]
    expected_mean = [dist[0:10].mean(), dist[10:11].mean(), dist[11:40].mean()]
    assert np.allclose(coverage_by_configuration(ref, other, other_offsets), expected_max,
                       rtol=1e-12)
    assert np.allclose(coverage_by_configuration(ref, other, other_offsets, reduce="mean"),
                       expected_mean, rtol=1e-12)
    for bad in ([0, 10, 10, 40], [1, 40], [0, 39], [0.0, 40.0]):
        with pytest.raises(ParameterError, match="other_offsets"):
            coverage_by_configuration(ref, other, np.array(bad))
    with pytest.raises(ParameterError, match="reduce"):
        coverage_by_configuration(ref, other, other_offsets, reduce="median")


def test_principal_axes():
    ref = correlated(n=2000, d=6, spread=10)
    pca = principal_axes(ref)
    y = pca.project(ref)
    assert np.abs(y.mean(axis=0)).max() < 1e-12
    assert np.abs(np.corrcoef(y.T)[0, 1]) < 1e-10
    assert y[:, 0].var(ddof=1) > y[:, 1].var(ddof=1)
    assert pca.explained.sum() <= 1.0 and pca.explained[0] > pca.explained[1]


def _labeled(images, energy_per_atom):
    for atoms in images:
        atoms.calc = SinglePointCalculator(atoms, energy=energy_per_atom * len(atoms),
                                           forces=np.zeros((len(atoms), 3)))
    return images


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    de_like = _labeled([displaced_bcc(k, amplitude=0.1) for k in range(6)], -8.9)
    em_like = [random_box(k) for k in range(5)]
    write_dataset(folder / "de.h5", de_like)
    write_dataset(folder / "em.h5", em_like)
    return folder, de_like, em_like


PARAMS = SnapParams(twojmax=2)


def test_compare_datasets(datasets):
    folder, de_like, em_like = datasets
    result = compare_datasets([folder / "de.h5", folder / "em.h5"], PARAMS, components=(0, 4),
                              nn_environments=50, seed=3)
    s = result.summary
    assert s["descriptors"]["n_dims"] == 5 and s["nn_environments"] == 50
    de, em = s["sets"]
    assert (de["configs"], de["environments"], de["labeled_configs"]) == (6, 96, 6)
    assert de["energy_per_atom"]["median"] == pytest.approx(-8.9)
    assert em["labeled_configs"] == 0 and em["energy_per_atom"] is None
    # the random boxes are far broader than displaced BCC in every whitened dimension
    other = s["others"][0]
    assert (other["broader_dims"], other["n_dims"]) == (5, 5)
    assert other["broader5x_dims"] == sum(r >= 5 for r in other["std_ratio"])
    # entropy: emtool.descriptors.entropy.descriptor_entropy of the whitened sample of each set
    for k, (row, set_) in enumerate(zip(s["sets"], result.sets)):
        sample = set_.descriptors[sample_rows(len(set_.descriptors), 50, 3, k)]
        expected = descriptor_entropy(result.whitening.apply(sample), floor=s["entropy_floor"])
        assert row["entropy"] == pytest.approx(expected, rel=1e-12)
    assert em["entropy"] > de["entropy"]
    # the random boxes are not covered by the crystal set, and cover it poorly too
    cov = other["coverage"]
    assert cov["other_by_reference"]["fraction_beyond_covering"] > 0.9
    assert cov["other_by_reference"]["queries"] == 50
    # structure types: computed per atom, all of the crystal set is bcc
    assert de["structure_types"]["bcc"] == 1.0
    expected = np.concatenate([classify_atoms(a) for a in em_like])
    assert (result.sets[1].structure_types == expected).all()


def test_reference_against_itself(datasets):
    folder, _, _ = datasets
    result = compare_datasets([folder / "em.h5", folder / "em.h5"], PARAMS, nn_environments=0)
    other = result.summary["others"][0]
    assert np.allclose(other["std_ratio"], 1.0, atol=1e-12)
    for direction in ("other_by_reference", "reference_by_other"):
        assert all(v == 0 for v in other["coverage"][direction]["quantiles"].values())
        assert other["coverage"][direction]["fraction_beyond_covering"] == 0
        assert other["coverage"][direction]["covered"] == 1


def test_workers_give_the_same_result(datasets, monkeypatch):
    folder, _, _ = datasets
    serial = compare.dataset_descriptors(folder / "de.h5", PARAMS)
    monkeypatch.setattr(compare, "CONFIGS_PER_TASK", 2)
    parallel = compare.dataset_descriptors(folder / "de.h5", PARAMS, workers=2)
    for a, b in zip(serial, parallel):
        assert np.array_equal(a, b, equal_nan=True) if isinstance(a, np.ndarray) else a == b


def test_cli_report_and_json(datasets, tmp_path):
    folder, _, _ = datasets
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["compare", str(folder / "de.h5"), str(folder / "em.h5"),
                                       "--twojmax", "2", "--json", "-o", str(out),
                                       "--components", "1,2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["others"][0]["n_dims"] == 5
    assert {"broader_dims", "broader5x_dims", "coverage"} <= set(summary["others"][0])
    assert [row["entropy"] for row in summary["sets"]] == pytest.approx(
        [row["entropy"] for row in json.loads((out / "compare.json").read_text())["sets"]])
    text = (out / "compare.md").read_text()
    assert "em.h5" in text and "Unlabeled, left out of the energy distribution: em.h5" in text
    for name in ("energy", "components", "pca", "broadening", "coverage"):
        assert (out / f"{name}.png").stat().st_size > 1000


def test_cli_bad_input(datasets, tmp_path):
    folder, _, _ = datasets
    write_dataset(tmp_path / "empty.h5", [])
    write_dataset(tmp_path / "crystal.h5", [bulk("W", "bcc", a=3.1652, cubic=True).repeat(2)])
    write_dataset(tmp_path / "small.h5", [bulk("Cu", "fcc", a=3.6, cubic=True)])
    cases = [
        ([str(tmp_path / "empty.h5"), str(folder / "em.h5")], "empty dataset"),
        ([str(folder / "em.h5"), str(tmp_path / "empty.h5")], "empty dataset"),
        ([str(tmp_path / "crystal.h5"), str(folder / "em.h5")], "singular or ill-conditioned"),
        ([str(tmp_path / "small.h5"), str(folder / "em.h5")], "reference has 4 environments"),
        ([str(folder / "de.h5"), str(tmp_path / "missing.h5")], "missing.h5"),
        ([str(folder / "de.h5"), str(folder / "em.h5"), "--components", "0,5"], "components"),
        ([str(folder / "de.h5"), str(folder / "em.h5"), "--components", "a"], "components"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(main, ["compare", *args, "--twojmax", "2", "-o",
                                           str(tmp_path / "out")])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_singular_reference_dataset(tmp_path):
    """A reference of identical environments (perfect crystals) has a zero covariance."""
    write_dataset(tmp_path / "crystal.h5",
                  [bulk("W", "bcc", a=a, cubic=True).repeat(3) for a in (3.1, 3.2)])
    write_dataset(tmp_path / "boxes.h5", [random_box(0)])
    with pytest.raises(ParameterError, match="singular or ill-conditioned"):
        compare_datasets([tmp_path / "crystal.h5", tmp_path / "boxes.h5"], PARAMS)
    with pytest.raises(DatasetError, match="empty"):
        write_dataset(tmp_path / "none.h5", [])
        compare_datasets([tmp_path / "boxes.h5", tmp_path / "none.h5"], PARAMS)


def test_evaluate_with_coverage(datasets, tmp_path):
    """emtool evaluate --coverage TRAIN: per-configuration coverage scores by the training
    set (as coverage_by_configuration), the threshold, and their rank correlation with the
    model's errors; random boxes lie beyond a displaced-crystal training set."""
    from scipy.stats import spearmanr
    from emtool.fitting.snap import fit_dataset
    folder, _, em_like = datasets
    fit_dataset(folder / "de.h5", tmp_path / "model.json", "linear", PARAMS)
    near = [displaced_bcc(10 + k, amplitude=0.05) for k in range(3)]
    write_dataset(tmp_path / "data.h5", _labeled(near + em_like[:3], -8.0))
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "model.json"),
                                       str(tmp_path / "data.h5"), "--coverage",
                                       str(folder / "de.h5"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    cov = out["coverage"]
    rows = cov["configurations"]
    assert [r["index"] for r in rows] == list(range(6))
    assert [r["rse"] for r in rows] == [r["rse"] for r in out["rse"]]
    train = compare.dataset_descriptors(folder / "de.h5", PARAMS)
    data = compare.dataset_descriptors(tmp_path / "data.h5", PARAMS)
    expected = coverage_by_configuration(train.descriptors, data.descriptors, data.offsets)
    assert np.allclose([r["coverage"] for r in rows], expected, rtol=1e-12)
    threshold = np.quantile(nearest_distances(zca_whitening(train.descriptors).apply(
        train.descriptors)), compare.COVERAGE_QUANTILE)
    assert cov["threshold_covering"] == pytest.approx(threshold, rel=1e-12)
    assert all(r["coverage"] > threshold for r in rows[3:])
    assert cov["fraction_beyond_covering"] == np.mean(expected > threshold) >= 0.5
    own = np.quantile(nearest_distances(zca_whitening(train.descriptors).apply(
        data.descriptors)), compare.COVERAGE_QUANTILE)
    assert cov["threshold_own"] == pytest.approx(own, rel=1e-12)
    assert cov["fraction_beyond_own"] == np.mean(expected > own)
    assert cov["spearman"] == pytest.approx(spearmanr(expected, [r["rse"] for r in rows])[0])
    text = CliRunner().invoke(main, ["evaluate", str(tmp_path / "model.json"),
                                     str(tmp_path / "data.h5"), "--coverage",
                                     str(folder / "de.h5")])
    assert text.exit_code == 0 and "Spearman(coverage, RSE)" in text.output
    bad = CliRunner().invoke(main, ["evaluate", str(tmp_path / "model.json"),
                                    str(tmp_path / "data.h5"), "--coverage",
                                    str(tmp_path / "missing.h5")])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1


def test_coverage_cannot_be_fooled_by_a_sparse_set():
    """A sparse set spread over a wide region "covers" a dense cluster inside it on its own
    (large) spacing scale, but not on the cluster's scale; a dense set around the cluster
    covers it on both."""
    rng = np.random.default_rng(7)
    cluster = rng.normal(0.0, 0.05, (400, 3))
    sparse = rng.uniform(-3.0, 3.0, (60, 3))
    dense = rng.normal(0.0, 0.05, (4000, 3))
    own = nearest_distances(cluster)
    by_sparse = compare.coverage_summary(nearest_distances(sparse, cluster),
                                         nearest_distances(sparse), own)
    assert by_sparse["fraction_beyond_covering"] < 0.05      # the old scale: "covered"
    assert by_sparse["covered"] < 0.1                        # its own scale: not covered
    assert by_sparse["covered"] == 1 - by_sparse["fraction_beyond_own"]
    by_dense = compare.coverage_summary(nearest_distances(dense, cluster),
                                        nearest_distances(dense), own)
    assert by_dense["covered"] > 0.95
