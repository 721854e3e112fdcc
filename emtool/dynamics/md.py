"""Molecular dynamics with any emtool potential, and the paper's energy-conservation protocol.

Integrators (Python layer over :mod:`emtool.kernels.verlet`):

- NVE: velocity Verlet, ``nve_init`` / ``nve_step`` on an explicit ``MDState``; a step
  evaluates the potential once and carries the new forces to the next step.
- NVT: velocity Verlet followed, every step, by the CSVR thermostat (canonical sampling
  through velocity rescaling, Bussi, Donadio and Parrinello, J. Chem. Phys. 126, 014101
  (2007)): all velocities are scaled by one stochastic factor so that the kinetic energy
  samples the canonical distribution, relaxing with time constant tau. The energy it moves
  to the heat bath is kept in ``MDState.reservoir``; H + reservoir is conserved like H in NVE,
  which checks the NVT dynamics. It is used to equilibrate before NVE runs.

Units: Å, eV, amu, K. Every time at this API (timesteps, durations, tau) is in fs and is
converted to ASE's time unit by :func:`ase_time`, the one place where that happens.
Velocities are ASE's (``atoms.get_velocities()``, Å per ASE time unit), so the kinetic
energy 1/2 m v^2 is in eV. Temperatures count ndof = 3N - 3 degrees of freedom: velocities
are drawn with zero total momentum, and both integrators conserve it.

Energy conservation (paper, "Simulation Stability", Eq. 2, Fig. 5): from one equilibrated
state, NVE runs of equal length at several timesteps dt, each sampled n times, give

    dH(dt) = 1/(n N) sum_{i=1..n} |H(t_i; dt) - H(t_0)|           (eV/atom)

which velocity Verlet makes proportional to dt^2 for small dt (:func:`energy_conservation`).
"""
import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from emtool import plots
from emtool.errors import EmtoolError, MDError, ParameterError, StructureError, interrupted
from emtool.files import StagedFile
from emtool.kernels.verlet import csvr_factor, kinetic_energy, verlet_drift, verlet_kick
from emtool.descriptors.neighbors import check_overlap
from emtool.parallel import run_kernel
from emtool.structure import check_structure

#: Samples of an NVE run are averaged in this many consecutive blocks for the error of dH.
ERROR_BLOCKS = 10

#: Trajectory file suffixes and the ASE format written for each.
TRAJECTORY_FORMATS = {".traj": "traj", ".xyz": "extxyz", ".extxyz": "extxyz"}


#: A run has diverged when its temperature exceeds this factor times the largest of its start
#: temperature, its thermostat target and ``DIVERGENCE_FLOOR`` (K).
DIVERGENCE_FACTOR = 10.0
DIVERGENCE_FLOOR = 1000.0

#: Steps between checks that no two atoms came closer than
#: ``emtool.descriptors.neighbors.OVERLAP_DISTANCE`` (the run has then diverged too).
OVERLAP_CHECK_EVERY = 100




def ase_time(fs):
    """A time in fs converted to ASE time units (Å sqrt(amu/eV)); the one conversion of md."""
    return fs * units.fs


def _positive(name, value, unit):
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ParameterError(f"{name} must be > 0 {unit}, got {value}")
    return value


def _temperature(name, value):
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ParameterError(f"{name} must be >= 0 K, got {value}")
    return value


def _count(name, value, minimum=1):
    if isinstance(value, (bool, np.bool_)) or int(value) != value or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class MDState(NamedTuple):
    """State of a trajectory at one time.

    positions : float64 (N, 3), Å, never wrapped into the cell (continuous trajectories).
    velocities : float64 (N, 3), ASE units (Å per ASE time unit).
    forces : float64 (N, 3), eV/Å, at ``positions``.
    potential_energy, kinetic_energy : float, eV.
    reservoir : float, eV, the kinetic energy a thermostat has moved to its heat bath so far
        (0 in NVE); ``total_energy + reservoir`` is conserved by both integrators.
    """

    positions: np.ndarray
    velocities: np.ndarray
    forces: np.ndarray
    potential_energy: float
    kinetic_energy: float
    reservoir: float = 0.0

    @property
    def total_energy(self):
        """H = potential + kinetic energy (eV)."""
        return self.potential_energy + self.kinetic_energy


