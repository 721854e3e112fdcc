"""Every labeler against the GPAW reference set of tungsten (examples/data/w_gpaw.h5).

For each labeler (the embedded reference ``reference:W``, the published W SNAP+ZBL of
Wood et al. 2019, CHGNet, SevenNet) and each part of the set (entropy-optimized: groups
``entropy_max``/``entropy_min``; expert-curated: the DE groups), compares with GPAW:

- energy above BCC (eV/atom): E/N - E_bcc/N_bcc, each labeler against its own BCC (the
  ``bcc`` configuration of the set), so that every labeler's constant offset cancels;
  RMSE and mean signed error (bias);
- forces: RMSE over all components (eV/Å);
- seconds per configuration on one core (single thread), after a warm-up evaluation.

Two checks of the reference set itself follow: its GPAW labels of the DE configurations
against the DE set's own VASP labels (energy above BCC, VASP's BCC at the DE set's lowest EOS
cell: -8.909125 eV/atom), both at the main settings and at 2x2x2 k-points and 500 eV
(``w_gpaw_k222.h5``), and GPAW's main settings against 2x2x2/500 eV on the configurations both
files hold, per part: what the cheap labels cost.

Run: python bench/bench_labelers.py [--json] [--labelers reference:W,chgnet,...]
(single-threaded: it sets OMP/OpenBLAS/torch threads to 1).
"""
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from emtool.potentials.calculators import load_potential  # noqa: E402
from emtool.data.dataset import read_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_SET = ROOT / "examples" / "data" / "w_gpaw.h5"
REFERENCE_K222 = ROOT / "examples" / "data" / "w_gpaw_k222.h5"
W_SNAP = ROOT.parent / "shared" / "data" / "lammps_W_SNAP" / "W_2940_2017_2.snap"
#: VASP energy per atom of BCC W in the DE set (its lowest-energy EOS cell, a = 3.18403 Å).
DE_VASP_BCC = -8.909125
LABELERS = ("reference:W", str(W_SNAP), "chgnet", "sevenn")
PARTS = {"entropy-optimized": ("entropy_max", "entropy_min")}


def part_of(atoms):
    group = atoms.info.get("group", "")
    if group == "bcc":
        return "bcc"
    for part, groups in PARTS.items():
        if group in groups:
            return part
    return "expert-curated (DE)"


def energy_above_bcc(energies, images, bcc):
    """(n,) eV/atom: E_k/N_k - E_bcc/N_bcc."""
    return np.array([e / len(a) for e, a in zip(energies, images)]) - bcc


def compare(labeler_energies, labeler_forces, images, bcc_labeler, bcc_truth):
    """Dict of energy-above-BCC RMSE and bias (eV/atom) and force RMSE (eV/Å)."""
    truth = energy_above_bcc([a.get_potential_energy() for a in images], images, bcc_truth)
    got = energy_above_bcc(labeler_energies, images, bcc_labeler)
    df = np.concatenate([(f - a.get_forces()).ravel() for f, a in zip(labeler_forces, images)])
    return dict(n=len(images), de_rmse=float(np.sqrt(np.mean((got - truth) ** 2))),
                de_bias=float(np.mean(got - truth)), f_rmse=float(np.sqrt(np.mean(df ** 2))),
                de_range=[float(truth.min()), float(np.median(truth)), float(truth.max())])


def bench_labeler(spec, images):
    """(energies, forces, seconds per configuration one by one, seconds per configuration
    in batches or None) of one labeler on ``images``."""
    potential = load_potential(spec)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    potential.evaluate(images[0])  # warm-up: JIT, model load, caches
    start = time.perf_counter()
    results = [potential.evaluate(atoms) for atoms in images]
    seconds = (time.perf_counter() - start) / len(images)
    batched = None
    if hasattr(potential, "evaluate_many"):
        start = time.perf_counter()
        potential.evaluate_many(images)
        batched = (time.perf_counter() - start) / len(images)
    return ([r["energy"] for r in results], [np.asarray(r["forces"]) for r in results], seconds,
            batched)


def gpaw_against_vasp(images, vasp_energies, bcc_gpaw):
    """GPAW's energy above BCC of DE configurations against their VASP labels (eV)."""
    if not images:
        return None
    gpaw = energy_above_bcc([a.get_potential_energy() for a in images], images, bcc_gpaw)
    vasp = energy_above_bcc(vasp_energies, images, DE_VASP_BCC)
    return dict(n=len(images), de_rmse=float(np.sqrt(np.mean((gpaw - vasp) ** 2))),
                de_bias=float(np.mean(gpaw - vasp)))


