"""emtool's FIRE (``kernels/fire.py``) against ASE's ``ase.optimize.FIRE`` on V_rep.

The system is stage 1 of ``generate_one``: V = V_rep - K S with K = 0 (sign 0.0), i.e. the
exclusion repulsion alone, on a 10-atom periodic W box at 25 Å^3/atom whose pairs start at
2.04 Å and beyond (14 pairs inside r_ex = 2.7 Å, V_rep = 4.55 eV, largest force 4.35 eV/Å).
ASE runs on a calculator built from ``evaluate_potential``; emtool runs its
``fire_init``/``fire_step`` pair on the same forces, and the generator's own stage
(``_relax``, as ``generate_one`` calls it) is checked to be that loop.

The update rules are the same (ASE 3.29, ase/optimize/fire.py): mixing
v <- (1 - a) v + a |v| F/|F| when P = F.v > 0, dt and a adapted after more than Nmin such
steps in a row, v <- 0, dt <- dt fdec, a <- astart when P <= 0, then v <- v + dt F,
dr = dt v. Neither uses masses (ASE steps along the gradient: emtool's "unit masses"), and
``FireParams()`` holds ASE's default constants. With the step limit out of reach and ASE's
dt set to dt_start fdec (difference 1), the trajectories agree to 9e-16 Å over 50 steps
(atoms move up to 1.26 Å). Two differences remain, both measured here:

1. First step. ASE special-cases its first step (no velocity yet, no power check); emtool
   starts from v = 0, so P = 0 <= 0 takes the reset branch and its first step uses
   dt = dt_start fdec = 0.05 (ASE time units), not 0.1: its first displacement is 1/4 of
   ASE's. ASE started at dt = 0.05 reproduces emtool started at dt_start = 0.1. With both at
   their defaults the trajectories part from step 1 (by 0.025 Å).
2. Step limit. ASE rescales dr when the norm of the whole 3N-vector exceeds maxstep
   (although its docstring speaks of the distance an atom can move); emtool rescales when
   the largest per-atom |dr_i| does. The whole norm is never smaller, so ASE limits at
   least as often. From this start, with maxstep 0.2 Å in both, the trajectories agree to
   2e-16 Å for 15 steps; at step 16 the unlimited step has norm 0.213 Å but moves no atom
   more than 0.107 Å: ASE rescales it to norm 0.2, emtool takes it, and they part by
   5.4e-3 Å (0.13 Å by step 50).

Both still reach the same minimum. With ASE's defaults and the generator's stage, to
fmax 0.05 eV/Å both converge (ASE in 21 steps, emtool in 33) at V_rep = 6.1e-4 and
6.2e-4 eV (pairs at 2.683 Å); to fmax 1e-4 both end with every pair at or beyond r_ex and
V_rep = 0 exactly (ASE 34 steps, emtool 41).
"""
from dataclasses import replace

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.optimize import FIRE

from conftest import fd_forces, random_box
from emtool.generator.generate import FireParams, GeneratorParams, _relax, evaluate_potential
from emtool.kernels.fire import fire_init, fire_step
from emtool.parallel import single_thread

PARAMS = GeneratorParams().with_descriptor_scale()
STEPS = 50
NO_LIMIT = 1e3  # Å: a max step no step of this system reaches


class VRepCalculator(Calculator):
    """V_rep (eV) and its forces (eV/Å) by emtool's ``evaluate_potential`` at K = 0."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy, _, _, forces = evaluate_potential(self.atoms, PARAMS, 0.0)
        self.results = {"energy": energy, "forces": forces}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # as in _relax: a parallel region per force call of 10 atoms is 50x slower on a busy core
    with single_thread():
        yield


@pytest.fixture(scope="module")
def start():
    atoms = random_box(0, natoms=10, volume_per_atom=25.0, min_distance=2.0)
    atoms.calc = VRepCalculator()
    assert atoms.get_potential_energy() > 1.0
    return atoms


def ase_path(atoms, steps, **fire):
    """Positions (steps + 1, N, 3) of ASE's FIRE from ``atoms``, start included."""
    atoms = atoms.copy()
    atoms.calc = VRepCalculator()
    path = []
    for _ in FIRE(atoms, logfile=None, **fire).irun(fmax=0.0, steps=steps):
        path.append(atoms.positions.copy())
    return np.array(path)


def emtool_path(atoms, steps, fire):
    """Positions (steps + 1, N, 3) of emtool's fire_init/fire_step on the same forces."""
    atoms = atoms.copy()
    atoms.calc = VRepCalculator()
    consts = fire.constants()
    x = atoms.positions.copy()
    v, state = fire_init(len(atoms), consts)
    path = [x.copy()]
    for _ in range(steps):
        atoms.positions = x
        fire_step(x, atoms.get_forces(), v, state, consts)
        path.append(x.copy())
    return np.array(path)


