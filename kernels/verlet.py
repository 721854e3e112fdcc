"""Velocity-Verlet integration and the CSVR thermostat on plain arrays.

Units are ASE's: positions in Å, velocities in Å per ASE time unit (Å sqrt(eV/amu)/Å), forces
in eV/Å, masses in amu, so that a = F/m needs no constant and 1/2 m v^2 is in eV. The Python
layer (:mod:`emtool.dynamics.integrators`) converts fs to ASE time once. One velocity-Verlet step of length dt
is the composition

    verlet_drift:  v(t + dt/2) = v(t) + dt/2 F(t)/m,   r(t + dt) = r(t) + dt v(t + dt/2)
    (forces F(t + dt) at the new positions, by any potential)
    verlet_kick:   v(t + dt)   = v(t + dt/2) + dt/2 F(t + dt)/m

which is time reversible and symplectic; F(t + dt) is reused by the next step's drift.

Atoms are processed in ``nchunk`` parallel chunks (``prange``); each chunk writes only its
own rows, so results do not depend on the thread count.
"""
import math

import numpy as np
from numba import prange

from emtool.kernels.jit import jit


@jit(parallel=True)
def verlet_drift(positions, velocities, forces, inv_mass, dt, nchunk):
    """First half of a velocity-Verlet step: half kick, then a full drift.

    Parameters
    ----------
    positions, velocities, forces : float64 (N, 3)
        r(t) in Å, v(t) in ASE units, F(t) in eV/Å.
    inv_mass : float64 (N,)
        1/m per atom (1/amu).
    dt : float
        Timestep in ASE time units.
    nchunk : int
        Parallel work chunks (>= 1).

    Returns
    -------
    r(t + dt) : float64 (N, 3), Å
    v(t + dt/2) : float64 (N, 3), ASE units
    """
    natoms = positions.shape[0]
    new_positions = np.empty_like(positions)
    half_velocities = np.empty_like(velocities)
    nchunk = max(1, min(nchunk, natoms))
    for c in prange(nchunk):
        for a in range(c * natoms // nchunk, (c + 1) * natoms // nchunk):
            h = 0.5 * dt * inv_mass[a]
            for k in range(3):
                v = velocities[a, k] + h * forces[a, k]
                half_velocities[a, k] = v
                new_positions[a, k] = positions[a, k] + dt * v
    return new_positions, half_velocities


@jit(parallel=True)
def verlet_kick(half_velocities, forces, inv_mass, dt, nchunk):
    """Second half of a velocity-Verlet step: v(t + dt) = v(t + dt/2) + dt/2 F(t + dt)/m.

    Shapes and units as in :func:`verlet_drift`; returns v(t + dt), float64 (N, 3).
    """
    natoms = half_velocities.shape[0]
    velocities = np.empty_like(half_velocities)
    nchunk = max(1, min(nchunk, natoms))
    for c in prange(nchunk):
        for a in range(c * natoms // nchunk, (c + 1) * natoms // nchunk):
            h = 0.5 * dt * inv_mass[a]
            for k in range(3):
                velocities[a, k] = half_velocities[a, k] + h * forces[a, k]
    return velocities


@jit
def kinetic_energy(velocities, masses):
    """Kinetic energy sum_a 1/2 m_a |v_a|^2 (eV) of velocities (N, 3) and masses (N,) amu.

    Summed serially in atom order, so the value is independent of the thread count.
    """
    total = 0.0
    for a in range(velocities.shape[0]):
        total += 0.5 * masses[a] * (velocities[a, 0] ** 2 + velocities[a, 1] ** 2
                                    + velocities[a, 2] ** 2)
    return total


@jit
def csvr_factor(kinetic, target, ndof, decay, r1, chi2):
    """Velocity scale factor alpha of the CSVR thermostat for one time interval.

    Canonical sampling through velocity rescaling (G. Bussi, D. Donadio and M. Parrinello,
    J. Chem. Phys. 126, 014101 (2007), Eq. (A7)): over an interval dt the kinetic energy K
    relaxes toward ``target`` = ndof kT/2 with time constant tau, plus the stochastic term
    that makes the stationary distribution of K canonical,

        alpha^2 = c + (1 - c) (chi2 + r1^2) target / (ndof K)
                  + 2 r1 sqrt(c (1 - c) target / (ndof K)),

    with c = ``decay`` = exp(-dt/tau), r1 a standard normal number and ``chi2`` the sum of
    ndof - 1 squared standard normal numbers. The sign of alpha is that of
    r1 + sqrt(c ndof K / ((1 - c) target)), so that alpha follows the sampled K' = alpha^2 K
    continuously. Multiplying all velocities by alpha conserves zero total momentum.

    Parameters
    ----------
    kinetic, target : float
        Current and target kinetic energy (eV), both > 0.
    ndof : int
        Degrees of freedom (>= 2).
    decay : float
        exp(-dt/tau) in [0, 1].
    r1, chi2 : float
        The random numbers described above.
    """
    ratio = target / (ndof * kinetic)
    alpha2 = (decay + (1.0 - decay) * (chi2 + r1 * r1) * ratio
              + 2.0 * r1 * math.sqrt(decay * (1.0 - decay) * ratio))
    alpha = math.sqrt(alpha2)
    if r1 + math.sqrt(decay / ((1.0 - decay) * ratio)) < 0.0:
        return -alpha
    return alpha
