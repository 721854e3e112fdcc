"""FIRE minimization (Bitzek, Koskinen, Gähler, Moseler, Gumbsch, PRL 97, 170201 (2006)).

State: velocities v (N, 3) and ``state = [dt, alpha, n_positive]``. Each step, with the
forces F at the current positions (unit masses, ASE's MD-like formulation):

    P = F . v
    P > 0: v <- (1 - alpha) v + alpha |v| F/|F|; after more than n_min such steps in a row
           dt <- min(dt f_inc, dt_max), alpha <- alpha f_alpha
    P <= 0: v <- 0, dt <- dt f_dec, alpha <- alpha_start
    v <- v + dt F;  dr = dt v

Max-step rule: if the largest per-atom displacement |dr_i| exceeds ``max_step`` (Å), the
whole dr is scaled down so that it equals max_step (the direction is kept).
"""
from typing import NamedTuple

import numpy as np

from emtool.kernels.jit import jit


class FireConstants(NamedTuple):
    """FIRE's constants (``emtool.generator.generate.FireParams`` documents them)."""

    dt_start: float
    dt_max: float
    max_step: float
    n_min: float
    f_inc: float
    f_dec: float
    alpha_start: float
    f_alpha: float


@jit
def fire_init(natoms, consts):
    """Zero velocities (N, 3) and the state [dt, alpha, n_positive]."""
    return np.zeros((natoms, 3)), np.array([consts.dt_start, consts.alpha_start, 0.0])


@jit
def fire_step(positions, forces, v, state, consts):
    """One FIRE step: updates positions (N, 3), v and state in place."""
    power = 0.0
    fnorm2 = 0.0
    vnorm2 = 0.0
    for a in range(positions.shape[0]):
        for k in range(3):
            power += forces[a, k] * v[a, k]
            fnorm2 += forces[a, k] ** 2
            vnorm2 += v[a, k] ** 2
    if power > 0.0:
        mix = state[1] * np.sqrt(vnorm2 / fnorm2) if fnorm2 > 0.0 else 0.0
        for a in range(positions.shape[0]):
            for k in range(3):
                v[a, k] = (1.0 - state[1]) * v[a, k] + mix * forces[a, k]
        if state[2] > consts.n_min:
            state[0] = min(state[0] * consts.f_inc, consts.dt_max)
            state[1] *= consts.f_alpha
        state[2] += 1.0
    else:
        v[:] = 0.0
        state[0] *= consts.f_dec
        state[1] = consts.alpha_start
        state[2] = 0.0
    dt = state[0]
    largest = 0.0
    for a in range(positions.shape[0]):
        step2 = 0.0
        for k in range(3):
            v[a, k] += dt * forces[a, k]
            step2 += (dt * v[a, k]) ** 2
        largest = max(largest, step2)
    scale = dt
    if largest > consts.max_step ** 2:
        scale = dt * consts.max_step / np.sqrt(largest)
    for a in range(positions.shape[0]):
        for k in range(3):
            positions[a, k] += scale * v[a, k]
