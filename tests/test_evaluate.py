"""emtool evaluate: per-configuration predictions files, the fit's recorded subsets, the
--potential form and its alias, and progress lines in the logs of fit / evaluate /
descriptors."""
import json
import logging

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner

import emtool
from conftest import random_box
from emtool.cli import main
from emtool.data.dataset import dataset_info, read_dataset
from emtool.analysis.evaluate import evaluate_images
from emtool.fitting.snap import fit_dataset
from emtool.fitting.split import split_configurations
from emtool.potentials.models import load_model, save_model
from emtool.potentials.reference import reference_potential
from emtool.potentials.snap import SnapPotential

PARAMS = emtool.SnapParams(twojmax=2, rcutfac=4.73, bzeroflag=0, elements=("W",))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def labeled_set(path, n=10, unlabeled=(), index=lambda k: k):
    """``n`` random W boxes labeled by the embedded reference (configurations ``unlabeled``
    left without labels), index keys ``index(k)``, groups a/b."""
    reference = reference_potential("reference:W")
    images = []
    for k in range(n):
        atoms = random_box(k, natoms=8 + k % 3)
        if k not in unlabeled:
            r = reference.evaluate(atoms)
            atoms.calc = SinglePointCalculator(atoms, energy=r["energy"], forces=r["forces"],
                                               stress=r["stress"])
        atoms.info.update(index=index(k), group="a" if k % 2 else "b")
        images.append(atoms)
    emtool.write_dataset(path, images)
    return images


def snap_model(path):
    coefficients = np.r_[-8.0, np.random.default_rng(1).normal(scale=1e-2, size=PARAMS.ncoeff)]
    save_model(path, SnapPotential(PARAMS, coefficients[None, :]))
    return path


