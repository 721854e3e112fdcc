"""Full neighbor lists over all periodic images within a cutoff.

A pair (i, j, S) is listed when |r_ij| < cutoff (strict, as ASE's ``neighbor_list``),
with r_ij = r_j - r_i + S @ cell, cell rows = lattice vectors (Å) and S an integer image
shift that is 0 along non-periodic directions. Only (i, i, 0) is excluded: images of atom i
itself are neighbors of i, and several images of one atom j may be neighbors of i, as they
are whenever the cell is thinner than twice the cutoff. Distinct atoms at the same position
are listed with r_ij = 0, as ASE does. Lists are full (both i -> j and j -> i) and sorted
by i, then j, then S (lexicographic).

Two kernels give identical output. ``neighbor_pairs_direct`` loops over all atom pairs and,
per pair, over the image range that can reach the cutoff: O(N^2), fastest for the small
cells of training sets. ``neighbor_pairs_cells`` sorts atoms into bins of an effective cell
and only visits nearby bins: O(N), for large systems. Both decide with the same
floating-point expression, r_ij = (r_j - r_i) + (S_0 a + S_1 b + S_2 c), that ASE evaluates.

The effective cell keeps the periodic lattice vectors and replaces the non-periodic ones by
orthonormal vectors perpendicular to them, so a zero or arbitrary non-periodic vector is
harmless and fractional coordinates along a non-periodic direction are in Å. The periodic
vectors must be linearly independent; the Python layer checks that.
"""
import numpy as np
from numba import prange

from emtool.kernels.jit import jit

#: Slack (fractional units) on image and bin ranges, so that rounding in fractional
#: coordinates never drops a candidate; candidates are then decided exactly.
RANGE_SLACK = 1e-8

#: Slack (Å) of the cell-list prefilter on wrapped positions; the exact test on the
#: caller's positions follows.
PREFILTER_SLACK = 1e-6

#: Largest bin count of the cell list per atom (sparse non-periodic systems get coarser bins).
MAX_BINS_PER_ATOM = 2


@jit
def _unit(x, y, z):
    norm = np.sqrt(x * x + y * y + z * z)
    return x / norm, y / norm, z / norm


@jit
def effective_cell(cell, pbc):
    """Cell whose periodic rows are those of ``cell`` and whose other rows are orthonormal.

    Parameters
    ----------
    cell : float64 (3, 3)
        Rows are lattice vectors (Å); rows of non-periodic directions may be anything.
    pbc : bool (3,)
        Periodic directions; their rows must be linearly independent.

    Returns
    -------
    float64 (3, 3)
        Periodic rows copied; non-periodic rows replaced by unit vectors perpendicular to the
        periodic rows and to each other. Invertible.
    """
    out = np.eye(3)
    n_periodic = 0
    for a in range(3):
        if pbc[a]:
            out[a] = cell[a]
            n_periodic += 1
    if n_periodic == 3 or n_periodic == 0:
        return out
    if n_periodic == 2:
        a = 0 if not pbc[0] else (1 if not pbc[1] else 2)
        p = out[(a + 1) % 3]
        q = out[(a + 2) % 3]
        out[a] = _unit(p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2],
                       p[0] * q[1] - p[1] * q[0])
        return out
    a = 0 if pbc[0] else (1 if pbc[1] else 2)
    px, py, pz = _unit(out[a, 0], out[a, 1], out[a, 2])
    # Cartesian axis least aligned with p, orthogonalised against p.
    e = np.zeros(3)
    e[np.argmin(np.abs(np.array([px, py, pz])))] = 1.0
    dot = e[0] * px + e[1] * py + e[2] * pz
    ux, uy, uz = _unit(e[0] - dot * px, e[1] - dot * py, e[2] - dot * pz)
    out[(a + 1) % 3] = (ux, uy, uz)
    out[(a + 2) % 3] = (py * uz - pz * uy, pz * ux - px * uz, px * uy - py * ux)
    return out


