"""Molecular dynamics integrators with any emtool potential (Python layer over
:mod:`emtool.kernels.verlet`).

- NVE: velocity Verlet, ``nve_init`` / ``nve_step`` on an explicit ``MDState``; a step
  evaluates the potential once and carries the new forces to the next step.
- NVT: velocity Verlet followed, every step, by the CSVR thermostat (canonical sampling
  through velocity rescaling, Bussi, Donadio and Parrinello, J. Chem. Phys. 126, 014101
  (2007)): all velocities are scaled by one stochastic factor so that the kinetic energy
  samples the canonical distribution, relaxing with time constant tau. The energy it moves
  to the heat bath is kept in ``MDState.reservoir``; H + reservoir is conserved like H in NVE,
  which checks the NVT dynamics.

Units: Å, eV, amu, K. Every time at this API (timesteps, durations, tau) is in fs and is
converted to ASE's time unit by :func:`ase_time`, the one place where that happens.
Velocities are ASE's (``atoms.get_velocities()``, Å per ASE time unit), so the kinetic
energy 1/2 m v^2 is in eV. Temperatures count ndof = 3N - 3 degrees of freedom: velocities
are drawn with zero total momentum, and both integrators conserve it.
"""
import inspect
import math
from typing import NamedTuple

import numpy as np
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator

from emtool.errors import MDError, ParameterError, StructureError
from emtool.kernels.verlet import csvr_factor, kinetic_energy, verlet_drift, verlet_kick
from emtool.descriptors.neighbors import VerletList, check_overlap
from emtool.parallel import run_kernel
from emtool.structure import check_structure

#: A run has diverged when its temperature exceeds this factor times the largest of its start
#: temperature, its thermostat target and ``DIVERGENCE_FLOOR`` (K).
DIVERGENCE_FACTOR = 10.0
DIVERGENCE_FLOOR = 1000.0

#: Neighbor-list skin (Å) of MD with emtool's own potentials: the list at cutoff + skin is
#: rebuilt only when an atom has moved more than skin / 2 (``VerletList``). 0.5 Å, not 1:
#: for W's Finnis-Sinclair cutoff (4.40 Å) a 1 Å skin takes in BCC's fourth shell (5.25 Å),
#: 50 pairs per atom to scan instead of 26, and MD of 2000 atoms at 300-3000 K is 10-20 %
#: slower than with 0.5-0.8 Å, whose extra rebuilds (every 20-50 steps) cost less
#: (``python bench/bench_md.py --skin-sweep``, bench/RESULTS.md).
NEIGHBOR_SKIN = 0.5

#: Steps between checks that no two atoms came closer than
#: ``emtool.descriptors.neighbors.OVERLAP_DISTANCE`` (the run has then diverged too).
OVERLAP_CHECK_EVERY = 100


def ase_time(fs):
    """A time in fs converted to ASE time units (Å sqrt(amu/eV)); the one conversion of md."""
    return fs * units.fs


def check_positive(name, value, unit):
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ParameterError(f"{name} must be > 0 {unit}, got {value}")
    return value


def check_temperature(name, value):
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ParameterError(f"{name} must be >= 0 K, got {value}")
    return value


def check_count(name, value, minimum=1):
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
    skin : float
        Neighbor-list skin (Å) for potentials whose ``evaluate`` takes ``neighbors`` (emtool's
        SNAP, network, ZBL and reference potentials): their pairs come from a ``VerletList``,
        and the forces are those of a list rebuilt at every step, bit for bit. Others (the
        universal potentials, ASE calculators) build their own lists.
    """

    def __init__(self, potential, atoms, skin=NEIGHBOR_SKIN):
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
        takes_neighbors = "neighbors" in inspect.signature(potential.evaluate).parameters
        self.neighbors = (VerletList(cell, pbc, potential.cutoff, skin) if takes_neighbors
                          else None)

    def __len__(self):
        return len(self.masses)

    @property
    def positions(self):
        """The positions (N, 3) Å of the structure the system was made from (a copy)."""
        return self._start.copy()

    def evaluate(self, positions):
        """(potential energy in eV, forces float64 (N, 3) in eV/Å) at ``positions`` (N, 3) Å."""
        self._atoms.positions = positions
        if self.neighbors is None:
            result = self.potential.evaluate(self._atoms)
        else:
            result = self.potential.evaluate(self._atoms, neighbors=self.neighbors.update(positions))
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
    temperature = check_temperature("temperature", temperature)
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
        self.temperature = check_temperature("thermostat temperature", temperature)
        self.tau = check_positive("thermostat tau", tau, "fs")
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
    timestep = check_positive("timestep", timestep, "fs")
    steps = check_count("steps", steps, 0)
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
