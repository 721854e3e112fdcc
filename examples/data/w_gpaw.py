"""The GPAW reference set of tungsten: ``examples/data/w_gpaw.h5`` (and ``w_gpaw_k222.h5``).

A small DFT set that every labeler and every generator change is measured against
(docs/labels.md, ``bench/bench_labelers.py``). Its parts, each labeled by ``emtool label``
with ``examples/gpaw_w.py`` and journaled, so that an interrupted build resumes:

- ``bcc``: BCC W, the 3x3x3 conventional supercell (54 atoms) at the DE set's lattice
  constant (its lowest-energy EOS cell: a = 3.18403 Å), so that every energy can be taken
  relative to BCC under each labeler, with the same k-point density as the rest;
- ``de``: 21 configurations of the real expert-curated set (``../shared/data/
  fitsnap_W_PRB2019``), 7 from each of the groups Disordered_Struc (54-atom cells),
  vacancy (53-atom cells) and gamma_surface_vacancy (47 atoms), chosen at random with a
  fixed seed; they keep their group names and their VASP labels in ``info`` (``vasp_energy``);
- ``em``: the 40 configurations of ``emtool generate -n 40 --seed 2027`` (groups
  ``entropy_max`` and ``entropy_min``); the generator's defaults at the time are in the
  part's provenance (``em_<tag>``: one part per generator version that was labeled). A
  configuration that is (to 1e-8 Å) one of an earlier EM part (a generator change that leaves
  one sign of K alone) is labeled and stored once, under the earlier part.

Settings (``SETTINGS``): PBE, GPAW's 14-electron ``W.PBE`` setup, plane waves 400 eV, the Γ
point only, Marzari-Vanderbilt smearing 0.1 eV, the SCF criteria of ``examples/gpaw_w.py``.
(The ``bcc`` and ``de`` parts were labeled with Γ-centered k-points at a density of 1 per
Å^-1, which is the Γ point alone for each of those cells, all of whose sides exceed 6.3 Å;
for the EM boxes, whose short side is often 5-6 Å, that rule costs 3-7x more per
configuration, so the main set is Γ-only and ``w_gpaw_k222.h5`` measures what Γ costs.) ``w_gpaw_k222.h5`` holds 12 of
the configurations (BCC, 6 EM, 5 DE) again at 2x2x2 Monkhorst-Pack k-points and 500 eV, to
measure what the cheaper settings cost.

Usage (from the repository root; GPAW's venv as in docs/dft.md)::

    python examples/data/w_gpaw.py inputs          # writes the unlabeled parts (seconds)
    python examples/data/w_gpaw.py label PART [N [R]]  # bcc, de, em or k222 (hours; resumable)
    python examples/data/w_gpaw.py assemble        # committed files + finished -> *.h5
    python examples/data/w_gpaw.py status          # what is labeled so far
    python examples/data/w_gpaw.py energies        # the current defaults' EM part above BCC

``inputs`` is deterministic (fixed seeds), so every machine makes the same parts. ``label``
runs ``emtool label --workers N`` (N GPAWs, default 1, each on R MPI ranks, default 1; with
R > 1 GPAW's log of configuration k is ``WORK/gpaw_logs/PART/k.txt``) on the configurations of the part
that the committed files do not hold yet; Ctrl-C or a kill keeps every finished configuration
in ``OUT.labeling.h5`` and its journal, and the same command resumes. ``assemble`` merges the
committed files with every finished configuration, also of an unfinished job, so the
committed files grow as labeling proceeds and a fresh machine resumes where they stop.
"""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase.build import bulk

from emtool.data.dataset import dataset_info, read_dataset, write_dataset
from emtool.data.exchange import read_fitsnap_json
from emtool.labeling.label import finished_labels

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DE_ROOT = ROOT.parent / "shared" / "data" / "fitsnap_W_PRB2019" / "JSON"
WORK = Path(os.environ.get("EMTOOL_GPAW_WORK", ROOT / "examples" / "data" / "work"))
OUTPUT = HERE / "w_gpaw.h5"
OUTPUT_K222 = HERE / "w_gpaw_k222.h5"

