"""Molecular dynamics (emtool.dynamics: integrators, md, nve; emtool.kernels.verlet) and the
`emtool nve` / `emtool md`
commands: integrator kernels, units, thermostat statistics, reversibility, the dH ~ dt^2 law
of paper Eq. 2 / Fig. 5, trajectory files and bad input."""
import json
import math
import os
import signal

import numpy as np
import pytest
from ase import Atoms, units
from ase.io import read, write
from click.testing import CliRunner
from scipy import constants

from emtool.potentials.calculators import load_potential
from emtool.cli import main
from emtool.kernels.verlet import csvr_factor, kinetic_energy, verlet_drift, verlet_kick
from emtool.dynamics.integrators import (CSVRThermostat, MDSystem, ase_time, maxwell_boltzmann,
                                         nve_init, nve_step, run)
from emtool.dynamics.md import TrajectoryWriter
from emtool.dynamics.nve import (NVEProtocol, bcc_tungsten, block_error, delta_h,
                                 energy_conservation, equilibrate, loglog_slope, sample_steps)
from emtool.errors import MDError, ParameterError, StructureError
from emtool.potentials.snap import SnapPotential


class Harmonic:
    """E = k/2 sum_a |r_a - r0_a|^2 (eV, k in eV/Å^2): independent 3D oscillators."""

    def __init__(self, k, origin):
        self.k, self.origin = k, np.array(origin)

    def evaluate(self, atoms):
        d = atoms.positions - self.origin
        return dict(energy=0.5 * self.k * float(np.sum(d * d)), forces=-self.k * d)


def two_oscillators(k=1.0):
    atoms = Atoms("W2", positions=[[0, 0, 0], [2.5, 0, 0]], cell=[10, 10, 10], pbc=True)
    return MDSystem(Harmonic(k, atoms.positions), atoms)


@pytest.fixture(scope="module")
def reference():
    return load_potential("reference:W")


@pytest.fixture(scope="module")
def published(shared_data):
    return load_potential(shared_data / "lammps_W_SNAP" / "W_2940_2017_2.snap")


# --- kernels ------------------------------------------------------------------------------

def test_verlet_kernels_are_the_velocity_verlet_formulas_for_any_chunking():
    rng = np.random.default_rng(0)
    x, v, f = rng.normal(size=(3, 37, 3))
    inv_mass = 1.0 / rng.uniform(1, 200, 37)
    dt = 0.3
    half = v + 0.5 * dt * inv_mass[:, None] * f
    for nchunk in (1, 5, 37, 100):
        new_x, new_half = verlet_drift(x, v, f, inv_mass, dt, nchunk)
        np.testing.assert_array_equal(new_half, half)
        np.testing.assert_array_equal(new_x, x + dt * half)
        np.testing.assert_array_equal(verlet_kick(half, f, inv_mass, dt, nchunk),
                                      half + 0.5 * dt * inv_mass[:, None] * f)
    masses = 1.0 / inv_mass
    assert kinetic_energy(v, masses) == pytest.approx(0.5 * np.sum(masses[:, None] * v * v),
                                                      rel=1e-14)


def test_oscillator_period_in_fs_from_si_constants():
    """k = 1 eV/Å^2 and m = 183.84 amu: period 2 pi sqrt(m/k) from SI constants (not ASE's),
    so the fs conversion of the integrator is checked independently."""
    system = two_oscillators()
    period_fs = 2 * math.pi * math.sqrt(183.84 * constants.atomic_mass
                                        / (constants.electron_volt / 1e-20)) * 1e15
    x0 = system.positions
    x0[:, 0] += 0.1
    state = nve_init(system, x0, np.zeros((2, 3)))
    dt = period_fs / 2000
    for _, state in run(system, state, dt, 1000):
        pass
    # half a period later the oscillators are at the opposite turning point
    np.testing.assert_allclose(state.positions[:, 0] - system.positions[:, 0], -0.1, rtol=1e-6)


