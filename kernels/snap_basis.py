"""Index tables and Clebsch–Gordan coefficients of the SNAP bispectrum, built once per twojmax.

Labels follow LAMMPS ML-SNAP (``sna.cpp``): all angular momenta are doubled integers,
j = 2J, and the matrix indices of U_j are 0 <= ma, mb <= j (ma = J + m). A U layer j holds
(j+1)^2 complex numbers, stored row by row (mb major) from ``idxu_block[j]``.

Bispectrum components B_{j1 j2 j} run over 0 <= j2 <= j1 <= j <= twojmax with j1+j2+j even
and |j1-j2| <= j <= j1+j2, in the order of LAMMPS ``build_indexlist`` (the column order of
``compute sna/atom``). The Z list runs over every j1 >= j2 and every admissible j (not only
j >= j1), because the adjoint Y needs all of them, and over the elements (ma, mb) of layer j
with a non-zero ``half_weight`` (the unique half), since no sum uses the others.

This module is plain NumPy (it runs once per twojmax); the kernels in ``kernels.snap`` take
the resulting ``SnapBasis`` as an argument.
"""
from functools import lru_cache
from math import factorial, sqrt
from typing import NamedTuple

import numpy as np

#: Columns of ``SnapBasis.idxz``: the loop bounds of one element Z_{j1 j2 j}(ma, mb) and the
#: U index of (j, ma, mb).
(Z_J1, Z_J2, Z_J, Z_MA1MIN, Z_MA2MAX, Z_NA, Z_MB1MIN, Z_MB2MAX, Z_NB, Z_JJU) = range(10)


class SnapBasis(NamedTuple):
    """Index tables of one twojmax (integer arrays int64 unless stated).

    twojmax : int
    idxu_block : (twojmax+1,) start of layer j in a U list; idxu_max = its length.
    idxz : (idxz_max, 10) rows (j1, j2, j, ma1min, ma2max, na, mb1min, mb2max, nb, jju):
        the loop bounds of one element Z_{j1 j2 j}(ma, mb) and the U index jju of (j, ma, mb).
    idxz_block, idxz_count : (jdim, jdim, jdim) first Z row and number of rows of the block
        (j1, j2, j).
    idxb : (D, 3) the (j1, j2, j) of each bispectrum component.
    idxcg_block : (jdim, jdim, jdim) start of the CG block (j1, j2, j) in ``cglist``.
    cglist : (idxcg_max,) float64 Clebsch–Gordan coefficients C^{j m}_{j1 m1 j2 m2}, block
        entry m1*(j2+1) + m2 (VMK 8.2.1(3)); zero where m is out of range.
    rootpq : (twojmax+2, twojmax+2) float64 sqrt(p/q) (row and column 0 unused).
    half_weight : (idxu_max,) float64 weight of each U element in sums over the unique half
        of a layer: 1 for 2*mb < j, and on the middle row mb = j/2 of even j: 1 for ma < mb,
        1/2 for ma = mb, 0 for ma > mb; 0 for 2*mb > j.
    y_jjb : (idxz_max,) bispectrum component whose beta multiplies Z row jjz in Y.
    y_factor : (idxz_max,) float64 multiplicity (1, 2 or 3) times (j1+1)/(j+1) if j1 > j.
    half_index : (n_half,) U index jju of each element with a non-zero half weight, layer by
        layer and row by row: the compact "unique half" layout of dU (dB/dr). The Z rows of any
        block (j1, j2, j) run over these elements of layer j, in this order.
    half_block : (jdim,) start of layer j in the compact layout.
    z_weight : (idxz_max,) float64 half_weight of the U element (j, ma, mb) of each Z row.
    b_jjb : (idxz_max,) bispectrum component whose sum the Z row enters (blocks with j >= j1),
        -1 for rows of the other blocks (needed by Y only).
    z_start, z_u1, z_u2, z_cg : the terms of Z row jjz, t in z_start[jjz]:z_start[jjz+1]:
        Z = sum_t z_cg[t] U[z_u1[t]] U[z_u2[t]], with z_u1, z_u2 (n_terms,) the U indices of
        U_j1(ma1, mb1) and U_j2(ma2, mb2) and z_cg (n_terms,) float64 the product of their
        two Clebsch-Gordan coefficients (the loops of ``idxz`` unrolled once, here).
        z_start (idxz_max+1,) is uint64 and z_u1, z_u2 uint32: Numba indexes with unsigned
        integers without the negative-index check that costs signed ones about half the
        time of this sum.
    db_terms : (n_terms, 4) rows (first Z row, first compact dU element, length, jjb): the
        contractions sum_t Re(conj(dU) . Z) that make up dB_{jjb}/dr (LAMMPS compute_dbidrj:
        the blocks (j1, j2, j) on layer j, (j, j2, j1) on layer j1, (j, j1, j2) on layer j2);
        identical blocks (j1 = j, or j1 = j2 = j) are merged.
    db_factor : (n_terms,) float64 their factors: 1, (j+1)/(j1+1), (j+1)/(j2+1), summed when merged.
    bzero : (D,) float64 B of an isolated atom with wself = 1: j+1 for each component.
    """

    twojmax: int
    idxu_max: int
    idxu_block: np.ndarray
    idxz: np.ndarray
    idxz_block: np.ndarray
    idxz_count: np.ndarray
    idxb: np.ndarray
    idxcg_block: np.ndarray
    cglist: np.ndarray
    rootpq: np.ndarray
    half_weight: np.ndarray
    y_jjb: np.ndarray
    y_factor: np.ndarray
    half_index: np.ndarray
    half_block: np.ndarray
    z_weight: np.ndarray
    b_jjb: np.ndarray
    z_start: np.ndarray
    z_u1: np.ndarray
    z_u2: np.ndarray
    z_cg: np.ndarray
    db_terms: np.ndarray
    db_factor: np.ndarray
    bzero: np.ndarray


