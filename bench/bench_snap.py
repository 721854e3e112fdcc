"""SNAP grind times against LAMMPS, TestSNAP style.

Fixed input: 2000-atom BCC W (10x10x10 cubic cells, a = 3.1652 Å, 0.05 Å Gaussian
displacements), R = 4.73442 Å (26 neighbors per atom). For twojmax 6 and 8, three stages,
each as µs per atom, best of --repeats, after JIT warm-up (compile time reported apart):

- B: bispectrum of every atom           vs LAMMPS ``compute sna/atom``
- forces: linear SNAP forces            vs LAMMPS ``pair_style snap``, forces only (no energy
                                           in the thermo output, LAMMPS's usual MD step)
- dB/dr: per-atom descriptor gradients  vs LAMMPS ``compute snad/atom``

LAMMPS's compute times are the compute alone: the best ``run 0`` with the compute minus the
best ``run 0`` without it (both set the system up and build the neighbor list; the compute
also builds its own occasional list, which is part of its cost). The forces are ``run N``
steps of ``pair_style snap`` with no integrator (setup excluded). emtool is timed twice: the
kernel on a prebuilt neighbor list and end to end from ASE Atoms (neighbor list included:
the like-for-like comparison with the compute times). Threads: 1, then 2.

Run: python bench/bench_snap.py [--repeats 5] [--steps 5]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from ase.build import bulk

from emtool import SnapParams
from emtool.kernels.snap import beta_forces_kernel, bispectrum_kernel, dbdr_kernel
from emtool.lammps import open_lammps, setup_atoms
from emtool.descriptors.snap import bispectrum_derivatives, kernel_inputs, snap_pairs
from emtool.parallel import n_chunks
from emtool.potentials.snap import SnapPotential

RCUTFAC = 4.73442


def structure():
    atoms = bulk("W", "bcc", a=3.1652, cubic=True).repeat((10, 10, 10))
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def best_time(func, repeats):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def lammps_time(atoms, commands, steps, repeats):
    """Seconds per step of ``run steps`` with ``commands`` defined (setup excluded)."""
    lmp = open_lammps()
    try:
        setup_atoms(lmp, atoms)
        lmp.commands_list(commands + ["thermo 1", "run 0 post no"])
        return best_time(lambda: lmp.command(f"run {steps} pre no post no"), repeats) / steps
    finally:
        lmp.close()


def lammps_setup_time(atoms, commands, repeats):
    """Seconds of ``run 0`` (setup: neighbor list, forces, thermo) with ``commands``."""
    lmp = open_lammps()
    try:
        setup_atoms(lmp, atoms)
        lmp.commands_list(commands + ["thermo 1", "run 0 post no"])
        return best_time(lambda: lmp.command("run 0 post no"), repeats)
    finally:
        lmp.close()


def lammps_stages(atoms, twojmax, model_stem, steps, repeats):
    sna = f"{RCUTFAC} 0.99363 {twojmax} 0.5 1.0 rmin0 0 bzeroflag 0"
    zero = [f"pair_style zero {RCUTFAC}", "pair_coeff * *", "neighbor 0.0 bin"]
    bare = lammps_setup_time(atoms, zero + ["thermo_style custom step"], repeats)

    def compute(style, name):
        return lammps_setup_time(atoms, zero + [f"compute {name} all {style} {sna}",
                                                f"compute s all reduce sum c_{name}[1]",
                                                "thermo_style custom step c_s"], repeats) - bare

    f = lammps_time(atoms, ["pair_style snap", f"pair_coeff * * {model_stem}.snapcoeff "
                            f"{model_stem}.snapparam W", "neighbor 0.0 bin",
                            "thermo_style custom step"], steps, repeats)
    return dict(B=compute("sna/atom", "b"), forces=f, dBdr=compute("snad/atom", "d"))


def emtool_stages(atoms, model, repeats):
    params = model.params
    pairs = snap_pairs(atoms, params)
    args = kernel_inputs(params, pairs)
    nchunk = n_chunks(len(atoms))
    beta = np.tile(model.coeffs[0, 1:], (len(atoms), 1))

    kernel = dict(B=best_time(lambda: bispectrum_kernel(*args, nchunk), repeats),
                  forces=best_time(lambda: beta_forces_kernel(*args, beta, nchunk), repeats),
                  dBdr=best_time(lambda: dbdr_kernel(*args, nchunk), repeats))
    end_to_end = dict(B=best_time(lambda: snap_pairs(atoms, params) and bispectrum_kernel(
                          *args, nchunk), repeats),
                      forces=best_time(lambda: model.evaluate(atoms), repeats),
                      dBdr=best_time(lambda: bispectrum_derivatives(atoms, params).per_atom(),
                                     repeats))
    return kernel, end_to_end


FIRST_CALL = """
import time; start = time.perf_counter()
from ase.build import bulk
from emtool import SnapParams, bispectrum_derivatives
from emtool.potentials.snap import SnapPotential
import numpy as np
atoms = bulk("W", "bcc", a=3.1652, cubic=True).repeat(2)
params = SnapParams(twojmax=8, elements=("W",))
SnapPotential(params, np.zeros((1, 56))).evaluate(atoms)
bispectrum_derivatives(atoms, params)
print(time.perf_counter() - start)
"""


def first_call_seconds(cache_dir, code=FIRST_CALL):
    """Wall time (printed by ``code``) of a fresh process's first evaluation, with the Numba
    cache in cache_dir."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--twojmax", type=int, nargs="+", default=[6, 8])
    args = parser.parse_args()
    atoms = structure()
    n = len(atoms)
    rng = np.random.default_rng(1)
    print(f"# {n}-atom BCC W, R = {RCUTFAC} Å, µs per atom (best of {args.repeats})")
    print("| 2J | stage | LAMMPS | emtool kernel 1T | ratio | emtool end-to-end 1T | ratio "
          "| kernel 2T | 2T speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        cold = first_call_seconds(tmp)
        warm = first_call_seconds(tmp)
        print(f"JIT: first SNAP energy+forces+dB/dr call of a fresh process: {cold:.1f} s with "
              f"an empty Numba cache (compilation), {warm:.1f} s with the cache it left")
        for twojmax in args.twojmax:
            params = SnapParams(twojmax=twojmax, rcutfac=RCUTFAC, bzeroflag=0, elements=("W",))
            coeffs = rng.normal(scale=1e-3, size=(1, params.ncoeff + 1))
            model = SnapPotential(params, coeffs)
            stem = Path(tmp) / f"bench{twojmax}"
            model.write(stem)
            numba.set_num_threads(1)
            emtool_stages(atoms[:54], model, 1)
            lmp = lammps_stages(atoms, twojmax, stem, args.steps, args.repeats)
            kernel1, e2e1 = emtool_stages(atoms, model, args.repeats)
            numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            kernel2, _ = emtool_stages(atoms, model, args.repeats)
            for stage in ("B", "forces", "dBdr"):
                us = lambda s: 1e6 * s / n  # noqa: E731
                print(f"| {twojmax} | {stage} | {us(lmp[stage]):.1f} | {us(kernel1[stage]):.1f} | "
                      f"{kernel1[stage] / lmp[stage]:.2f} | {us(e2e1[stage]):.1f} | "
                      f"{e2e1[stage] / lmp[stage]:.2f} | {us(kernel2[stage]):.1f} | "
                      f"{kernel1[stage] / kernel2[stage]:.2f} |")


if __name__ == "__main__":
    main()
