"""The paper's energy-conservation test ("Simulation Stability", Eq. 2, Fig. 5).

From one equilibrated state (CSVR, :mod:`emtool.dynamics.integrators`), NVE runs of equal
length at several timesteps dt, each sampled n times, give

    dH(dt) = 1/(n N) sum_{i=1..n} |H(t_i; dt) - H(t_0)|           (eV/atom)

which velocity Verlet makes proportional to dt^2 for small dt (:func:`energy_conservation`).
"""
import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from emtool import plots
from emtool.dynamics.integrators import (CSVRThermostat, MDSystem, check_count, check_positive,
                                         check_temperature, maxwell_boltzmann, nve_init, run)
from emtool.dynamics.md import TrajectoryWriter, progress_stride
from emtool.errors import MDError, ParameterError

#: Samples of an NVE run are averaged in this many consecutive blocks for the error of dH.
ERROR_BLOCKS = 10

#: Timesteps (fs) of the paper's Fig. 5.
PAPER_TIMESTEPS = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 12.0)


@dataclass(frozen=True)
class NVEProtocol:
    """Settings of :func:`energy_conservation` (defaults: the paper's protocol).

    Attributes
    ----------
    timesteps : tuple of float
        NVE timesteps dt (fs), each > 0.
    temperature : float
        Equilibration temperature (K): Maxwell–Boltzmann start, then CSVR.
    duration : float
        Length of every NVE run (fs); a run has round(duration/dt) steps.
    samples : int
        n of Eq. 2: H is sampled at steps floor(i steps/n), i = 1..n (every step if a run has
        fewer than n steps).
    equilibration : float
        Length of the CSVR equilibration (fs) at ``equilibration_timestep`` fs with time
        constant ``tau`` fs.
    fit_max_timestep : float
        The log-log slope of dH(dt) is fitted over dt <= this (fs).
    seed : int
        Seed of the velocities and of the thermostat.
    """

    timesteps: tuple = PAPER_TIMESTEPS
    temperature: float = 3000.0
    duration: float = 7500.0
    samples: int = 1000
    equilibration: float = 5000.0
    equilibration_timestep: float = 1.0
    tau: float = 100.0
    fit_max_timestep: float = 4.0
    seed: int = 0

    def __post_init__(self):
        timesteps = tuple(check_positive("timestep", t, "fs") for t in np.atleast_1d(self.timesteps))
        if not timesteps:
            raise ParameterError("give at least one timestep")
        object.__setattr__(self, "timesteps", timesteps)
        object.__setattr__(self, "temperature", check_temperature("temperature", self.temperature))
        object.__setattr__(self, "duration", check_positive("duration", self.duration, "fs"))
        object.__setattr__(self, "samples", check_count("samples", self.samples))
        if float(self.equilibration) < 0.0 or not math.isfinite(self.equilibration):
            raise ParameterError(f"equilibration must be >= 0 fs, got {self.equilibration}")
        check_positive("equilibration timestep", self.equilibration_timestep, "fs")
        check_positive("tau", self.tau, "fs")
        check_positive("fit_max_timestep", self.fit_max_timestep, "fs")
        check_count("seed", self.seed, 0)


def bcc_tungsten(repeat=2, a=3.1652):
    """The paper's NVE cell: BCC W, ``repeat``^3 cubic cells (16 atoms for 2), a in Å.
    (``ase.build.bulk("W", "bcc", a=a, cubic=True)``, built here without importing
    ``ase.build``, which costs half a second of an MD run's start-up.)"""
    cell = Atoms("W2", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[a, a, a], pbc=True)
    return cell.repeat(repeat)


def equilibrate(system, protocol, tick=None):
    """The shared start of the NVE runs: Maxwell–Boltzmann velocities at
    ``protocol.temperature``, CSVR NVT for ``protocol.equilibration`` fs from the system's
    positions, then the velocities scaled so that H equals the mean H of the second half of
    the NVT run (the canonical mean energy at that temperature; in a 16-atom cell a single
    NVT state's H is typically 20% off, which would shift the NVE temperature by as much).
    Returns the ``MDState`` (reservoir 0). ``tick()`` is called after every MD step."""
    rng = np.random.default_rng(protocol.seed)
    velocities = maxwell_boltzmann(system.masses, protocol.temperature, rng)
    state = nve_init(system, system.positions, velocities)
    steps = round(protocol.equilibration / protocol.equilibration_timestep)
    if steps == 0 or protocol.temperature == 0.0:
        return state
    thermostat = CSVRThermostat(protocol.temperature, protocol.tau, rng)
    energies = []
    for step, state in run(system, state, protocol.equilibration_timestep, steps, thermostat):
        if 2 * step > steps:
            energies.append(state.total_energy)
        if tick:
            tick()
    kinetic = np.mean(energies) - state.potential_energy
    if kinetic > 0.0:
        scale = math.sqrt(kinetic / state.kinetic_energy)
        state = state._replace(velocities=scale * state.velocities, kinetic_energy=kinetic)
    return state._replace(reservoir=0.0)


