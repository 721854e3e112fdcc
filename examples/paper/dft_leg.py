"""The real-DFT leg of the study: the DE set with its own DFT labels (VASP PBE, as published
with FitSNAP) and EM configurations labeled with GPAW (PBE) on this machine.

1. DE-DFT, random split (the study's 80/20 split, seed 0): linear SNAP (energies and forces,
   weights 100 : 1, as ``bench/bench_fit.py``) and NN-A1 (energies, the study's protocol) at
   D = 30 trained on the train+validation part; test errors per expert group.
2. DE-DFT, group-wise split: the same two models without one expert group, tested on it.
3. EM-GPAW, from ``EMTOOL_DFT_SOURCE``:
   - ``reference-set`` (default): the 40 configurations of ``emtool generate -n 40 --seed
     2027`` with the generator's current defaults, as labeled in the committed GPAW reference
     set (``examples/data/w_gpaw.h5``: 400 eV, Γ point, docs/labels.md), found there
     structure by structure; nothing is labeled but the BCC cell of the alignment below;
   - ``study``: ``EMTOOL_DFT_N`` (60) random configurations of the study's EM test part,
     labeled here by ``emtool label`` with GPAW (``examples/gpaw_w.py``, 300 eV, Γ point:
     converged to ~0.03 eV/Å in the cutoff but not in k-points, rms force error ~0.9 eV/Å
     against 2x2x2, docs/dft.md), ~2.2 min per configuration on one core.
   GPAW runs in GPAW's venv (``EMTOOL_GPAW_VENV``, default /work/gpaw-venv). Interrupt it
   (Ctrl-C) any time: rerun with ``EMTOOL_DFT_LABEL=0`` to analyze what is labeled, or
   without it to resume labeling.
   The DE-DFT models and the embedded reference potential are evaluated on them. VASP and
   GPAW energies differ by a constant per atom (PAW datasets, atomic reference): GPAW
   energies are shifted so that BCC W at the DE set's lowest-energy EOS cell (16 atoms,
   a = 3.184 Å) has its VASP energy (GPAW at 6x6x6 k-points); RMSEs are also given with
   each model's mean energy error removed.
   The coverage score of each EM configuration by the DE training set is set beside the
   errors (Spearman).

Writes out/dft_leg.json and out/dft_leg.md. Run: python examples/paper/dft_leg.py
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from emtool.potentials.calculators import load_potential
from emtool.analysis.compare import coverage_by_configuration
from emtool.data.dataset import dataset_info, read_dataset, write_dataset
from emtool.analysis.evaluate import configuration_errors, evaluate_images
from emtool.fitting.snap import fit_dataset
from emtool.fitting.weights import GroupWeights, UniformWeights
from emtool.labeling.label import finished_labels
from emtool.fitting.networks import TrainingSettings, fit_network_dataset
from emtool.workflows import compute_descriptors
from study import (EPOCHS, HERE, OUT, WORKERS, labeled_set, log, snap_params, split_file,
                   split_set, write_json)

TWOJMAX = 6
SOURCE = os.environ.get("EMTOOL_DFT_SOURCE", "reference-set")
N_EM = int(os.environ.get("EMTOOL_DFT_N", 60))
REFERENCE_SET = HERE.parents[0] / "data" / "w_gpaw.h5"
GPAW_VENV = Path(os.environ.get("EMTOOL_GPAW_VENV", "/work/gpaw-venv"))
GPAW_ARGS = {"ecut": 300, "kpts": [1, 1, 1]}
BCC_KPTS = [6, 6, 6]
SNAP_WEIGHTS = GroupWeights(energy=100.0, force=1.0)
FOLDER = OUT / "dft"


def main():
    FOLDER.mkdir(parents=True, exist_ok=True)
    de_raw = OUT / "de_raw.h5"
    labeled_set("DE")                       # makes de_raw.h5 (the DFT labels) on first use
    trainval, test = split_file(de_raw, FOLDER / "de_dft")
    models = {"linear SNAP": linear(trainval, FOLDER / "de_dft_linear_2j6.json"),
              "NN-A1": network(trainval, FOLDER / f"de_dft_a1_2j6_e{EPOCHS}.json")}
    report = dict(random_split={}, groupwise=groupwise(de_raw), em_gpaw=None)
    for name, path in models.items():
        report["random_split"][name] = evaluate(path, read_dataset(test), test)
        log(f"DE-DFT {name} on the DE-DFT test part: energy RMSE "
            f"{1000 * report['random_split'][name]['energy_rmse']:.1f} meV/atom, force RMSE "
            f"{report['random_split'][name]['force_rmse']:.3f} eV/Å")
    em = gpaw_em()
    if em:
        report["em_gpaw"] = em_transfer(models, em, trainval)
    write_json(OUT / "dft_leg.json", report)
    (OUT / "dft_leg.md").write_text(markdown(report))


def linear(train, path):
    if not path.exists():
        fit_dataset(train, path, "linear", snap_params(TWOJMAX), UniformWeights(SNAP_WEIGHTS),
                    workers=WORKERS)
    return path


def network(train, path, test_groups=()):
    if not path.exists():
        settings = TrainingSettings(architecture="A1", epochs=EPOCHS, split=(0.875, 0.125, 0.0))
        fit_network_dataset(train, path, settings, snap_params(TWOJMAX), test_groups=test_groups,
                            workers=WORKERS)
    return path


def evaluate(model_path, images, source=None):
    """emtool evaluate of a model file (cached as JSON beside it, per dataset file name)."""
    cache = model_path.with_name(f"{model_path.stem}_on_{Path(source).stem}.json")
    if cache.exists():
        return json.loads(cache.read_text())
    result = evaluate_images(load_potential(model_path), images, WORKERS, source)
    cache.write_text(json.dumps(result))
    return result


def groupwise(de_raw):
    """Leave-one-group-out with DFT labels: held-out energy and force RMSE per group."""
    rows = []
    for group in sorted(dataset_info(de_raw)["groups"]):
        snap_path = FOLDER / f"groupwise_linear_without_{group}.json"
        if not snap_path.exists():
            fit_dataset(de_raw, snap_path, "linear", snap_params(TWOJMAX),
                        UniformWeights(SNAP_WEIGHTS), validation_groups=(group,),
                        workers=WORKERS)
        snap = json.loads(snap_path.read_text())["metadata"]["metrics"]
        nn = json.loads(network(de_raw, FOLDER / f"groupwise_a1_without_{group}_e{EPOCHS}.json",
                                (group,)).read_text())["metadata"]["metrics"]
        rows.append(dict(group=group, configs=snap["validation"]["configs"],
                         linear_train=snap["train"], linear_heldout=snap["validation"],
                         a1_train=nn["train"], a1_heldout=nn["test"]))
        log(f"DE-DFT without {group}: held-out energy RMSE linear "
            f"{1000 * snap['validation']['energy_rmse']:.1f}, A1 "
            f"{1000 * nn['test']['energy_rmse']:.1f} meV/atom")
    return rows


def gpaw_run(source, output, calc_args):
    """``emtool label`` with the GPAW factory in GPAW's venv, one single-threaded process
    (skipped with a message when that venv is missing: docs/dft.md makes it)."""
    if not (GPAW_VENV / "bin" / "emtool").exists():
        log(f"no GPAW venv at {GPAW_VENV} (docs/dft.md): {output} not labeled")
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    subprocess.run([str(GPAW_VENV / "bin" / "emtool"), "label", str(source), "-o", str(output),
                    "--potential", str(HERE.parents[0] / "gpaw_w.py") + ":calculator",
                    "--calc-args", json.dumps(calc_args), "--workers", "1"],
                   check=False, env=env)


def reference_set_em():
    """The configurations of ``emtool generate -n 40 --seed 2027`` (the generator's current
    defaults) as labeled in the committed GPAW reference set, and the set's cutoff (eV).
    Matched by atom count, cell and positions to 1e-8 Å (Numba builds differ in the last
    digits); SystemExit if one is missing (the set was labeled with older defaults)."""
    from emtool.generator.generate import generate_dataset
    raw = FOLDER / "em40_seed2027.h5"
    if not raw.exists():
        generate_dataset(raw, 40, seed=2027, workers=WORKERS)
    labeled = [a for a in read_dataset(REFERENCE_SET)
               if str(a.info["group"]).startswith("entropy_")]
    chosen = []
    for atoms in read_dataset(raw):
        match = next((b for b in labeled if len(b) == len(atoms)
                      and np.allclose(b.cell.array, atoms.cell.array, atol=1e-8)
                      and np.allclose(b.positions, atoms.positions, atol=1e-8)), None)
        if match is None:
            raise SystemExit(f"configuration {atoms.info['index']} of generate -n 40 --seed 2027 "
                             f"is not in {REFERENCE_SET}: label it (examples/data/w_gpaw.py)")
        chosen.append(match)
    return chosen, dataset_info(REFERENCE_SET)["parameters"]["gpaw"]["ecut"]


def gpaw_em():
    """GPAW-labeled EM configurations (labels what is missing unless EMTOOL_DFT_LABEL=0) and
    the BCC alignment shift (eV/atom, VASP minus GPAW); None when GPAW labels are absent."""
    if SOURCE == "reference-set":
        images, ecut = reference_set_em()
        return aligned(images, dict(GPAW_ARGS, ecut=ecut))
    if SOURCE != "study":
        raise SystemExit(f"EMTOOL_DFT_SOURCE must be reference-set or study, not {SOURCE!r}")
    raw, labeled = FOLDER / f"em{N_EM}_raw.h5", FOLDER / f"em{N_EM}_gpaw.h5"
    if os.environ.get("EMTOOL_DFT_LABEL", "1") != "0":
        gpaw_run(raw_em(raw), labeled, GPAW_ARGS)
    # an interrupted emtool label keeps what it finished in OUTPUT.labeling.h5 and its journal
    images = [a for a in finished_labels(labeled) if a.calc is not None]
    return aligned(images, GPAW_ARGS) if images else None


def raw_em(raw):
    """``EMTOOL_DFT_N`` random configurations of the study's EM test part, unlabeled."""
    if not raw.exists():
        images = read_dataset(split_set("EM")[1])
        order = np.random.default_rng(7).permutation(len(images))[:N_EM]
        chosen = [images[k] for k in order]
        for atoms in chosen:
            atoms.calc = None
        write_dataset(raw, chosen)
    return raw


