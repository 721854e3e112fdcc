"""Reference-potential (Finnis-Sinclair W) grind time and labeling throughput.

Fixed inputs, single thread, warm-up excluded (JIT compile time reported apart):

- kernel: ``fs_energy_forces`` on a prebuilt neighbor list of the 2000-atom BCC W of
  ``bench_snap.structure`` (a = 3.1652 Å, 0.05 Å displacements), µs per atom-step, best of
  --repeats; next to it LAMMPS ``pair_style eam/fs`` on the table the tests write
  (``tests/test_reference.write_setfl``, 40000-point grids) and the ratio;
- end to end: ``FinnisSinclairW.evaluate`` from ASE Atoms (neighbor list, kernel, stress)
  for the same 2000 atoms;
- labeling: ``evaluate`` on --configs random 32-40-atom W boxes (15.9 Å^3/atom, pairs
  >= 2 Å, ``tests/conftest.random_box``), configurations per core-second (process CPU time)
  and per wall second.

Run: python bench/bench_reference.py [--repeats 5] [--steps 20] [--configs 500]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from bench_snap import best_time, first_call_seconds, lammps_time, structure
from emtool.kernels.finnis_sinclair import fs_energy_forces
from emtool.descriptors.neighbors import neighbor_list
from emtool.potentials.reference import FinnisSinclairW

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import random_box  # noqa: E402
from test_reference import write_setfl  # noqa: E402

FIRST_CALL = """
import time; start = time.perf_counter()
from ase.build import bulk
from emtool.potentials.reference import FinnisSinclairW
FinnisSinclairW().evaluate(bulk("W", "bcc", a=3.1652, cubic=True))
print(time.perf_counter() - start)
"""




def labeling_throughput(pot, configs):
    """(configurations per CPU second, per wall second, mean atoms) of ``pot.evaluate``."""
    pot.evaluate(configs[0])
    wall, cpu = time.perf_counter(), time.process_time()
    for atoms in configs:
        pot.evaluate(atoms)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(configs) / cpu, len(configs) / wall, np.mean([len(a) for a in configs])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--configs", type=int, default=500)
    args = parser.parse_args()
    numba.set_num_threads(1)
    pot = FinnisSinclairW()
    params = pot.kernel_params()
    atoms = structure()
    n = len(atoms)
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, pot.cutoff)
    positions, cell = atoms.positions.copy(), atoms.cell.array.copy()
    near, vectors = np.empty(len(nl.j), np.int64), np.empty((len(nl.j), 4))
    run = lambda: fs_energy_forces(positions, cell, nl.offsets, nl.j, nl.shift,  # noqa: E731
                                   params, near, vectors, 1)
    run()
    kernel = best_time(run, args.repeats)
    end_to_end = best_time(lambda: pot.evaluate(atoms), args.repeats)
    configs = [random_box(seed, min_distance=2.0) for seed in range(args.configs)]
    per_cpu, per_wall, mean_atoms = labeling_throughput(pot, configs)
    with tempfile.TemporaryDirectory() as tmp:
        cold, warm = first_call_seconds(tmp, FIRST_CALL), first_call_seconds(tmp, FIRST_CALL)
        table = Path(tmp) / "W_AT.eam.fs"
        write_setfl(table, pot)
        lammps = lammps_time(atoms, ["pair_style eam/fs", f"pair_coeff * * {table} W",
                                     "neighbor 0.0 bin",
                                     "thermo_style custom step pe"], args.steps, args.repeats)
    us = lambda seconds: 1e6 * seconds / n  # noqa: E731
    print(f"# Finnis-Sinclair W, {n}-atom BCC, cutoff {pot.cutoff} Å, "
          f"{len(nl.i) / n:.0f} neighbors per atom, 1 thread, best of {args.repeats}")
    print("| stage | emtool µs/atom-step | LAMMPS eam/fs µs/atom-step | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| kernel (prebuilt list) | {us(kernel):.3f} | {us(lammps):.3f} | "
          f"{kernel / lammps:.2f} |")
    print(f"| end to end from Atoms | {us(end_to_end):.3f} | | |")
    print()
    print(f"| labeling: {len(configs)} random W boxes, {mean_atoms:.1f} atoms on average "
          f"| configs per core-second | configs per wall second |")
    print("|---|---:|---:|")
    print(f"| `FinnisSinclairW.evaluate` | {per_cpu:.0f} | {per_wall:.0f} |")
    print()
    print(f"JIT: first evaluation of a fresh process {cold:.1f} s with an empty Numba cache "
          f"(compilation), {warm:.2f} s with the cache it left")


if __name__ == "__main__":
    main()
