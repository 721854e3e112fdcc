"""Roofline line of the SNAP kernels: flops per atom-step counted from the index tables, the
time of each stage, and the fraction of this CPU's peak each stage reaches.

Fixed input: the 2000-atom BCC W of ``bench_snap.structure`` at R = ``bench_snap.RCUTFAC``
(26 neighbors per atom), linear SNAP with random coefficients, 1 thread. The stages of one
MD force evaluation (``kernels.snap.beta_forces_kernel``), each timed over all atoms (best of
--repeats, after warm-up) by a driver that calls the kernel's own building blocks:

- U: ``_u_total`` (per neighbor: Cayley-Klein parameters, the U recursion, the f_c-weighted sum);
- Z/Y: ``_y_from_u`` (every Clebsch-Gordan product Z, the adjoint Y and B, once per atom);
- dE/dr: ``_dedr_adjoint`` (per neighbor: the backward pass of the U recursion from Y, and
  the chain rule to dE_i/dr_ik).

dE/dr runs inside the kernel's neighbor loop, on its workspaces; it is timed as the
difference U+dE/dr minus U of that loop.

Flops are counted per inner-loop iteration from the code (an add, a multiply or a fused
multiply-add's two halves each count 1; sqrt, sin, cos and divisions count 1; sign flips and
copies 0) and multiplied by the iteration counts of the index tables, so they are exact for
the arithmetic the kernels do (not for the work a cleverer algorithm would need). Peak:
``--ghz`` (default: the nominal clock in /proc/cpuinfo; the VM hides its turbo clock) times
4 flops per cycle for scalar code (two FMA ports) and, for vector code, 4 times the doubles
of the widest vector unit /proc/cpuinfo lists (AVX-512: 32, AVX2: 16).

Run: python bench/bench_roofline.py [--twojmax 6 8] [--repeats 5] [--ghz 2.1]
"""
import argparse
from pathlib import Path

import numba
import numpy as np
from numba import njit

from bench_snap import RCUTFAC, best_time, structure
from emtool import SnapParams
from emtool.descriptors.snap import kernel_inputs, snap_pairs
from emtool.kernels.snap import (_adjoint_workspace, _dedr_adjoint, _u_total, _workspace,
                                 _y_from_u)

SCALAR_FLOPS_PER_CYCLE = 4


@njit
def u_stage(basis, pairs, settings, utot_r, utot_i):
    """U of every atom into utot_r, utot_i (N, idxu_max)."""
    offsets = pairs.offsets
    max_nbr = max(1, np.max(np.diff(offsets)))
    u_nbr_r, u_nbr_i, geometry, _, _, _, _, _, _ = _workspace(basis, max_nbr)
    for i in range(offsets.shape[0] - 1):
        _u_total(basis, pairs, settings, offsets[i], offsets[i + 1], u_nbr_r, u_nbr_i,
                 geometry, utot_r[i], utot_i[i])


@njit
def y_stage(basis, utot_r, utot_i, beta, y_r, y_i, b):
    """Weighted Y (into y_r, y_i (N, idxu_max)) and B of every atom from its U."""
    for i in range(utot_r.shape[0]):
        _y_from_u(basis, utot_r[i], utot_i[i], beta[i], y_r[i], y_i[i], b[i])


@njit
def neighbor_stages(basis, pairs, settings, y_r, y_i, dedr):
    """The kernel's per-atom neighbor loop: U, then dE_i/dr_ik of each
    neighbor (``_dedr_adjoint``) from the atom's Y (y_r, y_i (N, idxu_max)) into dedr (P, 3).
    Same workspaces as ``beta_forces_kernel``."""
    offsets, rij = pairs.offsets, pairs.rij
    max_nbr = max(1, np.max(np.diff(offsets)))
    u_nbr_r, u_nbr_i, geometry, utot_r, utot_i, _, _, _, _ = _workspace(basis, max_nbr)
    _, _, ub_r, ub_i = _adjoint_workspace(basis)
    for i in range(offsets.shape[0] - 1):
        _u_total(basis, pairs, settings, offsets[i], offsets[i + 1], u_nbr_r, u_nbr_i,
                 geometry, utot_r, utot_i)
        for p in range(offsets[i], offsets[i + 1]):
            n = p - offsets[i]
            _dedr_adjoint(basis.twojmax, basis.rootpq, basis.idxu_block, rij[p, 0], rij[p, 1],
                          rij[p, 2], pairs.wj[p], geometry[n], u_nbr_r[n], u_nbr_i[n], y_r[i],
                          y_i[i], ub_r, ub_i, dedr[p])


