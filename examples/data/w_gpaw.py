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
  part's provenance (``em_<tag>``: one part per generator version that was labeled).

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
    python examples/data/w_gpaw.py label PART      # bcc, de, em or k222 (hours; resumable)
    python examples/data/w_gpaw.py assemble        # labeled parts -> examples/data/*.h5
    python examples/data/w_gpaw.py status          # what is labeled so far

``label`` runs ``emtool label --workers 1`` (one single-threaded GPAW); Ctrl-C or a kill
keeps every finished configuration in ``OUT.labeling.h5`` and its journal, and the same
command resumes. ``assemble`` takes every finished configuration, also from an unfinished
job, so the committed files grow as labeling proceeds.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase.build import bulk

from emtool.dataset import dataset_info, read_dataset, write_dataset
from emtool.exchange import read_fitsnap_json
from emtool.label import finished_labels

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
    from emtool.generate import GeneratorParams
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
        em_images = read_dataset(em)
        de = read_dataset(WORK / "de.h5")
        picked = (read_dataset(WORK / "bcc.h5") + em_images[:6]
                  + [de[k] for k in (0, 4, 7, 11, 14)])
        for k, atoms in enumerate(picked):
            atoms.info["part_index"] = atoms.info["index"]
            atoms.info["index"] = k
        write_dataset(k222, picked, parameters={"part": "k222", "em": em.name})


def _part_path(part):
    if part == "em":
        return WORK / f"em_{_em_tag()}.h5"
    return WORK / f"{part}.h5"


def label(part):
    """Run (or resume) ``emtool label`` with GPAW on one part."""
    source = _part_path(part)
    if not source.exists():
        raise SystemExit(f"{source} does not exist: run 'inputs' first")
    settings = SETTINGS_K222 if part == "k222" else SETTINGS_BY_PART.get(part, SETTINGS)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "emtool.cli", "-v", "label", str(source),
                    "--potential", FACTORY, "--calc-args", json.dumps(settings),
                    "--workers", "1", "-o", str(_labeled(source))], check=True, cwd=ROOT, env=env)


def _labeled(source):
    return source.with_name(source.stem + "_gpaw.h5")


def finished(source):
    """The labeled configurations of one part so far, also from an unfinished job; failed ones
    (``label_error``) are left out."""
    return [a for a in finished_labels(_labeled(source))
            if a.calc is not None and "label_error" not in a.info]


def assemble():
    """Write the finished configurations of all parts into OUTPUT and OUTPUT_K222."""
    import emtool
    main, k222 = [], []
    for source in [WORK / "bcc.h5", WORK / "de.h5"] + sorted(WORK.glob("em_*.h5")):
        if source.name.endswith("_gpaw.h5") or not source.exists():
            continue
        for atoms in finished(source):
            atoms.info["part"] = source.stem
            atoms.info["part_index"] = atoms.info.pop("index")
            main.append(atoms)
    if (WORK / "k222.h5").exists():
        k222 = finished(WORK / "k222.h5")
        for atoms in k222:
            atoms.info.pop("index")
    provenance = {"emtool": emtool.__version__, "calculator": FACTORY, "xc": "PBE",
                  "setup": "W.PBE (14 valence electrons, gpaw-data 0.9.20000)", "mode": "PW",
                  "occupations": "marzari-vanderbilt (cold smearing, width = smearing eV)",
                  "convergence": _convergence()}
    for path, images, settings in ((OUTPUT, main, SETTINGS), (OUTPUT_K222, k222, SETTINGS_K222)):
        if not images:
            continue
        for k, atoms in enumerate(images):
            atoms.info["index"] = k
        write_dataset(path, images, parameters={"reference_set": "W GPAW",
                                                "gpaw": dict(provenance, **settings)})
        print(f"{path}: {len(images)} configurations")


def _convergence():
    sys.path.insert(0, str(ROOT / "examples"))
    from gpaw_w import CONVERGENCE
    return CONVERGENCE


def status():
    for path in (OUTPUT, OUTPUT_K222):
        if path.exists():
            info = dataset_info(path)
            print(path.name, info["configs"], info["groups"])
    for source in sorted(WORK.glob("*.h5")):
        if not source.name.endswith(("_gpaw.h5", ".labeling.h5")):
            print(source.name, len(finished(source)), "of", len(read_dataset(source)), "labeled")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "status"
    {"inputs": inputs, "assemble": assemble, "status": status}.get(
        command, lambda: label(sys.argv[2]) if command == "label" else sys.exit(__doc__))()
