"""HDF5 datasets: exact round trips, order, validation, and crash-safe incremental writing
(journal, resume, SIGKILL at random moments and at chosen crash points)."""
import inspect
import json
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from emtool.data.dataset import (dataset_info, format_info, iter_dataset, provenance_record,
                                 read_arrays, read_dataset, write_dataset)
from emtool.data.journal import DatasetWriter
from emtool.data.schema import journal_path
from emtool.errors import DatasetError, ParameterError


def make_config(index):
    """A small random configuration, reproducible from ``index``: 1-4 atoms of W, Mo, H in a
    skewed cell with mixed pbc; labels by index % 4 (none, energy, energy+forces,
    energy+forces+stress); info scalars of every JSON type."""
    rng = np.random.default_rng(index)
    n = int(rng.integers(1, 5))
    cell = np.diag(rng.uniform(3, 6, 3)) + rng.uniform(-0.5, 0.5, (3, 3))
    # apart by more than emtool's overlap bound, some outside the cell
    scaled = (np.array([[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])[:n]
              + rng.uniform(-0.05, 0.05, (n, 3)) + rng.integers(-1, 2, (n, 3)))
    atoms = Atoms(numbers=rng.choice([74, 42, 1], n), positions=scaled @ cell, cell=cell,
                  pbc=rng.random(3) < 0.7)
    kind = index % 4
    if kind:
        atoms.calc = SinglePointCalculator(
            atoms, energy=float(rng.normal(-8.0 * n, 1.0)),
            forces=rng.normal(size=(n, 3)) if kind >= 2 else None,
            stress=rng.normal(size=6) * 0.01 if kind == 3 else None)
    atoms.info.update(index=index, group=("EM+", "EM-", "expert")[index % 3],
                      K=float(rng.normal()), converged=bool(index % 2),
                      steps=int(rng.integers(1000)), seed=12345)
    return atoms


def run_job(path, n, ready=lambda: None):
    """A generation-like job: configurations 0..n-1 in shuffled order, small batches and
    frequent consolidations, skipping what a previous (killed) run already stored."""
    order = np.random.default_rng(1).permutation(n)
    with DatasetWriter(path, {"n": n, "seed": 12345, "K": [0.5, -0.5]}, batch=3,
                       max_shards=4) as writer:
        done = writer.done_indices()
        ready()
        for index in order:
            if int(index) not in done:
                writer.add(make_config(int(index)))
                writer.consolidate_if_due()
        writer.finish("test-job", {"n": n})


CHILD = """
import os, signal, sys
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from emtool.data.journal import DatasetWriter

{functions}

path, n, mode, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if mode != "none":  # die (SIGKILL) just before or just after the count-th chosen rename
    when, target = mode.split("-")
    real_replace, hits = os.replace, [0]

    def replace(src, dst):
        chosen = (os.fspath(dst) == path) == (target == "main")
        hits[0] += chosen
        if chosen and when == "before" and hits[0] == count:
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
        if chosen and when == "after" and hits[0] == count:
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace
run_job(path, n, ready=lambda: print("ready", flush=True))
"""


def start_child(tmp_path, path, n, mode="none", count=0):
    script = tmp_path / "child.py"
    if not script.exists():
        functions = "\n\n".join(textwrap.dedent(inspect.getsource(f))
                                for f in (make_config, run_job))
        script.write_text(CHILD.format(functions=functions))
    log = open(tmp_path / "child.log", "a")
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(n), mode, str(count)],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    return proc


def finish_child(proc, tmp_path):
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, (out, (tmp_path / "child.log").read_text())


def assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        if a[name].dtype == object:
            assert a[name].tolist() == b[name].tolist(), name
        else:
            assert a[name].tobytes() == b[name].tobytes(), name


def assert_same_dataset(path, reference):
    """Equal arrays (bit for bit), parameters and provenance (but for record times)."""
    assert_same_arrays(read_arrays(path), read_arrays(reference))
    info, ref = dataset_info(path), dataset_info(reference)
    assert info["parameters"] == ref["parameters"]
    for got, expected in zip(info["provenance"], ref["provenance"], strict=True):
        assert got.keys() == expected.keys()
        assert {**got, "time": None} == {**expected, "time": None}