class MDSystem:
    """An emtool potential bound to one structure: cell, periodicity, species and masses are
    fixed, positions vary.

    Parameters
    ----------
    potential
        Anything with ``evaluate(atoms) -> dict(energy=eV, forces=(N, 3) eV/Å, ...)``, e.g.
        ``emtool.potentials.calculators.load_potential(spec)``.
    atoms : ase.Atoms
        At least 2 atoms, no two closer than ``emtool.descriptors.neighbors.OVERLAP_DISTANCE``; masses from
        ``atoms.get_masses()`` (amu, ASE's standard masses unless set).
    """

    def __init__(self, potential, atoms):
        if len(atoms) < 2:
            raise StructureError(f"molecular dynamics needs at least 2 atoms, got {len(atoms)}")
        positions, cell, pbc = check_structure(atoms.positions, atoms.cell.array, atoms.pbc)
        check_overlap(positions, cell, pbc)
        masses = np.ascontiguousarray(atoms.get_masses(), dtype=np.float64)
        if not (np.all(np.isfinite(masses)) and np.all(masses > 0.0)):
            raise ParameterError("atomic masses must be finite and > 0 amu")
        self.potential = potential
        self.cell, self.pbc = cell, pbc
        self.masses = masses
        self.inv_mass = 1.0 / masses
        self.ndof = 3 * len(atoms) - 3
        self._atoms = atoms.copy()
        self._atoms.calc = None
        self._atoms.positions = positions
        self._start = positions

    def __len__(self):
        return len(self.masses)

    @property
    def positions(self):
        """The positions (N, 3) Å of the structure the system was made from (a copy)."""
        return self._start.copy()

    def evaluate(self, positions):
        """(potential energy in eV, forces float64 (N, 3) in eV/Å) at ``positions`` (N, 3) Å."""
        self._atoms.positions = positions
        result = self.potential.evaluate(self._atoms)
        energy = float(result["energy"])
        forces = np.ascontiguousarray(result["forces"], dtype=np.float64)
        if not (math.isfinite(energy) and np.all(np.isfinite(forces))):
            raise MDError("the potential returned non-finite energy or forces: the dynamics "
                          "became unstable (timestep too large?)")
        return energy, forces

    def temperature(self, kinetic):
        """Instantaneous temperature (K) of a kinetic energy (eV): 2 K / (ndof k_B)."""
        return 2.0 * kinetic / (self.ndof * units.kB)

    def snapshot(self, state, **info):
        """ase.Atoms of ``state``: positions, velocities, a SinglePointCalculator with the
        potential energy and forces, ``info`` plus the kinetic and total energy (eV) and the
        temperature (K)."""
        atoms = self._atoms.copy()
        atoms.positions = state.positions
        atoms.set_velocities(state.velocities)
        atoms.info.update(info, kinetic_energy=state.kinetic_energy,
                          total_energy=state.total_energy,
                          temperature=self.temperature(state.kinetic_energy))
        atoms.calc = SinglePointCalculator(atoms, energy=state.potential_energy,
                                           forces=state.forces.copy())
        return atoms