def largest_force(atoms):
    return np.linalg.norm(atoms.get_forces(), axis=1).max()


def test_fire_params_are_ase_defaults(start):
    ase = FIRE(start.copy(), logfile=None)
    ours = FireParams()
    assert (ours.dt_start, ours.dt_max, ours.max_step, ours.n_min, ours.f_inc, ours.f_dec,
            ours.alpha_start, ours.f_alpha) == (ase.dt, ase.dtmax, ase.maxstep, ase.Nmin,
                                                ase.finc, ase.fdec, ase.astart, ase.fa)
    assert ase.a == ase.astart


def test_vrep_calculator_forces_match_finite_differences(start):
    v, _, v_rep, forces = evaluate_potential(start, PARAMS, 0.0)
    assert v == v_rep
    fd = fd_forces(lambda a: evaluate_potential(a, PARAMS, 0.0)[0], start, range(len(start)))
    np.testing.assert_allclose(forces, fd, rtol=1e-7, atol=1e-8)


def test_generator_stage_is_the_fire_step_loop(start):
    """``_relax`` (stage 1 of ``generate_one``: skin neighbor list, fused loop) takes the
    same steps as fire_step driven from Python."""
    path = emtool_path(start, STEPS, FireParams())
    params = replace(PARAMS, fmax=1e-12)
    for n in (1, 16, 40):
        x, stats = _relax(start, params, 0.0, n)
        assert stats[3] == n
        np.testing.assert_allclose(x, path[n], rtol=0, atol=1e-12)


def test_same_rules_as_ase_without_the_step_limit(start):
    """Unlimited steps, ASE at dt = dt_start f_dec: identical trajectories (difference 1)."""
    fire = FireParams(max_step=NO_LIMIT)
    ours = emtool_path(start, STEPS, fire)
    theirs = ase_path(start, STEPS, dt=fire.dt_start * fire.f_dec, maxstep=NO_LIMIT)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)
    assert np.abs(ours[-1] - ours[0]).max() > 0.5
    same_dt = ase_path(start, 1, dt=fire.dt_start, maxstep=NO_LIMIT)
    np.testing.assert_allclose(4 * (ours[1] - ours[0]), same_dt[1] - same_dt[0], rtol=1e-12,
                               atol=0)


def test_step_limits_differ_per_atom_against_whole_step(start):
    """maxstep 0.2 Å in both: identical until ASE's whole-step norm first exceeds 0.2 Å; that
    step is emtool's (unlimited, every atom under 0.2 Å) rescaled to norm 0.2 (difference 2)."""
    fire = FireParams()
    ours = emtool_path(start, STEPS, fire)
    theirs = ase_path(start, STEPS, dt=fire.dt_start * fire.f_dec, maxstep=fire.max_step)
    k = int(np.argmax(np.abs(ours - theirs).max(axis=(1, 2)) > 1e-10))  # first step apart
    assert k >= 10, "the step limit should not act in the first steps of this start"
    step = ours[k] - ours[k - 1]
    assert np.linalg.norm(step, axis=1).max() < fire.max_step < np.linalg.norm(step)
    limited = step * fire.max_step / np.linalg.norm(step)
    np.testing.assert_allclose(theirs[k] - theirs[k - 1], limited, rtol=0, atol=1e-10)
    assert np.abs(ours[k] - theirs[k]).max() > 1e-4


@pytest.mark.parametrize("fmax", [PARAMS.fmax, 1e-4])
def test_both_reach_the_vrep_minimum(start, fmax):
    """ASE's defaults and the generator's stage 1 both converge to ``fmax`` downhill; run
    tight, both end with every pair at or beyond r_ex: V_rep = 0, the same minimum energy."""
    e_start = start.get_potential_energy()
    theirs = start.copy()
    theirs.calc = VRepCalculator()
    assert FIRE(theirs, logfile=None).run(fmax=fmax, steps=500)
    ours = start.copy()
    ours.calc = VRepCalculator()
    ours.positions, stats = _relax(start, replace(PARAMS, fmax=fmax), 0.0, 500)
    assert stats[5] == 1.0 and stats[4] < fmax
    for atoms in (theirs, ours):
        assert largest_force(atoms) < fmax
        assert atoms.get_potential_energy() < 1e-3 * e_start
    if fmax <= 1e-4:
        assert ours.get_potential_energy() == pytest.approx(theirs.get_potential_energy(), abs=1e-8)
        assert ours.get_potential_energy() < 1e-8
        for atoms in (theirs, ours):
            d = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
            assert d.min() > PARAMS.exclusion_radius - 1e-4
