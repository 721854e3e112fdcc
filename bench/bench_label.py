"""Labeling throughput of the embedded reference through ``emtool label``.

Writes N random 32-40-atom W boxes (the generator's random starts; the reference potential
labels any geometry, so no relaxation is needed) to a dataset, then times
(a) ``label_dataset`` in process and (b) the ``emtool label`` command end to end (Python
start-up included), single core. Goal: >= 1000 configurations per core-second.

Run: python bench/bench_label.py [-n 5000]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from emtool import write_dataset
from emtool.generator.generate import GeneratorParams
from emtool.generator.starts import random_start
from emtool.labeling.label import label_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = []
    for k in range(args.n):
        atoms = random_start(GeneratorParams(), rng)
        atoms.info.update(index=k, group="random")
        images.append(atoms)
    natoms = np.mean([len(a) for a in images])
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "data.h5"
        write_dataset(source, images)
        label_dataset(source, output=Path(tmp) / "warm.h5")  # JIT warm-up / cache load
        start = time.perf_counter()
        label_dataset(source, output=Path(tmp) / "a.h5")
        in_process = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "emtool.cli", "label", str(source), "-o",
                        str(Path(tmp) / "b.h5")], check=True, capture_output=True, env=env)
        command = time.perf_counter() - start
    print(f"# {args.n} random W boxes, {natoms:.1f} atoms on average, reference:W, 1 core")
    print("| path | seconds | configurations per core-second |")
    print("|---|---:|---:|")
    print(f"| `label_dataset` in process | {in_process:.2f} | {args.n / in_process:.0f} |")
    print(f"| `emtool label` command (incl. start-up) | {command:.2f} | {args.n / command:.0f} |")


if __name__ == "__main__":
    main()
