"""SNAP bispectrum kernels: U, Z, B, the adjoint Y, forces and per-pair dB/dr.

Conventions are those of LAMMPS ML-SNAP (``sna.cpp``, Thompson et al., J. Comput. Phys.
285, 316 (2015)); labels are doubled integers and the tables come from ``snap_basis``.

For atom i with neighbors k (displacements r_ik = r_k - r_i, Å, |r_ik| < rcut_ik):

    U_j = wself * I + sum_k f_c(r_ik) w_k u_j(r_ik)                      (paper Eq. 5)
    Z_{j1 j2 j} = U_j1 (x)_{j1 j2}^{j} U_j2        (Clebsch–Gordan product)
    B_{j1 j2 j} = 2 * sum over the unique half of layer j of Re(conj(U_j) . Z_{j1 j2 j})

u_j are Wigner U-matrices of the point (psi, theta, phi) on S^3 with
psi = rfac0 * pi * (r - rmin0) / (rcut - rmin0), built by the VMK 4.8.2 recursion; f_c is
the cosine switching function (switchflag 1) or 1 (switchflag 0).

Forces use the adjoint path: for per-atom coefficients beta_i (eV), E = sum_i beta_i . B_i,
Y_i = sum_jjz beta_i[y_jjb] * y_factor * Z (once per atom) and dE_i/dr_ik = 2 * sum over the
unique half of Re(conj(dU_j/dr_ik) . Y_j), which ``_dedr_adjoint`` evaluates without forming
dU: one reverse-mode pass through the U recursion per neighbor, seeded with Y. Kernels return
that derivative per pair; the Python layer scatters it: F_i += dE_i/dr_ik, F_k -= dE_i/dr_ik.
The per-component derivatives dB_i/dr_ik of fitting (``dbdr_kernel``) use the forward
derivative recursions (``_du_layers``).

Atoms are processed in parallel chunks (``prange``); every chunk owns the rows it writes.
"""
from typing import NamedTuple

import numpy as np
from numba import prange

from emtool.kernels.jit import jit, nowrap as _nw
from emtool.kernels.snap_basis import Z_JJU

PI = np.pi

#: Columns of the per-neighbor geometry ``_u_total`` keeps for ``_scaled_du``: r (Å),
#: z0 = r / tan(theta0) (Å), dz0/dr, f_c and df_c/dr (1/Å).
(G_R, G_Z0, G_DZ0DR, G_FC, G_DFC) = range(5)
N_GEOMETRY = 5


class PairArrays(NamedTuple):
    """The neighbor pairs of N atoms, as the kernels take them.

    offsets : (N+1,) int64 CSR bounds: the neighbors of atom i are pairs offsets[i]:offsets[i+1].
    rij : (n_pairs, 3) displacement to each neighbor, Å (every pair inside its cutoff).
    rcut, wj : (n_pairs,) pair cutoff (Å) and neighbor weight.
    """

    offsets: np.ndarray
    rij: np.ndarray
    rcut: np.ndarray
    wj: np.ndarray


class SnapSettings(NamedTuple):
    """The SNAP parameters the kernels use (see ``emtool.SnapParams``)."""

    rfac0: float
    rmin0: float
    switchflag: int
    wself: float


@jit(inline=True)
def _switch(r, rcut, rmin0, switchflag):
    """Cutoff function f_c(r) and its derivative (1/Å); LAMMPS compute_sfac/compute_dsfac."""
    if switchflag == 0:
        return 1.0, 0.0
    if r <= rmin0:
        return 1.0, 0.0
    if r > rcut:
        return 0.0, 0.0
    scale = PI / (rcut - rmin0)
    return 0.5 * (np.cos((r - rmin0) * scale) + 1.0), -0.5 * np.sin((r - rmin0) * scale) * scale


