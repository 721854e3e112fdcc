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
itself included) use each atom's own pairs only, so that atoms run in parallel with no
shared writes::

    F_i = sum_j [V'(r_ij) + (F'(rho_i) + F'(rho_j)) phi'(r_ij)] r_ij / |r_ij|,
    r_ij = r_j - r_i + S @ cell

The kernels take the list as CSR offsets, neighbors and image shifts and recompute r_ij
at the positions given, so that MD passes its Verlet skin list as it is, with no per-step
filtering to the cutoff. Parameters are a ``FinnisSinclairParams`` (built and validated by
``emtool.potentials.reference``).
"""
from typing import NamedTuple

import numpy as np
from numba import prange

from emtool.kernels.jit import jit
from emtool.kernels.neighbors import _pair_vector


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


@jit(inline=True)
def fs_density(r, params):
    """Density function phi(r) (Å^2) and phi'(r) (Å) at r >= 0 (Å); zero at r >= d."""
    t = r - params.d
    if t >= 0.0:
        return 0.0, 0.0
    return t * t, 2.0 * t


@jit(inline=True)
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


@jit(inline=True)
def fs_embedding(rho, params):
    """Embedding energy F(rho) = -A sqrt(rho) (eV) and F'(rho) (eV/Å^2) at rho >= 0 (Å^2).

    F'(0) is returned as 0 (see the module docstring): finite, and exact in every product
    F'(rho_i) phi'(r_ij) the force uses.
    """
    if rho <= 0.0:
        return 0.0, 0.0
    root = np.sqrt(rho)
    return -params.A * root, -0.5 * params.A / root


