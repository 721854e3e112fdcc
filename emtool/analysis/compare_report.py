"""Markdown report and figures of an ``emtool.analysis.compare.Comparison`` (``emtool compare``)."""
import json
from pathlib import Path

import numpy as np

from emtool import plots
from emtool.analysis.compare import COVERAGE_QUANTILE, MUCH_BROADER, dataset_name, sample_rows
from emtool.files import atomic_write
from emtool.kernels.snap_basis import snap_basis
from emtool.descriptors.structure_types import STRUCTURE_TYPES

#: Points per set in the PCA scatter plot (a random sample; the statistics use every point).
SCATTER_POINTS = 20000


def write_report(comparison, outdir):
    """Write ``outdir``/compare.md, compare.json and the PNG figures; returns the .md path."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    figures = [_energy_figure(comparison, outdir / "energy.png"),
               _components_figure(comparison, outdir / "components.png"),
               _pca_figure(comparison, outdir / "pca.png"),
               _ratios_figure(comparison, outdir / "broadening.png"),
               _coverage_figure(comparison, outdir / "coverage.png")]
    summary = dict(comparison.summary, figures=[f.name for f in figures if f is not None])
    text = _markdown(summary)
    atomic_write(outdir / "compare.json",
                 lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=1) + "\n"))
    return atomic_write(outdir / "compare.md", lambda tmp: Path(tmp).write_text(text))


def _markdown(s):
    names = [dataset_name(row["path"]) for row in s["sets"]]
    ref = names[0]
    desc = s["descriptors"]
    lines = ["# Descriptor-space comparison", "",
             f"Reference (REF): `{s['reference']}`. Descriptors: bispectrum, twojmax "
             f"{desc['twojmax']}, R = {desc['rcutfac']} Å, D = {desc['n_dims']} per atom "
             f"(LAMMPS compute sna/atom columns). Definitions: docs/compare.md.", "",
             "## Sets", "",
             "| set | configurations | environments | labeled | E/N min / median / max (eV) |",
             "|---|---:|---:|---:|---|"]
    for name, row in zip(names, s["sets"]):
        e = row["energy_per_atom"]
        span = "unlabeled" if e is None else f"{e['min']:.4f} / {e['median']:.4f} / {e['max']:.4f}"
        lines.append(f"| {name} | {row['configs']} | {row['environments']} | "
                     f"{row['labeled_configs']} | {span} |")
    unlabeled = [n for n, row in zip(names, s["sets"]) if row["labeled_configs"] == 0]
    if unlabeled:
        lines += ["", f"Unlabeled, left out of the energy distribution: {', '.join(unlabeled)}."]
    w = s["whitening"]
    lines += ["", "![energy per atom](energy.png)", "", "![bispectrum components](components.png)",
              "", "## ZCA whitening in the frame of REF", "",
              f"REF covariance eigenvalues {w['eigenvalue_min']:.3g} to {w['eigenvalue_max']:.3g}"
              f" (condition number {w['condition']:.3g}). In the whitened frame REF has unit "
              f"standard deviation in every dimension; a set is broader in a dimension when its "
              f"standard deviation there exceeds 1.", "",
              f"| set | broader | ≥ {MUCH_BROADER:g}× broader | dimensions | std ratio min / median / max |",
              "|---|---:|---:|---:|---|"]
    for name, row in zip(names[1:], s["others"]):
        lines.append(f"| {name} | {row['broader_dims']} | {row['broader5x_dims']} | "
                     f"{row['n_dims']} | {row['ratio_min']:.3g} / {row['ratio_median']:.3g} / "
                     f"{row['ratio_max']:.3g} |")
    pc = s["pca"]["explained"]
    lines += ["", "![std ratio per whitened dimension](broadening.png)", "",
              "## Principal components of REF", "",
              f"REF's standardized descriptors: PC1 holds {100 * pc[0]:.1f}% and PC2 "
              f"{100 * pc[1]:.1f}% of the variance.", "", "![PCA](pca.png)", "",
              "## Entropy and coverage", "",
              f"Nearest-neighbor statistics in REF-whitened units on {s['nn_environments']} "
              f"random environments of every set (seed {s['seed']}). Entropy: S = (1/n) Σ "
              f"ln(n δ_i) with δ_i floored at {s['entropy_floor']:g}; duplicates: environments "
              f"whose nearest other environment is closer than the floor. Threshold: "
              f"99th percentile of a set's own leave-one-out distances.", "",
              "Coverage is judged on two scales: beyond the *covering* set's threshold, a model "
              "trained on it extrapolates (a sparse set has a large threshold and seems to cover "
              "much); beyond the *query* set's own threshold, the covering set has no environment "
              "as close as the query set's own spacing. `covered` = the share within the "
              "query's own threshold.", "",
              "| set | entropy S | duplicates | leave-one-out threshold |", "|---|---:|---:|---:|"]
    for name, row in zip(names, s["sets"]):
        lines.append(f"| {name} | {row['entropy']:.4f} | {row['duplicates']} | "
                     f"{row['loo_threshold']:.4g} |")
    lines += ["", "| environments of | nearest in | median | 90% | 99% | max | covering threshold "
                  "| beyond it | own threshold | covered |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in zip(names[1:], s["others"]):
        for query, covering, c in ((name, ref, row["coverage"]["other_by_reference"]),
                                   (ref, name, row["coverage"]["reference_by_other"])):
            q = c["quantiles"]
            lines.append(f"| {query} | {covering} | {q['0.5']:.4g} | {q['0.9']:.4g} | "
                         f"{q['0.99']:.4g} | {q['1']:.4g} | {c['threshold_covering']:.4g} | "
                         f"{100 * c['fraction_beyond_covering']:.1f}% | "
                         f"{c['threshold_own']:.4g} | {100 * c['covered']:.1f}% |")
    lines += ["", "A model trained on the covering set extrapolates on the environments beyond "
                  "the threshold.", "", "![coverage](coverage.png)", "",
              "## Local structure types", "",
              "| set | " + " | ".join(STRUCTURE_TYPES) + " |",
              "|---|" + "---:|" * len(STRUCTURE_TYPES)]
    for name, row in zip(names, s["sets"]):
        lines.append(f"| {name} | " + " | ".join(f"{100 * row['structure_types'][t]:.1f}%"
                                                 for t in STRUCTURE_TYPES) + " |")
    return "\n".join(lines) + "\n"


def _names(comparison):
    return [dataset_name(s.path) for s in comparison.sets]


def _energy_figure(comparison, path):
    """Energy per atom histograms of the labeled sets (paper Fig. 2 left); None if none."""
    labeled = [(n, s.energy_per_atom[np.isfinite(s.energy_per_atom)])
               for n, s in zip(_names(comparison), comparison.sets)]
    labeled = [(n, e) for n, e in labeled if len(e)]
    if not labeled:
        return None
    return plots.energy_histograms(labeled, path)


def _component_label(column, twojmax):
    index = snap_basis(twojmax).idxb
    if column < len(index):
        j1, j2, j = (int(v) for v in index[column])
        return f"B{column} (2j1,2j2,2j = {j1},{j2},{j})"
    return f"column {column}"


def _components_figure(comparison, path):
    """Distributions of the chosen bispectrum columns, log density (paper Fig. 2 right)."""
    twojmax = comparison.summary["descriptors"]["twojmax"]
    panels = [(_component_label(column, twojmax),
               [s.descriptors[:, column] for s in comparison.sets])
              for column in comparison.summary["components"]]
    return plots.component_histograms(panels, _names(comparison), path)


def _pca_figure(comparison, path):
    """All sets on REF's first two principal axes (a sample of ``SCATTER_POINTS`` each)."""
    series = []
    for k, (name, s) in enumerate(zip(_names(comparison), comparison.sets)):
        rows = sample_rows(len(s.descriptors), SCATTER_POINTS, comparison.summary["seed"], k)
        series.append((name, comparison.pca.project(s.descriptors[rows])))
    return plots.pca(series, comparison.pca.explained, path)


def _ratios_figure(comparison, path):
    """Std ratio per whitened dimension of each other set."""
    return plots.broadening(list(zip(_names(comparison)[1:], comparison.ratios)), MUCH_BROADER,
                            path)


def _coverage_figure(comparison, path):
    """Histograms of nearest distances, both directions, with the covering sets'
    thresholds (the ``COVERAGE_QUANTILE`` of their leave-one-out distances)."""
    names = _names(comparison)
    dist = comparison.distances
    thresholds = [np.quantile(loo, COVERAGE_QUANTILE) for loo in dist["loo"]]
    panels = [(f"environments of each set, nearest in {names[0]}",
               [(f"{names[0]} (leave-one-out)", dist["loo"][0])]
               + list(zip(names[1:], dist["other_by_reference"])), thresholds[:1]),
              (f"environments of {names[0]}, nearest in each set",
               list(zip([f"in {n}" for n in names[1:]], dist["reference_by_other"])),
               thresholds[1:])]
    return plots.coverage(panels, comparison.summary["entropy_floor"], path)
