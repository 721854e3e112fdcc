"""Finnis-Sinclair embedded-atom energy, forces and virial on a full neighbor list.

Energy (eV) of N atoms at distances r (Å) (M. W. Finnis and J. E. Sinclair, Phil. Mag. A 50,
45 (1984); core repulsion of G. J. Ackland and R. Thetford, Phil. Mag. A 56, 15 (1987))::

    E   = sum_i E_i,      E_i = 1/2 sum_j V(r_ij) + F(rho_i),      rho_i = sum_j phi(r_ij)
    phi(r) = (r - d)^2                                          for r < d, else 0
    V(r)   = (r - c)^2 (c0 + c1 r + c2 r^2)  [r < c]  +  B (b0 - r)^3 exp(-alpha r)  [r < b0]
    F(rho) = -A sqrt(rho)

phi and V have continuous first derivatives at d, c and b0 (second derivatives jump at d
and c). F'(rho) = -A / (2 sqrt(rho)) diverges at rho = 0, which only happens when no
neighbor is inside d; then every phi'(r_ij) of that atom is 0 as well, and the kernel uses
F'(0) = 0 so that the product F'(rho_i) phi'(r_ij) is the exact 0 instead of 0 * inf = nan.
Finnis-Sinclair forces are discontinuous where an atom's last neighbor crosses d (the
energy is continuous): a dimer just inside d attracts with 2A (eV/Å), beyond d with 0.

Forces on a full list (every pair i -> j listed in both directions, images of an atom
itself included) use each atom's own pairs only::

    F_i = sum_j [V'(r_ij) + (F'(rho_i) + F'(rho_j)) phi'(r_ij)] r_ij / |r_ij|,
    r_ij = r_j - r_i + S @ cell

Parameters are one float64 array with the layout of the index constants below (built and
validated by ``emtool.potentials.reference``).
"""
from typing import NamedTuple

import numpy as np

from emtool.kernels.jit import jit


class FinnisSinclairParams(NamedTuple):
    """A (eV/Å), d (Å), c (Å), c0 (eV/Å^2), c1 (eV/Å^3), c2 (eV/Å^4), B (eV/Å^3), alpha
    (1/Å), b0 (Å), and cutoff, the largest of d, c, b0 (Å)."""

    A: float
    d: float
    c: float
    c0: float
    c1: float
    c2: float
    B: float
    alpha: float
    b0: float
    cutoff: float


@jit
def fs_density(r, params):
    """Density function phi(r) (Å^2) and phi'(r) (Å) at r >= 0 (Å); zero at r >= d."""
    t = r - params.d
    if t >= 0.0:
        return 0.0, 0.0
    return t * t, 2.0 * t


@jit
def fs_pair(r, params):
    """Pair potential V(r) (eV) and V'(r) (eV/Å) at r >= 0 (Å); zero at r >= max(c, b0)."""
    v = 0.0
    dv = 0.0
    t = r - params.c
    if t < 0.0:
        poly = params.c0 + r * (params.c1 + r * params.c2)
        dpoly = params.c1 + 2.0 * params.c2 * r
        v = t * t * poly
        dv = t * (2.0 * poly + t * dpoly)
    s = params.b0 - r
    if s > 0.0:
        bexp = params.B * np.exp(-params.alpha * r)
        v += bexp * s * s * s
        dv -= bexp * s * s * (3.0 + params.alpha * s)
    return v, dv


@jit
def fs_embedding(rho, params):
    """Embedding energy F(rho) = -A sqrt(rho) (eV) and F'(rho) (eV/Å^2) at rho >= 0 (Å^2).

    F'(0) is returned as 0 (see the module docstring): finite, and exact in every product
    F'(rho_i) phi'(r_ij) the force uses.
    """
    if rho <= 0.0:
        return 0.0, 0.0
    root = np.sqrt(rho)
    return -params.A * root, -0.5 * params.A / root


@jit
def fs_densities(natoms, i, j, rij, params):
    """Densities rho_i = sum_j phi(r_ij) (Å^2), float64 (N,), over a full list (i, j, rij)."""
    rho = np.zeros(natoms)
    cutsq = params.d * params.d
    for p in range(i.shape[0]):
        dx, dy, dz = rij[p, 0], rij[p, 1], rij[p, 2]
        rsq = dx * dx + dy * dy + dz * dz
        if rsq < cutsq:
            phi, _ = fs_density(np.sqrt(rsq), params)
            rho[i[p]] += phi
    return rho


@jit
def fs_energy_forces(natoms, i, j, rij, params):
    """Finnis-Sinclair energies, forces and virial over a full neighbor list.

    Parameters
    ----------
    natoms : int
    i, j : int arrays (P,)
        Directed pairs i -> j of a FULL list: every pair appears as i -> j and j -> i,
        including periodic images of an atom itself (then i == j).
    rij : float64 (P, 3)
        r_ij = r_j - r_i + S @ cell (Å), no two atoms at one position (r_ij > 0).
    params : float64 (N_PARAMS,)
        Layout ``A ... CUTOFF`` of this module.

    Returns
    -------
    energies : float64 (N,)
        E_i = 1/2 sum_j V(r_ij) + F(rho_i) (eV).
    forces : float64 (N, 3)
        F = -dE/dr (eV/Å).
    virial : float64 (3, 3)
        W = sum over directed pairs of r_ij (x) f_j (eV), each directed pair carrying half
        of the force between i and j (the convention of ``kernels.zbl``):
        W = -1/2 sum_ij [V' + (F'_i + F'_j) phi'] r_ij (x) r_ij / |r_ij|; positive when
        compressed. ASE's stress is sigma = (1/V) dE/d(strain) = -W / V.
    """
    rho = fs_densities(natoms, i, j, rij, params)
    energies = np.zeros(natoms)
    dfdrho = np.zeros(natoms)
    for a in range(natoms):
        energies[a], dfdrho[a] = fs_embedding(rho[a], params)
    forces = np.zeros((natoms, 3))
    wxx = wyy = wzz = wyz = wxz = wxy = 0.0
    cutsq = params.cutoff * params.cutoff
    for p in range(i.shape[0]):
        dx, dy, dz = rij[p, 0], rij[p, 1], rij[p, 2]
        rsq = dx * dx + dy * dy + dz * dz
        if rsq >= cutsq:
            continue
        r = np.sqrt(rsq)
        a, b = i[p], j[p]
        v, dv = fs_pair(r, params)
        _, dphi = fs_density(r, params)
        energies[a] += 0.5 * v
        g = (dv + (dfdrho[a] + dfdrho[b]) * dphi) / r
        fx, fy, fz = g * dx, g * dy, g * dz
        forces[a, 0] += fx
        forces[a, 1] += fy
        forces[a, 2] += fz
        wxx += dx * fx
        wyy += dy * fy
        wzz += dz * fz
        wyz += dy * fz
        wxz += dx * fz
        wxy += dx * fy
    virial = np.empty((3, 3))
    virial[0, 0], virial[1, 1], virial[2, 2] = -0.5 * wxx, -0.5 * wyy, -0.5 * wzz
    virial[1, 2] = virial[2, 1] = -0.5 * wyz
    virial[0, 2] = virial[2, 0] = -0.5 * wxz
    virial[0, 1] = virial[1, 0] = -0.5 * wxy
    return energies, forces, virial
