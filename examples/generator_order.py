"""Why entropy minimization (K < 0) makes no crystals from random starts (docs/generator.md,
"Order"): two checks with the generator's own relaxation (``emtool.generator.generate``, defaults).

1. A crystal is a minimum: BCC W, 54 atoms, at 15.9, 20 and 25 Å^3/atom, displaced by
   Gaussian noise of 0.05, 0.2 and 0.4 Å, relaxed on V_rep alone (as stage 1) and then on
   V = V_rep + |K| S (K < 0, up to 2000 FIRE steps) or not at all (K = 0): the crystalline
   fraction before and after, and S.
2. The same commensurate boxes from uniformly random positions (3 starts each, 3000 steps):
   the crystalline fraction and S beside the crystal's S = ln(N floor) (every atom's
   nearest environment within the floor).

Run: python examples/generator_order.py     (about 10 s)
"""
import numpy as np
from ase.build import bulk

from emtool.generator.generate import GeneratorParams, _relax
from emtool.descriptors.structure_types import STRUCTURE_TYPES, classify_atoms

CRYSTALLINE = [STRUCTURE_TYPES.index(name) for name in ("fcc", "hcp", "bcc", "sc", "diamond")]
VOLUMES = (15.9, 20.0, 25.0)


def crystalline(atoms):
    return float(np.isin(classify_atoms(atoms), CRYSTALLINE).mean())


def relaxed(atoms, params, sign, steps):
    """(relaxed copy, S after stage 1, final S, steps) of V_rep, then V with K of ``sign``."""
    out = atoms.copy()
    out.positions, _ = _relax(out, params, 0.0, params.overlap_steps)
    out.positions, stats = _relax(out, params, sign, steps)
    return out, stats[0], stats[1], int(stats[3])


def main():
    params = GeneratorParams().with_descriptor_scale()
    rng = np.random.default_rng(0)
    print("1. displaced BCC crystals (54 atoms): crystalline fraction start -> relaxed, S")
    print("| Å^3/atom | noise Å | start | K = 0 | K < 0 | S (K < 0) | steps |")
    print("|---:|---:|---:|---:|---:|---|---:|")
    for volume in VOLUMES:
        crystal = bulk("W", "bcc", a=(2 * volume) ** (1 / 3), cubic=True).repeat(3)
        for noise in (0.05, 0.2, 0.4):
            start = crystal.copy()
            start.positions += rng.normal(0.0, noise, start.positions.shape)
            still, _, _, _ = relaxed(start, params, 0.0, 0)
            ordered, s0, s1, steps = relaxed(start, params, -1.0, 2000)
            print(f"| {volume} | {noise} | {crystalline(start):.2f} | {crystalline(still):.2f} | "
                  f"{crystalline(ordered):.2f} | {s0:.2f} -> {s1:.2f} | {steps} |")
    print(f"\n2. random starts in the same boxes, K < 0, 3000 steps; the crystal's S = "
          f"ln(54 x {params.floor}) = {np.log(54 * params.floor):.2f}")
    print("| Å^3/atom | crystalline | S start -> end | steps |")
    print("|---:|---|---|---|")
    for volume in VOLUMES:
        box = bulk("W", "bcc", a=(2 * volume) ** (1 / 3), cubic=True).repeat(3)
        rows = []
        for _ in range(3):
            start = box.copy()
            start.set_scaled_positions(rng.random((len(box), 3)))
            ordered, s0, s1, steps = relaxed(start, params, -1.0, 3000)
            rows.append((crystalline(ordered), s0, s1, steps))
        print(f"| {volume} | {', '.join(f'{r[0]:.2f}' for r in rows)} | "
              f"{', '.join(f'{r[1]:.2f} -> {r[2]:.2f}' for r in rows)} | "
              f"{', '.join(str(r[3]) for r in rows)} |")


if __name__ == "__main__":
    main()
