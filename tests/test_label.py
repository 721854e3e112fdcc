"""Labeling: embedded reference, a real ASE calculator, an external command, failures,
retries and kill/resume."""
import ctypes
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from click.testing import CliRunner

from conftest import displaced_bcc
from emtool import read_dataset, write_dataset
from emtool.cli import main
from emtool.data.dataset import dataset_info, read_arrays
from emtool.generator.generate import GeneratorParams
from emtool.generator.starts import random_start
from emtool.labeling.label import LabelerSpec, finished_labels, label_dataset, labeler_from_options
from emtool.parallel import run_indexed
from emtool.potentials.reference import FinnisSinclairW

LJ = dict(sigma=2.5, epsilon=0.2, rc=6.0)


@pytest.fixture
def unlabeled(tmp_path):
    rng = np.random.default_rng(0)
    images = []
    for k in range(8):
        atoms = random_start(GeneratorParams(natoms=(4, 6)), rng)
        atoms.rattle(0.01, seed=k)
        atoms.info.update(index=k, group="random")
        images.append(atoms)
    path = tmp_path / "data.h5"
    write_dataset(path, images)
    return path


def energies(path):
    return read_arrays(path)["energy"]


def test_reference_labels_equal_direct_evaluation(unlabeled, tmp_path):
    out = tmp_path / "out.h5"
    before = unlabeled.read_bytes()
    summary = label_dataset(unlabeled, output=out)
    assert summary["labeled"] == 8 and summary["failed"] == 0
    assert unlabeled.read_bytes() == before
    reference = FinnisSinclairW()
    for atoms in read_dataset(out):
        expected = reference.evaluate(atoms)
        assert atoms.get_potential_energy() == pytest.approx(expected["energy"], abs=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), expected["forces"], atol=1e-12)
        np.testing.assert_allclose(atoms.get_stress(), expected["stress"], atol=1e-14)
    record = dataset_info(out)["provenance"][-1]
    assert record["action"] == "label" and record["settings"]["target"] == "reference:W"
    assert not (tmp_path / "out.h5.labeling.h5").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_real_ase_calculator_labeler(unlabeled, workers):
    spec = labeler_from_options("ase.calculators.lj:LennardJones", json_args(LJ))
    label_dataset(unlabeled, spec, workers=workers)
    for atoms in read_dataset(unlabeled):
        copy = atoms.copy()
        copy.calc = LennardJones(**LJ)
        assert atoms.get_potential_energy() == pytest.approx(copy.get_potential_energy(), abs=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), copy.get_forces(), atol=1e-12)


def json_args(kwargs):
    import json
    return json.dumps(kwargs)


SCRIPT = ("import sys; from ase.io import read, write; from emtool import calculator; "
          "a = read(sys.argv[1]); a.calc = calculator('reference:W'); a.get_stress(); "
          "write(sys.argv[2], a, format='extxyz')")


def test_external_command_labeler(unlabeled):
    command = f"{sys.executable} -c \"{SCRIPT}\" {{input}} {{output}}"
    summary = label_dataset(unlabeled, LabelerSpec("command", command))
    assert summary["labeled"] == 8
    reference = FinnisSinclairW()
    for atoms in read_dataset(unlabeled):
        # extxyz keeps 8 decimals of positions on the way out: compare on what was written
        assert atoms.get_potential_energy() == pytest.approx(
            reference.evaluate(atoms)["energy"], abs=1e-5)


@pytest.mark.parametrize("spec, chunk", [
    (LabelerSpec("command", f"{sys.executable} -c \"{SCRIPT}\" {{input}} {{output}}"), 1),
    (LabelerSpec("potential", "reference:W"), 4)])
def test_each_dft_label_is_journaled_as_it_finishes(unlabeled, monkeypatch, spec, chunk):
    """With several workers a DFT labeler (command or ASE calculator, minutes per
    configuration) hands every configuration back on its own, so an interruption loses at most
    the ones in progress; a potential goes in chunks of 4."""
    import emtool.labeling.label as label_module
    calls = []

    def recording(*args, **kwargs):
        calls.append(args[6] if len(args) > 6 else kwargs["chunk"])
        return run_indexed(*args, **kwargs)

    monkeypatch.setattr(label_module, "run_indexed", recording)
    assert label_dataset(unlabeled, spec, workers=2)["labeled"] == 8
    assert calls == [chunk]


def test_a_command_gets_the_environment_emtool_was_started_with(unlabeled, monkeypatch):
    # A library loaded in this process can set C-level environment variables that
    # os.environ does not see (an MPI singleton's OMPI_*/PMIX_*, which make an mpirun in the
    # command exit 1): the command gets os.environ, not them.
    libc = ctypes.CDLL(None)
    libc.setenv(b"EMTOOL_C_LEVEL_ONLY", b"1", 1)
    monkeypatch.setenv("EMTOOL_FROM_THE_USER", "1")
    try:
        command = (f'test -z "$EMTOOL_C_LEVEL_ONLY" && test -n "$EMTOOL_FROM_THE_USER" && '
                   f'{sys.executable} -c "{SCRIPT}" {{input}} {{output}}')
        assert label_dataset(unlabeled, LabelerSpec("command", command))["labeled"] == 8
    finally:
        libc.unsetenv(b"EMTOOL_C_LEVEL_ONLY")


