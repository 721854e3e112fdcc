"""Local structure type of each atom (paper Fig. 6): adaptive common neighbor analysis and
coordination/bond-angle rules.

Types (integer codes, ``emtool.descriptors.structure_types.STRUCTURE_TYPES`` names them):
0 unknown, 1 fcc, 2 hcp, 3 bcc, 4 icosahedral, 5 simple cubic, 6 diamond-like, 7 graphitic.

Input is a full neighbor list (all periodic images) whose pairs of atom i are
``offsets[i]:offsets[i+1]``, with vectors rij (Å). Precondition: every atom has at least
``MAX_NEIGHBORS`` listed neighbors, or its list is complete (a finite system whose every
other atom is listed). Each atom keeps its ``MAX_NEIGHBORS`` nearest neighbors sorted by
distance (ties in list order); v_1, v_2, ... below are their vectors, r_k = |v_k|.

Adaptive CNA (Stukowski, Modelling Simul. Mater. Sci. Eng. 20, 045021 (2012)), tried in
this order:

- n = 12, local cutoff r_c = F (1/12) sum_{k<=12} r_k with F = (1 + sqrt 2)/2;
- n = 14, r_c = F (1/14) [(2/sqrt 3) sum_{k<=8} r_k + sum_{9<=k<=14} r_k].

Two of the n neighbors are bonded when |v_a - v_b| < r_c. For each neighbor a, the common
neighbors are the neighbors bonded to a; the signature of a is (number of common neighbors,
number of bonds among them, number of bonds in their largest bond-connected cluster).
fcc: 12 x (4,2,1); hcp: 6 x (4,2,1) + 6 x (4,2,2); icosahedral: 12 x (5,5,5);
bcc: 8 x (6,6,6) + 6 x (4,4,4).

Coordination rules for open structures with n = 6, 4, 3 neighbors: a shell of exactly n
neighbors, r_n < r_c <= r_{n+1} with r_c = F (1/n) sum_{k<=n} r_k, and every bond angle
within ``ANGLE_TOLERANCE`` of its ideal value:

- simple cubic, n = 6: 3 angles of 180 deg and 12 of 90 deg;
- diamond-like (cubic or hexagonal diamond), n = 4: all 6 angles 109.47 deg;
- graphitic, n = 3: all 3 angles 120 deg, and their sum >= 360 deg - ``PLANAR_TOLERANCE``
  (the atom lies in the plane of its neighbors).
"""
import numpy as np

from emtool.kernels.jit import jit

UNKNOWN, FCC, HCP, BCC, ICO, SC, DIAMOND, GRAPHITIC = 0, 1, 2, 3, 4, 5, 6, 7

#: Nearest neighbors each atom needs (bcc uses 14).
MAX_NEIGHBORS = 14
#: Local cutoff factor (1 + sqrt 2)/2: halfway between the first and second shells of fcc.
SHELL_FACTOR = 0.5 * (1.0 + np.sqrt(2.0))
#: Largest deviation of a bond angle from its ideal value (degrees) in the coordination rules.
ANGLE_TOLERANCE = 20.0
#: Largest deficit of the graphitic angle sum from 360 degrees.
PLANAR_TOLERANCE = 10.0


@jit(inline=True)
def _root(parent, a):
    while parent[a] != a:
        a = parent[a]
    return a


@jit
def _signature(v, n, rc2, a, common, parent, cluster):
    """CNA signature (common neighbors, bonds among them, bonds in the largest cluster) of
    neighbor a among the first n rows of v (n, 3), bonds shorter than sqrt(rc2)."""
    ncn = 0
    for b in range(n):
        if b != a and _bonded(v, a, b, rc2):
            common[ncn] = b
            ncn += 1
    for c in range(ncn):
        parent[c] = c
        cluster[c] = 0
    nbonds = 0
    for c in range(ncn):
        for e in range(c + 1, ncn):
            if _bonded(v, common[c], common[e], rc2):
                nbonds += 1
                rc, re = _root(parent, c), _root(parent, e)
                if rc != re:
                    parent[re] = rc
                    cluster[rc] += cluster[re]
                cluster[rc] += 1
    largest = 0
    for c in range(ncn):
        if parent[c] == c and cluster[c] > largest:
            largest = cluster[c]
    return ncn, nbonds, largest


@jit(inline=True)
def _bonded(v, a, b, rc2):
    s = 0.0
    for k in range(3):
        d = v[a, k] - v[b, k]
        s += d * d
    return s < rc2


