"""GPAW (plane-wave PAW DFT) calculator factory for tungsten, for ``emtool label``.

Use it as the labeler's potential spec, either as a module (run from the repository root,
where ``examples`` is importable as a namespace package) or by file path::

    emtool label em.h5 --potential examples.gpaw_w:calculator -o em_gpaw.h5
    emtool label em.h5 --potential path/to/examples/gpaw_w.py:calculator \\
        --calc-args '{"ecut": 300, "kpts": [1, 1, 1]}' --workers 1 -o em_gpaw.h5

The module has no package-relative imports and imports GPAW only inside ``calculator()``, so
it can be imported (by module name or by path) in an environment without GPAW; calling the
factory needs GPAW (Debian: ``apt-get install gpaw gpaw-data``, see docs/dft.md).

Run as a script it labels one structure and prints a JSON line with the cost (wall time, SCF
iterations), energy and maximum force: ``python examples/gpaw_w.py --bcc 3.1652 --kpts 4 4 4``
or ``python examples/gpaw_w.py cfg.extxyz --ecut 300 --kpts 1 1 1``. Set
``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` for a strictly single-threaded run.

Settings of the factory (GPAW 22.8 keywords):

- ``xc="PBE"``; GPAW's standard PAW setup for W (``W.PBE`` in gpaw-data 0.9.20000: 14 valence
  electrons, 5s2 5p6 5d4 6s2, core [Kr]4d10 4f14);
- plane waves, ``mode=PW(ecut, dedecut="estimate")`` (the estimate corrects the Pulay stress
  of a finite basis; it costs nothing);
- Monkhorst-Pack k-points ``kpts`` (as VASP's Monkhorst-Pack: even grids do not contain Γ;
  ``(1, 1, 1)`` is Γ only, a smoke test: in a 39-atom random cell its forces differ from
  2x2x2 ones by up to 2.7 eV/Å);
- Marzari-Vanderbilt (cold) smearing of width ``smearing`` (it is a metal). With cold
  smearing GPAW's ``"energy"`` *is* the Mermin free energy (no extrapolation to zero width),
  so the energy that ``emtool label`` records (``get_potential_energy()``) is the one whose
  gradient the forces are. With Fermi-Dirac, ``"energy"`` is extrapolated to zero width and
  differs from the force-consistent free energy by TS/2 (about 15 meV/atom at 0.1 eV for a
  39-atom random cell, docs/dft.md);
- spin-restricted (``spinpol=False``): W is non-magnetic;
- SCF convergence tighter than GPAW's defaults, for forces: see ``CONVERGENCE``.

The paper's reference labels (VASP) for comparison: GGA/PBE, 600 eV plane-wave cutoff, 2x2x2
Monkhorst-Pack k-points, electronic SCF converged to 1e-8 eV (EDIFF, a total-energy change).
The closest GPAW equivalent is ``calculator(ecut=600, kpts=(2, 2, 2),
convergence={"energy": 1e-8, "density": 1e-6})`` (GPAW's energy criterion is per valence
electron; the force criterion is what guarantees force labels). The PAW datasets (GPAW
setup vs. VASP POTCAR) and the smearing differ, so absolute energies are not comparable
between codes, only energy differences and forces. Measured cost on one core: docs/dft.md
(about 2 min per 39-atom cell at 300 eV and Γ, 12 min at 300 eV and 2x2x2, an extrapolated
25-35 min at 600 eV and 2x2x2).
"""
import json
import sys
import time

# GPAW's SCF criteria, tighter than its defaults (0.0005 / 1e-4 / 4e-8 / off):
#   energy      eV per valence electron, peak-to-peak over the last 3 iterations
#               (1e-6 eV/e * 14 e/atom * 40 atoms = 5.6e-4 eV for the whole 40-atom cell);
#   density     electrons per valence electron (integrated |Δn|);
#   eigenstates eV^2 per valence electron (residual norm);
#   forces      eV/Å, largest change of an atom's force between the last two iterations
#               (checked only once the others are met).
CONVERGENCE = {"energy": 1e-6, "density": 1e-5, "eigenstates": 1e-9, "forces": 1e-3}


def _kpts(kpts):
    """GPAW's ``kpts`` from what JSON can carry: an int n (n x n x n), three ints, or a dict
    such as ``{"density": 3.0, "gamma": false}`` (k-points per Å^-1, the same density for cells
    of any shape), passed through."""
    if isinstance(kpts, dict):
        return dict(kpts)
    if isinstance(kpts, int):
        return (kpts, kpts, kpts)
    kpts = tuple(int(k) for k in kpts)
    if len(kpts) != 3 or min(kpts) < 1:
        raise ValueError(f"kpts must be three positive integers, got {kpts}")
    return kpts