def test_failures_are_recorded_and_retried(unlabeled, tmp_path):
    failing = LabelerSpec("command", "exit 3 # {input} {output}")
    summary = label_dataset(unlabeled, failing)
    assert summary["failed"] == 8
    assert summary["errors"][0][1] == "RuntimeError: command exited with code 3: it printed nothing"
    images = read_dataset(unlabeled)
    assert all("label_error" in a.info and a.calc is None for a in images)
    assert label_dataset(unlabeled)["skipped"] == 8           # not silently retried
    summary = label_dataset(unlabeled, retry_failed=True)
    assert summary["labeled"] == 8
    assert all("label_error" not in a.info for a in read_dataset(unlabeled))


def test_nan_labeler_is_a_clear_failure(unlabeled):
    result = CliRunner().invoke(main, ["label", str(unlabeled), "--potential",
                                       "tests/nan_calculator.py:calculator"])
    assert result.exit_code == 1
    assert "configuration 0" in result.output and "non-finite" in result.output
    assert len(read_dataset(unlabeled)) == 8


def test_an_existing_output_is_kept_unless_overwrite(unlabeled, tmp_path):
    keep = tmp_path / "keep.h5"
    write_dataset(keep, [displaced_bcc(k) for k in range(3)])
    before = keep.read_bytes()
    result = CliRunner().invoke(main, ["label", str(unlabeled), "-o", str(keep)])
    assert result.exit_code == 2 and "exists; pass --overwrite" in result.output
    assert keep.read_bytes() == before
    same = CliRunner().invoke(main, ["label", str(unlabeled), "-o", str(unlabeled)])
    assert same.exit_code == 0, same.output                  # -o DATASET: in place
    replaced = CliRunner().invoke(main, ["label", str(unlabeled), "-o", str(keep), "--overwrite"])
    assert replaced.exit_code == 0 and len(read_dataset(keep)) == 8


def test_kill_and_resume(unlabeled, tmp_path):
    slow = f"sleep 1; {sys.executable} -c \"{SCRIPT}\" {{input}} {{output}}"  # >= 8 s in all
    reference = tmp_path / "ref.h5"
    label_dataset(unlabeled, LabelerSpec("command", slow), output=reference)
    target = tmp_path / "killed.h5"
    args = [sys.executable, "-m", "emtool.cli", "label", str(unlabeled), "-o", str(target),
            "--command", slow]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4.0)
    child.send_signal(signal.SIGKILL)
    child.wait()
    subprocess.run(args, check=True, capture_output=True)
    np.testing.assert_array_equal(energies(target), energies(reference))
    np.testing.assert_array_equal(read_arrays(target)["forces"], read_arrays(reference)["forces"])


def test_interrupted_labels_are_kept_in_the_work_file(unlabeled, tmp_path):
    """Ctrl-C: what is finished waits in OUTPUT.labeling.h5 and its journal (as `emtool label
    --help` says) and equals what an uninterrupted run gives."""
    from emtool.data.schema import journal_path
    slow = f"sleep 1; {sys.executable} -c \"{SCRIPT}\" {{input}} {{output}}"  # >= 8 s in all
    reference = tmp_path / "ref.h5"
    label_dataset(unlabeled, LabelerSpec("command", slow), output=reference)
    target = tmp_path / "stopped.h5"
    started = tmp_path / "started"                 # one file per labeling command begun
    started.mkdir()
    # a background shell (nohup ... &) ignores SIGINT and its children inherit that; a user's
    # terminal does not: give the child the default disposition, as on a terminal
    child = subprocess.Popen([sys.executable, "-m", "emtool.cli", "label", str(unlabeled), "-o",
                              str(target), "--command", f"mktemp -p {started} > /dev/null; {slow}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    work = tmp_path / "stopped.h5.labeling.h5"
    # interrupt while the second command sleeps, the first label done (one worker labels in
    # order); a fixed wait fails on a slow, loaded machine
    deadline = time.monotonic() + 120.0
    while len(list(started.iterdir())) < 2 and time.monotonic() < deadline:
        assert child.poll() is None, "emtool label ended before it was interrupted"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    child.wait()
    assert not target.exists()
    partial = read_dataset(work) + [a for shard in sorted(journal_path(work).glob("*.h5"))
                                    for a in read_dataset(shard)]
    assert [a.info["index"] for a in finished_labels(target)] == \
        [a.info["index"] for a in partial]
    expected = {a.info["index"]: a.get_potential_energy() for a in read_dataset(reference)}
    assert 0 < len(partial) < len(expected)
    for atoms in partial:
        assert atoms.get_potential_energy() == expected[atoms.info["index"]]


def test_bad_labeler_options():
    from emtool import ParameterError
    with pytest.raises(ParameterError, match="not valid JSON"):
        labeler_from_options("ase.calculators.lj:LennardJones", "{sigma")
    with pytest.raises(ParameterError, match="cannot import"):
        labeler_from_options("no_such_module:factory")
    with pytest.raises(ParameterError, match="output"):
        labeler_from_options(command="run {input}")
