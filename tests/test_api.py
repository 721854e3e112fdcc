"""The pipeline is the public API: ``emtool.generate``, ``label``, ``select``, ``fit``,
``evaluate``, ``nve`` and ``compare`` run end to end on a tiny job and give what the command
line gives for the same settings."""
import json

import numpy as np
from click.testing import CliRunner

import emtool
from emtool.cli import main
from emtool.dynamics.nve import NVEProtocol
from emtool.generator.generate import GeneratorParams

PARAMS = emtool.SnapParams(twojmax=2, bzeroflag=0)


def test_the_pipeline_through_the_package(tmp_path):
    run = lambda *args: CliRunner().invoke(main, [str(a) for a in args])  # noqa: E731
    generator = GeneratorParams(max_steps=20)
    summary = emtool.generate(tmp_path / "em.h5", 8, seed=5, params=generator)
    assert summary["new"] == 8
    assert run("generate", "-n", 8, "-o", tmp_path / "cli.h5", "--seed", 5, "--max-steps",
               20).exit_code == 0
    ours, theirs = (emtool.read_dataset(tmp_path / name) for name in ("em.h5", "cli.h5"))
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(ours, theirs))

    assert emtool.label(tmp_path / "em.h5", output=tmp_path / "lab.h5")["labeled"] == 8
    emtool.select(tmp_path / "lab.h5", 3, tmp_path / "pick.h5", params=PARAMS)
    assert run("select", tmp_path / "lab.h5", "-n", 3, "-o", tmp_path / "cli_pick.h5",
               "--twojmax", 2).exit_code == 0
    assert [a.info["source_index"] for a in emtool.read_dataset(tmp_path / "pick.h5")] == \
        [a.info["source_index"] for a in emtool.read_dataset(tmp_path / "cli_pick.h5")]

    meta = emtool.fit(tmp_path / "lab.h5", tmp_path / "m.json", params=PARAMS)
    assert run("fit", tmp_path / "lab.h5", "-o", tmp_path / "cli.json", "--twojmax", 2
               ).exit_code == 0
    assert (json.loads((tmp_path / "m.json").read_text())["coefficients"]
            == json.loads((tmp_path / "cli.json").read_text())["coefficients"])
    errors = emtool.evaluate(tmp_path / "m.json", tmp_path / "lab.h5")
    assert errors["energy_rmse"] == meta["metrics"]["train"]["energy_rmse"]

    table = emtool.nve("reference:W", NVEProtocol(timesteps=(1.0,), duration=20.0, samples=5,
                                                  equilibration=10.0))["table"]
    assert len(table) == 1 and not table[0]["diverged"]
    comparison = emtool.compare(tmp_path / "lab.h5", tmp_path / "pick.h5", params=PARAMS)
    assert comparison.summary["others"][0]["n_dims"] == 5


def test_the_errors_are_the_package_s():
    assert issubclass(emtool.DatasetError, emtool.EmtoolError)
    assert issubclass(emtool.MDError, emtool.EmtoolError)
    assert {"generate", "label", "select", "fit", "evaluate", "nve", "compare"} <= set(
        emtool.__all__)