def sample_steps(steps, samples):
    """Steps floor(i steps / n), i = 1..n, with n = min(samples, steps): int64 (n,)."""
    n = min(samples, steps)
    return np.arange(1, n + 1, dtype=np.int64) * steps // n


def delta_h(total_energies, h0, natoms):
    """Eq. 2: dH = 1/(n N) sum_i |H_i - H_0| (eV/atom) of n sampled total energies (eV)."""
    return float(np.mean(np.abs(np.asarray(total_energies) - h0)) / natoms)


def block_error(values, blocks=ERROR_BLOCKS):
    """Standard error of the mean of correlated samples: the spread of ``blocks`` consecutive
    block means / sqrt(blocks). None with fewer than 2 samples per block."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 * blocks:
        return None
    means = np.array([b.mean() for b in np.array_split(values, blocks)])
    return float(means.std(ddof=1) / math.sqrt(blocks))


def loglog_slope(x, y):
    """Least-squares slope of log y against log x, and its standard error (None for 2
    points). Points with y <= 0 or non-finite y are left out; None, None if < 2 remain."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(y) & (y > 0.0)
    if keep.sum() < 2:
        return None, None
    lx, ly = np.log(x[keep]), np.log(y[keep])
    lx_c = lx - lx.mean()
    sxx = lx_c @ lx_c
    slope = float(lx_c @ (ly - ly.mean()) / sxx)
    if keep.sum() == 2:
        return slope, None
    residual = ly - ly.mean() - slope * lx_c
    return slope, float(math.sqrt(residual @ residual / (keep.sum() - 2) / sxx))


def nve_run(system, start, timestep, protocol, writer=None, tick=None):
    """One NVE run of ``protocol.duration`` fs at ``timestep`` fs from the ``start`` state.

    Returns a table row: timestep (fs), steps, samples, delta_h and delta_h_error (eV/atom,
    Eq. 2 and :func:`block_error` of the |H_i - H_0|/N), drift (eV/atom/ps, least-squares
    slope of H(t)/N), mean_temperature (K), diverged (bool; values None when it diverged).
    ``writer``: a TrajectoryWriter for the sampled frames; ``tick()``: called every step.
    """
    steps = max(1, round(protocol.duration / timestep))
    when = sample_steps(steps, protocol.samples)
    state = nve_init(system, start.positions, start.velocities)
    h0 = state.total_energy
    if writer:
        writer.write(system.snapshot(state, step=0, time=0.0, timestep=timestep))
    energies, kinetic = [], []
    k = 0
    row = dict(timestep=timestep, steps=steps, samples=len(when))
    try:
        for step, state in run(system, state, timestep, steps):
            if step == when[k]:
                energies.append(state.total_energy)
                kinetic.append(state.kinetic_energy)
                if writer:
                    writer.write(system.snapshot(state, step=step, time=step * timestep,
                                                 timestep=timestep))
                k += 1
            if tick:
                tick()
    except MDError:
        return dict(row, delta_h=None, delta_h_error=None, drift=None, mean_temperature=None,
                    diverged=True)
    n = len(system)
    deviation = np.abs(np.array(energies) - h0) / n
    times_ps = when * timestep * 1e-3
    drift = float(np.polyfit(times_ps, np.array(energies) / n, 1)[0]) if len(when) > 1 else None
    return dict(row, delta_h=delta_h(energies, h0, n), delta_h_error=block_error(deviation),
                drift=drift, mean_temperature=system.temperature(float(np.mean(kinetic))),
                diverged=False)