def aligned(images, calc_args):
    """``images`` with their GPAW energies shifted so that BCC W (the DE set's lowest-energy
    EOS cell, labeled with ``calc_args`` at BCC_KPTS) has its VASP energy; None while that
    cell is not labeled. Returns dict(images, shift, bcc_vasp, bcc_gpaw)."""
    ecut = calc_args["ecut"]
    bcc_raw, bcc_labeled = FOLDER / "bcc_raw.h5", FOLDER / f"bcc_gpaw_{ecut:g}eV.h5"
    de = read_dataset(OUT / "de_raw.h5")
    lowest = min((a for a in de if a.info["group"] == "EOS_Data"),
                 key=lambda a: a.get_potential_energy() / len(a))
    if not bcc_raw.exists():
        bcc = lowest.copy()
        bcc.calc = None
        write_dataset(bcc_raw, [bcc])
    if os.environ.get("EMTOOL_DFT_LABEL", "1") != "0" and not bcc_labeled.exists():
        gpaw_run(bcc_raw, bcc_labeled, dict(calc_args, kpts=BCC_KPTS))
    if not bcc_labeled.exists():
        return None
    bcc = read_dataset(bcc_labeled)[0]
    shift = (lowest.get_potential_energy() - bcc.get_potential_energy()) / len(bcc)
    for atoms in images:
        atoms.calc.results["energy"] += shift * len(atoms)
    log(f"{len(images)} GPAW-labeled EM configurations; BCC shift {shift:.4f} eV/atom")
    return dict(images=images, shift=shift, bcc_vasp=lowest.get_potential_energy() / len(bcc),
                bcc_gpaw=bcc.get_potential_energy() / len(bcc))