@jit
def reciprocal_rows(cell):
    """Rows b_a with b_a . cell[c] = delta_ac (no 2 pi), in 1/Å.

    The fractional coordinate of a point r along a is r . b_a, and 1/|b_a| is the distance
    between the lattice planes spanned by the two other rows. ``cell`` must be invertible.
    """
    out = np.empty((3, 3))
    for a in range(3):
        p = cell[(a + 1) % 3]
        q = cell[(a + 2) % 3]
        out[a, 0] = p[1] * q[2] - p[2] * q[1]
        out[a, 1] = p[2] * q[0] - p[0] * q[2]
        out[a, 2] = p[0] * q[1] - p[1] * q[0]
    volume = cell[0, 0] * out[0, 0] + cell[0, 1] * out[0, 1] + cell[0, 2] * out[0, 2]
    return out / volume


@jit
def _fractional(positions, reciprocal):
    n = positions.shape[0]
    out = np.empty((n, 3))
    for i in range(n):
        for a in range(3):
            out[i, a] = (positions[i, 0] * reciprocal[a, 0] + positions[i, 1] * reciprocal[a, 1]
                         + positions[i, 2] * reciprocal[a, 2])
    return out


@jit(inline=True)
def _pair_vector(positions, cell, i, j, s0, s1, s2):
    """r_j - r_i + S @ cell, evaluated in ASE's order: (r_j - r_i) + (S_0 a + S_1 b + S_2 c).
    Scalar indexing only: no array views, which would cost a reference count per pair."""
    return ((positions[j, 0] - positions[i, 0])
            + (s0 * cell[0, 0] + s1 * cell[1, 0] + s2 * cell[2, 0]),
            (positions[j, 1] - positions[i, 1])
            + (s0 * cell[0, 1] + s1 * cell[1, 1] + s2 * cell[2, 1]),
            (positions[j, 2] - positions[i, 2])
            + (s0 * cell[0, 2] + s1 * cell[1, 2] + s2 * cell[2, 2]))


@jit
def _empty_pairs(capacity):
    return (np.empty(capacity, np.int64), np.empty(capacity, np.int64),
            np.empty((capacity, 3), np.int64), np.empty((capacity, 3)))


@jit
def _grown(first, second, shift, rij, need):
    """The four pair buffers with capacity max(need, 2 * capacity), contents copied."""
    n = first.shape[0]
    new_first, new_second, new_shift, new_rij = _empty_pairs(max(need, 2 * n))
    new_first[:n] = first
    new_second[:n] = second
    new_shift[:n] = shift
    new_rij[:n] = rij
    return new_first, new_second, new_shift, new_rij


@jit
def _trimmed(first, second, shift, rij, n_pairs):
    return (first[:n_pairs].copy(), second[:n_pairs].copy(), shift[:n_pairs].copy(),
            rij[:n_pairs].copy())


@jit
def neighbor_pairs_direct(positions, cell, pbc, cutoff):
    """Full neighbor list by looping over all atom pairs and their reachable images.

    For a pair (i, j) and periodic direction a, the shifts that can reach the cutoff satisfy
    |f_j,a - f_i,a + S_a| <= cutoff |b_a|, with f fractional coordinates in the effective
    cell and 1/|b_a| its face distance; non-periodic S_a = 0. Positions need not be wrapped.

    Parameters
    ----------
    positions : float64 (N, 3), C-contiguous
        Cartesian positions (Å).
    cell : float64 (3, 3)
        Rows are lattice vectors (Å); periodic rows linearly independent.
    pbc : bool (3,)
        Periodic directions.
    cutoff : float
        Cutoff radius (Å), > 0.

    Returns
    -------
    i, j : int64 (P,)
        Central atom and neighbor, sorted by i, then j, then shift.
    shift : int64 (P, 3)
        Image shift S.
    rij : float64 (P, 3)
        r_j - r_i + S @ cell (Å), with |rij| < cutoff.
    """
    n = positions.shape[0]
    reciprocal = reciprocal_rows(effective_cell(cell, pbc))
    frac = _fractional(positions, reciprocal)
    reach = np.zeros(3)
    for a in range(3):
        if pbc[a]:
            reach[a] = cutoff * np.sqrt(np.sum(reciprocal[a] ** 2)) + RANGE_SLACK
    # Per pair at most floor(2 reach_a) + 1 shifts along a: the bound per atom i keeps
    # buffer growth out of the pair loops.
    bound = n
    for a in range(3):
        bound *= int(np.floor(2.0 * reach[a])) + 1
    first, second, shift, rij = _empty_pairs(max(64, 32 * n))
    lo = np.zeros(3, np.int64)
    hi = np.zeros(3, np.int64)
    n_pairs = 0
    for i in range(n):
        if n_pairs + bound > first.shape[0]:
            first, second, shift, rij = _grown(first, second, shift, rij, n_pairs + bound)
        for j in range(n):
            for a in range(3):
                if pbc[a]:
                    delta = frac[j, a] - frac[i, a]
                    lo[a] = int(np.ceil(-reach[a] - delta))
                    hi[a] = int(np.floor(reach[a] - delta))
            for s0 in range(lo[0], hi[0] + 1):
                for s1 in range(lo[1], hi[1] + 1):
                    for s2 in range(lo[2], hi[2] + 1):
                        if i == j and s0 == 0 and s1 == 0 and s2 == 0:
                            continue
                        x, y, z = _pair_vector(positions, cell, i, j, s0, s1, s2)
                        if np.sqrt(x * x + y * y + z * z) < cutoff:
                            first[n_pairs] = i
                            second[n_pairs] = j
                            shift[n_pairs, 0] = s0
                            shift[n_pairs, 1] = s1
                            shift[n_pairs, 2] = s2
                            rij[n_pairs, 0] = x
                            rij[n_pairs, 1] = y
                            rij[n_pairs, 2] = z
                            n_pairs += 1
    return _trimmed(first, second, shift, rij, n_pairs)