def energy_conservation(potential, protocol=NVEProtocol(), atoms=None, trajectory=None,
                        progress=None):
    """The paper's energy-conservation protocol (Eq. 2, Fig. 5) for one potential.

    ``atoms`` (default :func:`bcc_tungsten`, 16 atoms) gets Maxwell–Boltzmann velocities at
    ``protocol.temperature`` and is equilibrated with the CSVR thermostat; every NVE run then
    starts from that same state (positions, velocities). ``trajectory``: optional
    ``.traj``/``.extxyz`` path receiving every sampled frame of every run (t_0 included; info
    ``timestep``, ``step``, ``time`` in fs). ``progress(done, total)`` counts MD steps.

    Returns
    -------
    dict: natoms, temperature (K), equilibrated_temperature (K, of the shared start),
    duration (fs), samples, seed, table (list of :func:`nve_run` rows), slope and slope_error
    (log-log slope of dH over dt <= fit_max_timestep), slope_timesteps (fs), seconds.
    """
    atoms = bcc_tungsten() if atoms is None else atoms
    system = MDSystem(potential, atoms)
    equilibration_steps = round(protocol.equilibration / protocol.equilibration_timestep)
    total = equilibration_steps + sum(max(1, round(protocol.duration / t))
                                      for t in protocol.timesteps)
    stride = progress_stride(total)
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress and (done % stride == 0 or done == total):
            progress(done, total)

    start_time = time.perf_counter()
    writer = TrajectoryWriter(trajectory) if trajectory else None
    with writer or contextlib.nullcontext():
        start = equilibrate(system, protocol, tick)
        done = equilibration_steps
        table = [nve_run(system, start, t, protocol, writer, tick) for t in protocol.timesteps]
    fitted = [r for r in table if r["timestep"] <= protocol.fit_max_timestep and not r["diverged"]]
    slope, error = loglog_slope([r["timestep"] for r in fitted], [r["delta_h"] for r in fitted])
    return dict(natoms=len(system), temperature=protocol.temperature,
                equilibrated_temperature=system.temperature(start.kinetic_energy),
                duration=protocol.duration, samples=protocol.samples, seed=protocol.seed,
                table=table, slope=slope, slope_error=error,
                slope_timesteps=[r["timestep"] for r in fitted],
                seconds=time.perf_counter() - start_time)


def format_table(result):
    """The dH(dt) table and the slope of an :func:`energy_conservation` result, as text."""
    lines = [f"{'dt (fs)':>8} {'steps':>7} {'samples':>7} {'dH (eV/atom)':>13} {'± error':>9} "
             f"{'drift (eV/atom/ps)':>19} {'<T> (K)':>8}"]
    for r in result["table"]:
        head = f"{r['timestep']:8.3g} {r['steps']:7d} {r['samples']:7d}"
        if r["diverged"]:
            lines.append(f"{head} {'diverged':>13}")
            continue
        error = "-" if r["delta_h_error"] is None else f"{r['delta_h_error']:.2e}"
        drift = "-" if r["drift"] is None else f"{r['drift']:.2e}"
        lines.append(f"{head} {r['delta_h']:13.4e} {error:>9} {drift:>19} "
                     f"{r['mean_temperature']:8.0f}")
    if result["slope"] is None:
        lines.append("slope: fewer than 2 stable timesteps <= the fit limit")
    else:
        error = "" if result["slope_error"] is None else f" ± {result['slope_error']:.2f}"
        limit = max(result["slope_timesteps"])
        lines.append(f"log-log slope of dH for dt <= {limit:g} fs: {result['slope']:.3f}{error} "
                     f"(velocity Verlet: 2)")
    return "\n".join(lines)


def plot_energy_conservation(result, path, label=None):
    """Log-log plot of dH(dt) with its error bars, the fitted slope and a dt^2 guide (paper
    Fig. 5), drawn by :func:`emtool.plots.energy_conservation`; the format follows the suffix
    of ``path`` (.png, .pdf, .svg). Both power laws go through the geometric mean of the
    fitted points."""
    rows = [r for r in result["table"] if not r["diverged"] and r["delta_h"] > 0]
    dt = np.array([r["timestep"] for r in rows])
    dh = np.array([r["delta_h"] for r in rows])
    err = np.array([r["delta_h_error"] or 0.0 for r in rows])
    fit = square = None
    if result["slope"] is not None:
        fitted = np.array(result["slope_timesteps"])
        log_fitted = np.log([r["delta_h"] for r in rows if r["timestep"] in set(fitted)])
        fit_prefactor, square = (np.exp(np.mean(log_fitted - slope * np.log(fitted)))
                                 for slope in (result["slope"], 2.0))
        fit = (result["slope"], fit_prefactor)
    title = (f"NVE, {result['natoms']} atoms, {result['temperature']:g} K, "
             f"{result['duration'] / 1000:g} ps")
    return plots.energy_conservation(dt, dh, err, path, label=label or "emtool", title=title,
                                     fit=fit, square=square)