def em_transfer(models, em, trainval):
    """Errors of the DE-DFT models and of the embedded reference on the GPAW-labeled EM
    configurations, with the coverage score of each configuration by DE's training set."""
    images = em["images"]
    descriptors = FOLDER / "em_gpaw_2j6.npz"
    compute_descriptors(images, snap_params(TWOJMAX), descriptors)
    other = np.load(descriptors)
    ref = np.load(compute_descriptors_cached(trainval))["B"]
    coverage = coverage_by_configuration(ref, other["B"],
                                         other["config_offsets"].astype(np.int64))
    rows = {}
    for name, path in [*models.items(), ("reference:W", None)]:
        potential = load_potential(str(path) if path else "reference:W")
        errors = [configuration_errors(potential, a) for a in images]
        signed = np.array([e[2] for e in errors])           # eV/atom, model - label
        forces = np.concatenate([e[3] for e in errors])      # eV/Å
        rows[name] = dict(energy_rmse=float(np.sqrt(np.mean(signed ** 2))),
                          force_rmse=float(np.sqrt(np.mean(forces ** 2))),
                          energy_mean_error=float(signed.mean()),
                          energy_rmse_shift_removed=float(signed.std()),
                          coverage_spearman=float(spearmanr(coverage, np.abs(signed)).statistic))
        log(f"{name} on GPAW EM: energy RMSE {1000 * rows[name]['energy_rmse']:.0f} meV/atom "
            f"(mean error removed {1000 * signed.std():.0f}), force RMSE "
            f"{rows[name]['force_rmse']:.2f} eV/Å")
    labels = np.array([a.get_potential_energy() / len(a) for a in images])
    return dict(configs=len(images), atoms=int(sum(len(a) for a in images)),
                shift=em["shift"], bcc_vasp=em["bcc_vasp"], bcc_gpaw=em["bcc_gpaw"],
                energy_per_atom=dict(min=float(labels.min()), median=float(np.median(labels)),
                                     max=float(labels.max())),
                coverage_median=float(np.median(coverage)), models=rows)