def test_oscillator_shadow_energy_is_conserved_to_round_off():
    """For harmonic forces velocity Verlet conserves exactly
    E_h = 1/2 m v^2 + 1/2 k x^2 (1 - (omega dt)^2 / 4); H itself oscillates by O(dt^2)."""
    k = 1.0
    system = two_oscillators(k)
    rng = np.random.default_rng(1)
    state = nve_init(system, system.positions + rng.normal(scale=0.2, size=(2, 3)),
                     rng.normal(scale=0.01, size=(2, 3)))
    dt = 20.0
    omega2_dt2 = k / 183.84 * ase_time(dt) ** 2

    def shadow(s):
        d = s.positions - system.positions
        return s.kinetic_energy + 0.5 * k * np.sum(d * d) * (1 - omega2_dt2 / 4)

    e0, h0, h = shadow(state), state.total_energy, []
    for _, state in run(system, state, dt, 500):
        h.append(state.total_energy)
    assert abs(shadow(state) - e0) <= 1e-13 * e0
    assert np.ptp(h) > 1e-4 * h0


# --- velocities and thermostat -----------------------------------------------------------

def test_maxwell_boltzmann():
    masses = np.tile([183.84, 9.012], 5000)
    v = maxwell_boltzmann(masses, 3000.0, seed=4)
    ndof = 3 * len(masses) - 3
    assert 2 * kinetic_energy(v, masses) / (ndof * units.kB) == pytest.approx(3000.0, rel=1e-12)
    np.testing.assert_allclose(masses @ v, 0.0, atol=1e-10)
    kT = units.kB * 3000.0
    for m in (183.84, 9.012):   # each component ~ N(0, kT/m)
        assert np.var(v[masses == m]) * m / kT == pytest.approx(1.0, abs=0.03)
    np.testing.assert_array_equal(v, maxwell_boltzmann(masses, 3000.0, seed=4))
    assert not np.array_equal(v, maxwell_boltzmann(masses, 3000.0, seed=5))
    assert not maxwell_boltzmann(masses[:4], 0.0).any()


def test_csvr_factor_samples_the_canonical_kinetic_energy():
    """Thermostat alone: K <- alpha^2 K has the stationary Gamma(ndof/2, kT) distribution,
    mean ndof kT/2 and variance ndof (kT)^2/2, for any decay c."""
    rng = np.random.default_rng(2)
    ndof, kT = 45, 0.3
    target = 0.5 * ndof * kT
    for decay in (0.0, 0.5, 0.9):
        kinetic, values = 10 * target, []
        for _ in range(60000):
            alpha = csvr_factor(kinetic, target, ndof, decay, rng.standard_normal(),
                                rng.chisquare(ndof - 1))
            kinetic *= alpha * alpha
            values.append(kinetic)
        values = np.array(values[1000:])
        assert values.mean() / target == pytest.approx(1.0, abs=0.015)
        assert values.var() / (0.5 * ndof * kT ** 2) == pytest.approx(1.0, abs=0.1)


def test_nvt_temperature_and_conserved_quantity(reference):
    """CSVR NVT: mean temperature at the target; H + reservoir stays constant to the dt^2
    level of NVE while H itself wanders by the heat exchanged."""
    system = MDSystem(reference, bcc_tungsten(4))   # 128 atoms
    rng = np.random.default_rng(6)
    state = nve_init(system, system.positions, maxwell_boltzmann(system.masses, 1500.0, rng))
    thermostat = CSVRThermostat(1500.0, tau=50.0, seed=rng)
    temperatures, h, conserved = [], [], []
    for step, state in run(system, state, 2.0, 2500, thermostat):
        if step > 250:
            temperatures.append(system.temperature(state.kinetic_energy))
            h.append(state.total_energy)
            conserved.append(state.total_energy + state.reservoir)
    assert np.mean(temperatures) == pytest.approx(1500.0, rel=0.04)
    assert np.ptp(conserved) < 0.02 * np.ptp(h)


# --- NVE ------------------------------------------------------------------------------------

