"""The generation job: workers, Dask, kill/resume, and bad input (through the CLI)."""
import hashlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from emtool import read_dataset
from emtool.cli import main
from emtool.data.dataset import read_arrays
from emtool.generator.generate import GeneratorParams, generate_dataset

N = 10
PARAMS = GeneratorParams(max_steps=60, overlap_steps=40)


def same_content(a, b):
    left, right = read_arrays(a), read_arrays(b)
    assert left.keys() == right.keys()
    for key in left:
        np.testing.assert_array_equal(left[key], right[key], err_msg=key)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    path = tmp_path_factory.mktemp("serial") / "em.h5"
    generate_dataset(path, N, seed=5, params=PARAMS)
    return path


def test_serial_dataset_reads_back(serial):
    images = read_dataset(serial)
    assert [a.info["index"] for a in images] == list(range(N))
    assert {a.info["group"] for a in images} == {"entropy_max", "entropy_min"}
    for atoms in images:
        assert {"K", "entropy", "converged"} <= set(atoms.info)
        assert 32 <= len(atoms) <= 40 and atoms.cell[0, 0] == atoms.cell[1, 1]


def test_worker_processes_give_identical_output(serial, tmp_path):
    generate_dataset(tmp_path / "w2.h5", N, seed=5, params=PARAMS, workers=2)
    same_content(serial, tmp_path / "w2.h5")


def test_dask_cluster_gives_identical_output(serial, tmp_path):
    import dask.distributed as distributed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        generate_dataset(tmp_path / "dask.h5", N, seed=5, params=PARAMS,
                         scheduler=cluster.scheduler_address)
    same_content(serial, tmp_path / "dask.h5")


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli_generate(path, *extra):
    return [sys.executable, "-m", "emtool.cli", "generate", "-n", "16", "-o", str(path),
            "--seed", "9", "--max-steps", "60", *extra]


def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path):
    reference = tmp_path / "ref.h5"
    subprocess.run(cli_generate(reference), check=True, capture_output=True)
    target = tmp_path / "killed.h5"
    rng = np.random.default_rng(0)
    for _ in range(3):
        child = subprocess.Popen(cli_generate(target), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 3.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if target.exists():
            read_dataset(target)  # readable after every kill
    subprocess.run(cli_generate(target), check=True, capture_output=True)
    same_content(reference, target)


@pytest.mark.parametrize("args, message", [
    (["--volume-range", "900", "400"], "volume range"),
    (["--natoms", "1", "4"], "atom count"),
    (["--exclusion-radius", "4.0"], "exclusion radius"),
    (["--seed", "10"], "seed"),
])
def test_bad_input_is_refused_and_existing_file_kept(serial, tmp_path, args, message):
    target = tmp_path / "keep.h5"
    target.write_bytes(serial.read_bytes())
    before = digest(target)
    result = CliRunner().invoke(main, ["generate", "-n", "4", "-o", str(target), "--seed", "5",
                                       "--max-steps", "60", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert digest(target) == before