def compute_descriptors_cached(dataset):
    path = FOLDER / "de_dft_trainval_2j6.npz"
    if not path.exists():
        compute_descriptors(read_dataset(dataset), snap_params(TWOJMAX), path)
    return path


def markdown(report):
    lines = ["## DE with DFT labels, random split: test RMSE per group", "",
             "| group | configs | linear SNAP energy (meV/atom) / force (eV/Å) | NN-A1 energy "
             "(meV/atom) |", "|---|---:|---:|---:|"]
    lin, a1 = report["random_split"]["linear SNAP"], report["random_split"]["NN-A1"]
    for group, g in sorted(lin["groups"].items()):
        lines.append(f"| {group} | {g['configs']} | {1000 * g['energy_rmse']:.1f} / "
                     f"{g['force_rmse']:.3f} | {1000 * a1['groups'][group]['energy_rmse']:.1f} |")
    lines.append(f"| all | {lin['configs']} | {1000 * lin['energy_rmse']:.1f} / "
                 f"{lin['force_rmse']:.3f} | {1000 * a1['energy_rmse']:.1f} |")
    lines += ["", "## DE with DFT labels, one group held out", "",
              "| held-out group | configs | linear SNAP train / held-out energy (meV/atom), "
              "held-out force (eV/Å) | NN-A1 train / held-out energy (meV/atom) |",
              "|---|---:|---:|---:|"]
    for r in report["groupwise"]:
        lines.append(f"| {r['group']} | {r['configs']} | "
                     f"{1000 * r['linear_train']['energy_rmse']:.1f} / "
                     f"{1000 * r['linear_heldout']['energy_rmse']:.1f}, "
                     f"{r['linear_heldout']['force_rmse']:.3f} | "
                     f"{1000 * r['a1_train']['energy_rmse']:.1f} / "
                     f"{1000 * r['a1_heldout']['energy_rmse']:.1f} |")
    em = report["em_gpaw"]
    if em:
        lines += ["", f"## GPAW-labeled EM configurations ({em['configs']} configurations, "
                  f"{em['atoms']} atoms; energies {em['energy_per_atom']['min']:.2f} … "
                  f"{em['energy_per_atom']['max']:.2f} eV/atom after the BCC shift of "
                  f"{em['shift']:.3f} eV/atom; median coverage distance "
                  f"{em['coverage_median']:.1f})", "",
                  "| model | energy RMSE (meV/atom) | mean error removed (meV/atom) | "
                  "force RMSE (eV/Å) | Spearman(coverage, RSE) |", "|---|---:|---:|---:|---:|"]
        for name, r in em["models"].items():
            lines.append(f"| {name} | {1000 * r['energy_rmse']:.0f} | "
                         f"{1000 * r['energy_rmse_shift_removed']:.0f} | "
                         f"{r['force_rmse']:.2f} | {r['coverage_spearman']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