def calculator(ecut=400.0, kpts=(2, 2, 2), smearing=0.1, txt=None, **extra):
    """A ``gpaw.GPAW`` ASE calculator for tungsten: PBE, plane waves, Monkhorst-Pack k-points.

    Parameters
    ----------
    ecut : float
        Plane-wave cutoff, eV (the paper's VASP labels: 600 eV).
    kpts : (int, int, int), int or dict
        Monkhorst-Pack grid (the paper: 2x2x2), an int n for n x n x n, or a GPAW dict such as
        ``{"density": 3.0}`` (k-points per reciprocal Å, for cells of varying shape).
    smearing : float
        Marzari-Vanderbilt (cold smearing) width, eV. For another distribution pass
        ``occupations={"name": "fermi-dirac", "width": 0.1}`` (then ``smearing`` is unused).
    txt : str or None
        GPAW's log file; ``None`` (default) writes none, ``"-"`` writes to stdout.
    **extra
        Any further ``gpaw.GPAW`` keyword, overriding the defaults above (``occupations``,
        ``setups={"W": "6"}`` for the 6-electron setup, ``mixer``, ``maxiter``, ``nbands``,
        ...). ``convergence`` is merged into ``CONVERGENCE`` key by key.

    Units of the results: energy eV, forces eV/Å, stress eV/Å^3 (ASE's).
    """
    from gpaw import GPAW, PW

    convergence = dict(CONVERGENCE)
    convergence.update(extra.pop("convergence", None) or {})
    params = dict(
        mode=PW(float(ecut), dedecut="estimate"),
        xc="PBE",
        setups="paw",
        kpts=_kpts(kpts),
        occupations={"name": "marzari-vanderbilt", "width": float(smearing)},
        spinpol=False,
        convergence=convergence,
        maxiter=300,
        txt=txt,
    )
    params.update(extra)
    return GPAW(**params)


def _main(argv=None):
    """Label one structure with ``calculator()`` and print a JSON line of cost and results."""
    import argparse

    import numpy as np
    from ase.build import bulk
    from ase.io import read

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("structure", nargs="?", help="any ASE-readable file (first frame)")
    parser.add_argument("--bcc", type=float, metavar="A",
                        help="instead of a file: the 2-atom cubic BCC W cell of lattice constant A")
    parser.add_argument("--ecut", type=float, default=400.0)
    parser.add_argument("--kpts", type=int, nargs=3, default=(2, 2, 2))
    parser.add_argument("--smearing", type=float, default=0.1)
    parser.add_argument("--txt", default=None, help="GPAW log file")
    parser.add_argument("--stress", action="store_true", help="also compute the stress")
    parser.add_argument("--calc-args", default="{}", help="JSON of further calculator() keywords")
    parser.add_argument("--save", metavar="FILE", help="write the labeled structure (extxyz)")
    args = parser.parse_args(argv)
    if (args.structure is None) == (args.bcc is None):
        parser.error("give a structure file or --bcc A")
    atoms = bulk("W", "bcc", a=args.bcc, cubic=True) if args.bcc else read(args.structure, 0)
    atoms.calc = calculator(args.ecut, tuple(args.kpts), args.smearing, args.txt,
                            **json.loads(args.calc_args))
    start = time.perf_counter()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    scf_time = time.perf_counter() - start
    out = dict(natoms=len(atoms), volume_per_atom=atoms.get_volume() / len(atoms),
               ecut=args.ecut, kpts=list(args.kpts), smearing=args.smearing,
               nibzkpts=len(atoms.calc.get_ibz_k_points()),
               scf_iterations=atoms.calc.get_number_of_iterations(),
               wall_energy_forces_s=round(scf_time, 2),
               energy=energy, free_energy=atoms.get_potential_energy(force_consistent=True),
               energy_per_atom=energy / len(atoms),
               fmax=float(np.linalg.norm(forces, axis=1).max()))
    if args.stress:
        start = time.perf_counter()
        out["stress"] = atoms.get_stress().tolist()
        out["wall_stress_s"] = round(time.perf_counter() - start, 2)
    if args.save:
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.io import write
        labeled = atoms.copy()
        labeled.calc = SinglePointCalculator(labeled, **{k: v for k, v in dict(
            energy=energy, free_energy=out["free_energy"], forces=forces,
            stress=np.asarray(out["stress"]) if args.stress else None).items() if v is not None})
        write(args.save, labeled, format="extxyz")
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(_main())
