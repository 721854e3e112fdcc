"""Shared setup of the paper study (examples/paper/*.py): the EM and DE sets under one ground
truth, their train+validation / test split, descriptor caches, fits and evaluations.

Everything lands in ``$EMTOOL_PAPER_OUT`` (default ``examples/paper/out``) and is reused
when present, so the scripts can be rerun, interrupted and resumed. Scale knobs (environment):

- ``EMTOOL_PAPER_LABELER`` (``chgnet``): the ground truth of both sets, any potential spec.
  The default is the universal potential closest to GPAW on the reference set
  (docs/labels.md); ``reference:W`` (the embedded reference) is the cheap alternative.
  Results go to ``examples/paper/out/<labeler>`` unless ``EMTOOL_PAPER_OUT`` says otherwise;
- ``EMTOOL_PAPER_N_EM`` (10000): entropy-optimized configurations generated (seed 2026,
  half K > 0, half K < 0);
- ``EMTOOL_PAPER_EPOCHS`` (100): network training epochs (the paper: 800);
- ``EMTOOL_PAPER_WORKERS`` (2): worker processes for generation, labels and descriptors.

The DE set is the real expert-curated W set (``../shared/data/fitsnap_W_PRB2019``, 9,897
configurations) relabeled with the same labeler, so that EM and DE differ only in
their configurations. Each set is split once (seed 0) into 80 % train+validation and 20 % test;
every model of the study trains on the first part with a 7:1 train/validation split and is
scored on the test part of each set.
"""
import json
import os
import time
from pathlib import Path

import numpy as np

import emtool
from emtool.data.dataset import read_dataset, write_dataset

HERE = Path(__file__).resolve().parent
LABELER = os.environ.get("EMTOOL_PAPER_LABELER", "chgnet")
OUT = Path(os.environ.get("EMTOOL_PAPER_OUT", HERE / "out" / LABELER.replace(":", "_")))
N_EM = int(os.environ.get("EMTOOL_PAPER_N_EM", 10000))
EPOCHS = int(os.environ.get("EMTOOL_PAPER_EPOCHS", 100))
WORKERS = int(os.environ.get("EMTOOL_PAPER_WORKERS", 2))
DE_SOURCE = HERE.parents[1].parent / "shared" / "data" / "fitsnap_W_PRB2019"
SETS = ("EM", "DE")
D_OF_TWOJMAX = {4: 14, 6: 30, 8: 55}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def labeled_set(name):
    """Path of the labeled EM or DE dataset (made on first use)."""
    from emtool.data.exchange import import_to_dataset
    from emtool.generator.generate import generate_dataset
    from emtool.labeling.label import LabelerSpec, label_dataset
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name.lower()}.h5"
    if path.exists():
        return path
    raw = OUT / f"{name.lower()}_raw.h5"
    if name == "EM":
        log(f"generating {N_EM} EM configurations")
        generate_dataset(raw, N_EM, seed=2026, workers=WORKERS)
    elif not raw.exists():
        import_to_dataset(DE_SOURCE, raw, element="W")
    log(f"labeling {name} with {LABELER}")
    label_dataset(raw, LabelerSpec("potential", LABELER), output=path, workers=WORKERS,
                  relabel=True)
    return path


def split_set(name):
    """(train+validation path, test path) of a set: 80/20 by configuration, seed 0."""
    return split_file(labeled_set(name), OUT / name.lower())


def split_file(source, stem):
    """(``stem``_trainval.h5, ``stem``_test.h5): dataset ``source`` split 80/20 by
    configuration with seed 0 (made on first use)."""
    trainval = Path(f"{stem}_trainval.h5")
    test = Path(f"{stem}_test.h5")
    if not (trainval.exists() and test.exists()):
        images = read_dataset(source)
        order = np.random.default_rng(0).permutation(len(images))
        n_test = int(round(0.2 * len(images)))
        write_dataset(test, [images[k] for k in sorted(order[:n_test])])
        write_dataset(trainval, [images[k] for k in sorted(order[n_test:])])
    return trainval, test


def descriptor_cache(name, twojmax):
    """``emtool descriptors`` file of a set's train+validation part (networks reuse it)."""
    from emtool.workflows import compute_descriptors
    path = OUT / f"{name.lower()}_trainval_2j{twojmax}.npz"
    if not path.exists():
        log(f"descriptors of {name} train+validation, twojmax {twojmax}")
        compute_descriptors(read_dataset(split_set(name)[0]), snap_params(twojmax), path)
    return path


def snap_params(twojmax):
    return emtool.SnapParams(twojmax=twojmax, rcutfac=4.73, bzeroflag=0)


def fitted_model(name, model, twojmax, epochs=None):
    """Path of ``model`` (linear, quadratic, nn:XX) trained on set ``name`` (energy-only,
    train/validation 7:1 of the train+validation part); trained on first use."""
    from emtool.fitting.snap import fit_dataset
    from emtool.fitting.weights import GroupWeights, UniformWeights
    from emtool.fitting.networks import TrainingSettings, fit_network_dataset
    folder = OUT / "models"
    folder.mkdir(parents=True, exist_ok=True)
    tag = model.replace(":", "-")
    epochs = epochs or EPOCHS
    path = folder / f"{name.lower()}_{tag}_2j{twojmax}" \
        f"{'_e' + str(epochs) if model.startswith('nn:') else ''}.json"
    if path.exists():
        return path
    trainval, _ = split_set(name)
    start = time.perf_counter()
    if model.startswith("nn:"):
        settings = TrainingSettings(architecture=model[3:], epochs=epochs,
                                    split=(0.875, 0.125, 0.0))
        fit_network_dataset(trainval, path, settings, snap_params(twojmax),
                            descriptors=descriptor_cache(name, twojmax))
    else:
        fit_dataset(trainval, path, model, snap_params(twojmax),
                    UniformWeights(GroupWeights(energy=1.0, force=0.0)), validation=0.125,
                    workers=WORKERS)
    log(f"{path.name}: {time.perf_counter() - start:.0f} s")
    return path


def test_errors(model_path, name):
    """emtool evaluate of a model on a set's test part (cached as JSON beside the model)."""
    from emtool.potentials.calculators import load_potential
    from emtool.analysis.evaluate import evaluate_images
    cache = model_path.with_name(model_path.stem + f"_on_{name.lower()}.json")
    if cache.exists():
        return json.loads(cache.read_text())
    _, test = split_set(name)
    result = evaluate_images(load_potential(model_path), read_dataset(test), WORKERS, test)
    cache.write_text(json.dumps(result))
    return result


def write_json(path, content):
    Path(path).write_text(json.dumps(content, indent=1) + "\n")
