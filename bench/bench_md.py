"""MD grind time against LAMMPS, and (optionally) the paper's energy-conservation table.

Fixed input: the 2000-atom BCC W of ``bench_snap.structure`` (a = 3.1652 Å, 0.05 Å
displacements) with Maxwell–Boltzmann velocities at 300 K (seed 0). Published W SNAP+ZBL
(``W_2940_2017_2.snap``). Velocity Verlet (NVE), µs per atom-step, best of --repeats runs of
--steps steps each (--reference-steps for the reference potential, whose step takes
milliseconds), after a warm-up (JIT compile time reported apart):

- emtool ``nve_step`` (Verlet neighbor list with the default 0.5 Å skin, SNAP, ZBL, Verlet
  kernels; the energy comes with every evaluation), 1 and 2 Numba threads, against LAMMPS ``fix nve``
  with ``pair_style hybrid/overlay zbl 4.0 4.8 snap`` (serial, default ``neighbor 2.0 bin``:
  LAMMPS rebuilds its lists only when an atom moved by more than 1 Å), once with no energy
  output (forces only, LAMMPS's usual MD step) and once with ``thermo 1`` (energy every
  step, which makes ``pair_style snap`` compute the bispectrum as well), in the same run;
- where emtool's step time goes (1 thread);
- the embedded reference potential (Finnis-Sinclair W) per atom-step, next to LAMMPS
  ``eam/fs`` on the table the tests write.

``--nve-table`` (instead of the above): the full protocol of paper Fig. 5 (16-atom BCC W,
3000 K, 7.5 ps per timestep, n = 1000) with the published potential, emtool and LAMMPS
``fix nve`` each running every NVE run from the same equilibrated state; dH ± its block
error, the relative difference and the dt <= 4 fs slopes side by side (about 5 minutes).

``--skin-sweep`` (instead of the above): ``reference:W`` MD of the same box at 300, 1500 and 3000 K with neighbor skins 0.5, 0.7 and 1.0 Å, µs per atom-step (best
of --repeats rounds of 1000 steps after 1000 of equilibration) and the list builds per 1000
steps: what chose MD's default skin (``emtool.dynamics.integrators.NEIGHBOR_SKIN``).

Run: python bench/bench_md.py [--repeats 5] [--steps 3] [--reference-steps 100]
     python bench/bench_md.py --nve-table [--seed 0]
     python bench/bench_md.py --skin-sweep [--repeats 3]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from bench_snap import best_time, first_call_seconds, structure
from emtool.potentials.calculators import load_potential
from emtool.kernels.snap import beta_forces_kernel
from emtool.kernels.verlet import kinetic_energy, verlet_drift, verlet_kick
from emtool.dynamics.integrators import MDSystem, maxwell_boltzmann, nve_init, nve_step
from emtool.dynamics.nve import (NVEProtocol, PAPER_TIMESTEPS, bcc_tungsten, energy_conservation,
                                 equilibrate, loglog_slope)
from emtool.descriptors.snap import kernel_inputs, scatter_pair_forces, snap_pairs
from emtool.parallel import n_chunks
from emtool.potentials.zbl import ZBLPotential

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
from conftest import SHARED_DATA  # noqa: E402
from test_md_lammps import LammpsNVE, lammps_nve_row, published_pair_commands  # noqa: E402
from test_reference import write_setfl  # noqa: E402

PUBLISHED = SHARED_DATA / "lammps_W_SNAP"
TIMESTEP = 1.0   # fs

FIRST_CALL = f"""
import time; start = time.perf_counter()
import numpy as np
from emtool.potentials.calculators import load_potential
from emtool.dynamics.integrators import MDSystem, maxwell_boltzmann, nve_init, nve_step
from emtool.dynamics.nve import bcc_tungsten
system = MDSystem(load_potential("{PUBLISHED / 'W_2940_2017_2.snap'}"), bcc_tungsten())
state = nve_init(system, system.positions, maxwell_boltzmann(system.masses, 300.0))
nve_step(system, state, 1.0)
print(time.perf_counter() - start)
"""


def step_times(system, start, lammps_commands, steps, repeats):
    """Seconds per velocity-Verlet step from the ``start`` state, best of ``repeats`` rounds:
    emtool with 1 and 2 threads (energy every step: ``evaluate`` returns it), LAMMPS ``fix
    nve`` with no energy output (forces only) and with the energy every step (``thermo 1``).
    All four are measured in turn within each round, so that they see the same load of a
    shared machine."""
    def emtool(threads):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        state = start
        for _ in range(steps):
            state = nve_step(system, state, TIMESTEP)
        numba.set_num_threads(1)

    forces_only = LammpsNVE(system.snapshot(start), start.velocities, lammps_commands, TIMESTEP)
    with_energy = LammpsNVE(system.snapshot(start), start.velocities, lammps_commands, TIMESTEP)
    forces_only.lmp.command("thermo_style custom step")
    with_energy.lmp.command("thermo 1")
    try:
        runs = dict(emtool_1=lambda: emtool(1), lammps=lambda: forces_only.advance(steps),
                    lammps_energy=lambda: with_energy.advance(steps), emtool_2=lambda: emtool(2))
        for run in runs.values():
            run()
        best = dict.fromkeys(runs, np.inf)
        for _ in range(repeats):
            for key, run in runs.items():
                best[key] = min(best[key], best_time(run, 1) / steps)
        return best
    finally:
        forces_only.close()
        with_energy.close()


def step_breakdown(potential, atoms, system, state, repeats):
    """Seconds of each part of one emtool SNAP+ZBL step (1 thread)."""
    params = potential.params
    skin_list = system.neighbors.update(atoms.positions)
    pairs = snap_pairs(atoms, params, skin_list)
    beta = np.tile(potential.coeffs[0, 1:params.ncoeff + 1], (len(atoms), 1))
    args = kernel_inputs(params, pairs)
    dedr, _ = beta_forces_kernel(*args, beta, n_chunks(len(atoms)))
    zbl = ZBLPotential(potential.zbl, params.elements)
    dt = 1.0
    nchunk = n_chunks(len(atoms))
    return {
        "neighbor list built from scratch (not in a step: for comparison)": best_time(
            lambda: snap_pairs(atoms, params), repeats),
        "SNAP pairs from the skin list (VerletList.update, no rebuild, + snap_pairs)": best_time(
            lambda: snap_pairs(atoms, params, system.neighbors.update(atoms.positions)), repeats),
        "SNAP U, Y, dE/dr kernel": best_time(lambda: beta_forces_kernel(*args, beta, nchunk),
                                            repeats),
        "pair-force scatter and virial": best_time(lambda: scatter_pair_forces(
            len(atoms), pairs.i, pairs.j, pairs.rij, dedr), repeats),
        "ZBL (pairs from the skin list + kernel)": best_time(
            lambda: zbl.energy_forces_virial(atoms, skin_list), repeats),
        "Verlet kernels + kinetic energy": best_time(lambda: (
            verlet_drift(state.positions, state.velocities, state.forces, system.inv_mass, dt,
                         nchunk),
            verlet_kick(state.velocities, state.forces, system.inv_mass, dt, nchunk),
            kinetic_energy(state.velocities, system.masses)), repeats),
        "whole evaluate (SnapPotential.evaluate, skin list)": best_time(
            lambda: potential.evaluate(atoms, skin_list), repeats),
    }


def grind_times(args):
    atoms = structure()
    n = len(atoms)
    us = lambda seconds: 1e6 * seconds / n  # noqa: E731
    snap = load_potential(PUBLISHED / "W_2940_2017_2.snap")
    reference = load_potential("reference:W")
    velocities = maxwell_boltzmann(atoms.get_masses(), 300.0, seed=0)
    numba.set_num_threads(1)
    rows, started = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        cold, warm = first_call_seconds(tmp, FIRST_CALL), first_call_seconds(tmp, FIRST_CALL)
        table = Path(tmp) / "W_AT.eam.fs"
        write_setfl(table, reference)
        for name, potential, commands, steps in [
                ("published W SNAP+ZBL", snap, published_pair_commands(PUBLISHED), args.steps),
                ("reference:W (Finnis-Sinclair)", reference,
                 ["pair_style eam/fs", f"pair_coeff * * {table} W"], args.reference_steps)]:
            system = MDSystem(potential, atoms)
            start = nve_init(system, atoms.positions, velocities)
            started[name] = system, start
            t = step_times(system, start, commands, steps, args.repeats)
            rows.append((name, us(t["lammps"]), us(t["lammps_energy"]), us(t["emtool_1"]),
                         t["emtool_1"] / t["lammps"], t["emtool_1"] / t["lammps_energy"],
                         us(t["emtool_2"]), t["emtool_1"] / t["emtool_2"]))
        breakdown = step_breakdown(snap, atoms, *started["published W SNAP+ZBL"], args.repeats)
    print(f"# MD (velocity Verlet, dt = {TIMESTEP:g} fs), {n}-atom BCC W at 300 K, µs per "
          f"atom-step, best of {args.repeats} rounds of {args.steps} steps (SNAP+ZBL) and "
          f"{args.reference_steps} steps (reference:W)")
    print("| potential | LAMMPS 1T, forces only | LAMMPS 1T, energy every step | emtool 1T "
          "| ratio | ratio (energy every step) | emtool 2T | 2T speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, lmp, lmp_e, one, ratio, ratio_e, two, speedup in rows:
        print(f"| {name} | {lmp:.2f} | {lmp_e:.2f} | {one:.2f} | {ratio:.2f} | {ratio_e:.2f} | "
              f"{two:.2f} | {speedup:.2f} |")
    print()
    print("| emtool SNAP+ZBL step, 1 thread | µs/atom |")
    print("|---|---:|")
    for stage, seconds in breakdown.items():
        print(f"| {stage} | {us(seconds):.2f} |")
    print()
    print(f"JIT: first SNAP+ZBL MD step of a fresh process {cold:.1f} s with an empty Numba "
          f"cache (compilation), {warm:.1f} s with the cache it left")


def nve_table(args):
    """Paper Fig. 5 protocol, published SNAP+ZBL: emtool and LAMMPS from one start."""
    numba.set_num_threads(1)
    potential = load_potential(PUBLISHED / "W_2940_2017_2.snap")
    protocol = NVEProtocol(timesteps=PAPER_TIMESTEPS, seed=args.seed)
    started = time.perf_counter()
    ours = energy_conservation(potential, protocol)
    seconds_ours = time.perf_counter() - started
    system = MDSystem(potential, bcc_tungsten())
    start = equilibrate(system, protocol)
    started = time.perf_counter()
    theirs = [lammps_nve_row(system, start, published_pair_commands(PUBLISHED), t, protocol)
              for t in protocol.timesteps]
    seconds_theirs = time.perf_counter() - started
    print(f"# Paper Fig. 5 protocol, published W SNAP+ZBL, 16 atoms, {protocol.temperature:g} K "
          f"(start {ours['equilibrated_temperature']:.0f} K), {protocol.duration:g} fs per "
          f"timestep, n = {protocol.samples}, seed {protocol.seed}")
    print("| dt (fs) | emtool dH (eV/atom) | LAMMPS dH (eV/atom) | difference / combined error "
          "| relative difference | emtool <T> (K) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row, lmp in zip(ours["table"], theirs):
        sigma = np.hypot(row["delta_h_error"] or 0.0, lmp["delta_h_error"] or 0.0)
        difference = row["delta_h"] - lmp["delta_h"]
        print(f"| {row['timestep']:g} | {row['delta_h']:.4e} ± {row['delta_h_error']:.1e} | "
              f"{lmp['delta_h']:.4e} ± {lmp['delta_h_error']:.1e} | {difference / sigma:+.2g} | "
              f"{abs(difference) / lmp['delta_h']:.1e} | {row['mean_temperature']:.0f} |")
    fit = [k for k, t in enumerate(protocol.timesteps) if t <= protocol.fit_max_timestep]
    slope_theirs, error_theirs = loglog_slope([protocol.timesteps[k] for k in fit],
                                              [theirs[k]["delta_h"] for k in fit])
    print(f"\nslope dt <= {protocol.fit_max_timestep:g} fs: emtool {ours['slope']:.3f} ± "
          f"{ours['slope_error']:.3f}, LAMMPS {slope_theirs:.3f} ± {error_theirs:.3f}; wall time "
          f"emtool {seconds_ours:.0f} s (incl. equilibration), LAMMPS {seconds_theirs:.0f} s")


def skin_sweep(args, skins=(0.5, 0.6, 0.7, 0.8, 1.0), temperatures=(300.0, 1500.0, 3000.0), steps=1000):
    """reference:W step time and list builds against the neighbor skin (1 thread)."""
    from emtool.dynamics.integrators import run
    numba.set_num_threads(1)
    atoms = structure()
    reference = load_potential("reference:W")
    print(f"# reference:W MD, {len(atoms)}-atom BCC W, dt = {TIMESTEP:g} fs, 1 thread: µs per "
          f"atom-step (best of {args.repeats} rounds of {steps} steps after {steps} of "
          f"equilibration) and list builds per {steps} steps")
    print("| start temperature | " + " | ".join(f"skin {k:g} Å" for k in skins)
          + " | builds (" + " / ".join(f"{k:g}" for k in skins) + ") |")
    print("|---|" + "---:|" * len(skins) + "---|")
    for temperature in temperatures:
        times, builds = [], []
        for skin in skins:
            best = np.inf
            for _ in range(args.repeats):
                system = MDSystem(reference, atoms, skin=skin)
                state = nve_init(system, atoms.positions,
                                 maxwell_boltzmann(system.masses, temperature, 0))
                for _, state in run(system, state, TIMESTEP, steps):
                    pass
                before = system.neighbors.builds
                start = time.perf_counter()
                for _, state in run(system, state, TIMESTEP, steps):
                    pass
                best = min(best, (time.perf_counter() - start) / steps / len(atoms) * 1e6)
            times.append(best)
            builds.append(system.neighbors.builds - before)
        print(f"| {temperature:g} K | " + " | ".join(f"{t:.3f}" for t in times) + " | "
              + " / ".join(map(str, builds)) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--reference-steps", type=int, default=100,
                        help="Steps per round of the reference:W rows (a step takes ms: a few "
                             "steps would time the start of a round, not the step).")
    parser.add_argument("--nve-table", action="store_true",
                        help="Run the paper-length dH table in emtool and LAMMPS instead.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the --nve-table start.")
    parser.add_argument("--skin-sweep", action="store_true",
                        help="Time reference:W MD against the neighbor skin instead.")
    args = parser.parse_args()
    if args.nve_table:
        nve_table(args)
    elif args.skin_sweep:
        skin_sweep(args)
    else:
        grind_times(args)


if __name__ == "__main__":
    main()