@jit
def _cna(v, r, count, common, parent, cluster):
    """fcc, hcp, ico, bcc or unknown from the sorted neighbors v (count, 3), distances r."""
    if count >= 12:
        rc = 0.0
        for k in range(12):
            rc += r[k]
        rc = SHELL_FACTOR * rc / 12.0
        n421 = n422 = n555 = 0
        for a in range(12):
            ncn, nb, nc = _signature(v, 12, rc * rc, a, common, parent, cluster)
            if ncn == 4 and nb == 2 and nc == 1:
                n421 += 1
            elif ncn == 4 and nb == 2 and nc == 2:
                n422 += 1
            elif ncn == 5 and nb == 5 and nc == 5:
                n555 += 1
            else:
                break
        if n421 == 12:
            return FCC
        if n421 == 6 and n422 == 6:
            return HCP
        if n555 == 12:
            return ICO
    if count >= 14:
        rc = 0.0
        for k in range(8):
            rc += r[k] * (2.0 / np.sqrt(3.0))
        for k in range(8, 14):
            rc += r[k]
        rc = SHELL_FACTOR * rc / 14.0
        n666 = n444 = 0
        for a in range(14):
            ncn, nb, nc = _signature(v, 14, rc * rc, a, common, parent, cluster)
            if ncn == 6 and nb == 6 and nc == 6:
                n666 += 1
            elif ncn == 4 and nb == 4 and nc == 4:
                n444 += 1
            else:
                break
        if n666 == 8 and n444 == 6:
            return BCC
    return UNKNOWN


@jit
def _shell(r, count, n):
    """True when the first n neighbors form a separate shell: r_n < r_c <= r_{n+1}."""
    if count < n:
        return False
    rc = 0.0
    for k in range(n):
        rc += r[k]
    rc = SHELL_FACTOR * rc / n
    if r[n - 1] >= rc:
        return False
    return count == n or r[n] >= rc


@jit
def _angle(v, r, a, b):
    """Angle between neighbors a and b in degrees."""
    c = (v[a, 0] * v[b, 0] + v[a, 1] * v[b, 1] + v[a, 2] * v[b, 2]) / (r[a] * r[b])
    return np.arccos(min(1.0, max(-1.0, c))) * (180.0 / np.pi)


@jit
def _open_structure(v, r, count):
    """sc, diamond, graphitic or unknown by the coordination rules."""
    tol = ANGLE_TOLERANCE
    if _shell(r, count, 6):
        straight = right = 0
        for a in range(6):
            for b in range(a + 1, 6):
                angle = _angle(v, r, a, b)
                if angle > 180.0 - tol:
                    straight += 1
                elif abs(angle - 90.0) < tol:
                    right += 1
        if straight == 3 and right == 12:
            return SC
    if _shell(r, count, 4):
        tetrahedral = np.arccos(-1.0 / 3.0) * (180.0 / np.pi)
        ok = True
        for a in range(4):
            for b in range(a + 1, 4):
                if abs(_angle(v, r, a, b) - tetrahedral) >= tol:
                    ok = False
        if ok:
            return DIAMOND
    if _shell(r, count, 3):
        total = 0.0
        ok = True
        for a in range(3):
            for b in range(a + 1, 3):
                angle = _angle(v, r, a, b)
                total += angle
                if abs(angle - 120.0) >= tol:
                    ok = False
        if ok and total >= 360.0 - PLANAR_TOLERANCE:
            return GRAPHITIC
    return UNKNOWN


@jit
def classify_kernel(offsets, rij):
    """Structure type code (N,) int64 of every atom.

    offsets : (N+1,) int64 CSR offsets of the full neighbor list; rij : (P, 3) float64 pair
    vectors r_j - r_i + S.cell (Å). See the module docstring for the rules and the
    precondition on the list.
    """
    natoms = offsets.shape[0] - 1
    labels = np.zeros(natoms, np.int64)
    v = np.empty((MAX_NEIGHBORS, 3))
    r = np.empty(MAX_NEIGHBORS)
    common = np.empty(MAX_NEIGHBORS, np.int64)
    parent = np.empty(MAX_NEIGHBORS, np.int64)
    cluster = np.empty(MAX_NEIGHBORS, np.int64)
    for i in range(natoms):
        count = 0
        for p in range(offsets[i], offsets[i + 1]):
            d = np.sqrt(rij[p, 0] ** 2 + rij[p, 1] ** 2 + rij[p, 2] ** 2)
            if count == MAX_NEIGHBORS and d >= r[count - 1]:
                continue
            slot = min(count, MAX_NEIGHBORS - 1)
            while slot > 0 and r[slot - 1] > d:
                r[slot] = r[slot - 1]
                v[slot] = v[slot - 1]
                slot -= 1
            r[slot] = d
            v[slot] = rij[p]
            count = min(count + 1, MAX_NEIGHBORS)
        label = _cna(v, r, count, common, parent, cluster)
        if label == UNKNOWN:
            label = _open_structure(v, r, count)
        labels[i] = label
    return labels