def flops(basis, neighbors):
    """Flops per atom of each stage, for ``neighbors`` neighbors per atom (see the module
    docstring for the counting rules)."""
    twojmax = basis.twojmax
    recursion = sum((j // 2 + 1) * j for j in range(1, twojmax + 1))     # (j, mb, ma) steps
    half_layers = sum((j // 2 + 1) * (j + 1) for j in range(twojmax + 1))
    used = int(basis.idxu_block[twojmax]) + (twojmax // 2 + 1) * (twojmax + 1)
    mirrored = sum(j + 1 for j in range(1, twojmax, 2))                # adjoint rows handed back
    z = 10.0 * len(basis.z_cg)                                         # flat CG terms
    y = 5 * basis.idxz.shape[0] + 6 * np.sum(basis.b_jjb >= 0) + 2 * basis.idxu_max
    angles = 20                                                        # r, theta0, z0, f_c
    chain = 3 * 22 + 4                                                 # dE/d(a, b) -> dE/dr
    return {
        "U": neighbors * (angles + 18 * recursion + 4 * half_layers),
        "Z/Y": z + y,
        "dE/dr": neighbors * (4 * used + 36 * recursion + 2 * mirrored + chain),
    }


def stage_times(twojmax, atoms, repeats):
    """(seconds per atom of each stage, flops per atom of each stage) at ``twojmax``."""
    params = SnapParams(twojmax=twojmax, rcutfac=RCUTFAC, bzeroflag=0, elements=("W",))
    pairs_ = snap_pairs(atoms, params)
    basis, pairs, settings = kernel_inputs(params, pairs_)
    n, npair = len(atoms), len(pairs.rij)
    beta = np.random.default_rng(1).normal(scale=1e-3, size=(n, params.ncoeff))
    utot_r, utot_i = np.empty((n, basis.idxu_max)), np.empty((n, basis.idxu_max))
    y_r, y_i = np.empty((n, basis.idxu_max)), np.empty((n, basis.idxu_max))
    b = np.empty((n, params.ncoeff))
    dedr = np.empty((npair, 3))
    runs = {
        "U": lambda: u_stage(basis, pairs, settings, utot_r, utot_i),
        "Z/Y": lambda: y_stage(basis, utot_r, utot_i, beta, y_r, y_i, b),
        "U+dE/dr": lambda: neighbor_stages(basis, pairs, settings, y_r, y_i, dedr),
    }
    total = {}
    for name, run in runs.items():
        run()
        total[name] = best_time(run, repeats) / n
    seconds = {"U": total["U"], "Z/Y": total["Z/Y"], "dE/dr": total["U+dE/dr"] - total["U"]}
    return seconds, flops(basis, npair / n)


def vector_flops_per_cycle():
    """(name, flops per cycle) of the widest vector unit of this CPU: two FMA ports."""
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":")[1].split())
            break
    if "avx512f" in flags:
        return "AVX-512", 32
    if "avx2" in flags and "fma" in flags:
        return "AVX2", 16
    return "SSE2", 8


def nominal_ghz():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000.0
    raise SystemExit("no clock in /proc/cpuinfo: give --ghz")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twojmax", type=int, nargs="+", default=[6, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ghz", type=float, default=None)
    args = parser.parse_args()
    numba.set_num_threads(1)
    ghz = args.ghz or nominal_ghz()
    vector, vector_flops = vector_flops_per_cycle()
    atoms = structure()
    print(f"# SNAP roofline, {len(atoms)}-atom BCC W, R = {RCUTFAC} Å, 1 thread, best of "
          f"{args.repeats}; peak at {ghz:.2f} GHz: scalar {SCALAR_FLOPS_PER_CYCLE * ghz:.1f}, "
          f"{vector} {vector_flops * ghz:.1f} GFLOP/s")
    print("| 2J | stage | kflop per atom | µs per atom | GFLOP/s | of scalar peak | "
          f"of {vector} peak |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for twojmax in args.twojmax:
        seconds, counts = stage_times(twojmax, atoms, args.repeats)
        seconds["all"], counts["all"] = sum(seconds.values()), sum(counts.values())
        for name in seconds:
            rate = counts[name] / seconds[name] / 1e9
            print(f"| {twojmax} | {name} | {counts[name] / 1e3:.1f} | "
                  f"{1e6 * seconds[name]:.1f} | {rate:.2f} | "
                  f"{rate / (SCALAR_FLOPS_PER_CYCLE * ghz):.0%} | "
                  f"{rate / (vector_flops * ghz):.1%} |")


if __name__ == "__main__":
    main()