def test_time_reversibility(reference):
    """Forward 400 steps, flip the velocities, 400 steps back: the start to round-off."""
    system = MDSystem(reference, bcc_tungsten())
    start = equilibrate(system, NVEProtocol(temperature=3000.0, equilibration=200.0, seed=1))
    state = nve_init(system, start.positions, start.velocities)
    for _, state in run(system, state, 2.0, 400):
        pass
    travelled = np.abs(state.positions - start.positions).max()
    state = nve_init(system, state.positions, -state.velocities)
    for _, state in run(system, state, 2.0, 400):
        pass
    assert travelled > 0.3
    assert np.abs(state.positions - start.positions).max() <= 1e-11
    assert np.abs(state.velocities + start.velocities).max() <= 1e-11 * np.abs(
        start.velocities).max()


@pytest.mark.parametrize("name", ["reference", "published"])
def test_verlet_skin_gives_the_trajectory_of_lists_rebuilt_every_step(name, request):
    """MD of hot BCC W (3000 K, 2 fs): a skin of 0.3 Å (thermal vibrations cross its half
    now and then) and skin 0 (a list built at every step) give the same trajectory, bit for
    bit, with the skin list rebuilt a few times."""
    potential = request.getfixturevalue(name)
    atoms = bcc_tungsten()
    trajectories = {}
    for skin in (0.3, 0.0):
        system = MDSystem(potential, atoms, skin=skin)
        state = nve_init(system, atoms.positions, maxwell_boltzmann(system.masses, 3000.0, 3))
        for _, state in run(system, state, 2.0, 150):
            pass
        trajectories[skin] = (state.positions, state.forces, system.neighbors.builds)
    (positions, forces, builds), (positions0, forces0, builds0) = trajectories.values()
    np.testing.assert_array_equal(positions, positions0)
    np.testing.assert_array_equal(forces, forces0)
    assert builds0 == 151 and 2 <= builds <= 50


def slope_over_starts(potential, seeds, duration, equilibration=300.0):
    """dt <= 4 fs log-log slope of the geometric mean of dH over several starts."""
    protocol = dict(timesteps=(0.5, 1.0, 2.0, 4.0), duration=duration,
                    equilibration=equilibration)
    rows = [[r["delta_h"] for r in energy_conservation(
        potential, NVEProtocol(seed=seed, **protocol))["table"]] for seed in seeds]
    slope, _ = loglog_slope(protocol["timesteps"], np.exp(np.log(rows).mean(axis=0)))
    return slope


def test_delta_h_is_second_order_reference(reference):
    """The Finnis-Sinclair pair term and density have discontinuous second derivatives (at
    c = 3.25 Å, beyond the second shell, and d = 4.40 Å): every crossing adds an energy error
    whose size depends on where in the step it falls, so single 16-atom runs scatter by
    +-0.2-0.4 in slope. Averaged over 24 starts the dt^2 law is clean."""
    assert slope_over_starts(reference, range(24), 300.0) == pytest.approx(2.0, abs=0.2)


def test_delta_h_is_second_order_linear_snap(published):
    """Published W SNAP+ZBL (linear SNAP): one start suffices."""
    assert slope_over_starts(published, [0], 200.0, 200.0) == pytest.approx(2.0, abs=0.2)


@pytest.fixture(scope="module")
def network(reference):
    """A type A1 network (softplus, twojmax 4) trained for a few seconds on 80 snapshots of
    16-atom W from CSVR runs at 1000-4000 K, labeled by the reference potential."""
    from emtool import SnapParams
    from emtool.fitting.networks import (TrainingData, TrainingSettings, descriptor_record,
                                         train_network)
    system = MDSystem(reference, bcc_tungsten())
    records = []
    for seed in range(4):
        temperature = 1000.0 * (seed + 1)
        start = equilibrate(system, NVEProtocol(temperature=temperature, equilibration=100.0,
                                                seed=seed))
        for step, state in run(system, start, 2.0, 400, CSVRThermostat(temperature, seed=seed)):
            if step % 20 == 0:
                atoms = system.snapshot(state)
                records.append(descriptor_record(atoms, SnapParams(twojmax=4, bzeroflag=0,
                                                                   elements=("W",))))
    order = np.random.default_rng(0).permutation(len(records))
    settings = TrainingSettings(architecture="A1", epochs=150, batch_size=8, learning_rate=1e-2)
    potential, info = train_network(TrainingData(records, False), SnapParams(
        twojmax=4, bzeroflag=0, elements=("W",)), settings, order[:64], order[64:])
    assert info["history"][-1]["validation_energy_rmse"] < 0.05     # eV/atom: it learned
    return potential