@jit(inline=True)
def _u_layers(twojmax, rootpq, idxu_block, x, y, z, z0, r, u_r, u_i):
    """Wigner U-matrices of one neighbor, layers j = 0..twojmax.

    (x, y, z) = r_ik (Å), r = |r_ik|, z0 = r / tan(psi). Fills u_r, u_i (idxu_max,) in the rows
    2*mb <= j of every layer j, which hold the unique half, and, for odd j < twojmax, row
    (j+1)/2, the mirror of row (j-1)/2, which the recursion of layer j+1 also reads; the
    other rows are left as they were.
    Takes the basis arrays it needs, not the whole ``SnapBasis``: small per-pair functions
    stay cheap to call.
    """
    r0inv = 1.0 / np.sqrt(r * r + z0 * z0)
    a_r = r0inv * z0
    a_i = -r0inv * z
    b_r = r0inv * y
    b_i = -r0inv * x
    u_r[0] = 1.0
    u_i[0] = 0.0
    for j in range(1, twojmax + 1):
        jju = idxu_block[_nw(j)]
        jjup = idxu_block[_nw(j - 1)]
        for mb in range(j // 2 + 1):
            # element ma gets the b-term of ma - 1 plus its own a-term; the b-term is carried
            # in a register (u_r and u_i may alias as far as the compiler knows)
            carry_r = 0.0
            carry_i = 0.0
            for ma in range(j):
                rootpq_a = rootpq[_nw(j - ma), _nw(j - mb)]
                up_r = u_r[_nw(jjup)]
                up_i = u_i[_nw(jjup)]
                u_r[_nw(jju)] = carry_r + rootpq_a * (a_r * up_r + a_i * up_i)
                u_i[_nw(jju)] = carry_i + rootpq_a * (a_r * up_i - a_i * up_r)
                rootpq_b = rootpq[_nw(ma + 1), _nw(j - mb)]
                carry_r = -rootpq_b * (b_r * up_r + b_i * up_i)
                carry_i = -rootpq_b * (b_r * up_i - b_i * up_r)
                jju += 1
                jjup += 1
            u_r[_nw(jju)] = carry_r
            u_i[_nw(jju)] = carry_i
            jju += 1
        if j < twojmax and j % 2 == 1:
            _mirror_row(idxu_block[_nw(j)], j, u_r, u_i)


@jit(inline=True)
def _mirror_row(start, j, u_r, u_i):
    """Fill row mb = (j+1)/2 of an odd layer j (the one row beyond the unique half that layer
    j+1 reads) from row (j-1)/2: u[mb][ma] = (-1)^(ma+mb) conj u[j-mb][j-ma]."""
    mb = (j + 1) // 2
    row = start + (j + 1) * mb
    src = start + (j + 1) * (j - mb) + j
    sign = 1.0 if mb % 2 == 0 else -1.0
    for ma in range(j + 1):
        u_r[_nw(row + ma)] = sign * u_r[_nw(src - ma)]
        u_i[_nw(row + ma)] = -sign * u_i[_nw(src - ma)]
        sign = -sign


@jit(inline=True)
def _mirror_layer(start, j, u_r, u_i):
    """Fill rows 2*mb > j of a layer from the half 2*mb <= j: u[j-ma][j-mb] = (-1)^(ma-mb) conj u[ma][mb]."""
    jju = start
    jjup = start + (j + 1) * (j + 1) - 1
    mbpar = 1
    for mb in range(j // 2 + 1):
        mapar = mbpar
        for ma in range(j + 1):
            if mapar == 1:
                u_r[_nw(jjup)] = u_r[_nw(jju)]
                u_i[_nw(jjup)] = -u_i[_nw(jju)]
            else:
                u_r[_nw(jjup)] = -u_r[_nw(jju)]
                u_i[_nw(jjup)] = u_i[_nw(jju)]
            mapar = -mapar
            jju += 1
            jjup -= 1
        mbpar = -mbpar


@jit(inline=True)
def _cayley_klein_derivatives(k, x, y, z, z0, r, dz0dr, r0inv):
    """d(a_r, a_i, b_r, b_i)/dx_k of the Cayley–Klein parameters of ``_u_layers``."""
    unit = (x if k == 0 else (y if k == 1 else z)) / r
    dr0inv = -(r0inv ** 3) * (r + z0 * dz0dr) * unit
    return (dz0dr * unit * r0inv + z0 * dr0inv, -z * dr0inv - (r0inv if k == 2 else 0.0),
            y * dr0inv + (r0inv if k == 1 else 0.0), -x * dr0inv - (r0inv if k == 0 else 0.0))


@jit(inline=True)
def _du_step(rootpq_a, rootpq_b, a_r, a_i, b_r, b_i, da_r, da_i, db_r, db_i, up_r, up_i,
             dup_r, dup_i, carry_r, carry_i):
    """One step of the differentiated recursion for one Cartesian component: returns the
    element's (Re, Im) dU and the b-term (Re, Im) it hands to the next element."""
    return (carry_r + rootpq_a * (da_r * up_r + da_i * up_i + a_r * dup_r + a_i * dup_i),
            carry_i + rootpq_a * (da_r * up_i - da_i * up_r + a_r * dup_i - a_i * dup_r),
            -rootpq_b * (db_r * up_r + db_i * up_i + b_r * dup_r + b_i * dup_i),
            -rootpq_b * (db_r * up_i - db_i * up_r + b_r * dup_i - b_i * dup_r))


@jit(inline=True)
def _du_layers(twojmax, rootpq, idxu_block, x, y, z, z0, r, dz0dr, u_r, u_i, du_r, du_i):
    """dU/dr_ik (unscaled by f_c) of one neighbor, all layers; du_r, du_i are (idxu_max, 3).

    Needs u_r, u_i of the same neighbor from ``_u_layers``. Fills the rows ``_u_layers``
    fills. The three Cartesian components are three recursions (VMK 4.8.2 differentiated)
    run side by side, element by element, so that each u element and root is read once.
    """
    r0inv = 1.0 / np.sqrt(r * r + z0 * z0)
    a_r = z0 * r0inv
    a_i = -z * r0inv
    b_r = y * r0inv
    b_i = -x * r0inv
    dar0, dai0, dbr0, dbi0 = _cayley_klein_derivatives(0, x, y, z, z0, r, dz0dr, r0inv)
    dar1, dai1, dbr1, dbi1 = _cayley_klein_derivatives(1, x, y, z, z0, r, dz0dr, r0inv)
    dar2, dai2, dbr2, dbi2 = _cayley_klein_derivatives(2, x, y, z, z0, r, dz0dr, r0inv)
    for k in range(3):
        du_r[0, k] = 0.0
        du_i[0, k] = 0.0
    for j in range(1, twojmax + 1):
        jju = idxu_block[_nw(j)]
        jjup = idxu_block[_nw(j - 1)]
        for mb in range(j // 2 + 1):
            c0r = c0i = c1r = c1i = c2r = c2i = 0.0
            for ma in range(j):
                rootpq_a = rootpq[_nw(j - ma), _nw(j - mb)]
                rootpq_b = rootpq[_nw(ma + 1), _nw(j - mb)]
                up_r = u_r[_nw(jjup)]
                up_i = u_i[_nw(jjup)]
                e = _nw(jju)
                q = _nw(jjup)
                du_r[e, 0], du_i[e, 0], c0r, c0i = _du_step(
                    rootpq_a, rootpq_b, a_r, a_i, b_r, b_i, dar0, dai0, dbr0, dbi0, up_r, up_i,
                    du_r[q, 0], du_i[q, 0], c0r, c0i)
                du_r[e, 1], du_i[e, 1], c1r, c1i = _du_step(
                    rootpq_a, rootpq_b, a_r, a_i, b_r, b_i, dar1, dai1, dbr1, dbi1, up_r, up_i,
                    du_r[q, 1], du_i[q, 1], c1r, c1i)
                du_r[e, 2], du_i[e, 2], c2r, c2i = _du_step(
                    rootpq_a, rootpq_b, a_r, a_i, b_r, b_i, dar2, dai2, dbr2, dbi2, up_r, up_i,
                    du_r[q, 2], du_i[q, 2], c2r, c2i)
                jju += 1
                jjup += 1
            e = _nw(jju)
            du_r[e, 0], du_i[e, 0] = c0r, c0i
            du_r[e, 1], du_i[e, 1] = c1r, c1i
            du_r[e, 2], du_i[e, 2] = c2r, c2i
            jju += 1
        if j < twojmax and j % 2 == 1:
            for k in range(3):
                _mirror_row(idxu_block[_nw(j)], j, du_r[:, k], du_i[:, k])


@jit(inline=True)
def _angles(x, y, z, rcut, rfac0, rmin0):
    """r = |r_ik|, z0 = r / tan(theta0) and dz0/dr for theta0 = rfac0 pi (r - rmin0)/(rcut - rmin0)."""
    r = np.sqrt(x * x + y * y + z * z)
    rscale0 = rfac0 * PI / (rcut - rmin0)
    theta0 = (r - rmin0) * rscale0
    cs = np.cos(theta0)
    sn = np.sin(theta0)
    z0 = r * cs / sn
    dz0dr = z0 / r - (r * rscale0) * (r * r + z0 * z0) / (r * r)
    return r, z0, dz0dr


@jit
def _u_total(basis, pairs, settings, start, stop, u_nbr_r, u_nbr_i, geometry, utot_r, utot_i):
    """U of one atom from its neighbor pairs start:stop; keeps each neighbor's u in u_nbr_*.

    utot_r, utot_i (idxu_max,) get wself on the diagonals plus sum_k f_c w_k u(r_ik), all rows.
    u_nbr_r, u_nbr_i (>= stop-start, idxu_max) get the unscaled u of each neighbor, and
    geometry (>= stop-start, 5) its r, z0, dz0/dr, f_c and df_c/dr (columns ``G_*``), which
    the derivative pass (``_scaled_du``) reuses instead of recomputing them.
    """
    idxu_block = basis.idxu_block
    rij, rcut = pairs.rij, pairs.rcut
    for jju in range(basis.idxu_max):
        utot_r[_nw(jju)] = 0.0
        utot_i[_nw(jju)] = 0.0
    for j in range(basis.twojmax + 1):
        for ma in range(j + 1):
            utot_r[idxu_block[_nw(j)] + (j + 1) * ma + ma] = settings.wself
    for p in range(start, stop):
        n = p - start
        x = rij[_nw(p), 0]
        y = rij[_nw(p), 1]
        z = rij[_nw(p), 2]
        r, z0, dz0dr = _angles(x, y, z, rcut[_nw(p)], settings.rfac0, settings.rmin0)
        _u_layers(basis.twojmax, basis.rootpq, idxu_block, x, y, z, z0, r, u_nbr_r[_nw(n)],
                  u_nbr_i[_nw(n)])
        fc, dfc = _switch(r, rcut[_nw(p)], settings.rmin0, settings.switchflag)
        geometry[_nw(n), G_R], geometry[_nw(n), G_Z0], geometry[_nw(n), G_DZ0DR] = r, z0, dz0dr
        geometry[_nw(n), G_FC], geometry[_nw(n), G_DFC] = fc, dfc
        sfac = fc * pairs.wj[p]
        for j in range(basis.twojmax + 1):
            first = idxu_block[_nw(j)]
            for jju in range(first, first + (j // 2 + 1) * (j + 1)):
                utot_r[_nw(jju)] += sfac * u_nbr_r[_nw(n), _nw(jju)]
                utot_i[_nw(jju)] += sfac * u_nbr_i[_nw(n), _nw(jju)]
    for j in range(1, basis.twojmax + 1):
        _mirror_layer(idxu_block[_nw(j)], j, utot_r, utot_i)


@jit(inline=True)
def _z_element(basis, jjz, utot_r, utot_i):
    """One Clebsch–Gordan product Z_{j1 j2 j}(ma, mb) (row jjz of idxz); returns (Re, Im).

    Runs over the row's flat terms (``SnapBasis.z_start``): the loop variable and the
    indices are unsigned, so the indexing needs no negative-index check.
    """
    u1, u2, cg = basis.z_u1, basis.z_u2, basis.z_cg
    z_r = 0.0
    z_i = 0.0
    for t in range(basis.z_start[jjz], basis.z_start[jjz + 1]):
        k1 = u1[t]
        k2 = u2[t]
        p_r = cg[t] * utot_r[k1]
        p_i = cg[t] * utot_i[k1]
        z_r += p_r * utot_r[k2] - p_i * utot_i[k2]
        z_i += p_r * utot_i[k2] + p_i * utot_r[k2]
    return z_r, z_i


@jit
def _bispectrum_from_u(basis, utot_r, utot_i, out):
    """B_{j1 j2 j} (without the bzero shift) of one atom into out (D,)."""
    for jjb in range(basis.idxb.shape[0]):
        j1 = basis.idxb[jjb, 0]
        j2 = basis.idxb[jjb, 1]
        j = basis.idxb[jjb, 2]
        first = basis.idxz_block[j1, j2, j]
        total = 0.0
        for jjz in range(first, first + basis.idxz_count[j1, j2, j]):
            z_r, z_i = _z_element(basis, jjz, utot_r, utot_i)
            jju = basis.idxz[jjz, Z_JJU]
            total += basis.z_weight[_nw(jjz)] * (utot_r[_nw(jju)] * z_r + utot_i[_nw(jju)] * z_i)
        out[_nw(jjb)] = 2.0 * total


@jit
def _y_from_u(basis, utot_r, utot_i, beta, y_r, y_i, b):
    """Adjoint Y and B of one atom, from one pass over Z.

    y_r, y_i (idxu_max,): Y_j = sum over Z rows of beta[y_jjb] * y_factor * Z, times the half
    weights (zero outside the unique half), so that dE_i/dr = 2 sum Re(conj(dU) . Y).
    b (D,): the bispectrum components without the bzero shift.
    """
    for jju in range(basis.idxu_max):
        y_r[_nw(jju)] = 0.0
        y_i[_nw(jju)] = 0.0
    for jjb in range(b.shape[0]):
        b[_nw(jjb)] = 0.0
    for jjz in range(basis.idxz.shape[0]):
        z_r, z_i = _z_element(basis, jjz, utot_r, utot_i)
        jju = basis.idxz[jjz, Z_JJU]
        coef = beta[basis.y_jjb[_nw(jjz)]] * basis.y_factor[_nw(jjz)]
        y_r[_nw(jju)] += coef * z_r
        y_i[_nw(jju)] += coef * z_i
        jjb = basis.b_jjb[_nw(jjz)]
        if jjb >= 0:
            b[_nw(jjb)] += 2.0 * basis.z_weight[_nw(jjz)] * (utot_r[_nw(jju)] * z_r + utot_i[_nw(jju)] * z_i)
    for jju in range(basis.idxu_max):
        y_r[_nw(jju)] *= basis.half_weight[_nw(jju)]
        y_i[_nw(jju)] *= basis.half_weight[_nw(jju)]


@jit
def _z_all(basis, utot_r, utot_i, z_r, z_i):
    """Every Z row of one atom, times its half weight, into z_r, z_i (idxz_max,)."""
    for jjz in range(basis.idxz.shape[0]):
        zr, zi = _z_element(basis, jjz, utot_r, utot_i)
        z_r[_nw(jjz)] = basis.z_weight[_nw(jjz)] * zr
        z_i[_nw(jjz)] = basis.z_weight[_nw(jjz)] * zi


@jit(inline=True)
def _scaled_du(twojmax, rootpq, idxu_block, half_index, x, y, z, wj, geometry, u_r, u_i,
               du_r, du_i, dc_r, dc_i):
    """d(f_c w u)/dr_ik of one neighbor in the compact half layout: dc_r, dc_i (3, n_half).

    geometry (5,), u_r, u_i (idxu_max,): the neighbor's row of ``_u_total``'s outputs.
    du_r, du_i (idxu_max, 3) are workspace for the recursion.
    """
    r, z0, dz0dr = geometry[G_R], geometry[G_Z0], geometry[G_DZ0DR]
    _du_layers(twojmax, rootpq, idxu_block, x, y, z, z0, r, dz0dr, u_r, u_i, du_r, du_i)
    sfac = geometry[G_FC] * wj
    dsfac = geometry[G_DFC] * wj
    gx = dsfac * x / r
    gy = dsfac * y / r
    gz = dsfac * z / r
    for t in range(half_index.shape[0]):
        jju = half_index[_nw(t)]
        ur = u_r[_nw(jju)]
        ui = u_i[_nw(jju)]
        dc_r[0, _nw(t)] = gx * ur + sfac * du_r[_nw(jju), 0]
        dc_r[1, _nw(t)] = gy * ur + sfac * du_r[_nw(jju), 1]
        dc_r[2, _nw(t)] = gz * ur + sfac * du_r[_nw(jju), 2]
        dc_i[0, _nw(t)] = gx * ui + sfac * du_i[_nw(jju), 0]
        dc_i[1, _nw(t)] = gy * ui + sfac * du_i[_nw(jju), 1]
        dc_i[2, _nw(t)] = gz * ui + sfac * du_i[_nw(jju), 2]


@jit(reassociate=True)
def _pair_dbdr(db_terms, db_factor, dc_r, dc_i, z_r, z_i, out):
    """dB_i/dr_ik (D, 3) of one neighbor into out: for each term (first_z, first_c, n, jjb)
    of ``SnapBasis.db_terms``, out[jjb, k] += factor * 2 sum_t Re(conj(dU[k, first_c + t])
    . Z[first_z + t]), t < n.

    dc_r, dc_i (3, n_half): d(f_c w u)/dr_ik (``_scaled_du``); z_r, z_i (idxz_max,): the
    atom's weighted Z (``_z_all``). Called once per neighbor, not inlined: its sums are
    reassociated so that LLVM vectorizes them (``jit(reassociate=True)``).
    """
    out[:, :] = 0.0
    for row in range(db_terms.shape[0]):
        first_z = db_terms[row, 0]
        first_c = db_terms[row, 1]
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        for t in range(db_terms[row, 2]):
            zr = z_r[_nw(first_z + t)]
            zi = z_i[_nw(first_z + t)]
            c = _nw(first_c + t)
            s0 += dc_r[0, c] * zr + dc_i[0, c] * zi
            s1 += dc_r[1, c] * zr + dc_i[1, c] * zi
            s2 += dc_r[2, c] * zr + dc_i[2, c] * zi
        factor = 2.0 * db_factor[row]
        jjb = db_terms[row, 3]
        out[jjb, 0] += factor * s0
        out[jjb, 1] += factor * s1
        out[jjb, 2] += factor * s2


@jit(inline=True)
def _dedr_adjoint(twojmax, rootpq, idxu_block, x, y, z, wj, geometry, u_r, u_i, y_r, y_i,
                  ub_r, ub_i, out):
    """dE_i/dr_ik (3,) of one neighbor by reverse-mode differentiation of the U recursion.

    E depends on this neighbor through 2 sum Re(conj(f_c w u) . Y) over the unique half; the
    adjoint of each u element starts at Y (y_r, y_i (idxu_max,): the weighted Y of
    ``_y_from_u``, zero outside the half) and flows down the layers through the recursion
    (VMK 4.8.2) and the mirror symmetry, accumulating dE/d(a, b) of the Cayley-Klein
    parameters; three chain-rule products then give dE/dr_ik. One backward pass over the
    half layers replaces the three derivative recursions of ``_du_layers`` and the
    contraction with Y: the same derivative to rounding, in about a fifth of the flops.
    geometry (5,), u_r, u_i (idxu_max,): the neighbor's row of ``_u_total``'s outputs;
    ub_r, ub_i (idxu_max,) are workspace for the adjoints.
    """
    r, z0, dz0dr = geometry[G_R], geometry[G_Z0], geometry[G_DZ0DR]
    scaled = 0.0  # sum Re(conj(u) . Y) over the half: what the derivative of f_c multiplies
    for j in range(twojmax + 1):
        first = idxu_block[_nw(j)]
        for jju in range(first, first + (j // 2 + 1) * (j + 1)):
            scaled += u_r[_nw(jju)] * y_r[_nw(jju)] + u_i[_nw(jju)] * y_i[_nw(jju)]
    for jju in range(idxu_block[_nw(twojmax)] + (twojmax // 2 + 1) * (twojmax + 1)):
        ub_r[_nw(jju)] = y_r[_nw(jju)]
        ub_i[_nw(jju)] = y_i[_nw(jju)]
    r0inv = 1.0 / np.sqrt(r * r + z0 * z0)
    a_r = z0 * r0inv
    a_i = -z * r0inv
    b_r = y * r0inv
    b_i = -x * r0inv
    ga_r = 0.0  # dE/da_r, dE/da_i, dE/db_r, dE/db_i, without the factor 2 f_c w
    ga_i = 0.0
    gb_r = 0.0
    gb_i = 0.0
    for j in range(twojmax, 0, -1):
        if j % 2 == 1 and j < twojmax:
            # row (j+1)/2 of layer j, which layer j+1 read, is the mirror of row (j-1)/2:
            # u[mb][ma] = (-1)^(ma+mb) conj u[j-mb][j-ma]; hand its adjoint back
            mb = (j + 1) // 2
            row = idxu_block[_nw(j)] + (j + 1) * mb
            src = idxu_block[_nw(j)] + (j + 1) * (j - mb) + j
            sign = 1.0 if mb % 2 == 0 else -1.0
            for ma in range(j + 1):
                ub_r[_nw(src - ma)] += sign * ub_r[_nw(row + ma)]
                ub_i[_nw(src - ma)] -= sign * ub_i[_nw(row + ma)]
                sign = -sign
        for mb in range(j // 2 + 1):
            jju = idxu_block[_nw(j)] + (j + 1) * mb
            jjup = idxu_block[_nw(j - 1)] + j * mb
            for ma in range(j):
                # u[j; mb, ma] += rootpq_a conj(a) up and u[j; mb, ma+1] -= rootpq_b conj(b) up
                rootpq_a = rootpq[_nw(j - ma), _nw(j - mb)]
                rootpq_b = rootpq[_nw(ma + 1), _nw(j - mb)]
                up_r = u_r[_nw(jjup)]
                up_i = u_i[_nw(jjup)]
                va_r = rootpq_a * ub_r[_nw(jju)]
                va_i = rootpq_a * ub_i[_nw(jju)]
                vb_r = rootpq_b * ub_r[_nw(jju + 1)]
                vb_i = rootpq_b * ub_i[_nw(jju + 1)]
                ub_r[_nw(jjup)] += a_r * va_r - a_i * va_i - b_r * vb_r + b_i * vb_i
                ub_i[_nw(jjup)] += a_r * va_i + a_i * va_r - b_r * vb_i - b_i * vb_r
                ga_r += va_r * up_r + va_i * up_i
                ga_i += va_r * up_i - va_i * up_r
                gb_r -= vb_r * up_r + vb_i * up_i
                gb_i -= vb_r * up_i - vb_i * up_r
                jju += 1
                jjup += 1
    sfac = geometry[G_FC] * wj
    dsfac = geometry[G_DFC] * wj
    dr0invdr = -(r0inv ** 3) * (r + z0 * dz0dr)
    for k in range(3):
        coord = x if k == 0 else (y if k == 1 else z)
        unit = coord / r
        dr0inv = dr0invdr * unit
        da_r = dz0dr * unit * r0inv + z0 * dr0inv
        da_i = -z * dr0inv - (r0inv if k == 2 else 0.0)
        db_r = y * dr0inv + (r0inv if k == 1 else 0.0)
        db_i = -x * dr0inv - (r0inv if k == 0 else 0.0)
        out[_nw(k)] = 2.0 * (dsfac * unit * scaled
                        + sfac * (ga_r * da_r + ga_i * da_i + gb_r * db_r + gb_i * db_i))


@jit
def _workspace(basis, max_nbr):
    """Per-chunk arrays: neighbor u (max_nbr, idxu_max) x2, neighbor geometry (max_nbr, 5),
    U (idxu_max,) x2, dU recursion (idxu_max, 3) x2, compact dU (3, n_half) x2 (real and
    imaginary parts)."""
    n_half = basis.half_index.shape[0]
    return (np.empty((max_nbr, basis.idxu_max)), np.empty((max_nbr, basis.idxu_max)),
            np.empty((max_nbr, N_GEOMETRY)), np.empty(basis.idxu_max), np.empty(basis.idxu_max),
            np.empty((basis.idxu_max, 3)), np.empty((basis.idxu_max, 3)),
            np.empty((3, n_half)), np.empty((3, n_half)))


@jit
def _adjoint_workspace(basis):
    """Per-chunk arrays of the force kernels: Y and the adjoints of u, (idxu_max,) each, real
    and imaginary parts."""
    return (np.empty(basis.idxu_max), np.empty(basis.idxu_max), np.empty(basis.idxu_max),
            np.empty(basis.idxu_max))


@jit(parallel=True)
def bispectrum_kernel(basis, pairs, settings, nchunk):
    """Bispectrum components of every atom, before the bzero shift.

    basis : ``SnapBasis``; pairs : ``PairArrays`` of N atoms; settings : ``SnapSettings``.
    nchunk : number of parallel work chunks (>= 1, <= N); each allocates its own workspace.
    Returns B : (N, D) float64.
    """
    offsets = pairs.offsets
    natoms = offsets.shape[0] - 1
    ncoeff = basis.idxb.shape[0]
    out = np.zeros((natoms, ncoeff))
    max_nbr = max(1, np.max(np.diff(offsets))) if natoms else 1
    nchunk = max(1, min(nchunk, natoms))
    for c in prange(nchunk):
        u_nbr_r, u_nbr_i, geometry, utot_r, utot_i, _, _, _, _ = _workspace(basis, max_nbr)
        for i in range(c * natoms // nchunk, (c + 1) * natoms // nchunk):
            _u_total(basis, pairs, settings, offsets[i], offsets[i + 1], u_nbr_r, u_nbr_i,
                     geometry, utot_r, utot_i)
            _bispectrum_from_u(basis, utot_r, utot_i, out[i])
    return out


@jit(parallel=True)
def beta_forces_kernel(basis, pairs, settings, beta, nchunk):
    """dE_i/dr_ik for every pair, for E = sum_i beta_i . B_i with per-atom beta (N, D) (eV).

    Arguments as in ``bispectrum_kernel``. Returns (dedr, B): dedr (n_pairs, 3) eV/Å, forces
    follow as F_i += dedr[p], F_k -= dedr[p] for each pair p = (i, k); B (N, D), the
    bispectrum before the bzero shift, computed in the same pass over Z as Y.
    """
    offsets, rij = pairs.offsets, pairs.rij
    natoms = offsets.shape[0] - 1
    dedr = np.zeros((rij.shape[0], 3))
    b = np.zeros((natoms, basis.idxb.shape[0]))
    max_nbr = max(1, np.max(np.diff(offsets))) if natoms else 1
    nchunk = max(1, min(nchunk, natoms))
    for c in prange(nchunk):
        u_nbr_r, u_nbr_i, geometry, utot_r, utot_i, _, _, _, _ = _workspace(basis, max_nbr)
        y_r, y_i, ub_r, ub_i = _adjoint_workspace(basis)
        for i in range(c * natoms // nchunk, (c + 1) * natoms // nchunk):
            start = offsets[i]
            stop = offsets[i + 1]
            if stop == start:
                continue
            _u_total(basis, pairs, settings, start, stop, u_nbr_r, u_nbr_i, geometry, utot_r,
                     utot_i)
            _y_from_u(basis, utot_r, utot_i, beta[i], y_r, y_i, b[i])
            for p in range(start, stop):
                n = p - start
                _dedr_adjoint(basis.twojmax, basis.rootpq, basis.idxu_block, rij[p, 0],
                              rij[p, 1], rij[p, 2], pairs.wj[p], geometry[n], u_nbr_r[n],
                              u_nbr_i[n], y_r, y_i, ub_r, ub_i, dedr[p])
    return dedr, b


@jit(parallel=True)
def bispectrum_and_u(basis, pairs, settings, nchunk):
    """``bispectrum_kernel`` that also keeps what ``beta_forces_from_u`` needs, so that a
    caller who must see every B before it chooses beta (the generator's entropy gradient)
    computes U once.

    Returns (B, kept): B (N, D) before the bzero shift; kept = (u_r, u_i (P, idxu_max): the
    unscaled u of every pair, geometry (P, 5): their ``_u_total`` geometry, utot_r, utot_i
    (N, idxu_max): U of every atom). Memory: 16 idxu_max + 40 bytes per pair.
    """
    offsets = pairs.offsets
    natoms = offsets.shape[0] - 1
    npairs = pairs.rij.shape[0]
    out = np.zeros((natoms, basis.idxb.shape[0]))
    u_r = np.empty((npairs, basis.idxu_max))
    u_i = np.empty((npairs, basis.idxu_max))
    geometry = np.empty((npairs, N_GEOMETRY))
    utot_r = np.empty((natoms, basis.idxu_max))
    utot_i = np.empty((natoms, basis.idxu_max))
    nchunk = max(1, min(nchunk, natoms))
    for c in prange(nchunk):
        for i in range(c * natoms // nchunk, (c + 1) * natoms // nchunk):
            start = offsets[i]
            stop = offsets[i + 1]
            _u_total(basis, pairs, settings, start, stop, u_r[start:stop], u_i[start:stop],
                     geometry[start:stop], utot_r[i], utot_i[i])
            _bispectrum_from_u(basis, utot_r[i], utot_i[i], out[i])
    return out, (u_r, u_i, geometry, utot_r, utot_i)


@jit(parallel=True)
def beta_forces_from_u(basis, pairs, beta, kept, nchunk):
    """``beta_forces_kernel``'s dE_i/dr_ik (P, 3) eV/Å, from the U that ``bispectrum_and_u``
    kept for the same pairs (the same numbers, bit for bit, without computing U again).
    beta (N, D) eV."""
    u_r, u_i, geometry, utot_r, utot_i = kept
    offsets, rij = pairs.offsets, pairs.rij
    natoms = offsets.shape[0] - 1
    dedr = np.zeros((rij.shape[0], 3))
    nchunk = max(1, min(nchunk, natoms))
    for c in prange(nchunk):
        y_r, y_i, ub_r, ub_i = _adjoint_workspace(basis)
        b = np.empty(basis.idxb.shape[0])
        for i in range(c * natoms // nchunk, (c + 1) * natoms // nchunk):
            if offsets[i + 1] == offsets[i]:
                continue
            _y_from_u(basis, utot_r[i], utot_i[i], beta[i], y_r, y_i, b)
            for p in range(offsets[i], offsets[i + 1]):
                _dedr_adjoint(basis.twojmax, basis.rootpq, basis.idxu_block, rij[p, 0],
                              rij[p, 1], rij[p, 2], pairs.wj[p], geometry[p], u_r[p], u_i[p],
                              y_r, y_i, ub_r, ub_i, dedr[p])
    return dedr


@jit(parallel=True)
def dbdr_kernel(basis, pairs, settings, nchunk):
    """Per-pair derivatives dB_i/dr_ik (LAMMPS compute_dbidrj), for fitting rows.

    Arguments as in ``bispectrum_kernel``. Returns (dbdr, B): dbdr (n_pairs, D, 3) (units of
    B per Å), dB_i/dr_i = -sum_k dB_i/dr_ik; B (N, D) before the bzero shift, from the same
    U and Z.
    """
    offsets, rij = pairs.offsets, pairs.rij
    natoms = offsets.shape[0] - 1
    idxz_max = basis.idxz.shape[0]
    dbdr = np.zeros((rij.shape[0], basis.idxb.shape[0], 3))
    b = np.zeros((natoms, basis.idxb.shape[0]))
    max_nbr = max(1, np.max(np.diff(offsets))) if natoms else 1
    nchunk = max(1, min(nchunk, natoms))
    for c in prange(nchunk):
        u_nbr_r, u_nbr_i, geometry, utot_r, utot_i, du_r, du_i, dc_r, dc_i = _workspace(
            basis, max_nbr)
        z_r = np.empty(idxz_max)
        z_i = np.empty(idxz_max)
        for i in range(c * natoms // nchunk, (c + 1) * natoms // nchunk):
            start = offsets[i]
            stop = offsets[i + 1]
            _u_total(basis, pairs, settings, start, stop, u_nbr_r, u_nbr_i, geometry, utot_r,
                     utot_i)
            _z_all(basis, utot_r, utot_i, z_r, z_i)
            for jjz in range(idxz_max):
                jjb = basis.b_jjb[jjz]
                if jjb >= 0:
                    jju = basis.idxz[jjz, Z_JJU]
                    b[i, jjb] += 2.0 * (utot_r[jju] * z_r[jjz] + utot_i[jju] * z_i[jjz])
            for p in range(start, stop):
                n = p - start
                _scaled_du(basis.twojmax, basis.rootpq, basis.idxu_block, basis.half_index,
                           rij[p, 0], rij[p, 1], rij[p, 2], pairs.wj[p], geometry[n],
                           u_nbr_r[n], u_nbr_i[n], du_r, du_i, dc_r, dc_i)
                _pair_dbdr(basis.db_terms, basis.db_factor, dc_r, dc_i, z_r, z_i, dbdr[p])
    return dbdr, b