#: The DE set's BCC lattice constant (Å): its lowest-energy EOS cell, 2x2x2 cubic, 6.36806 Å.
BCC_A = 6.36806381 / 2
DE_GROUPS = ("Disordered_Struc", "vacancy", "gamma_surface_vacancy")
DE_PER_GROUP = 7
DE_SEED = 2027
EM_SEED = 2027
EM_COUNT = 40

#: ``examples/gpaw_w.py:calculator`` keywords of the main set and of the converged subset.
SETTINGS = {"ecut": 400.0, "kpts": [1, 1, 1], "smearing": 0.1}
#: What ``bcc`` and ``de`` were labeled with: the same as SETTINGS for those cells (Γ only).
SETTINGS_BY_PART = {"bcc": dict(SETTINGS, kpts={"density": 1.0, "gamma": True}),
                    "de": dict(SETTINGS, kpts={"density": 1.0, "gamma": True})}
SETTINGS_K222 = {"ecut": 500.0, "kpts": [2, 2, 2], "smearing": 0.1}
FACTORY = "examples/gpaw_w.py:calculator"


def _de_choice():
    """7 configurations of each DE group (fixed seed), unlabeled, VASP energy kept in info."""
    rng = np.random.default_rng(DE_SEED)
    chosen = []
    for group in DE_GROUPS:
        images = [a for a in read_fitsnap_json(DE_ROOT / group) if len(a) >= 47]
        for k in sorted(rng.choice(len(images), DE_PER_GROUP, replace=False)):
            atoms = images[k].copy()
            atoms.info = {"group": group, "source": images[k].info["source"],
                          "vasp_energy": float(images[k].get_potential_energy())}
            chosen.append(atoms)
    return chosen


def _bcc():
    atoms = bulk("W", "bcc", a=BCC_A, cubic=True).repeat(3)
    atoms.info = {"group": "bcc", "a": BCC_A}
    return [atoms]


