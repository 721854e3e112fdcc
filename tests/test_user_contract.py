"""The user contract, command by command: every failure a user can cause or meet (a bad file,
an existing output, a read-only folder, a full disk, Ctrl-C, a bad option) ends with exit code
2, one line on stderr that names the problem, no traceback, and every file that existed
before unchanged, with nothing half-written left behind.

Each case runs ``python -m emtool.cli`` in a subprocess, as a user would. The read-only
folder and the full disk are real: small tmpfs mounts (the tests run as root in CI; a machine
that cannot mount fails these cases rather than skipping them).
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write

CLI = [sys.executable, "-m", "emtool.cli"]

#: The progress-bar headers a command prints on a non-terminal stderr before its work.
PROGRESS = {"generate", "label", "select", "md", "nve"}


def emtool(args, cwd, timeout=300):
    return subprocess.run(CLI + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def snapshot(*roots):
    """{path: sha256} of every file below ``roots``."""
    files = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                files[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def assert_one_line(result, match, code=2):
    """Exit ``code``, no traceback, and stderr is one 'Error: ...' line containing ``match``
    (after a progress-bar header, if any)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    errors = [line for line in lines if line not in PROGRESS]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr
    assert match in errors[0], (match, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with a labeled dataset, a model, a structure, outputs that already exist and
    bad files of every kind."""
    root = tmp_path_factory.mktemp("contract")
    for args in (["generate", "-n", 4, "-o", "gen.h5", "--max-steps", 10, "--seed", 3],
                 ["label", "gen.h5", "-o", "data.h5"],
                 ["fit", "data.h5", "-o", "model.json", "--twojmax", 2]):
        done = emtool(args, root)
        assert done.returncode == 0, done.stderr
    write(root / "W.xyz", bulk("W", "bcc", a=3.1652, cubic=True).repeat(2))
    overlap = bulk("W", "bcc", a=3.1652, cubic=True)
    overlap.positions[1] = overlap.positions[0] + [0.1, 0.0, 0.0]
    write(root / "overlap.xyz", overlap)
    (root / "random.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "empty.h5").write_bytes(b"")
    (root / "truncated.h5").write_bytes((root / "data.h5").read_bytes()[:3000])
    with h5py.File(root / "foreign.h5", "w") as handle:
        handle["x"] = np.arange(3.0)
    (root / "folder.h5").mkdir()
    model = json.loads((root / "model.json").read_text())
    model["params"]["twojmax"] = "eight"
    (root / "bad_twojmax.json").write_text(json.dumps(model))
    (root / "garbage.json").write_text('{"kind": "snap", "coefficients": [1, 2,')
    (root / "garbage.xyz").write_text("3\nnot an xyz frame\nW 0 0\n")
    for name in ("out.json", "out.npz", "out.h5", "out.xyz", "out.traj", "log.txt",
                 "plot.png"):
        (root / name).write_text("an existing file the user keeps\n")
    (root / "outdir").mkdir()
    (root / "outdir" / "keep.txt").write_text("keep\n")
    return root


@pytest.fixture(scope="module")
def mounts(tmp_path_factory):
    """A read-only tmpfs and a full tmpfs (filled to the last byte), each with a file that
    must survive."""
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.fail("the read-only and disk-full cases need root to mount a tmpfs")
    root = tmp_path_factory.mktemp("mounts")
    readonly, full = root / "readonly", root / "full"
    for folder in (readonly, full):
        folder.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)],
                       check=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(readonly)],
                       check=True)
        (readonly / "keep.h5").write_text("keep\n")
        subprocess.run(["mount", "-o", "remount,ro", str(readonly)], check=True)
        (full / "keep.h5").write_text("keep\n")
        fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: the disk is full
            pass
        finally:
            os.close(fd)
        yield readonly, full
    finally:
        for folder in (readonly, full):
            subprocess.run(["umount", str(folder)], check=False)


def check(work, args, match, code=2, extra=()):
    """Run one failing case; assert the contract and that nothing changed or appeared."""
    before = snapshot(work, *extra)
    result = emtool(args, work)
    line = assert_one_line(result, match, code)
    assert snapshot(work, *extra) == before, f"files changed or appeared: {args}"
    return line


# --- bad files: every command that reads a dataset, on every kind of bad file -------------

READERS = {
    "info": lambda bad: ["info", bad],
    "fit": lambda bad: ["fit", bad, "-o", "new_model.json", "--twojmax", 2],
    "evaluate": lambda bad: ["evaluate", "model.json", bad],
    "export": lambda bad: ["export", bad, "-o", "new.xyz", "--format", "extxyz"],
    "label": lambda bad: ["label", bad, "-o", "new.h5"],
    "select": lambda bad: ["select", bad, "-n", 1, "-o", "new.h5", "--twojmax", 2],
    "compare": lambda bad: ["compare", bad, "data.h5", "-o", "new_compare", "--twojmax", 2],
    "descriptors": lambda bad: ["descriptors", bad, "-o", "new.npz", "--twojmax", 2],
    "subset": lambda bad: ["subset", bad, "-o", "new.h5", "--index", "0"],
    "merge": lambda bad: ["merge", "data.h5", bad, "-o", "new.h5"],
}


@pytest.mark.parametrize("bad", ["random.h5", "empty.h5", "truncated.h5", "foreign.h5"])
@pytest.mark.parametrize("command", sorted(READERS))
def test_bad_dataset(work, command, bad):
    check(work, READERS[command](bad), bad)


@pytest.mark.parametrize("command", ["info", "fit", "label", "export"])
def test_dataset_is_a_folder(work, command):
    check(work, READERS[command]("folder.h5"), "folder.h5")


@pytest.mark.parametrize("command", ["info", "fit", "label", "select", "descriptors"])
def test_missing_dataset(work, command):
    check(work, READERS[command]("missing.h5"), "missing.h5")


# --- bad model files ----------------------------------------------------------------------

MODEL_USERS = {
    "evaluate": lambda model: ["evaluate", model, "data.h5"],
    "md": lambda model: ["md", "W.xyz", "--potential", model, "--steps", 2],
    "label": lambda model: ["label", "gen.h5", "-o", "new.h5", "--potential", model],
    "export": lambda model: ["export", model, "-o", "new_lammps", "--format", "lammps"],
}


@pytest.mark.parametrize("model", ["bad_twojmax.json", "garbage.json"])
@pytest.mark.parametrize("command", sorted(MODEL_USERS))
def test_bad_model(work, command, model):
    check(work, MODEL_USERS[command](model), model)


# --- bad structures and physical sanity ---------------------------------------------------

@pytest.mark.parametrize("args, match", [
    (["md", "garbage.xyz", "--steps", 2], "garbage.xyz"),
    (["nve", "--structure", "garbage.xyz", "--duration", 2], "garbage.xyz"),
    (["import", "garbage.xyz", "-o", "new.h5"], "garbage.xyz"),
    (["descriptors", "garbage.xyz", "-o", "new.npz"], "garbage.xyz"),
    (["import", "overlap.xyz", "-o", "new.h5"], "closer than 0.5 Å"),
    (["md", "overlap.xyz", "--steps", 2], "closer than 0.5 Å"),
    (["md", "W.xyz", "--timestep", 50, "--steps", 200, "--temperature", 300], "diverged"),
    (["nve", "--duration", 2, "--samples", 2, "--plot", "new.h5"],
     "new.h5: the suffix names the plot's format"),
    (["compare", "data.h5", "gen.h5", "--seed", -1], "--seed"),
    (["generate", "-n", 10 ** 12, "-o", "new.h5"], "1 to 1e+07"),
    (["generate", "-n", 2, "-o", "new.h5", "--element", "O"], "--atomic-volume"),
    (["generate", "-n", 2, "-o", "new.h5", "--element", "Xx"], "Xx"),
    (["fit", "data.h5", "-o", "new.json", "--energy-weight", -1], "--energy-weight"),
    (["fit", "data.h5", "-o", "new.json", "--workers", 0], "--workers"),
    (["label", "gen.h5", "-o", "new.h5", "--workers", 0], "--workers"),
    (["generate", "-n", 2, "-o", "new.h5", "--workers", 0], "--workers"),
    (["fit", "data.h5", "-o", "new.json", "--model", "nn:A1", "--ridge", 1.0], "--ridge"),
    (["fit", "data.h5", "-o", "new.json", "--epochs", 5], "--epochs"),
    (["label", "gen.h5", "-o", "new.h5", "--command", "true {input} {output}",
      "--potential", "examples/gpaw_w.py:calculator"], "--command"),
])
def test_bad_input(work, args, match):
    check(work, args, match)


# --- outputs: existing files and inputs are never replaced ---------------------------------

@pytest.mark.parametrize("args", [
    ["fit", "data.h5", "-o", "out.json", "--twojmax", 2],
    ["descriptors", "data.h5", "-o", "out.npz", "--twojmax", 2],
    ["select", "data.h5", "-n", 1, "-o", "out.h5", "--twojmax", 2],
    ["label", "gen.h5", "-o", "out.h5"],
    ["import", "W.xyz", "-o", "out.h5"],
    ["export", "data.h5", "-o", "out.xyz", "--format", "extxyz"],
    ["export", "model.json", "-o", "outdir", "--format", "lammps"],
    ["expert", "-o", "out.h5"],
    ["subset", "data.h5", "-o", "out.h5", "--index", "0"],
    ["merge", "data.h5", "gen.h5", "-o", "out.h5"],
    ["md", "W.xyz", "--steps", 2, "--trajectory", "out.traj"],
    ["md", "W.xyz", "--steps", 2, "--log", "log.txt"],
    ["nve", "--duration", 2, "--samples", 2, "--plot", "plot.png"],
], ids=lambda args: "-".join(str(a) for a in args[:1] + args[-2:]))
def test_existing_output(work, args):
    check(work, args, "--overwrite")


@pytest.mark.parametrize("args", [
    ["fit", "data.h5", "-o", "data.h5", "--twojmax", 2, "--overwrite"],
    ["descriptors", "data.h5", "-o", "data.h5", "--twojmax", 2, "--overwrite"],
    ["select", "data.h5", "-n", 1, "-o", "data.h5", "--twojmax", 2, "--overwrite"],
    ["import", "W.xyz", "-o", "W.xyz", "--overwrite"],
    ["export", "data.h5", "-o", "data.h5", "--format", "extxyz", "--overwrite"],
    ["generate", "-n", 4, "-o", "data.h5", "--seed", 4],
    ["subset", "data.h5", "-o", "data.h5", "--index", "0", "--overwrite"],
    ["merge", "gen.h5", "data.h5", "-o", "data.h5", "--overwrite"],
], ids=lambda args: args[0])
def test_output_is_an_input(work, args):
    check(work, args, "data.h5" if "data.h5" in args else "W.xyz")


# --- the file system: read-only folder, full disk ------------------------------------------

WRITERS = {
    "generate": lambda d: ["generate", "-n", 3, "-o", d / "g.h5", "--max-steps", 5],
    "fit": lambda d: ["fit", "data.h5", "-o", d / "m.json", "--twojmax", 2],
    "label": lambda d: ["label", "gen.h5", "-o", d / "l.h5"],
    "import": lambda d: ["import", "W.xyz", "-o", d / "i.h5"],
    "export": lambda d: ["export", "data.h5", "-o", d / "x.xyz", "--format", "extxyz"],
    "descriptors": lambda d: ["descriptors", "data.h5", "-o", d / "d.npz", "--twojmax", 2],
    "select": lambda d: ["select", "data.h5", "-n", 1, "-o", d / "s.h5", "--twojmax", 2],
    "expert": lambda d: ["expert", "-o", d / "e.h5"],
    "md": lambda d: ["md", "W.xyz", "--steps", 2, "--trajectory", d / "t.traj"],
    "subset": lambda d: ["subset", "data.h5", "-o", d / "s.h5", "--index", "0"],
    "merge": lambda d: ["merge", "data.h5", "gen.h5", "-o", d / "m.h5"],
}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_read_only_folder(work, mounts, command):
    readonly, _ = mounts
    check(work, WRITERS[command](readonly), "Read-only file system", extra=[readonly])


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_disk_full(work, mounts, command):
    _, full = mounts
    check(work, WRITERS[command](full), "no space left on device", extra=[full])


# --- Ctrl-C ----------------------------------------------------------------------------------

def interrupt(args, cwd, after):
    """Run the CLI, send SIGINT to its process group (as a terminal's Ctrl-C does) once
    ``after(cwd)`` is true, and return the CompletedProcess."""
    child = subprocess.Popen(CLI + [str(a) for a in args], cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not after(cwd) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, "the command ended before it could be interrupted"
    os.killpg(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=60)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def after(seconds):
    """A condition of ``interrupt`` that turns true ``seconds`` after its first call."""
    start = []
    return lambda cwd: (start or start.append(time.monotonic()) or True) and \
        time.monotonic() - start[0] > seconds


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_generate_resumes(work, tmp_path, workers):
    shutil.copy(work / "data.h5", tmp_path / "keep.h5")
    before = snapshot(tmp_path)
    result = interrupt(["generate", "-n", 400, "-o", "g.h5", "--workers", workers], tmp_path,
                       after(5))
    assert_one_line(result, "rerun the same command to resume")
    assert {p: h for p, h in snapshot(tmp_path).items() if p in before} == before
    resumed = emtool(["generate", "-n", 400, "-o", "g.h5", "--workers", workers], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    kept = int(resumed.stdout.split("(")[1].split()[0])
    assert kept > 0, resumed.stdout  # "(N already present)"


def test_ctrl_c_label_resumes(work, tmp_path):
    shutil.copy(work / "gen.h5", tmp_path / "gen.h5")
    before = snapshot(tmp_path)
    slow = f"{sys.executable} -c \"import time, shutil; time.sleep(0.5); " \
           "shutil.copy('{input}', '{output}')\""
    result = interrupt(["label", "gen.h5", "-o", "l.h5", "--command", slow], tmp_path, after(2))
    assert_one_line(result, "label interrupted")
    assert {p: h for p, h in snapshot(tmp_path).items() if p in before} == before


def test_ctrl_c_fit_writes_nothing(work):
    before = snapshot(work)
    result = interrupt(["fit", "data.h5", "-o", "new.json", "--model", "nn:A1", "--twojmax", 2,
                        "--epochs", 10 ** 6, "--split", "0.5,0.25,0.25", "--activation", "tanh"],
                       work, after(5))
    assert_one_line(result, "no existing file was changed")
    assert {p: h for p, h in snapshot(work).items() if "checkpoint" not in p.name} == before


def test_ctrl_c_md_keeps_its_trajectory(work, tmp_path):
    shutil.copy(work / "W.xyz", tmp_path)
    result = interrupt(["md", "W.xyz", "--steps", 10 ** 6, "--log", "log.txt", "--trajectory",
                        "md.traj", "--thermo-every", 10, "--trajectory-every", 10], tmp_path,
                       lambda cwd: (cwd / ".md.traj.partial").exists()
                       and (cwd / ".md.traj.partial").stat().st_size > 20_000)
    assert_one_line(result, "md interrupted")
    frames = read(tmp_path / "md.traj", ":")
    steps = [int(line.split()[0]) for line in (tmp_path / "log.txt").read_text().splitlines()[1:]]
    assert len(frames) >= 2 and steps[:2] == [0, 10]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["W.xyz", "log.txt", "md.traj"]


def test_fitsnap_groups_must_be_in_the_data(work, shared_data):
    """A [GROUPS] name that the data lacks (a typo such as Liquidd) is refused, not ignored."""
    check(work, ["fit", "data.h5", "-o", "new.json", "--fitsnap-input",
                 shared_data / "fitsnap_Ta_JCP2014" / "Ta-example_20May21_Standard.in"],
          "names groups not in data.h5: Displaced_A15")
