"""``emtool md``: a run of the integrators (:mod:`emtool.dynamics.integrators`) from ASE
Atoms, with thermo output and a trajectory file written whole (``TrajectoryWriter``).
"""
import contextlib
import time
from pathlib import Path

import numpy as np

from emtool.dynamics.integrators import (NEIGHBOR_SKIN, CSVRThermostat, MDSystem, check_count,
                                         check_positive, check_temperature, maxwell_boltzmann,
                                         nve_init, run, thermo_row)
from emtool.errors import EmtoolError, ParameterError, interrupted
from emtool.files import StagedFile, uninterrupted

#: Trajectory file suffixes and the ASE format written for each.
TRAJECTORY_FORMATS = {".traj": "traj", ".xyz": "extxyz", ".extxyz": "extxyz"}


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
        """Append one frame; a Ctrl-C meanwhile takes effect once the frame is whole."""
        with uninterrupted():
            if self.format == "traj":
                self._handle.write(atoms)
            else:
                from ase.io import write
                write(self._handle, atoms, format="extxyz")
                self._handle.flush()
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


def progress_stride(total, updates=200):
    return max(1, total // updates)


def run_md(atoms, potential, timestep, steps, temperature=None, thermostat_tau=None, seed=0,
           thermo_every=100, trajectory=None, trajectory_every=100, thermo=None, progress=None,
           skin=NEIGHBOR_SKIN):
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
    skin : float, Å
        Neighbor-list skin of emtool's potentials (``MDSystem``).

    Returns
    -------
    dict: natoms, steps, seconds (wall time of the steps), ns_per_day, frames, and the last
    thermo row (``final``).
    """
    timestep = check_positive("timestep", timestep, "fs")
    steps = check_count("steps", steps, 0)
    thermo_every = check_count("thermo interval", thermo_every)
    trajectory_every = check_count("trajectory interval", trajectory_every)
    if temperature is not None:
        temperature = check_temperature("temperature", temperature)
    thermostat = None
    if thermostat_tau is not None:
        if temperature is None:
            raise ParameterError("NVT needs a temperature")
        thermostat = CSVRThermostat(temperature, thermostat_tau, seed=[seed, 1])
    system = MDSystem(potential, atoms, skin)
    velocities = atoms.get_velocities()
    if not np.any(velocities):
        velocities = maxwell_boltzmann(system.masses, temperature or 0.0, seed)
    state = nve_init(system, atoms.positions, velocities)
    thermo = thermo or (lambda row: None)
    writer = TrajectoryWriter(trajectory) if trajectory else None
    stride = progress_stride(steps)
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
