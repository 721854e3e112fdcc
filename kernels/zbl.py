"""Ziegler-Biersack-Littmark (ZBL) screened nuclear repulsion, exactly as LAMMPS ``pair_style zbl``.

Pair energy (eV) at distance r (Å) of nuclei with charges Z_i, Z_j (J. F. Ziegler,
J. P. Biersack, U. Littmark, *The Stopping and Range of Ions in Matter*, 1985)::

    phi(r) = (Z_i Z_j qqr2e / r) * sum_k c_k exp(-d_k r / a),   a = a0 / (Z_i^0.23 + Z_j^0.23)

with qqr2e = e^2 / (4 pi eps0) = 14.399645 eV Å (LAMMPS ``units metal``), a0 = 0.46850 Å,
c = (0.02817, 0.28022, 0.50986, 0.18175), d = (0.20162, 0.40290, 0.94229, 3.19980). LAMMPS
adds a switching polynomial in t = r - r_inner so that E, dE/dr and d2E/dr2 vanish at
r_outer::

    E(r) = phi(r) + sw5 + [r > r_inner] t^3 (sw3 + sw4 t)      for r < r_outer, else 0
    dE/dr = phi'(r)     + [r > r_inner] t^2 (sw1 + sw2 t)

The coefficients are one float64 array (built and validated by ``emtool.potentials.zbl``) with the
layout of the index constants below.
"""
import numpy as np
from numba import prange

from emtool.kernels.jit import jit

#: ZBL universal screening function, LAMMPS ``pair_zbl_const.h``.
C1, C2, C3, C4 = 0.02817, 0.28022, 0.50986, 0.18175
D1, D2, D3, D4 = 0.20162, 0.40290, 0.94229, 3.19980

#: Positions in the coefficient array: d_k / a (1/Å), Z_i Z_j qqr2e (eV Å), switching
#: coefficients sw1..sw5 (LAMMPS ``set_coeff``), inner and outer cutoffs (Å).
D1A, D2A, D3A, D4A, ZZE, SW1, SW2, SW3, SW4, SW5, R_INNER, R_OUTER = range(12)
N_COEFFS = 12


@jit
def zbl_screened(r, coeffs):
    """Unswitched ZBL phi(r), phi'(r), phi''(r) (eV, eV/Å, eV/Å^2) at r > 0 (Å).

    LAMMPS ``e_zbl``, ``dzbldr`` and ``d2zbldr2``, term by term in the same order.
    """
    d1a, d2a, d3a, d4a, zze = coeffs[D1A], coeffs[D2A], coeffs[D3A], coeffs[D4A], coeffs[ZZE]
    rinv = 1.0 / r
    e1 = np.exp(-d1a * r)
    e2 = np.exp(-d2a * r)
    e3 = np.exp(-d3a * r)
    e4 = np.exp(-d4a * r)
    s = C1 * e1 + C2 * e2 + C3 * e3 + C4 * e4
    s_p = -C1 * d1a * e1 - C2 * d2a * e2 - C3 * d3a * e3 - C4 * d4a * e4
    s_p2 = C1 * e1 * d1a + C2 * e2 * d2a + C3 * e3 * d3a + C4 * e4 * d4a
    s_pp = C1 * e1 * d1a * d1a + C2 * e2 * d2a * d2a + C3 * e3 * d3a * d3a + C4 * e4 * d4a * d4a
    phi = zze * s * rinv
    dphi = zze * (s_p - s * rinv) * rinv
    d2phi = zze * (s_pp + 2.0 * s_p2 * rinv + 2.0 * s * rinv * rinv) * rinv
    return phi, dphi, d2phi


@jit
def zbl_pair(r, coeffs):
    """Switched ZBL pair energy E(r) (eV) and dE/dr (eV/Å) at r > 0 (Å); zero at r >= r_outer."""
    if r >= coeffs[R_OUTER]:
        return 0.0, 0.0
    e, de, _ = zbl_screened(r, coeffs)
    e += coeffs[SW5]
    if r > coeffs[R_INNER]:
        t = r - coeffs[R_INNER]
        e += t * t * t * (coeffs[SW3] + coeffs[SW4] * t)
        de += t * t * (coeffs[SW1] + coeffs[SW2] * t)
    return e, de


@jit(parallel=True)
def zbl_energy_forces(offsets, j, rij, species, coeffs, nchunk):
    """ZBL energies, forces and virial over a full neighbor list, in parallel over atoms.

    Parameters
    ----------
    offsets : int64 (N + 1,)
        CSR offsets of a FULL list sorted by central atom: the pairs of atom a are
        ``offsets[a]:offsets[a + 1]``; every pair appears as a -> b and b -> a, periodic
        images of an atom itself included (then a == b).
    j : int64 (P,)
        Neighbor atom of each pair.
    rij : float64 (P, 3)
        r_ij = r_j - r_i + S @ cell (Å).
    species : int64 (N,)
        Species index of each atom.
    coeffs : float64 (n_species, n_species, 12)
        ``emtool.potentials.zbl.zbl_coefficients`` of each pair of species.
    nchunk : int
        Parallel work chunks (>= 1); each owns the atoms it writes.

    Returns
    -------
    energies : float64 (N,)
        E_a = 1/2 sum_b E(r_ab) (eV); each directed pair gives half of its pair energy to a.
    forces : float64 (N, 3)
        F_a = -dE/dr_a = sum_b E'(r_ab) r_ab / r_ab (eV/Å): with a full list, atom a's
        pairs alone give its force.
    virial : float64 (3, 3)
        W = sum over directed pairs of r_ab (x) f_b with f_b = -d(E(r_ab)/2)/dr_b (eV);
        positive when compressed. ASE's stress is sigma = (1/V) dE/d(strain) = -W / V.
    """
    natoms = offsets.shape[0] - 1
    energies = np.zeros(natoms)
    forces = np.zeros((natoms, 3))
    nchunk = max(1, min(nchunk, natoms))
    virials = np.zeros((nchunk, 3, 3))
    for c in prange(nchunk):
        for a in range(c * natoms // nchunk, (c + 1) * natoms // nchunk):
            for p in range(offsets[a], offsets[a + 1]):
                pair = coeffs[species[a], species[j[p]]]
                dx, dy, dz = rij[p, 0], rij[p, 1], rij[p, 2]
                rsq = dx * dx + dy * dy + dz * dz
                if rsq >= pair[R_OUTER] * pair[R_OUTER]:
                    continue
                r = np.sqrt(rsq)
                e, de = zbl_pair(r, pair)
                energies[a] += 0.5 * e
                fpair = de / r
                d = (dx, dy, dz)
                for k in range(3):
                    forces[a, k] += fpair * d[k]
                    for m in range(3):
                        virials[c, k, m] -= 0.5 * fpair * d[k] * d[m]
    return energies, forces, virials.sum(axis=0)
