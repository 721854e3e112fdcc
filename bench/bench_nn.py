"""Network training time per epoch on the W DFT set (paper protocol, PyTorch CPU build).

Imports ``../shared/data/fitsnap_W_PRB2019`` (9,897 configurations, 164,415 atoms), computes
the twojmax-6 descriptors (D = 30) with 2 worker processes, then times training epochs of
NN-A1, NN-B1 and NN-B5 (energy-only, the paper's protocol: 70/10/20 split, batch 32) and,
on a 500-configuration subset (the per-pair dB/dr of the whole set would need ~7 GB), NN-A1
with forces. Each epoch includes the validation pass. Reported: median seconds per epoch over
``EPOCHS`` epochs, and the implied time of the paper's 800 epochs.

Run: python bench/bench_nn.py
"""
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from emtool import SnapParams, read_dataset
from emtool.data.exchange import import_to_dataset
from emtool.potentials.nn import architecture_layers, n_parameters
from emtool.fitting.networks import (TrainingData, TrainingSettings, collect_records,
                                     train_network)
from emtool.fitting.split import split_configurations

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fitsnap_W_PRB2019"
EPOCHS = 5


def seconds_per_epoch(data, params, settings, groups, threads=1):
    train, validation, _ = split_configurations(groups, settings.split, settings.seed)
    _, info = train_network(data, params, settings, train, validation, threads=threads)
    return float(np.median([h["seconds"] for h in info["history"]]))


def main():
    params = SnapParams(twojmax=6, rcutfac=4.73, bzeroflag=0, elements=("W",))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "de.h5"
        import_to_dataset(DATA, path)
        images = read_dataset(path)
        start = time.perf_counter()
        records = collect_records(images, params, workers=2, source=path)
        descriptor_seconds = time.perf_counter() - start
        subset = images[::len(images) // 500][:500]
        force_records = collect_records(subset, params, forces=True, workers=2, source=path)
    groups = [a.info.get("group", "") for a in images]
    data = TrainingData(records, False)
    force_data = TrainingData(force_records, True)
    print(f"# W DFT set: {len(images)} configurations, {len(data.b)} atoms, D = 30; "
          f"torch {torch.__version__}")
    print(f"descriptors (2 workers): {descriptor_seconds:.1f} s")
    print("| network | parameters | training | threads | s/epoch | 800 epochs |")
    print("|---|---:|---|---:|---:|---:|")
    for name, threads in (("A1", 1), ("B1", 1), ("B5", 1), ("B5", 2)):
        settings = TrainingSettings(architecture=name, epochs=EPOCHS)
        s = seconds_per_epoch(data, params, settings, groups, threads)
        ndof = n_parameters(architecture_layers(name, 30), 30)
        print(f"| NN-{name} | {ndof} | energy, {len(images)} configs | {threads} | {s:.2f} | "
              f"{800 * s / 60:.1f} min |")
    settings = TrainingSettings(architecture="A1", epochs=EPOCHS, force_weight=0.01)
    s = seconds_per_epoch(force_data, params, settings, [""] * len(subset))
    print(f"| NN-A1 | 383 | energy + forces, {len(subset)} configs | 1 | {s:.2f} | "
          f"{800 * s / 60:.1f} min |")


if __name__ == "__main__":
    main()
