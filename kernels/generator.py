"""The entropy-optimization potential V = V_rep - K S (paper Eq. 1) and its FIRE relaxation.

S is the descriptor entropy of ``kernels.entropy`` over scaled bispectrum components
D_i = B_i / scale (the twojmax-2 components at R = 4.73 Å by default), V_rep the pair
repulsion of ``kernels.repulsion``. The entropy force is a SNAP force with per-atom
coefficients beta_i = -K (dS/dD_i) / scale, evaluated by the adjoint kernel from the U of
the descriptor pass (``bispectrum_and_u``, ``beta_forces_from_u``): U is computed once per
step.
Cells are fixed; neighbor lists use a Verlet skin and are rebuilt when an atom has moved by
more than half of it.
"""
from typing import NamedTuple

import numpy as np

from emtool.kernels.entropy import entropy_and_gradient
from emtool.kernels.fire import fire_init, fire_step
from emtool.kernels.neighbors import neighbor_pairs_direct
from emtool.kernels.pairs import scatter_pairs
from emtool.kernels.repulsion import repulsion_energy_forces
from emtool.kernels.snap import PairArrays, beta_forces_from_u, bispectrum_and_u
from emtool.kernels.jit import jit


class EntropyTerms(NamedTuple):
    """The terms of V = V_rep - K S: K (eV, signed), the entropy floor (scaled descriptor
    units), the descriptor cutoff rcut (Å), and V_rep's r_ex (Å) and e0 (eV)."""

    K: float
    floor: float
    rcut: float
    r_ex: float
    e0: float


@jit
def _inside_pairs(positions, cell, i, j, shift, rcut):
    """Pairs of a skin list that are inside rcut now: (offsets, i, j, rij)."""
    n = i.shape[0]
    rij = np.empty((n, 3))
    keep = np.zeros(n, np.bool_)
    count = 0
    for p in range(n):
        for k in range(3):
            rij[p, k] = (positions[j[p], k] - positions[i[p], k] + shift[p, 0] * cell[0, k]
                         + shift[p, 1] * cell[1, k] + shift[p, 2] * cell[2, k])
        if rij[p, 0] ** 2 + rij[p, 1] ** 2 + rij[p, 2] ** 2 < rcut * rcut:
            keep[p] = True
            count += 1
    sel = np.flatnonzero(keep)
    i_in = i[sel]
    offsets = np.searchsorted(i_in, np.arange(positions.shape[0] + 1)).astype(np.int64)
    return offsets, i_in, j[sel], rij[sel]


@jit
def entropy_potential(positions, cell, i, j, shift, basis, settings, scale, terms):
    """V = V_rep - K S (eV), S, V_rep and the forces (N, 3) eV/Å for the pairs of a skin list.

    settings : ``SnapSettings``; scale : (D,) descriptor scale; terms : ``EntropyTerms``.
    """
    natoms = positions.shape[0]
    offsets, i_in, j_in, rij = _inside_pairs(positions, cell, i, j, shift, terms.rcut)
    npairs = rij.shape[0]
    pairs = PairArrays(offsets, rij, np.full(npairs, terms.rcut), np.ones(npairs))
    b, kept = bispectrum_and_u(basis, pairs, settings, 1)
    d = b / scale
    entropy, grad = entropy_and_gradient(d, terms.floor)
    beta = (-terms.K) * grad / scale
    dedr = beta_forces_from_u(basis, pairs, beta, kept, 1)
    forces = scatter_pairs(natoms, i_in, j_in, dedr)
    v_rep, f_rep, _ = repulsion_energy_forces(natoms, i_in, j_in, rij, terms.r_ex, terms.e0)
    forces += f_rep
    return v_rep - terms.K * entropy, entropy, v_rep, forces


@jit
def _max_force(forces):
    largest = 0.0
    for a in range(forces.shape[0]):
        largest = max(largest, forces[a, 0] ** 2 + forces[a, 1] ** 2 + forces[a, 2] ** 2)
    return np.sqrt(largest)


@jit
def relax_entropy(positions, cell, pbc, basis, settings, scale, terms, fire_consts, fmax,
                  max_steps, skin):
    """FIRE-minimize V = V_rep - K S at fixed cell from ``positions`` (N, 3), Å.

    Stops when the largest atomic force is below fmax (eV/Å) or after max_steps steps.
    Returns (positions (N, 3), stats) with stats = [S at start, S at end, V_rep at end (eV),
    steps, largest force at end (eV/Å), converged (1.0 or 0.0)].
    """
    x = positions.copy()
    natoms = x.shape[0]
    reach = terms.rcut + skin
    i, j, shift, _ = neighbor_pairs_direct(x, cell, pbc, reach)
    anchor = x.copy()
    _, s_start, v_rep, forces = entropy_potential(x, cell, i, j, shift, basis, settings, scale,
                                                  terms)
    entropy = s_start
    v, state = fire_init(natoms, fire_consts)
    steps = 0
    largest = _max_force(forces)
    while largest >= fmax and steps < max_steps:
        fire_step(x, forces, v, state, fire_consts)
        steps += 1
        moved = 0.0
        for a in range(natoms):
            moved = max(moved, (x[a, 0] - anchor[a, 0]) ** 2 + (x[a, 1] - anchor[a, 1]) ** 2
                        + (x[a, 2] - anchor[a, 2]) ** 2)
        if moved > (0.5 * skin) ** 2:
            i, j, shift, _ = neighbor_pairs_direct(x, cell, pbc, reach)
            anchor[:] = x
        _, entropy, v_rep, forces = entropy_potential(x, cell, i, j, shift, basis, settings,
                                                      scale, terms)
        largest = _max_force(forces)
    stats = np.array([s_start, entropy, v_rep, steps, largest, 1.0 if largest < fmax else 0.0])
    return x, stats