def test_predictions_file_holds_labels_and_the_calculators_results(tmp_path):
    images = labeled_set(tmp_path / "d.h5", n=5, unlabeled=(3,))
    cluster = random_box(9, natoms=6)
    cluster.pbc = False            # no stress from the model
    cluster.info.update(index=5, group="cluster")
    images.append(cluster)
    emtool.write_dataset(tmp_path / "d.h5", images)
    model = snap_model(tmp_path / "m.json")
    out = tmp_path / "p.h5"
    result = run("evaluate", "--potential", model, tmp_path / "d.h5", "--predictions", out,
                 "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["predictions"] == str(out) and report["unlabeled"] == 2
    calculator = emtool.calculator(model)
    back = read_dataset(out)
    assert [a.info["index"] for a in back] == [a.info["index"] for a in images]
    for atoms, original in zip(back, images):
        assert atoms.info["group"] == original.info["group"]
        np.testing.assert_array_equal(atoms.positions, original.positions)
        if original.calc is None:          # reference labels kept as they were
            assert atoms.calc is None
        else:
            for key in ("energy", "forces", "stress"):
                np.testing.assert_array_equal(atoms.calc.results[key], original.calc.results[key])
        probe = original.copy()
        probe.calc = calculator
        assert abs(atoms.info["predicted_energy"] - probe.get_potential_energy()) <= 1e-12
        np.testing.assert_allclose(atoms.info["predicted_forces"], probe.get_forces(),
                                   rtol=0, atol=1e-12)
        if all(original.pbc):
            np.testing.assert_allclose(atoms.info["predicted_stress"], probe.get_stress(),
                                       rtol=0, atol=1e-12)
        else:
            assert "predicted_stress" not in atoms.info
    assert dataset_info(out)["provenance"][-1]["action"] == "evaluate"
    # the output policy: no silent replacement, never an input
    again = run("evaluate", "--potential", model, tmp_path / "d.h5", "--predictions", out)
    assert again.exit_code == 2 and "exists; pass --overwrite" in again.output
    again = run("evaluate", "--potential", model, tmp_path / "d.h5", "--predictions", out,
                "--overwrite")
    assert again.exit_code == 0 and f"predictions: {out}" in again.output
    bad = run("evaluate", "--potential", model, tmp_path / "d.h5", "--predictions",
              tmp_path / "d.h5", "--overwrite")
    assert bad.exit_code == 2 and "would replace the input" in bad.output


def test_potential_option_and_positional_alias(tmp_path):
    labeled_set(tmp_path / "d.h5", n=4)
    model = snap_model(tmp_path / "m.json")
    documented = run("evaluate", "--potential", model, tmp_path / "d.h5", "--json")
    alias = run("evaluate", model, tmp_path / "d.h5", "--json")
    assert documented.exit_code == 0 and alias.exit_code == 0, documented.output + alias.output
    assert json.loads(documented.output) == json.loads(alias.output)
    both = run("evaluate", "--potential", model, model, tmp_path / "d.h5")
    assert both.exit_code == 2 and "given twice" in both.output
    assert len(both.output.strip().splitlines()) == 1
    none = run("evaluate", tmp_path / "d.h5")
    assert none.exit_code == 2 and "--potential SPEC DATA" in none.output
    reference = run("evaluate", "--potential", "reference:W", tmp_path / "d.h5", "--json")
    assert reference.exit_code == 0 and json.loads(reference.output)["energy_rmse"] < 1e-12


def test_snap_fit_records_its_split_and_evaluate_uses_exactly_it(tmp_path):
    data = tmp_path / "d.h5"
    labeled_set(data, n=10, unlabeled=(4,), index=lambda k: 3 * k + 1)
    model = tmp_path / "m.json"
    fitted = run("fit", data, "-o", model, "--twojmax", "2", "--validation", "0.3",
                 "--seed", "5")
    assert fitted.exit_code == 0, fitted.output
    meta = json.loads(model.read_text())["metadata"]
    subsets = meta["subsets"]
    labeled = [a for a in read_dataset(data) if a.calc is not None]
    train, _, held = ([labeled[k] for k in part] for part in split_configurations(
        [a.info.get("group", "") for a in labeled], (1 - 0.3, 0.0, 0.3), 5, draw_order=True,
        need_validation=False))                         # the split the fit makes
    assert subsets["train"] == sorted(a.info["index"] for a in train)
    assert subsets["validation"] == sorted(a.info["index"] for a in held)
    assert len(subsets["validation"]) == 3 and "test" not in subsets
    assert subsets["configs"] == 10 and subsets["dataset"] == str(data.resolve())
    for part in ("validation", "train"):
        result = run("evaluate", "--potential", model, data, "--subset", part, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert [row["index"] for row in report["rse"]] == subsets[part]
        assert report["subset"] == part
        assert report["energy_rmse"] == pytest.approx(meta["metrics"][part]["energy_rmse"],
                                                      rel=1e-12)
    # a relabeled copy elsewhere is the same dataset
    copy = [a for a in read_dataset(data)]
    for atoms in copy:
        if atoms.calc is not None:
            atoms.calc.results["energy"] += 1.0
    emtool.write_dataset(tmp_path / "relabeled.h5", copy)
    ok = run("evaluate", "--potential", model, tmp_path / "relabeled.h5", "--subset",
             "validation", "--json")
    assert ok.exit_code == 0, ok.output
    assert [row["index"] for row in json.loads(ok.output)["rse"]] == subsets["validation"]
    # errors: no such subset, another dataset
    bad = run("evaluate", "--potential", model, data, "--subset", "test")
    assert bad.exit_code == 2 and "no test subset" in bad.output
    labeled_set(tmp_path / "other.h5", n=7)
    bad = run("evaluate", "--potential", model, tmp_path / "other.h5", "--subset", "train")
    assert bad.exit_code == 2 and "has 7 configurations, but" in bad.output
    moved = read_dataset(data)
    moved[0].positions[0] += 0.01
    moved[0].calc = None
    emtool.write_dataset(tmp_path / "moved.h5", moved)
    bad = run("evaluate", "--potential", model, tmp_path / "moved.h5", "--subset", "train")
    assert bad.exit_code == 2 and "other configurations" in bad.output
    for result in (bad,):
        assert len(result.output.strip().splitlines()) == 1


def test_network_fit_records_train_validation_test(tmp_path, caplog):
    pytest.importorskip("torch")
    data = tmp_path / "d.h5"
    images = labeled_set(data, n=12)
    model = tmp_path / "nn.json"
    with caplog.at_level(logging.INFO, logger="emtool"):
        fitted = run("fit", data, "-o", model, "--model", "nn:A1", "--twojmax", "2", "--epochs",
                     "2", "--batch-size", "4", "--seed", "3", "--validation-groups", "a")
    assert fitted.exit_code == 0, fitted.output
    logged = [r.getMessage() for r in caplog.records if r.name == "emtool.fitting.networks"]
    assert [line.split(":")[0] for line in logged if line.startswith("epoch")] == [
        "epoch 1/2", "epoch 2/2"]
    assert any(line.startswith("descriptors: 12/12") for line in logged)
    assert "epoch 1/2" not in fitted.output          # logged, so not echoed a second time
    subsets = json.loads(model.read_text())["metadata"]["subsets"]
    parts = split_configurations([a.info["group"] for a in images], (0.7, 0.1, 0.2), 3, ("a",))
    for name, part in zip(("train", "validation", "test"), parts):
        assert subsets[name] == [images[k].info["index"] for k in part]
    assert subsets["test"] == [k for k in range(12) if k % 2]       # group a
    result = run("evaluate", "--potential", model, data, "--subset", "test", "--json")
    assert result.exit_code == 0, result.output
    assert [row["index"] for row in json.loads(result.output)["rse"]] == subsets["test"]


def test_model_files_without_subsets_still_load_and_evaluate(tmp_path):
    data = tmp_path / "d.h5"
    labeled_set(data, n=6)
    model = tmp_path / "m.json"
    assert run("fit", data, "-o", model, "--twojmax", "2").exit_code == 0
    document = json.loads(model.read_text())
    del document["metadata"]["subsets"]                  # as written before the record
    old = tmp_path / "old.json"
    old.write_text(json.dumps(document))
    np.testing.assert_array_equal(load_model(old).coeffs, load_model(model).coeffs)
    result = run("evaluate", old, data, "--json")
    assert result.exit_code == 0, result.output
    bad = run("evaluate", "--potential", old, data, "--subset", "train")
    assert bad.exit_code == 2 and "records no training subsets" in bad.output
    bad = run("evaluate", "--potential", snap_model(tmp_path / "bare.json"), data,
              "--subset", "train")
    assert bad.exit_code == 2 and "records no training subsets" in bad.output
    bad = run("evaluate", "--potential", "reference:W", data, "--subset", "train")
    assert bad.exit_code == 2 and "only in emtool model files" in bad.output
    assert "Traceback" not in bad.output


def test_progress_lines_in_the_logs(tmp_path, caplog):
    from emtool.workflows import compute_descriptors
    data = tmp_path / "d.h5"
    images = labeled_set(data, n=25)
    with caplog.at_level(logging.INFO, logger="emtool"):
        fit_dataset(data, tmp_path / "m.json", params=PARAMS)
        evaluate_images(load_model(tmp_path / "m.json"), images)
        compute_descriptors(images[:3], PARAMS, tmp_path / "b.npz")
    lines = {name: [r.getMessage() for r in caplog.records if r.name == name]
             for name in ("emtool.fitting.snap", "emtool.analysis.evaluate", "emtool.workflows")}
    rows = [line for line in lines["emtool.fitting.snap"] if line.startswith("fit rows:")]
    assert 3 <= len(rows) <= 11 and rows[-1].startswith("fit rows: 25/25 configurations (100 %)")
    evaluated = [line for line in lines["emtool.analysis.evaluate"] if line.startswith("evaluate:")]
    assert 6 <= len(evaluated) <= 22 and evaluated[-1].startswith("evaluate: 25/25")
    assert [line.split(",")[0] for line in lines["emtool.workflows"]] == [
        f"descriptors: {k}/3 configurations (" + f"{100 * k / 3:.0f} %)" for k in (1, 2, 3)]


def test_plots_use_the_evaluation_and_refuse_an_unlabeled_set(tmp_path):
    """``plot_errors`` given ``evaluate_images``' predictions never calls the potential (the
    CLI's --plots evaluates once), and with nothing labeled says so instead of failing."""
    from emtool.analysis.evaluate import plot_errors
    from emtool.errors import ParameterError

    class Refuses:
        def evaluate(self, atoms):
            raise AssertionError("evaluated twice")

    images = labeled_set(tmp_path / "d.h5", n=4, unlabeled=(2,))
    kept = evaluate_images(reference_potential("reference:W"), images,
                           predictions=True)["predictions"]
    assert plot_errors(Refuses(), images, tmp_path / "plots", kept).exists()
    with pytest.raises(ParameterError, match="no labeled configurations to plot"):
        plot_errors(Refuses(), [images[2]], tmp_path / "plots")