@jit
def neighbor_pairs_cells(positions, cell, pbc, cutoff, bin_size):
    """Full neighbor list with a cell list (binning); same arguments and output as direct.

    Atoms are wrapped into the cell along periodic directions (integer wrap k_i) and sorted
    into bins of the effective cell: n_a = floor(L_a / bin_size) bins along a, where L_a is
    the face distance (periodic) or the extent of the atoms (non-periodic, in Å), at most
    MAX_BINS_PER_ATOM * N bins in all. An atom's neighbors lie within m_a = ceil(cutoff n_a /
    L_a) bins; bins beyond the cell are periodic images S_w or, if non-periodic, absent.
    Candidates passing a prefilter on wrapped positions are decided with the expression of
    the direct kernel, stored as keys (j, S_w) and sorted per atom: this is the order of
    (j, S) because S = S_w - k_j + k_i.

    Parameters
    ----------
    positions, cell, pbc, cutoff
        As ``neighbor_pairs_direct``.
    bin_size : float
        Smallest bin width (Å) between bin faces, > 0.

    Returns
    -------
    i, j, shift, rij
        As ``neighbor_pairs_direct``, identical to it.
    """
    n = positions.shape[0]
    ecell = effective_cell(cell, pbc)
    reciprocal = reciprocal_rows(ecell)
    frac = _fractional(positions, reciprocal)

    # Wrap periodic coordinates into [0, 1); k = integer wrap, w = wrapped positions.
    wrap = np.zeros((n, 3), np.int64)
    wrapped = positions.copy()
    for i in range(n):
        for a in range(3):
            if pbc[a]:
                k = np.floor(frac[i, a])
                wrap[i, a] = int(k)
                frac[i, a] -= k
                wrapped[i] -= k * ecell[a]

    # Bin geometry per direction, in fractional units.
    lower = np.zeros(3)
    extent = np.ones(3)
    face = np.empty(3)
    n_bins = np.ones(3, np.int64)
    for a in range(3):
        face[a] = 1.0 / np.sqrt(np.sum(reciprocal[a] ** 2))
        if not pbc[a] and n > 0:
            lower[a] = frac[:, a].min()
            extent[a] = max(frac[:, a].max() - lower[a], 1.0)  # Å; >= 1 Å avoids 0 width
        n_bins[a] = int(max(1.0, min(np.floor(extent[a] * face[a] / bin_size),
                                     MAX_BINS_PER_ATOM * n)))
    while n_bins[0] * n_bins[1] * n_bins[2] > max(1, MAX_BINS_PER_ATOM * n):
        a = np.argmax(n_bins)
        n_bins[a] = n_bins[a] // 2
    reach = np.zeros(3, np.int64)
    max_image = np.zeros(3, np.int64)
    for a in range(3):
        reach[a] = int(np.ceil(cutoff / face[a] * n_bins[a] / extent[a] + RANGE_SLACK))
        if pbc[a]:
            max_image[a] = reach[a] // n_bins[a] + 1
        else:
            reach[a] = min(reach[a], n_bins[a] - 1)
    width = 2 * max_image + 1
    if n * width[0] * width[1] * width[2] >= 2 ** 62:
        raise ValueError("neighbor_pairs_cells: too many periodic images for the sort key")

    # Counting sort of atoms into bins; wrapped positions stored in bin order.
    atom_bin = np.empty((n, 3), np.int64)
    bin_of = np.empty(n, np.int64)
    bin_start = np.zeros(n_bins[0] * n_bins[1] * n_bins[2] + 1, np.int64)
    for i in range(n):
        for a in range(3):
            b = np.int64(np.floor((frac[i, a] - lower[a]) / extent[a] * n_bins[a]))
            atom_bin[i, a] = min(max(b, 0), n_bins[a] - 1)
        bin_of[i] = atom_bin[i, 0] + n_bins[0] * (atom_bin[i, 1] + n_bins[1] * atom_bin[i, 2])
        bin_start[bin_of[i] + 1] += 1
    bin_start = np.cumsum(bin_start)
    fill = bin_start[:-1].copy()
    binned_atom = np.empty(n, np.int64)
    binned_position = np.empty((n, 3))
    for i in range(n):
        q = fill[bin_of[i]]
        binned_atom[q] = i
        binned_position[q] = wrapped[i]
        fill[bin_of[i]] += 1

    # Per atom: candidates within the prefilter are decided exactly at once and stored as
    # sort keys (j, S_w); the bound on candidates per atom keeps growth out of the bin loops.
    prefilter = (cutoff + PREFILTER_SLACK) ** 2
    n_images = width[0] * width[1] * width[2]
    bound = (2 * reach[0] + 1) * (2 * reach[1] + 1) * (2 * reach[2] + 1) \
        * np.max(np.diff(bin_start)) if n > 0 else 0
    keys = np.empty(max(64, 32 * n), np.int64)
    key_start = np.zeros(n + 1, np.int64)
    for i in range(n):
        n_keys = key_start[i]
        if n_keys + bound > keys.shape[0]:
            keys = _grown_keys(keys, max(2 * keys.shape[0], n_keys + bound))
        for o0 in range(-reach[0], reach[0] + 1):
            t0 = atom_bin[i, 0] + o0
            s0 = t0 // n_bins[0]
            if not pbc[0] and s0 != 0:
                continue
            for o1 in range(-reach[1], reach[1] + 1):
                t1 = atom_bin[i, 1] + o1
                s1 = t1 // n_bins[1]
                if not pbc[1] and s1 != 0:
                    continue
                for o2 in range(-reach[2], reach[2] + 1):
                    t2 = atom_bin[i, 2] + o2
                    s2 = t2 // n_bins[2]
                    if not pbc[2] and s2 != 0:
                        continue
                    # Image of the bin relative to atom i: x_j + image = r_j + S_w @ cell - r_i.
                    image_x = s0 * ecell[0, 0] + s1 * ecell[1, 0] + s2 * ecell[2, 0] - wrapped[i, 0]
                    image_y = s0 * ecell[0, 1] + s1 * ecell[1, 1] + s2 * ecell[2, 1] - wrapped[i, 1]
                    image_z = s0 * ecell[0, 2] + s1 * ecell[1, 2] + s2 * ecell[2, 2] - wrapped[i, 2]
                    image_key = ((s0 + max_image[0]) * width[1] + s1 + max_image[1]) * width[2] \
                        + s2 + max_image[2]
                    b = (t0 - s0 * n_bins[0]) + n_bins[0] * ((t1 - s1 * n_bins[1])
                                                             + n_bins[1] * (t2 - s2 * n_bins[2]))
                    for q in range(bin_start[b], bin_start[b + 1]):
                        x = binned_position[q, 0] + image_x
                        y = binned_position[q, 1] + image_y
                        z = binned_position[q, 2] + image_z
                        if x * x + y * y + z * z < prefilter:
                            j = binned_atom[q]
                            shift0 = s0 - wrap[j, 0] + wrap[i, 0]
                            shift1 = s1 - wrap[j, 1] + wrap[i, 1]
                            shift2 = s2 - wrap[j, 2] + wrap[i, 2]
                            if i == j and shift0 == 0 and shift1 == 0 and shift2 == 0:
                                continue
                            x, y, z = _pair_vector(positions, cell, i, j, shift0, shift1, shift2)
                            if np.sqrt(x * x + y * y + z * z) < cutoff:
                                keys[n_keys] = j * n_images + image_key
                                n_keys += 1
        keys[key_start[i]:n_keys].sort()
        key_start[i + 1] = n_keys

    n_pairs = key_start[n]
    first, second, shift, rij = _empty_pairs(n_pairs)
    for i in range(n):
        for q in range(key_start[i], key_start[i + 1]):
            key = keys[q]
            j = key // n_images
            key -= j * n_images
            s2 = key % width[2] - max_image[2] - wrap[j, 2] + wrap[i, 2]
            key //= width[2]
            s1 = key % width[1] - max_image[1] - wrap[j, 1] + wrap[i, 1]
            s0 = key // width[1] - max_image[0] - wrap[j, 0] + wrap[i, 0]
            first[q] = i
            second[q] = j
            shift[q, 0] = s0
            shift[q, 1] = s1
            shift[q, 2] = s2
            rij[q, 0], rij[q, 1], rij[q, 2] = _pair_vector(positions, cell, i, j, s0, s1, s2)
    return first, second, shift, rij