@jit(parallel=True)
def fs_densities(positions, cell, offsets, j, shift, params, near, vectors, nchunk):
    """Densities over a full list in CSR form (arguments as for ``fs_energy_forces``), and
    the pairs within the cutoff gathered for the force pass into ``near`` and ``vectors``.

    Returns
    -------
    rho : float64 (N,)
        rho_i = sum_j phi(r_ij) (Å^2).
    coincident : int
        Index of the first pair at r = 0 (-1 if none).
    count : int64 (N,)
        Pairs of atom a with |r|^2 < cutoff^2, gathered in list order at
        ``offsets[a]:offsets[a] + count[a]`` of ``near`` and ``vectors``.
    near : int64 (>= P,)
        Their neighbor atoms j (the scratch array passed in, filled).
    vectors : float64 (>= P, 4)
        Their r_ij (Å) and |r_ij| (Å), at the same places as ``near`` (idem).
    """
    natoms = offsets.shape[0] - 1
    rho = np.zeros(natoms)
    count = np.zeros(natoms, np.int64)
    first = np.full(natoms, -1, np.int64)
    cutsq = params.cutoff * params.cutoff
    nchunk = max(1, min(nchunk, natoms))
    for chunk in prange(nchunk):
        for a in range(chunk * natoms // nchunk, (chunk + 1) * natoms // nchunk):
            q = offsets[a]
            for p in range(offsets[a], offsets[a + 1]):
                dx, dy, dz = _pair_vector(positions, cell, a, j[p], shift[p, 0], shift[p, 1],
                                          shift[p, 2])
                rsq = dx * dx + dy * dy + dz * dz
                near[q] = p
                vectors[q, 0], vectors[q, 1], vectors[q, 2], vectors[q, 3] = dx, dy, dz, rsq
                q += rsq < cutsq
            density = 0.0
            for t in range(offsets[a], q):
                rsq = vectors[t, 3]
                if rsq == 0.0 and first[a] < 0:
                    first[a] = near[t]
                r = np.sqrt(rsq)
                phi, _ = fs_density(r, params)
                density += phi
                near[t] = j[near[t]]
                vectors[t, 3] = r
            rho[a] = density
            count[a] = q - offsets[a]
    coincident = -1
    for a in range(natoms):
        if first[a] >= 0:
            coincident = first[a]
            break
    return rho, coincident, count, near, vectors


@jit(parallel=True)
def fs_energy_forces(positions, cell, offsets, j, shift, params, near, vectors, nchunk):
    """Finnis-Sinclair energies, forces and virial over a full neighbor list.

    The list is given in CSR form and may hold more pairs than those within the cutoff
    (a Verlet skin list): each pair vector is recomputed at ``positions`` with the neighbor
    builders' arithmetic (``emtool.kernels.neighbors._pair_vector``), and pairs at
    r >= cutoff contribute nothing. The pairs of each atom are summed in list order, so any
    list holding every pair within the cutoff in the builders' i, j, S order gives the same
    energies and forces bit for bit. Two passes over ``nchunk`` parallel chunks of atoms
    (densities, gathering the pairs within the cutoff; then forces over those); the result
    does not depend on the number of threads.

    Parameters
    ----------
    positions : float64 (N, 3)
        Cartesian positions (Å).
    cell : float64 (3, 3)
        Rows are lattice vectors (Å).
    offsets : int64 (N + 1,)
        CSR offsets: the pairs of atom a are ``offsets[a]:offsets[a + 1]``.
    j : int64 (P,)
        Neighbor of each pair; every pair appears as i -> j and j -> i (a FULL list),
        including periodic images of an atom itself (then i == j).
    shift : int64 (P, 3)
        Image shift S: r_ij = r_j - r_i + S @ cell.
    params : FinnisSinclairParams
    near, vectors : int64 (>= P,), float64 (>= P, 4)
        Scratch (any content) for the pairs within the cutoff. The caller keeps them from
        call to call: MD evaluates one list many times, and fresh arrays of this size cost
        more page faults per call than the kernel's arithmetic.
    nchunk : int
        Parallel chunks of atoms (``emtool.parallel.run_kernel`` passes it).

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
    coincident : int
        Index of the first pair at r = 0 (-1 if none); energies and forces are then not
        finite and the caller must refuse the structure.
    """
    natoms = offsets.shape[0] - 1
    rho, coincident, count, near, vectors = fs_densities(positions, cell, offsets, j, shift,
                                                         params, near, vectors, nchunk)
    energies = np.empty(natoms)
    dfdrho = np.empty(natoms)
    for a in range(natoms):
        energies[a], dfdrho[a] = fs_embedding(rho[a], params)
    forces = np.zeros((natoms, 3))
    nchunk = max(1, min(nchunk, natoms))
    partial = np.zeros((nchunk, 6))
    for chunk in prange(nchunk):
        wxx = wyy = wzz = wyz = wxz = wxy = 0.0
        for a in range(chunk * natoms // nchunk, (chunk + 1) * natoms // nchunk):
            energy = energies[a]
            fx = fy = fz = 0.0
            for q in range(offsets[a], offsets[a] + count[a]):
                dx, dy, dz, r = vectors[q, 0], vectors[q, 1], vectors[q, 2], vectors[q, 3]
                v, dv = fs_pair(r, params)
                _, dphi = fs_density(r, params)
                energy += 0.5 * v
                g = (dv + (dfdrho[a] + dfdrho[near[q]]) * dphi) / r
                gx, gy, gz = g * dx, g * dy, g * dz
                fx += gx
                fy += gy
                fz += gz
                wxx += dx * gx
                wyy += dy * gy
                wzz += dz * gz
                wyz += dy * gz
                wxz += dx * gz
                wxy += dx * gy
            energies[a] = energy
            forces[a, 0], forces[a, 1], forces[a, 2] = fx, fy, fz
        partial[chunk, 0], partial[chunk, 1], partial[chunk, 2] = wxx, wyy, wzz
        partial[chunk, 3], partial[chunk, 4], partial[chunk, 5] = wyz, wxz, wxy
    w = np.zeros(6)
    for chunk in range(nchunk):
        for k in range(6):
            w[k] += partial[chunk, k]
    virial = np.empty((3, 3))
    virial[0, 0], virial[1, 1], virial[2, 2] = -0.5 * w[0], -0.5 * w[1], -0.5 * w[2]
    virial[1, 2] = virial[2, 1] = -0.5 * w[3]
    virial[0, 2] = virial[2, 0] = -0.5 * w[4]
    virial[0, 1] = virial[1, 0] = -0.5 * w[5]
    return energies, forces, virial, coincident