def _em_tag():
    """Tag of the generator version: a short hash of its default parameters."""
    import hashlib
    from emtool.generator.generate import GeneratorParams
    text = json.dumps(GeneratorParams().to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def inputs():
    """Write the unlabeled parts into WORK (existing parts are kept)."""
    WORK.mkdir(parents=True, exist_ok=True)
    for name, make in (("bcc", _bcc), ("de", _de_choice)):
        path = WORK / f"{name}.h5"
        if not path.exists():
            images = make()
            for k, atoms in enumerate(images):
                atoms.info["index"] = k
            write_dataset(path, images, parameters={"part": name})
    em = WORK / f"em_{_em_tag()}.h5"
    subprocess.run([sys.executable, "-m", "emtool.cli", "generate", "-n", str(EM_COUNT),
                    "--seed", str(EM_SEED), "-o", str(em)], check=True)
    k222 = WORK / "k222.h5"
    if not k222.exists():
        picked = []
        for source, keep in ((WORK / "bcc.h5", (0,)), (em, range(6)), (WORK / "de.h5", (0, 4, 7, 11, 14))):
            for atoms in read_dataset(source, indices=list(keep)):
                atoms.info.update(source_part=source.stem, source_index=atoms.info["index"])
                picked.append(atoms)
        for k, atoms in enumerate(picked):
            atoms.info["index"] = k
        write_dataset(k222, picked, parameters={"part": "k222", "em": em.name})


def _part_path(part):
    if part == "em":
        return WORK / f"em_{_em_tag()}.h5"
    return WORK / f"{part}.h5"


def label(part, workers=1, ranks=1):
    """Run (or resume) ``emtool label`` with ``workers`` GPAWs on the configurations of one part
    that the committed files do not hold yet (``<part>_todo.h5``, written once per machine).
    Each GPAW runs on ``ranks`` MPI processes (``mpirun``; 1: single-threaded, in the labeler's
    process). Ranks split the k-points, so at 2x2x2 two ranks label one configuration in about
    half the time of one: what a session that ends after hours needs."""
    source = _part_path(part)
    if not source.exists():
        raise SystemExit(f"{source} does not exist: run 'inputs' first")
    todo = source.with_name(source.stem + "_todo.h5")
    if not todo.exists():
        done = set(_committed(OUTPUT_K222 if part == "k222" else OUTPUT, source.stem))
        done |= set(_labeled_elsewhere(source))
        images = [a for a in read_dataset(source) if a.info["index"] not in done]
        if not images:
            print(f"{source.stem}: every configuration is labeled")
            return
        write_dataset(todo, images, parameters={"part": source.stem})
    settings = SETTINGS_K222 if part == "k222" else SETTINGS_BY_PART.get(part, SETTINGS)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if ranks == 1:
        labeler = ["--potential", FACTORY, "--calc-args", json.dumps(settings)]
    else:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        labeler = ["--command", _mpi_command(settings, ranks, WORK / "gpaw_logs" / source.stem)]
    subprocess.run([sys.executable, "-m", "emtool.cli", "-v", "label", str(todo), *labeler,
                    "--workers", str(workers), "-o", str(_labeled(todo))], check=True, cwd=ROOT, env=env)


def _mpi_command(settings, ranks, logs):
    """``emtool label --command`` template: ``examples/gpaw_w.py`` as a script on ``ranks`` MPI
    processes, with the same ``calculator()`` settings and the stress, as the factory gets.
    GPAW's own log of configuration k (SCF iterations as they come) goes to ``logs/k.txt``."""
    if not isinstance(settings["kpts"], list):
        raise SystemExit(f"ranks > 1 need a k-point grid of three integers, not {settings['kpts']}")
    logs.mkdir(parents=True, exist_ok=True)
    script = ROOT / "examples" / "gpaw_w.py"
    return (f"mpirun -np {ranks} {shlex.quote(sys.executable)} {shlex.quote(str(script))} {{input}}"
            f" --ecut {settings['ecut']} --kpts {' '.join(map(str, settings['kpts']))}"
            f" --smearing {settings['smearing']} --stress --save {{output}}"
            f" --txt {shlex.quote(str(logs))}/{{index}}.txt")


def _committed(path, part):
    """{part_index: Atoms} of one part in a committed file."""
    if not path.exists():
        return {}
    return {a.info["part_index"]: a for a in read_dataset(path) if a.info.get("part") == part}


def _same_structure(a, b):
    """Same atoms, cell and positions to 1e-8 Å (Numba builds and kernel rewrites differ in
    the last digits: the SNAP redesign of 2026-12-06 moved generated positions by 6e-11 Å)."""
    return (len(a) == len(b) and np.array_equal(a.numbers, b.numbers)
            and np.allclose(a.cell.array, b.cell.array, rtol=0, atol=1e-8)
            and np.allclose(a.positions, b.positions, rtol=0, atol=1e-8))


def _labeled_elsewhere(source):
    """{index: (part, part_index)} of the configurations of an ``em_<tag>`` part that are
    (``_same_structure``) configurations of another EM part in the committed file: a generator change
    that leaves one sign of K alone leaves those configurations as they were (configuration
    k is a pure function of (seed, k)), and they are labeled once."""
    if not source.stem.startswith("em_") or not OUTPUT.exists():
        return {}
    others = [a for a in read_dataset(OUTPUT)
              if str(a.info.get("part", "")).startswith("em_") and a.info["part"] != source.stem]
    found = {}
    for atoms in read_dataset(source):
        for other in others:
            if _same_structure(atoms, other):
                found[atoms.info["index"]] = (other.info["part"], other.info["part_index"])
                break
    return found


def _labeled(source):
    return source.with_name(source.stem + "_gpaw.h5")


def _parts():
    """The part input files in WORK (not the todo, labeled or work files)."""
    return [p for p in sorted(WORK.glob("*.h5"))
            if not p.name.endswith(("_gpaw.h5", "_todo.h5", ".labeling.h5"))]


def finished(source):
    """The labeled configurations of one part so far (this machine's jobs, also unfinished
    ones); failed ones (``label_error``) are left out."""
    todo = source.with_name(source.stem + "_todo.h5")
    images = finished_labels(_labeled(source)) + finished_labels(_labeled(todo))
    return [a for a in images if a.calc is not None and "label_error" not in a.info]


def assemble():
    """Merge the committed files with every configuration finished on this machine, keyed by
    (part, index in the part): OUTPUT (all parts but k222) and OUTPUT_K222."""
    import emtool
    merged = {OUTPUT: {}, OUTPUT_K222: {}}
    for path, found in merged.items():
        if path.exists():
            found.update({(a.info["part"], a.info["part_index"]): a for a in read_dataset(path)})
    for source in _parts():
        path = OUTPUT_K222 if source.stem == "k222" else OUTPUT
        for atoms in finished(source):
            atoms.info.update(part=source.stem, part_index=atoms.info.pop("index"))
            merged[path][(source.stem, atoms.info["part_index"])] = atoms
    provenance = {"emtool": emtool.__version__, "calculator": FACTORY, "xc": "PBE",
                  "setup": "W.PBE (14 valence electrons, gpaw-data 0.9.20000)", "mode": "PW",
                  "occupations": "marzari-vanderbilt (cold smearing, width = smearing eV)",
                  "convergence": _convergence()}
    for (path, found), settings in zip(merged.items(), (SETTINGS, SETTINGS_K222)):
        if not found:
            continue
        images = [found[key] for key in sorted(found, key=_order)]
        for k, atoms in enumerate(images):
            atoms.info["index"] = k
        write_dataset(path, images, parameters={"reference_set": "W GPAW",
                                                "gpaw": dict(provenance, **settings)})
        print(f"{path}: {len(images)} configurations")


def _order(key):
    part, index = key
    return ({"bcc": 0, "de": 1}.get(part, 2), part, index)


def _convergence():
    sys.path.insert(0, str(ROOT / "examples"))
    from gpaw_w import CONVERGENCE
    return CONVERGENCE


def status():
    for path in (OUTPUT, OUTPUT_K222):
        if path.exists():
            info = dataset_info(path)
            print(path.name, info["configs"], info["groups"])
    for source in _parts():
        committed = _committed(OUTPUT_K222 if source.stem == "k222" else OUTPUT, source.stem)
        print(source.name, len(read_dataset(source)), "configurations;", len(committed),
              "committed,", len(_labeled_elsewhere(source)), "labeled in another part,",
              len(finished(source)), "finished on this machine")


def energies():
    """GPAW energy above BCC (eV/atom) of the EM part of the generator's current defaults, per
    sign of K and in all: min / median / max and how many lie in the paper's 0.4-3.9 range
    widened to 0.2-4.0 (the target of docs/generator.md)."""
    source = _part_path("em")
    if not source.exists():
        raise SystemExit(f"{source} does not exist: run 'inputs' first")
    labeled = read_dataset(OUTPUT)
    bcc = next(a for a in labeled if a.info["group"] == "bcc")
    e_bcc = bcc.get_potential_energy() / len(bcc)
    em = [a for a in labeled if str(a.info.get("part", "")).startswith("em_")]
    above = {}
    for atoms in read_dataset(source):
        match = next((b for b in em if _same_structure(atoms, b)), None)
        if match is None:
            raise SystemExit(f"configuration {atoms.info['index']} of {source.name} is not "
                             "labeled: run 'label em' and 'assemble'")
        above.setdefault(atoms.info["group"], []).append(
            match.get_potential_energy() / len(match) - e_bcc)
    above["all"] = [e for values in above.values() for e in values]
    for group, values in above.items():
        values = np.array(values)
        inside = int(np.sum((values >= 0.2) & (values <= 4.0)))
        print(f"{source.stem} {group}: {len(values)} configurations, above BCC min / median / max "
              f"{values.min():.2f} / {np.median(values):.2f} / {values.max():.2f} eV/atom, "
              f"{inside} inside 0.2-4.0")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "status"
    {"inputs": inputs, "assemble": assemble, "status": status, "energies": energies}.get(
        command, lambda: label(*sys.argv[2:3], *map(int, sys.argv[3:5])) if command == "label"
        else sys.exit(__doc__))()