def test_delta_h_is_second_order_network(network):
    assert slope_over_starts(network, [0], 300.0, 200.0) == pytest.approx(2.0, abs=0.2)


def test_quadratic_snap_with_zbl_conserves_energy(published):
    """Quadratic SNAP (+ZBL): the published linear model with a small quadratic term. Its
    forces are consistent with its energy: dH(2 fs) / dH(1 fs) = 4 and reversible steps."""
    p = published.params.replace(quadraticflag=1)
    d = p.ncoeff
    alpha = np.random.default_rng(7).normal(scale=2e-7, size=d * (d + 1) // 2)
    quadratic = SnapPotential(p, np.hstack([published.coeffs[0], alpha])[None], published.zbl)
    system = MDSystem(quadratic, bcc_tungsten())
    start = equilibrate(system, NVEProtocol(equilibration=100.0, seed=2))
    assert abs(quadratic.evaluate(system.snapshot(start))["energy"] - published.evaluate(
        system.snapshot(start))["energy"]) > 1e-3
    result = energy_conservation(quadratic, NVEProtocol(timesteps=(1.0, 2.0), duration=100.0,
                                                        equilibration=100.0, seed=2))
    assert result["slope"] == pytest.approx(2.0, abs=0.1)


def test_protocol_runs_share_the_equilibrated_start_and_trajectory_file(reference, tmp_path):
    protocol = NVEProtocol(timesteps=(1.0, 3.0), duration=60.0, samples=15,
                           equilibration=50.0, seed=3)
    result = energy_conservation(reference, protocol, trajectory=tmp_path / "t.traj")
    frames = read(tmp_path / "t.traj", ":")
    assert [r["samples"] for r in result["table"]] == [15, 15]   # 60 and 20 steps
    assert len(frames) == 2 * (15 + 1)
    first, second = frames[0], frames[16]
    assert first.info["timestep"] == 1.0 and second.info["timestep"] == 3.0
    np.testing.assert_array_equal(first.positions, second.positions)
    np.testing.assert_array_equal(first.get_velocities(), second.get_velocities())
    assert first.info["temperature"] == pytest.approx(result["equilibrated_temperature"])
    # the frames are the states the table was computed from
    h0 = first.get_potential_energy() + first.get_kinetic_energy()
    h = [a.get_potential_energy() + a.get_kinetic_energy() for a in frames[1:16]]
    assert result["table"][0]["delta_h"] == pytest.approx(delta_h(h, h0, 16), rel=1e-12)
    assert frames[15].info["step"] == 60 and frames[31].info["time"] == 60.0


def test_diverging_run_is_reported_not_fitted(reference):
    class Fragile:
        """The reference potential, but nan once an atom moved more than 0.05 Å."""
        def evaluate(self, atoms):
            result = reference.evaluate(atoms)
            if np.abs(atoms.positions - bcc_tungsten().positions).max() > 0.05:
                result["energy"] = float("nan")
            return result

    system = MDSystem(Fragile(), bcc_tungsten())
    state = nve_init(system, system.positions, maxwell_boltzmann(system.masses, 3000.0, 1))
    with pytest.raises(MDError, match="non-finite"):
        for _ in range(50):
            state = nve_step(system, state, 1.0)
    result = energy_conservation(Fragile(), NVEProtocol(timesteps=(0.001, 0.002, 20.0),
                                                        duration=0.1, temperature=3000.0,
                                                        equilibration=0.0))
    assert [r["diverged"] for r in result["table"]] == [False, False, True]
    assert result["table"][2]["delta_h"] is None
    assert result["slope_timesteps"] == [0.001, 0.002]


# --- small pieces -------------------------------------------------------------------------

def test_sample_steps_delta_h_and_fits():
    np.testing.assert_array_equal(sample_steps(10, 4), [2, 5, 7, 10])
    np.testing.assert_array_equal(sample_steps(3, 1000), [1, 2, 3])
    assert len(sample_steps(15000, 1000)) == 1000 and sample_steps(15000, 1000)[-1] == 15000
    assert delta_h([1.0, 3.0, -2.0], 1.0, 2) == pytest.approx((0 + 2 + 3) / 3 / 2)
    slope, error = loglog_slope([0.5, 1, 2, 4], 3e-5 * np.array([0.5, 1, 2, 4]) ** 2)
    assert slope == pytest.approx(2.0, abs=1e-12) and error == pytest.approx(0.0, abs=1e-9)
    assert loglog_slope([1, 2], [1.0, 8.0]) == (pytest.approx(3.0), None)
    assert loglog_slope([1, 2, 4], [1.0, None, float("nan")]) == (None, None)
    assert block_error(np.ones(15)) is None
    values = np.repeat(np.arange(10.0), 10)    # block means 0..9
    assert block_error(values) == pytest.approx(np.std(np.arange(10.0), ddof=1) / math.sqrt(10))


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(timesteps=(1.0, 0.0)), "timestep must be > 0"),
    (dict(timesteps=(-1.0,)), "timestep must be > 0"),
    (dict(temperature=-1.0), "temperature must be >= 0"),
    (dict(duration=0.0), "duration must be > 0"),
    (dict(samples=0), "samples must be an integer >= 1"),
    (dict(tau=float("nan")), "tau must be > 0"),
])
def test_bad_protocol(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        NVEProtocol(**kwargs)


def test_bad_structures_and_velocities(reference):
    overlapping = Atoms("W2", positions=[[0, 0, 0], [0.3, 0, 0]], cell=[5, 5, 5], pbc=True)
    with pytest.raises(StructureError, match="overlapping atoms: 0 and 1 .* 0.3 Å apart"):
        MDSystem(reference, overlapping)
    with pytest.raises(StructureError, match="at least 2 atoms"):
        MDSystem(reference, Atoms("W", cell=[5, 5, 5], pbc=True))
    system = MDSystem(reference, bcc_tungsten())
    with pytest.raises(ParameterError, match="shape"):
        nve_init(system, system.positions, np.zeros((3, 3)))
    with pytest.raises(ParameterError, match="timestep must be > 0"):
        next(run(system, nve_init(system, system.positions, np.zeros((16, 3))), 0.0, 5))
    with pytest.raises(MDError, match="at rest"):
        CSVRThermostat(300.0).apply(system, nve_init(system, system.positions,
                                                     np.zeros((16, 3))), 1.0)
    with pytest.raises(ParameterError, match="suffix"):
        TrajectoryWriter("out.pdb")



class _InterruptedOnWrite:
    """A file handle proxy that sends this process SIGINT (Ctrl-C) as a write begins."""

    def __init__(self, inner):
        self.inner = inner

    def write(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return self.inner.write(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def ctrl_c_raises():
    """Python's own Ctrl-C handler for the test: a background shell (nohup ... &) starts
    Python with SIGINT ignored, a user's terminal does not."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("suffix", [".traj", ".extxyz"])
def test_ctrl_c_inside_a_frame_write_takes_effect_once_the_frame_is_whole(tmp_path, suffix,
                                                                           ctrl_c_raises):
    path = tmp_path / f"t{suffix}"
    writer = TrajectoryWriter(path)
    frame = bcc_tungsten()
    frame.info["step"] = 0
    writer.write(frame)
    writer._handle = _InterruptedOnWrite(writer._handle)
    frame.info["step"] = 1
    with pytest.raises(KeyboardInterrupt):
        writer.write(frame)
    writer.close(keep=True)
    assert [a.info["step"] for a in read(path, ":")] == [0, 1]


# --- command line -----------------------------------------------------------------------

def test_md_command_default_skin_is_the_library_default():
    from emtool.dynamics.integrators import NEIGHBOR_SKIN
    option = next(o for o in main.commands["md"].params if o.name == "skin")
    assert option.default == NEIGHBOR_SKIN


SHORT = ["--duration", "40", "--samples", "20", "--equilibration", "20"]


def test_nve_command_json_plot_and_trajectory(tmp_path):
    result = CliRunner().invoke(main, ["nve", "--potential", "reference:W", "--timesteps",
                                       "0.5,1,2", *SHORT, "--json", "--plot",
                                       str(tmp_path / "dh.pdf"), "--trajectory",
                                       str(tmp_path / "t.extxyz")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["timestep"] for r in out["table"]] == [0.5, 1.0, 2.0]
    assert all(r["delta_h"] > 0 for r in out["table"])
    assert out["slope"] == pytest.approx(loglog_slope([0.5, 1, 2],
                                                      [r["delta_h"] for r in out["table"]])[0])
    assert out["potential"] == "reference:W" and out["natoms"] == 16
    assert (tmp_path / "dh.pdf").read_bytes().startswith(b"%PDF")
    frames = read(tmp_path / "t.extxyz", ":")
    assert len(frames) == 3 * 21 and frames[0].get_velocities().any()


def test_nve_command_table(tmp_path):
    result = CliRunner().invoke(main, ["nve", "--potential", "reference:W", "--timesteps",
                                       "1,2", *SHORT, "--plot", str(tmp_path / "dh.png")])
    assert result.exit_code == 0, result.output
    assert "dH (eV/atom)" in result.stdout and "log-log slope" in result.stdout
    assert (tmp_path / "dh.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("args, message", [
    (["nve", "--timesteps", "1,0"], "timestep must be > 0"),
    (["nve", "--timesteps", "1,x"], "timesteps"),
    (["nve", "--temperature", "-5"], "temperature must be >= 0"),
    (["nve", "--trajectory", "t.pdb"], "suffix"),
    (["md", "{structure}", "--timestep", "-1", "--steps", "2"], "timestep must be > 0"),
    (["md", "{structure}", "--temperature", "-1", "--steps", "2"], "temperature must be >= 0"),
    (["md", "{overlap}", "--steps", "2"], "overlapping atoms"),
    (["md", "{structure}", "--ensemble", "nvt", "--steps", "2"], "NVT needs a temperature"),
    (["md", "{structure}", "--skin", "-1", "--steps", "2"], "neighbor skin must be"),
    (["nve", "--potential", "{foreign}"], "not an emtool model file"),
    (["md", "{structure}", "--potential", "{foreign}"], "not an emtool model file"),
    (["md", "{structure}", "--trajectory", "{kept}"], "exists; pass --overwrite"),
    (["md", "{structure}", "--log", "{kept}"], "exists; pass --overwrite"),
    (["md", "{structure}", "--trajectory", "{structure}", "--overwrite"], "replace the input"),
    (["nve", "--plot", "{kept}"], "exists; pass --overwrite"),
    (["nve", "--trajectory", "{kept}"], "exists; pass --overwrite"),
])
def test_bad_input_on_the_command_line(tmp_path, args, message):
    write(tmp_path / "s.extxyz", bcc_tungsten())
    write(tmp_path / "o.extxyz", Atoms("W2", positions=[[0, 0, 0], [0, 0, 0.2]], cell=[5, 5, 5],
                                       pbc=True))
    (tmp_path / "m.json").write_text(json.dumps({"format": "fitsnap", "coefficients": [1, 2]}))
    (tmp_path / "kept.extxyz").write_text("keep me")
    paths = dict(structure=tmp_path / "s.extxyz", overlap=tmp_path / "o.extxyz",
                 foreign=tmp_path / "m.json", kept=tmp_path / "kept.extxyz")
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    result = CliRunner().invoke(main, [a.format(**paths) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_md_command_restarts_exactly_from_its_trajectory(tmp_path):
    """40 steps in one run equal 20 steps, then 20 more from the last frame of the .traj."""
    write(tmp_path / "s.extxyz", bcc_tungsten())
    common = ["--potential", "reference:W", "--timestep", "2", "--temperature", "2000",
              "--seed", "5"]

    def md(structure, steps, traj):
        result = CliRunner().invoke(main, ["md", str(structure), *common, "--steps", str(steps),
                                           "--trajectory", str(traj), "--trajectory-every", "10",
                                           "--thermo-every", "10"])
        assert result.exit_code == 0, result.output
        return result

    long = md(tmp_path / "s.extxyz", 40, tmp_path / "long.traj")
    md(tmp_path / "s.extxyz", 20, tmp_path / "a.traj")
    write(tmp_path / "mid.traj", read(tmp_path / "a.traj", -1))
    md(tmp_path / "mid.traj", 20, tmp_path / "b.traj")
    end, restarted = read(tmp_path / "long.traj", -1), read(tmp_path / "b.traj", -1)
    assert len(read(tmp_path / "long.traj", ":")) == 5
    # equal up to the last-digit rounding of velocities stored as momenta m v in the file
    np.testing.assert_allclose(restarted.positions, end.positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(restarted.get_velocities(), end.get_velocities(), rtol=1e-12)
    lines = [line.split() for line in long.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in lines] == [0, 10, 20, 30, 40]
    energies = np.array([float(row[4]) for row in lines])     # total energy column
    assert np.ptp(energies) < 1e-3 * 16


def test_md_command_nvt_log_file(tmp_path):
    write(tmp_path / "s.extxyz", bcc_tungsten())
    result = CliRunner().invoke(main, ["md", str(tmp_path / "s.extxyz"), "--ensemble", "nvt",
                                       "--temperature", "1000", "--steps", "30",
                                       "--thermo-every", "5", "--log", str(tmp_path / "t.log")])
    assert result.exit_code == 0, result.output
    table = np.loadtxt(tmp_path / "t.log")
    assert table.shape == (7, 7)
    assert np.all(table[:, 5] > 0)


def test_diverging_runs_are_stopped_and_reported(tmp_path):
    write(tmp_path / "s.extxyz", bcc_tungsten())
    md = CliRunner().invoke(main, ["md", str(tmp_path / "s.extxyz"), "--timestep", "50",
                                   "--temperature", "300", "--steps", "200"])
    assert md.exit_code == 2 and "diverged at step" in md.output and "Traceback" not in md.output
    nve = CliRunner().invoke(main, ["nve", "--timesteps", "1,200", "--duration", "400",
                                    "--equilibration", "100", "--samples", "10", "--json"])
    assert nve.exit_code == 1
    rows = json.loads(nve.stdout)["table"]
    assert [r["diverged"] for r in rows] == [False, True]
    assert rows[0]["mean_temperature"] < 1e4


class _FreeParticles:
    """No forces at all: atoms fly through each other, at constant temperature."""

    def evaluate(self, atoms):
        return dict(energy=0.0, forces=np.zeros((len(atoms), 3)))


def test_atoms_thrown_together_mark_the_run_diverged():
    """Two atoms that meet (0.2 Å apart at step 100) end the run as diverged even though the
    temperature never changes."""
    from ase import Atoms, units
    from emtool.dynamics.integrators import OVERLAP_CHECK_EVERY
    from emtool.dynamics.md import run_md
    from emtool.errors import MDError
    atoms = Atoms("W2", positions=[[0, 0, 0], [3.0, 0, 0]], cell=[10, 10, 10], pbc=True)
    atoms.set_velocities([[0.014 / units.fs, 0, 0], [-0.014 / units.fs, 0, 0]])
    with pytest.raises(MDError, match="diverged at step 100 .*0.2 Å apart"):
        run_md(atoms, _FreeParticles(), 1.0, OVERLAP_CHECK_EVERY)


def test_bcc_tungsten_is_ase_bulk_without_importing_ase_build():
    """The NVE cell equals ``ase.build.bulk`` (which ``bcc_tungsten`` does not import, to keep
    an MD run's start-up short)."""
    from ase.build import bulk
    ours, ase_cell = bcc_tungsten(3, a=3.2), bulk("W", "bcc", a=3.2, cubic=True).repeat(3)
    np.testing.assert_array_equal(ours.positions, ase_cell.positions)
    np.testing.assert_array_equal(ours.cell[:], ase_cell.cell[:])
    assert list(ours.symbols) == list(ase_cell.symbols) and ours.pbc.all()