def maxwell_boltzmann(masses, temperature, seed=0):
    """Maxwell–Boltzmann velocities (N, 3), ASE units, at exactly ``temperature`` (K).

    Each component is drawn from N(0, k_B T / m_a), the total momentum is removed, and the
    velocities are scaled so that the instantaneous temperature (3N - 3 degrees of freedom)
    equals ``temperature``. ``seed``: int or numpy Generator. N >= 2.
    """
    masses = np.asarray(masses, dtype=np.float64)
    temperature = _temperature("temperature", temperature)
    if masses.ndim != 1 or len(masses) < 2 or not np.all(masses > 0.0):
        raise ParameterError("maxwell_boltzmann needs the masses (amu, > 0) of at least 2 atoms")
    if temperature == 0.0:
        return np.zeros((len(masses), 3))
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((len(masses), 3)) * np.sqrt(units.kB * temperature / masses)[:, None]
    v -= masses @ v / masses.sum()
    current = 2.0 * kinetic_energy(v, masses) / ((3 * len(masses) - 3) * units.kB)
    return v * math.sqrt(temperature / current)


def nve_init(system, positions, velocities):
    """The ``MDState`` at ``positions`` (N, 3) Å with ``velocities`` (N, 3) ASE units."""
    positions = np.array(positions, dtype=np.float64)
    velocities = np.array(velocities, dtype=np.float64)
    if positions.shape != (len(system), 3) or velocities.shape != (len(system), 3):
        raise ParameterError(f"positions and velocities must have shape ({len(system)}, 3), "
                             f"got {positions.shape} and {velocities.shape}")
    if not np.all(np.isfinite(velocities)):
        raise ParameterError("velocities contain non-finite values")
    energy, forces = system.evaluate(positions)
    return MDState(positions, velocities, forces, energy, kinetic_energy(velocities, system.masses))


def nve_step(system, state, timestep):
    """One velocity-Verlet step of ``timestep`` fs: returns the new ``MDState``, whose forces
    the next step reuses (one potential evaluation per step)."""
    dt = ase_time(timestep)
    n = len(system)
    positions, half = run_kernel(verlet_drift, n, state.positions, state.velocities,
                                 state.forces, system.inv_mass, dt)
    energy, forces = system.evaluate(positions)
    velocities = run_kernel(verlet_kick, n, half, forces, system.inv_mass, dt)
    return MDState(positions, velocities, forces, energy,
                   kinetic_energy(velocities, system.masses), state.reservoir)


class CSVRThermostat:
    """CSVR (Bussi–Donadio–Parrinello) thermostat at ``temperature`` K with time constant
    ``tau`` fs; ``seed`` (int or numpy Generator) drives its random numbers."""

    def __init__(self, temperature, tau=100.0, seed=0):
        self.temperature = _temperature("thermostat temperature", temperature)
        self.tau = _positive("thermostat tau", tau, "fs")
        self.rng = np.random.default_rng(seed)

    def apply(self, system, state, timestep):
        """``state`` after the thermostat acted for ``timestep`` fs (velocities scaled,
        the kinetic energy change booked in the reservoir)."""
        kinetic = state.kinetic_energy
        if kinetic == 0.0:
            raise MDError("the CSVR thermostat cannot act on atoms at rest: start from "
                          "nonzero velocities (e.g. maxwell_boltzmann)")
        target = 0.5 * system.ndof * units.kB * self.temperature
        decay = math.exp(-timestep / self.tau)
        r1 = self.rng.standard_normal()
        chi2 = self.rng.chisquare(system.ndof - 1)
        alpha = csvr_factor(kinetic, target, system.ndof, decay, r1, chi2)
        new_kinetic = alpha * alpha * kinetic
        return state._replace(velocities=alpha * state.velocities, kinetic_energy=new_kinetic,
                              reservoir=state.reservoir + kinetic - new_kinetic)


def divergence_limit(system, state, thermostat=None):
    """Temperature (K) above which a run counts as diverged: ``DIVERGENCE_FACTOR`` times the
    largest of the start temperature, the thermostat's target and ``DIVERGENCE_FLOOR``."""
    target = thermostat.temperature if thermostat is not None else 0.0
    return DIVERGENCE_FACTOR * max(system.temperature(state.kinetic_energy), target,
                                   DIVERGENCE_FLOOR)