def k222_pairs(main, k222):
    """[(main-set Atoms, the same configuration at 2x2x2/500 eV)], the BCC pair first."""
    by_key = {(a.info["part"], a.info["part_index"]): a for a in main}
    pairs = [(by_key[key], a) for a in k222
             if (key := (a.info["source_part"], a.info["source_index"])) in by_key]
    return sorted(pairs, key=lambda p: part_of(p[1]) != "bcc")


def gpaw_settings_cost(pairs):
    """{part: comparison} of the main set's GPAW labels with the 2x2x2/500 eV ones."""
    if len(pairs) < 2 or part_of(pairs[0][1]) != "bcc":
        return {}
    (bcc_cheap, bcc_conv), rest = pairs[0], pairs[1:]
    cost = {}
    for part in sorted({part_of(p[1]) for p in rest}):
        cheap = [p[0] for p in rest if part_of(p[1]) == part]
        converged = [p[1] for p in rest if part_of(p[1]) == part]
        cost[part] = compare([a.get_potential_energy() for a in cheap],
                             [a.get_forces() for a in cheap], converged,
                             bcc_cheap.get_potential_energy() / len(bcc_cheap),
                             bcc_conv.get_potential_energy() / len(bcc_conv))
    return cost


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelers", default=",".join(LABELERS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    images = read_dataset(REFERENCE_SET)
    bcc = [a for a in images if part_of(a) == "bcc"]
    if len(bcc) != 1:
        raise SystemExit(f"{REFERENCE_SET} needs exactly one 'bcc' configuration")
    bcc = bcc[0]
    bcc_truth = bcc.get_potential_energy() / len(bcc)
    parts = {}
    for atoms in images:
        if part_of(atoms) != "bcc":
            parts.setdefault(part_of(atoms), []).append(atoms)
    rows = []
    for spec in args.labelers.split(","):
        energies, forces, seconds, batched = bench_labeler(
            spec, [bcc] + [a for p in parts.values() for a in p])
        bcc_labeler = energies[0] / len(bcc)
        k = 1
        for part, members in parts.items():
            n = len(members)
            row = compare(energies[k:k + n], forces[k:k + n], members, bcc_labeler, bcc_truth)
            rows.append(dict(row, labeler=Path(spec).name if spec == str(W_SNAP) else spec,
                             part=part, seconds=seconds, batched=batched))
            k += n
    pairs = k222_pairs(images, read_dataset(REFERENCE_K222)) if REFERENCE_K222.exists() else []
    gpaw = gpaw_settings_cost(pairs)
    de = [a for a in images if "vasp_energy" in a.info]
    vasp = gpaw_against_vasp(de, [a.info["vasp_energy"] for a in de], bcc_truth)
    de_k222 = [(m, k) for m, k in pairs[1:] if "vasp_energy" in m.info]
    vasp_k222 = gpaw_against_vasp(
        [k for _, k in de_k222], [m.info["vasp_energy"] for m, _ in de_k222],
        pairs[0][1].get_potential_energy() / len(pairs[0][1])) if de_k222 else None
    if args.json:
        print(json.dumps(dict(rows=rows, gpaw_vs_vasp=vasp, gpaw_k222_vs_vasp=vasp_k222,
                              gpaw_cheap_vs_k222=gpaw), indent=1))
        return
    print(f"# {REFERENCE_SET.name}: {len(images)} configurations; BCC GPAW {bcc_truth:.4f} eV/atom")
    print("| labeler | part | n | E above BCC: GPAW min / median / max (eV/atom) | "
          "RMSE (eV/atom) | bias (eV/atom) | force RMSE (eV/Å) | s/config | s/config batched |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        lo, mid, hi = r["de_range"]
        batched = f"{r['batched']:.3g}" if r["batched"] else "-"
        print(f"| {r['labeler']} | {r['part']} | {r['n']} | {lo:.2f} / {mid:.2f} / {hi:.2f} | "
              f"{r['de_rmse']:.3f} | {r['de_bias']:+.3f} | {r['f_rmse']:.3f} | "
              f"{r['seconds']:.3g} | {batched} |")
    for name, row in (("this set's settings", vasp), ("2x2x2 k-points, 500 eV", vasp_k222)):
        if row:
            print(f"\nGPAW ({name}) vs the DE set's VASP labels ({row['n']} DE "
                  f"configurations): energy above BCC RMSE {row['de_rmse']:.3f} eV/atom (bias "
                  f"{row['de_bias']:+.3f})")
    for part, row in gpaw.items():
        print(f"\nGPAW main settings vs 2x2x2 k-points, 500 eV ({part}, {row['n']} "
              f"configurations): energy above BCC RMSE {row['de_rmse']:.3f} eV/atom (bias "
              f"{row['de_bias']:+.3f}), force RMSE {row['f_rmse']:.3f} eV/Å")


if __name__ == "__main__":
    main()