@jit
def _grown_keys(keys, capacity):
    grown = np.empty(capacity, np.int64)
    grown[:keys.shape[0]] = keys
    return grown


@jit(parallel=True)
def pairs_within(positions, cell, offsets, i, j, shift, cutoff, nchunk):
    """The pairs of a list whose vector at ``positions`` is shorter than ``cutoff``.

    The vectors r_j - r_i + S @ cell are recomputed at ``positions`` (N, 3) Å with the
    builders' arithmetic (``_pair_vector``) and decided by their criterion |r_ij| < cutoff
    (Å): |r|^2 settles all but pairs within a relative 1e-12 of the cutoff, which take the
    square root. A list built at cutoff + skin and filtered here after no atom has moved
    more than skin / 2 is therefore, bit for bit, the list built at ``cutoff`` from scratch
    (order included: filtering keeps the i, j, S order); on a list of the same positions it
    is the list at a smaller cutoff. ``offsets`` (N + 1,): the list's CSR offsets by i.
    Two passes over ``nchunk`` parallel chunks of atoms (decide and count, then fill arrays
    of the exact size at each atom's place): the same output for any thread count.

    Returns (i, j, shift, rij) as ``neighbor_pairs_direct``.
    """
    natoms = offsets.shape[0] - 1
    inside = cutoff * cutoff * (1.0 - 1e-12)
    outside = cutoff * cutoff * (1.0 + 1e-12)
    keep = np.zeros(i.shape[0], np.bool_)
    kept = np.zeros(natoms + 1, np.int64)
    nchunk = max(1, min(nchunk, natoms))
    for chunk in prange(nchunk):
        for atom in range(chunk * natoms // nchunk, (chunk + 1) * natoms // nchunk):
            for p in range(offsets[atom], offsets[atom + 1]):
                x, y, z = _pair_vector(positions, cell, i[p], j[p], shift[p, 0], shift[p, 1],
                                       shift[p, 2])
                r2 = x * x + y * y + z * z
                if r2 < inside or (r2 < outside and np.sqrt(r2) < cutoff):
                    keep[p] = True
                    kept[atom + 1] += 1
    for atom in range(natoms):
        kept[atom + 1] += kept[atom]
    first, second, shift_out, rij = _empty_pairs(kept[natoms])
    for chunk in prange(nchunk):
        for atom in range(chunk * natoms // nchunk, (chunk + 1) * natoms // nchunk):
            q = kept[atom]
            for p in range(offsets[atom], offsets[atom + 1]):
                if keep[p]:
                    first[q] = i[p]
                    second[q] = j[p]
                    for k in range(3):
                        shift_out[q, k] = shift[p, k]
                    rij[q, 0], rij[q, 1], rij[q, 2] = _pair_vector(
                        positions, cell, i[p], j[p], shift[p, 0], shift[p, 1], shift[p, 2])
                    q += 1
    return first, second, shift_out, rij