def run(system, state, timestep, steps, thermostat=None):
    """Yield ``(step, MDState)`` after each of ``steps`` steps of ``timestep`` fs (step = 1..).

    Velocity Verlet (NVE), followed by ``thermostat.apply`` each step when given (NVT).
    Raises ``MDError`` when the temperature exceeds ``divergence_limit``, or two atoms are
    closer than ``OVERLAP_DISTANCE`` (checked every ``OVERLAP_CHECK_EVERY`` steps and at the
    last): the dynamics diverged (timestep too large, or atoms thrown together).
    """
    timestep = _positive("timestep", timestep, "fs")
    steps = _count("steps", steps, 0)
    limit = divergence_limit(system, state, thermostat)
    for step in range(1, steps + 1):
        state = nve_step(system, state, timestep)
        if thermostat is not None:
            state = thermostat.apply(system, state, timestep)
        temperature = system.temperature(state.kinetic_energy)
        if not temperature <= limit:
            raise MDError(f"the dynamics diverged at step {step} ({step * timestep:g} fs): "
                          f"T = {temperature:.3g} K exceeds {limit:.3g} K (timestep too large?)")
        if step % OVERLAP_CHECK_EVERY == 0 or step == steps:
            try:
                check_overlap(state.positions, system.cell, system.pbc)
            except StructureError as err:
                raise MDError(f"the dynamics diverged at step {step} ({step * timestep:g} fs):"
                              f" {err}") from None
        yield step, state


def thermo_row(system, step, timestep, state):
    """Thermodynamic output of one step: dict of step, time (fs), energies (eV), temperature
    (K) and the conserved quantity H + reservoir (eV)."""
    return dict(step=step, time=step * timestep, potential_energy=state.potential_energy,
                kinetic_energy=state.kinetic_energy, total_energy=state.total_energy,
                temperature=system.temperature(state.kinetic_energy),
                conserved=state.total_energy + state.reservoir)


