"""Parameter study of the entropy-optimized generator (docs/generator.md shows its output).

For each setting, generates 24 W configurations (12 with K > 0, 12 with K < 0) and reports:
the fraction of runs that moved S in the direction of K, the smallest pair distance (Å),
the mean final S of each half, the fraction of atoms whose scaled descriptor lies within
0.05 of another atom's ("repeated environments": order), the mean coordination number within
3.3 Å, and the time per configuration.

Run: python examples/generator_study.py
"""
import time
from dataclasses import replace

import numpy as np

from emtool import SnapParams, bispectrum
from emtool.nearest import nearest_sq_distances
from emtool.generate import GeneratorParams, generate_one
from emtool.neighbors import neighbor_list_atoms

SETTINGS = [dict(K=k) for k in (1.0, 2.0, 5.0, 10.0, 20.0)] + \
           [dict(exclusion_radius=r) for r in (2.0, 2.4)] + \
           [dict(repulsion_energy=e) for e in (3.0, 30.0)] + [dict(floor=f) for f in (1e-3, 1e-2, 1e-1)]


def repeated_fraction(atoms, params):
    b = bispectrum(atoms, SnapParams(twojmax=2, rcutfac=params.rcut, bzeroflag=0))
    return float(np.mean(np.sqrt(nearest_sq_distances(b / np.asarray(params.descriptor_scale))) < 0.05))


def study(params, n=24, seed=1):
    start = time.perf_counter()
    images = [generate_one(params, seed, k) for k in range(n)]
    seconds = (time.perf_counter() - start) / n
    row = {"s/config": seconds}
    for name, sign in (("max", 1), ("min", -1)):
        half = [a for a in images if np.sign(a.info["K"]) == sign]
        moved = [np.sign(a.info["entropy"] - a.info["entropy_start"]) == sign for a in half]
        row[f"moved {name}"] = np.mean(moved)
        row[f"S {name}"] = np.mean([a.info["entropy"] for a in half])
        row[f"repeated {name}"] = np.mean([repeated_fraction(a, params) for a in half])
        row[f"CN {name}"] = np.mean([len(neighbor_list_atoms(a, 3.3).i) / len(a) for a in half])
    row["d_min"] = min(np.sqrt((neighbor_list_atoms(a, 3.0).rij ** 2).sum(1)).min() for a in images)
    return row


def main():
    base = GeneratorParams().with_descriptor_scale()
    rows = [("defaults", study(base))]
    rows += [(", ".join(f"{k}={v}" for k, v in s.items()), study(replace(base, **s)))
             for s in SETTINGS]
    keys = list(rows[0][1])
    print("| setting | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, row in rows:
        print(f"| {name} | " + " | ".join(f"{row[k]:.3g}" for k in keys) + " |")


if __name__ == "__main__":
    main()
