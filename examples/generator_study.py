"""Parameter study of the entropy-optimized generator against the paper's outcome
(docs/generator.md shows its output).

For each setting, generates 24 W configurations (12 with K > 0, 12 with K < 0; seed 1) and
reports per sign of K:

- ``moved``: fraction of runs that moved S in the direction of K;
- ``cryst``: fraction of atoms crystalline (bcc, fcc, hcp, sc or diamond by
  ``emtool.descriptors.structure_types``, adaptive CNA); ``perfect``: fraction of configurations with
  >= 98 % of their atoms of one crystalline type (paper Fig. 6: K < 0 "mostly crystalline but
  with defects", perfect crystals rare);
- ``dE``: energy above BCC (eV/atom), min / median / max, under a surrogate labeler
  (``--labeler``, default ``chgnet``: the universal potential of docs/labels.md) against its
  own BCC at a = 3.184 Å; the paper's EM set lies 0.4-3.9 eV/atom above BCC (DFT);
- ``d_min``: smallest pair distance (Å) over all configurations; ``s/config``: generation time.

Run: python examples/generator_study.py [--labeler chgnet] [--settings JSON ...]
(a setting is a JSON object of ``GeneratorParams`` fields, e.g. '{"exclusion_radius": 2.4}').
"""
import argparse
import json
import time
from dataclasses import replace

import numpy as np
from ase.build import bulk

from emtool.potentials.calculators import load_potential
from emtool.generator.generate import GeneratorParams, generate_one
from emtool.descriptors.neighbors import neighbor_list_atoms
from emtool.descriptors.structure_types import STRUCTURE_TYPES, classify_atoms

#: The default settings of the study (docs/generator.md).
SETTINGS = ([{}, dict(min_exclusion_factor=1.0), dict(min_start="random"), dict(lattice_noise=0.2)]
            + [dict(exclusion_radius=r) for r in (2.2, 2.4, 2.5, 2.6)]  # {}: 2.7
            + [dict(exclusion_radius=2.6, K=k) for k in (1.0, 20.0)]
            + [dict(exclusion_radius=2.6, floor=0.2), dict(exclusion_radius=2.6, twojmax=4),
               dict(exclusion_radius=2.6, max_steps=1000),
               dict(exclusion_radius=2.6, repulsion_energy=30.0)])
CRYSTALLINE = [STRUCTURE_TYPES.index(name) for name in ("fcc", "hcp", "bcc", "sc", "diamond")]
BCC_A = 3.184


def crystallinity(atoms):
    """(crystalline fraction of the atoms, largest single crystalline type's fraction)."""
    counts = np.bincount(classify_atoms(atoms), minlength=len(STRUCTURE_TYPES))[CRYSTALLINE]
    return counts.sum() / len(atoms), counts.max() / len(atoms)


def study(params, labeler, n=24, seed=1):
    start = time.perf_counter()
    images = [generate_one(params, seed, k) for k in range(n)]
    row = {"s/config": (time.perf_counter() - start) / n}
    bcc = bulk(params.element, "bcc", a=BCC_A, cubic=True).repeat(3)
    e_bcc = labeler.evaluate(bcc)["energy"] / len(bcc)
    many = getattr(labeler, "evaluate_many", None)
    results = many(images) if many else [labeler.evaluate(a) for a in images]
    above = np.array([r["energy"] / len(a) - e_bcc for r, a in zip(results, images)])
    for name, sign in (("max", 1), ("min", -1)):
        half = [k for k, a in enumerate(images) if np.sign(a.info["K"]) == sign]
        moved = [np.sign(images[k].info["entropy"] - images[k].info["entropy_start"]) == sign
                 for k in half]
        cryst = np.array([crystallinity(images[k]) for k in half])
        row[f"moved {name}"] = float(np.mean(moved))
        row[f"cryst {name}"] = float(cryst[:, 0].mean())
        row[f"perfect {name}"] = float(np.mean(cryst[:, 1] >= 0.98))
        lo, mid, hi = np.percentile(above[half], [0, 50, 100])
        row[f"dE {name}"] = f"{lo:.2f} / {mid:.2f} / {hi:.2f}"
    row["d_min"] = min(np.sqrt((neighbor_list_atoms(a, params.rcut).rij ** 2).sum(1)).min()
                       for a in images)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labeler", default="chgnet", help="surrogate potential spec")
    parser.add_argument("--settings", nargs="*", help="JSON objects of GeneratorParams fields")
    args = parser.parse_args()
    labeler = load_potential(args.labeler)
    settings = [json.loads(s) for s in args.settings] if args.settings else SETTINGS
    rows = []
    for setting in settings:
        params = replace(GeneratorParams(), **setting).with_descriptor_scale()
        name = ", ".join(f"{k}={v}" for k, v in setting.items()) or "defaults"
        rows.append((name, study(params, labeler)))
    keys = list(rows[0][1])
    print(f"labeler: {args.labeler}; dE = energy above BCC, eV/atom, min / median / max")
    print("| setting | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, row in rows:
        cells = [f"{row[k]:.3g}" if not isinstance(row[k], str) else row[k] for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