def _triples(twojmax):
    """(j1, j2, j) with j1 >= j2 and |j1-j2| <= j <= min(twojmax, j1+j2), j1+j2+j even."""
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                yield j1, j2, j


def _clebsch_gordan(j1, j2, j, m1, m2):
    """C^{j m}_{j1 m1 j2 m2} (doubled labels, offsets 0..j), VMK 8.2.1(3); 0 if m is out of range."""
    aa2 = 2 * m1 - j1
    bb2 = 2 * m2 - j2
    m = (aa2 + bb2 + j) // 2
    if m < 0 or m > j:
        return 0.0
    total = 0.0
    zmin = max(0, max(-(j - j2 + aa2) // 2, -(j - j1 - bb2) // 2))
    zmax = min((j1 + j2 - j) // 2, min((j1 - aa2) // 2, (j2 + bb2) // 2))
    for z in range(zmin, zmax + 1):
        sign = -1.0 if z % 2 else 1.0
        total += sign / float(factorial(z) * factorial((j1 + j2 - j) // 2 - z)
                              * factorial((j1 - aa2) // 2 - z) * factorial((j2 + bb2) // 2 - z)
                              * factorial((j - j2 + aa2) // 2 + z)
                              * factorial((j - j1 - bb2) // 2 + z))
    cc2 = 2 * m - j
    delta = sqrt(factorial((j1 + j2 - j) // 2) * factorial((j1 - j2 + j) // 2)
                 * factorial((-j1 + j2 + j) // 2) / factorial((j1 + j2 + j) // 2 + 1))
    norm = sqrt(factorial((j1 + aa2) // 2) * factorial((j1 - aa2) // 2)
                * factorial((j2 + bb2) // 2) * factorial((j2 - bb2) // 2)
                * factorial((j + cc2) // 2) * factorial((j - cc2) // 2) * (j + 1))
    return total * delta * norm


def _z_terms(idxz, idxu_block, idxcg_block, cg):
    """The Clebsch-Gordan sum of every Z row as a flat list of terms (``SnapBasis.z_*``)."""
    start, u1, u2, coef = [0], [], [], []
    for j1, j2, j, ma1min, ma2max, na, mb1min, mb2max, nb, _ in idxz:
        icg = idxcg_block[j1, j2, j]
        for ib in range(nb):
            mb1, mb2 = mb1min + ib, mb2max - ib
            for ia in range(na):
                ma1, ma2 = ma1min + ia, ma2max - ia
                u1.append(idxu_block[j1] + (j1 + 1) * mb1 + ma1)
                u2.append(idxu_block[j2] + (j2 + 1) * mb2 + ma2)
                coef.append(cg[icg + ma1 * (j2 + 1) + ma2] * cg[icg + mb1 * (j2 + 1) + mb2])
        start.append(len(u1))
    return (np.array(start, np.uint64), np.array(u1, np.uint32), np.array(u2, np.uint32),
            np.array(coef, np.float64))


@lru_cache(maxsize=None)
def snap_basis(twojmax):
    """Build (once, then cached) the ``SnapBasis`` of ``twojmax`` (int >= 0)."""
    if int(twojmax) != twojmax or twojmax < 0:
        raise ValueError(f"twojmax must be an integer >= 0, got {twojmax!r}")
    twojmax = int(twojmax)
    jdim = twojmax + 1
    triples = list(_triples(twojmax))

    idxu_block = np.zeros(jdim, np.int64)
    count = 0
    for j in range(jdim):
        idxu_block[j] = count
        count += (j + 1) ** 2
    idxu_max = count

    half_weight = np.zeros(idxu_max)
    for j in range(jdim):
        for mb in range(j + 1):
            for ma in range(j + 1):
                w = 1.0 if 2 * mb < j else 0.0
                if 2 * mb == j:
                    w = 1.0 if ma < mb else (0.5 if ma == mb else 0.0)
                half_weight[idxu_block[j] + (j + 1) * mb + ma] = w

    idxcg_block = np.full((jdim, jdim, jdim), -1, np.int64)
    cg = []
    for j1, j2, j in triples:
        idxcg_block[j1, j2, j] = len(cg)
        cg.extend(_clebsch_gordan(j1, j2, j, m1, m2) for m1 in range(j1 + 1) for m2 in range(j2 + 1))

    bispectrum_triples = [t for t in triples if t[2] >= t[0]]
    idxb = np.array(bispectrum_triples, np.int64).reshape(-1, 3)
    idxb_block = np.full((jdim, jdim, jdim), -1, np.int64)
    for jjb, (j1, j2, j) in enumerate(bispectrum_triples):
        idxb_block[j1, j2, j] = jjb

    rows, y_jjb, y_factor, b_jjb = [], [], [], []
    idxz_block = np.full((jdim, jdim, jdim), -1, np.int64)
    idxz_count = np.zeros((jdim, jdim, jdim), np.int64)
    for j1, j2, j in triples:
        idxz_block[j1, j2, j] = len(rows)
        if j >= j1:
            jjb = idxb_block[j1, j2, j]
            factor = 3.0 if (j1 == j and j2 == j) else (2.0 if j1 == j else 1.0)
        elif j >= j2:
            jjb = idxb_block[j, j2, j1]
            factor = 2.0 if j2 == j else 1.0
        else:
            jjb = idxb_block[j2, j, j1]
            factor = 1.0
        if j1 > j:
            factor *= (j1 + 1) / (j + 1.0)
        for mb in range(j // 2 + 1):
            for ma in range(j + 1):
                jju = idxu_block[j] + (j + 1) * mb + ma
                if half_weight[jju] == 0.0:
                    continue
                ma1min = max(0, (2 * ma - j - j2 + j1) // 2)
                ma2max = (2 * ma - j - (2 * ma1min - j1) + j2) // 2
                na = min(j1, (2 * ma - j + j2 + j1) // 2) - ma1min + 1
                mb1min = max(0, (2 * mb - j - j2 + j1) // 2)
                mb2max = (2 * mb - j - (2 * mb1min - j1) + j2) // 2
                nb = min(j1, (2 * mb - j + j2 + j1) // 2) - mb1min + 1
                rows.append((j1, j2, j, ma1min, ma2max, na, mb1min, mb2max, nb, jju))
                y_jjb.append(jjb)
                y_factor.append(factor)
                b_jjb.append(idxb_block[j1, j2, j] if j >= j1 else -1)
        idxz_count[j1, j2, j] = len(rows) - idxz_block[j1, j2, j]

    idxz = np.array(rows, np.int64).reshape(-1, 10)
    z_start, z_u1, z_u2, z_cg = _z_terms(idxz, idxu_block, idxcg_block, cg)
    half_index = np.flatnonzero(half_weight).astype(np.int64)
    half_block = np.searchsorted(half_index, idxu_block).astype(np.int64)
    db_terms, db_factor = [], []
    for jjb, (j1, j2, j) in enumerate(bispectrum_triples):
        merged = {}
        for block, layer, factor in (((j1, j2, j), j, 1.0), ((j, j2, j1), j1, (j + 1) / (j1 + 1.0)),
                                     ((j, j1, j2), j2, (j + 1) / (j2 + 1.0))):
            key = (int(idxz_block[block]), int(half_block[layer]), int(idxz_count[block]))
            merged[key] = merged.get(key, 0.0) + factor
        for key, factor in merged.items():
            db_terms.append(key + (jjb,))
            db_factor.append(factor)
    rootpq = np.zeros((twojmax + 2, twojmax + 2))
    for p in range(1, twojmax + 2):
        for q in range(1, twojmax + 2):
            rootpq[p, q] = sqrt(p / q)

    return SnapBasis(
        twojmax=twojmax, idxu_max=idxu_max, idxu_block=idxu_block,
        idxz=idxz, idxz_block=idxz_block, idxz_count=idxz_count, idxb=idxb,
        idxcg_block=idxcg_block, cglist=np.array(cg, np.float64), rootpq=rootpq,
        half_weight=half_weight, y_jjb=np.array(y_jjb, np.int64),
        y_factor=np.array(y_factor, np.float64), half_index=half_index,
        half_block=half_block,
        z_weight=half_weight[idxz[:, Z_JJU]],
        b_jjb=np.array(b_jjb, np.int64), z_start=z_start, z_u1=z_u1, z_u2=z_u2, z_cg=z_cg,
        db_terms=np.array(db_terms, np.int64).reshape(-1, 4),
        db_factor=np.array(db_factor), bzero=idxb[:, 2].astype(np.float64) + 1.0)