class TrajectoryWriter:
    """Streams frames to a file ASE reads back with ``ase.io.read(path, ":")``.

    ``.traj``: ASE's binary trajectory, full double precision. ``.xyz``/``.extxyz``:
    extended XYZ text (positions rounded to 1e-8 Å by ASE's writer). Each frame carries the
    velocities, the potential energy and forces, and its ``info``. Use as a context manager:
    frames go to a staged file (``emtool.files``) that replaces ``path`` when the run ends, is
    interrupted (Ctrl-C) or diverges (``EmtoolError``), and is deleted on any other error.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.format = TRAJECTORY_FORMATS.get(self.path.suffix.lower())
        if self.format is None:
            raise ParameterError(f"trajectory file {path}: suffix must be one of "
                                 f"{', '.join(TRAJECTORY_FORMATS)}")
        self._file = StagedFile(self.path)
        if self.format == "traj":
            from ase.io.trajectory import Trajectory
            self._handle = Trajectory(str(self._file.temporary), "w")
        else:
            self._handle = self._file.open("w")
        self.frames = 0

    def write(self, atoms):
        if self.format == "traj":
            self._handle.write(atoms)
        else:
            from ase.io import write
            write(self._handle, atoms, format="extxyz")
        self.frames += 1

    def close(self, keep=True):
        try:
            self._handle.close()
        except BaseException:
            self._file.close(keep=False)
            raise
        self._file.close(keep)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        self.close(keep=error is None or interrupted(error) or isinstance(error, EmtoolError))


def _stride(total, updates=200):
    return max(1, total // updates)


def run_md(atoms, potential, timestep, steps, temperature=None, thermostat_tau=None, seed=0,
           thermo_every=100, trajectory=None, trajectory_every=100, thermo=None, progress=None):
    """Plain MD driver: NVE, or NVT with the CSVR thermostat when ``thermostat_tau`` is given.

    Parameters
    ----------
    atoms : ase.Atoms
        Start structure. Its velocities are used if it has any nonzero ones (e.g. a frame of
        an emtool trajectory); otherwise Maxwell–Boltzmann velocities at ``temperature``
        (seeded by ``seed``; at rest if ``temperature`` is None).
    potential
        An emtool potential (``evaluate(atoms) -> dict``).
    timestep : float, fs.  steps : int.
    temperature : float, K
        Initial temperature (when the structure has no velocities); NVT target.
    thermostat_tau : float, fs, optional
        CSVR time constant; None gives NVE.
    thermo_every, trajectory_every : int
        Interval (steps) of ``thermo`` calls and trajectory frames (step 0 included).
    trajectory : path, optional
        ``.traj`` or ``.extxyz`` file (:class:`TrajectoryWriter`).
    thermo : callable(dict), optional
        Receives :func:`thermo_row` dicts.
    progress : callable(done, total), optional

    Returns
    -------
    dict: natoms, steps, seconds (wall time of the steps), ns_per_day, frames, and the last
    thermo row (``final``).
    """
    timestep = _positive("timestep", timestep, "fs")
    steps = _count("steps", steps, 0)
    thermo_every = _count("thermo interval", thermo_every)
    trajectory_every = _count("trajectory interval", trajectory_every)
    if temperature is not None:
        temperature = _temperature("temperature", temperature)
    thermostat = None
    if thermostat_tau is not None:
        if temperature is None:
            raise ParameterError("NVT needs a temperature")
        thermostat = CSVRThermostat(temperature, thermostat_tau, seed=[seed, 1])
    system = MDSystem(potential, atoms)
    velocities = atoms.get_velocities()
    if not np.any(velocities):
        velocities = maxwell_boltzmann(system.masses, temperature or 0.0, seed)
    state = nve_init(system, atoms.positions, velocities)
    thermo = thermo or (lambda row: None)
    writer = TrajectoryWriter(trajectory) if trajectory else None
    stride = _stride(steps)
    start = time.perf_counter()
    with writer or contextlib.nullcontext():
        thermo(thermo_row(system, 0, timestep, state))
        if writer:
            writer.write(system.snapshot(state, step=0, time=0.0, timestep=timestep))
        for step, state in run(system, state, timestep, steps, thermostat):
            if step % thermo_every == 0 or step == steps:
                thermo(thermo_row(system, step, timestep, state))
            if writer and step % trajectory_every == 0:
                writer.write(system.snapshot(state, step=step, time=step * timestep,
                                             timestep=timestep))
            if progress and (step % stride == 0 or step == steps):
                progress(step, steps)
    seconds = time.perf_counter() - start
    return dict(natoms=len(system), steps=steps, seconds=seconds,
                ns_per_day=steps * timestep * 1e-6 * 86400 / seconds,
                frames=writer.frames if writer else 0,
                final=thermo_row(system, steps, timestep, state))


# --- the paper's energy-conservation protocol -------------------------------------------

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
        timesteps = tuple(_positive("timestep", t, "fs") for t in np.atleast_1d(self.timesteps))
        if not timesteps:
            raise ParameterError("give at least one timestep")
        object.__setattr__(self, "timesteps", timesteps)
        object.__setattr__(self, "temperature", _temperature("temperature", self.temperature))
        object.__setattr__(self, "duration", _positive("duration", self.duration, "fs"))
        object.__setattr__(self, "samples", _count("samples", self.samples))
        if float(self.equilibration) < 0.0 or not math.isfinite(self.equilibration):
            raise ParameterError(f"equilibration must be >= 0 fs, got {self.equilibration}")
        _positive("equilibration timestep", self.equilibration_timestep, "fs")
        _positive("tau", self.tau, "fs")
        _positive("fit_max_timestep", self.fit_max_timestep, "fs")
        _count("seed", self.seed, 0)


def bcc_tungsten(repeat=2, a=3.1652):
    """The paper's NVE cell: BCC W, ``repeat``^3 cubic cells (16 atoms for 2), a in Å."""
    return bulk("W", "bcc", a=a, cubic=True).repeat(repeat)


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
    stride = _stride(total)
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
