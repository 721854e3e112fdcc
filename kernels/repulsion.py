"""The repulsive pair term V_rep of the entropy-optimization potential (paper Eq. 1).

    V_rep = sum over pairs i < j of e0 (r_ex / r - 1)^2   for r < r_ex, 0 beyond,

purely repulsive (dV/dr < 0 for r < r_ex), continuous with a continuous first derivative at
the exclusion radius r_ex (Å), and divergent as r -> 0, so that no minimization can bring two
atoms together. e0 (eV) sets its scale relative to K S.
"""
import numpy as np

from emtool.kernels.jit import jit


@jit
def repulsion_energy_forces(natoms, i, j, rij, r_ex, e0):
    """V_rep (eV), forces (N, 3) eV/Å and virial (3, 3) over a full neighbor list.

    i, j : (n_pairs,) int64, rij : (n_pairs, 3) Å; every pair appears in both directions,
    each direction carrying half of the pair energy. Virial W = sum r_ij (x) f_j (eV).
    """
    energy = 0.0
    forces = np.zeros((natoms, 3))
    virial = np.zeros((3, 3))
    for p in range(rij.shape[0]):
        r = np.sqrt(rij[p, 0] ** 2 + rij[p, 1] ** 2 + rij[p, 2] ** 2)
        if r >= r_ex:
            continue
        x = r_ex / r - 1.0
        energy += 0.5 * e0 * x * x
        dvdr = -0.5 * e0 * 2.0 * x * r_ex / (r * r)
        for k in range(3):
            f = -dvdr * rij[p, k] / r
            forces[j[p], k] += f
            forces[i[p], k] -= f
            for m in range(3):
                virial[k, m] += rij[p, k] * f
    return energy, forces, virial