def assert_same_configs(images, reference):
    """Configurations equal to the last bit: structure, labels, group, index, info types."""
    assert len(images) == len(reference)
    for got, ref in zip(images, reference):
        for a, b in ((got.numbers, ref.numbers), (got.positions, ref.positions),
                     (got.cell.array, ref.cell.array), (got.pbc, ref.pbc)):
            assert a.shape == b.shape and a.tobytes() == np.asarray(b, a.dtype).tobytes()
        results = ref.calc.results if ref.calc is not None else {}
        if not results:
            assert got.calc is None
        else:
            assert sorted(got.calc.results) == sorted(k for k in results
                                                      if k in ("energy", "forces", "stress"))
            for key, value in got.calc.results.items():
                expected = np.asarray(results[key], float)
                if key == "stress" and expected.shape == (3, 3):
                    expected = expected[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
                assert np.asarray(value).tobytes() == expected.tobytes(), key
        expected = {"group": "", **ref.info}
        assert got.info == expected
        assert [type(got.info[k]) for k in expected] == [
            type(v.item() if isinstance(v, np.generic) else v) for v in expected.values()]


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
    """Uninterrupted in-process runs of ``run_job`` for n = 60, 300 and 600."""
    folder = tmp_path_factory.mktemp("reference")
    paths = {}
    for n in (60, 300, 600):
        paths[n] = folder / f"ref{n}.h5"
        run_job(paths[n], n)
    return paths


def mixed_images():
    rng = np.random.default_rng(7)
    images = []
    for k in range(12):
        n = int(rng.integers(1, 9))
        pbc = [(True, True, True), (False, False, False), (True, False, True)][k % 3]
        cell = np.zeros((3, 3)) if not any(pbc) else \
            rng.normal(size=(3, 3)) + np.diag(rng.uniform(4, 8, 3))
        atoms = Atoms(numbers=rng.choice([1, 8, 42, 73, 74], n),
                      positions=rng.normal(scale=3.0, size=(n, 3)), cell=cell, pbc=pbc)
        kind = k % 6
        if kind == 1:
            atoms.calc = SinglePointCalculator(atoms, energy=rng.normal())
        elif kind == 2:
            atoms.calc = SinglePointCalculator(atoms, energy=-0.0, forces=rng.normal(size=(n, 3)),
                                               stress=rng.normal(size=6))
        elif kind == 3:
            full = rng.normal(size=(3, 3))
            atoms.calc = SinglePointCalculator(atoms, energy=5e-324, stress=full + full.T,
                                               forces=rng.normal(size=(n, 3)) * 1e300)
        elif kind == 4:
            atoms.calc = SinglePointCalculator(atoms, forces=rng.normal(size=(n, 3)))
        atoms.info.update(index=int(rng.integers(-1000, 1000)) * 100 + k, K=float(rng.normal()),
                          entropy=np.float64(rng.normal()), converged=bool(k % 2),
                          relaxed=np.bool_(k % 3 == 0), steps=int(rng.integers(10**6)),
                          seed=np.int64(2**62 + k), V_rep=-0.0, name="W α-phase",
                          path=[1, 2.5, "x"])
        if k % 4 == 0:
            atoms.info["group"] = f"group-{k % 3}"
        images.append(atoms)
    return images


class CachedOnly(Calculator):
    """Results are cached in ``results``; computing anything is an error."""
    implemented_properties = ["energy", "forces"]

    def calculate(self, *args, **kwargs):
        raise AssertionError("write_dataset must not trigger a calculation")


def test_round_trip_is_exact(tmp_path):
    images = mixed_images()
    cached = Atoms("W2", positions=[[0, 0, 0], [1.4, 1.5, 1.6]], cell=np.eye(3) * 3.2, pbc=True)
    cached.calc = CachedOnly()
    cached.calc.atoms = cached.copy()
    cached.calc.results = {"energy": -17.25, "forces": np.array([[0.1, 0, 0], [-0.1, 0, 0]])}
    empty = Atoms("Mo", cell=np.eye(3) * 3, pbc=True)
    empty.calc = CachedOnly()
    cached.info["index"], empty.info["index"] = 10**9, 10**9 + 1
    images += [cached, empty]
    write_dataset(tmp_path / "d.h5", images)
    expected = sorted(images, key=lambda a: a.info["index"])
    assert_same_configs(read_dataset(tmp_path / "d.h5"), expected)
    assert_same_configs(list(iter_dataset(tmp_path / "d.h5", batch=4)), expected)
    # a second generation through the file changes nothing
    write_dataset(tmp_path / "e.h5", read_dataset(tmp_path / "d.h5"))
    assert_same_arrays(read_arrays(tmp_path / "e.h5"), read_arrays(tmp_path / "d.h5"))


def test_default_index_and_order(tmp_path):
    images = [make_config(i) for i in range(5)]
    for atoms in images:
        del atoms.info["index"]
    write_dataset(tmp_path / "d.h5", images)
    assert [a.info["index"] for a in read_dataset(tmp_path / "d.h5")] == list(range(5))

    keys = np.random.default_rng(3).choice(10**6, 40, replace=False)
    images = [make_config(int(k)) for k in keys]
    write_dataset(tmp_path / "s.h5", images)
    arrays = read_arrays(tmp_path / "s.h5")
    assert arrays["index"].tolist() == sorted(keys.tolist())
    assert arrays["offset"].tolist() == np.r_[0, np.cumsum(arrays["natoms"])[:-1]].tolist()
    wanted = [int(keys[5]), int(keys[0]), int(keys[5])]
    picked = read_dataset(tmp_path / "s.h5", indices=wanted)
    assert [a.info["index"] for a in picked] == wanted and picked[0] is not picked[2]
    assert_same_configs(picked, [images[5], images[0], images[5]])
    with pytest.raises(DatasetError, match=r"s\.h5: no configuration with index 1000001"):
        read_dataset(tmp_path / "s.h5", indices=[int(keys[1]), 1000001])


def test_unlabeled_arrays_take_no_space(tmp_path):
    images = [make_config(4 * k) for k in range(50)]  # index % 4 == 0: unlabeled
    write_dataset(tmp_path / "d.h5", images)
    with h5py.File(tmp_path / "d.h5") as h5:
        assert h5["atoms/forces"].id.get_storage_size() == 0
        assert h5["atoms/positions"].id.get_storage_size() > 0
    assert all(a.calc is None for a in read_dataset(tmp_path / "d.h5"))


def test_parameter_mismatch_leaves_files_unchanged(tmp_path):
    path = tmp_path / "d.h5"
    params = {"seed": 1, "K": [0.5, -0.5], "element": "W"}
    with DatasetWriter(path, params, batch=2) as writer:
        for i in range(5):
            writer.add(make_config(i))
    for journal in (True, False):  # with an unconsolidated journal, then without
        files = [path, *sorted(journal_path(path).glob("*"))]
        assert (len(files) > 1) == journal
        before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
        with pytest.raises(ParameterError) as err:
            DatasetWriter(path, {"seed": 2, "K": [0.5, -0.5], "element": "W", "extra": 1})
        message = str(err.value)
        assert str(path) in message and "seed" in message and "extra" in message
        assert "element" not in message and "\n" not in message
        assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
        assert sorted(tmp_path.iterdir()) == sorted(p for p in files if p.parent == tmp_path) + \
            ([journal_path(path)] if journal else [])
        # the same parameters, in another key order and with a tuple, are accepted
        with DatasetWriter(path, {"element": "W", "K": (0.5, -0.5), "seed": 1}) as writer:
            assert writer.done_indices() == set(range(5))


def test_journal_resume_equals_one_write(tmp_path):
    n = 61
    images = [make_config(i) for i in range(n)]
    order = np.random.default_rng(5).permutation(n)
    path = tmp_path / "d.h5"
    with DatasetWriter(path, {"n": n}, batch=7, max_shards=3) as writer:
        for i in order[:30]:
            writer.add(images[i])
        with pytest.raises(DatasetError, match="already"):
            writer.add(images[order[3]])
    # interrupted after 30: 28 in shards, 2 committed on close; nothing consolidated yet
    assert len(list(journal_path(path).iterdir())) == 5
    info = dataset_info(path)
    assert info["configs"] == 0 and info["journal"] == {
        "path": str(journal_path(path)), "shards": 5, "configs": 30}
    assert "30 configurations in 5 shards" in format_info(info)
    assert read_dataset(path) == []
    with DatasetWriter(path, {"n": n}, batch=7, max_shards=3) as writer:
        assert not journal_path(path).exists()  # the leftover journal is consolidated on open
        assert writer.done_indices() == set(order[:30].tolist())
        for i in order[30:]:
            writer.add(images[i])
            writer.consolidate_if_due()
        writer.finish("generate", {"workers": 2})
    assert not journal_path(path).exists() and not (tmp_path / ".d.h5.lock").exists()
    write_dataset(tmp_path / "ref.h5", images, {"n": n},
                  [provenance_record("generate", {"workers": 2})])
    assert_same_dataset(path, tmp_path / "ref.h5")
    # finishing the finished job again adds nothing, not even a provenance record
    with DatasetWriter(path, {"n": n}) as writer:
        with pytest.raises(DatasetError, match="in use by another writer"):
            DatasetWriter(path, {"n": n})
        writer.finish("generate", {"workers": 2})
    assert_same_dataset(path, tmp_path / "ref.h5")


def test_slow_jobs_commit_by_time(tmp_path, monkeypatch):
    """A slow labeler (DFT: an hour per configuration) does not keep finished work in the
    buffer: once commit_seconds have passed since the last commit (or since the writer
    opened), add() writes a shard, so an hour-long configuration is on disk as soon as it is
    added, not when the next one is (a kill in between lost it)."""
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    path = tmp_path / "d.h5"
    with DatasetWriter(path, {"n": 3}, batch=256, commit_seconds=60.0) as writer:
        clock[0] += 3600.0                  # the first configuration took an hour
        writer.add(make_config(0))
        assert [p.name for p in journal_path(path).iterdir()] == ["0-1.h5"]
        clock[0] += 30.0                    # fast ones after it are buffered ...
        writer.add(make_config(1))
        clock[0] += 29.0
        writer.add(make_config(2))
        assert len(list(journal_path(path).iterdir())) == 1
        clock[0] += 2.0                     # ... until 60 s of work since the last commit
        writer.add(make_config(3))
        assert sorted(p.name for p in journal_path(path).iterdir()) == ["0-1.h5", "1-3.h5"]


def check_interrupted_state(path, reference):
    """The main file and every journal shard are readable and hold reference configurations;
    returns the set of stored indices."""
    shards = [p for p in journal_path(path).glob("*.h5") if not p.name.startswith(".")] \
        if journal_path(path).is_dir() else []
    stored = set()
    for source in [path] + shards:
        got = read_dataset(source)
        assert_same_configs(got, read_dataset(reference, [a.info["index"] for a in got]))
        stored.update(a.info["index"] for a in got)
    return stored


def test_sigkill_at_random_moments(tmp_path, reference_runs):
    n, path = 600, tmp_path / "job.h5"   # long enough that an idle machine is still busy
    rng = np.random.default_rng()
    killed, stored, progress = 0, set(), []
    for delay in rng.uniform(0.0, 0.3, 5):
        proc = start_child(tmp_path, path, n)
        assert proc.stdout.readline() == "ready\n", (tmp_path / "child.log").read_text()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed += proc.returncode == -signal.SIGKILL
        now = check_interrupted_state(path, reference_runs[n])
        assert now >= stored, f"configurations lost after a kill at {delay:.3f} s"
        stored = now
        progress.append(len(stored))
    assert killed >= 3, f"the job ended before most kills: tune n (progress {progress})"
    finish_child(start_child(tmp_path, path, n), tmp_path)
    assert_same_dataset(path, reference_runs[n])
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not journal_path(path).exists() and leftovers == []


@pytest.mark.parametrize("mode, count, leftover", [
    ("after-main", 3, "journal shards already merged"),
    ("before-main", 3, "complete temporary main file"),
    ("before-shard", 5, "complete temporary shard"),
])
def test_sigkill_at_crash_points(tmp_path, reference_runs, mode, count, leftover):
    n, path = 60, tmp_path / "job.h5"
    proc = start_child(tmp_path, path, n, mode, count)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    check_interrupted_state(path, reference_runs[n])
    main = set(read_arrays(path, ["index"])["index"].tolist())
    shards = sorted(p for p in journal_path(path).glob("*.h5") if not p.name.startswith("."))
    in_shards = {i for p in shards for i in read_arrays(p, ["index"])["index"].tolist()}
    if mode == "after-main":  # renamed, shards not yet deleted: they are all in the main file
        assert in_shards and in_shards <= main
    elif mode == "before-main":  # not renamed: the shards still hold the new configurations
        assert in_shards - main and len(list(tmp_path.glob(".job.h5.tmp-*.h5"))) == 1
    else:
        assert len(list(journal_path(path).glob(".tmp-*.h5"))) == 1
    finish_child(start_child(tmp_path, path, n), tmp_path)
    assert_same_dataset(path, reference_runs[n])
    assert not journal_path(path).exists() and not list(tmp_path.glob(".job.h5*"))


def test_invalid_files_and_data(tmp_path):
    def fails(match, call, *args):
        with pytest.raises(DatasetError) as err:
            call(*args)
        assert match in str(err.value) and "\n" not in str(err.value), str(err.value)
        return str(err.value)

    missing = tmp_path / "missing.h5"
    assert str(missing) in fails("no such dataset file", read_dataset, missing)
    (tmp_path / "text.h5").write_text("hello")
    assert "text.h5" in fails("not an emtool dataset", dataset_info, tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = 1
    fails("not an emtool dataset", read_arrays, tmp_path / "other.h5")
    write_dataset(tmp_path / "v2.h5", [make_config(1)])
    with h5py.File(tmp_path / "v2.h5", "r+") as h5:
        h5.attrs["format_version"] = 2
    assert "v2.h5" in fails("unsupported format_version 2", read_dataset, tmp_path / "v2.h5")
    with h5py.File(tmp_path / "v2.h5", "r+") as h5:
        h5.attrs["format_version"] = 1
        del h5["atoms/forces"]
        h5["atoms/forces"] = np.zeros((3, 2))
    fails("/atoms/forces has shape (3, 2)", read_dataset, tmp_path / "v2.h5")

    path = tmp_path / "d.h5"
    write_dataset(path, [make_config(i) for i in range(3)])
    good = path.read_bytes()
    fails("duplicate configuration index 1", write_dataset, path,
          [make_config(1), make_config(2), make_config(1)])
    bad = make_config(3)
    bad.positions[1 % len(bad), 2] = np.nan
    assert f"{path}: configuration 3" in fails("non-finite", write_dataset, path, [bad])
    bad = make_config(6)
    bad.calc.results["forces"] = np.zeros((len(bad) + 1, 3))
    fails("forces must be real with shape", write_dataset, path, [bad])
    bad = make_config(7)
    bad.positions += 0.1
    fails("calculator results are stale (atoms changed since: positions)", write_dataset, path,
          [bad])
    bad = make_config(8)
    bad.info["descriptors"] = np.zeros(5)
    fails("info['descriptors'] is a ndarray, not JSON-serializable", write_dataset, path, [bad])

    def add_without_index():
        with DatasetWriter(tmp_path / "w.h5", {}) as writer:
            writer.add(Atoms("W", cell=np.eye(3) * 3, pbc=True))
    fails("DatasetWriter.add needs atoms.info['index']", add_without_index)
    assert path.read_bytes() == good


def test_unknown_content_is_ignored(tmp_path):
    path = tmp_path / "d.h5"
    write_dataset(path, [make_config(i) for i in range(6)])
    expected = read_dataset(path)
    with h5py.File(path, "r+") as h5:
        h5.attrs["label_status"] = "future"
        h5["descriptors/twojmax8"] = np.zeros((10, 55))
        h5["configs/label_status"] = np.zeros(6)
    assert_same_configs(read_dataset(path), expected)


def test_dataset_info(tmp_path):
    images = []
    for k, (n, a, energy) in enumerate([(2, 3.0, -10.0), (4, 4.0, -12.0), (3, 5.0, None)]):
        atoms = Atoms(numbers=[74] * (n - 1) + [42], positions=0.3 * np.arange(3 * n).reshape(n, 3),
                      cell=np.eye(3) * a, pbc=True)
        if energy is not None:
            atoms.calc = SinglePointCalculator(atoms, energy=energy)
        atoms.info["group"] = "bulk" if k else "surface"
        images.append(atoms)
    molecule = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    molecule.calc = SinglePointCalculator(molecule, energy=-1.0, forces=np.zeros((2, 3)))
    images.append(molecule)
    path = tmp_path / "d.h5"
    write_dataset(path, images, {"element": "W"}, [provenance_record("import", {"from": "x"})])
    info = dataset_info(path)
    json.dumps(info)
    assert (info["configs"], info["atoms"], info["labeled_configs"]) == (4, 11, 3)
    assert (info["configs_with_forces"], info["configs_with_stress"]) == (1, 0)
    assert info["groups"] == {"": 1, "bulk": 2, "surface": 1}
    assert info["natoms"] == [2, 4] and info["periodic_configs"] == 3
    assert info["volume"] == pytest.approx([27.0, 125.0], rel=1e-14)
    assert info["volume_per_atom"] == pytest.approx([13.5, 125 / 3], rel=1e-14)
    assert info["energy_per_atom"] == [-5.0, -0.5]
    assert info["elements"] == ["H", "Mo", "W"]
    assert info["parameters"] == {"element": "W"}
    assert [r["action"] for r in info["provenance"]] == ["import"]
    text = format_info(info)
    assert "configurations: 4 (11 atoms, natoms 2 to 4)" in text
    assert "energy per atom: -5 to -0.5 eV" in text and "journal" not in text
