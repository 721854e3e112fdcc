"""Paper Fig. 4: the four-way transfer matrix. NN-A1, NN-B1 and quadratic SNAP at D = 30,
each trained on EM and on DE, tested on the test part of both sets: energy RMSE table and
the per-configuration root squared error (RSE) distributions of the four train/test
combinations. Writes out/fig4.json, out/fig4.md, out/fig4.png.

Coverage check: for every train/test combination, the Spearman rank correlation between a
test configuration's coverage score (largest distance of its atoms to the nearest training
environment, in the training set's whitened frame, ``emtool.analysis.compare.coverage_by_configuration``;
all training environments) and its RSE. A positive correlation means the
coverage metric flags where a model extrapolates and errs.

Run: python examples/paper/fig4_transfer.py
"""
import numpy as np
from scipy.stats import spearmanr

from emtool.analysis.compare import coverage_by_configuration
from study import OUT, SETS, descriptor_cache, fitted_model, log, split_set, test_errors, write_json

MODELS = ("nn:A1", "nn:B1", "quadratic")
TWOJMAX = 6


def main():
    table = {}
    for model in MODELS:
        for train in SETS:
            path = fitted_model(train, model, TWOJMAX)
            for test in SETS:
                result = test_errors(path, test)
                table[(model, train, test)] = result
                log(f"{model} trained on {train}, tested on {test}: energy RMSE "
                    f"{1000 * result['energy_rmse']:.2f} meV/atom")
    coverage = {(train, test): coverage_scores(train, test) for train in SETS for test in SETS}
    rows = []
    for (model, train, test), r in table.items():
        rse = [x["rse"] for x in r["rse"]]
        rho = spearmanr(coverage[(train, test)], rse).statistic
        rows.append(dict(model=model, train=train, test=test, energy_rmse=r["energy_rmse"],
                         energy_mae=r["energy_mae"], force_rmse=r["force_rmse"],
                         rse_median=float(np.median(rse)), coverage_spearman=float(rho),
                         coverage_median=float(np.median(coverage[(train, test)]))))
        log(f"{model} {train}->{test}: Spearman(coverage, RSE) = {rho:.2f}")
    write_json(OUT / "fig4.json", rows)
    lines = ["| model | trained on | RMSE on EM test (meV/atom) | RMSE on DE test (meV/atom) |",
             "|---|---|---:|---:|"]
    for model in MODELS:
        for train in SETS:
            lines.append(f"| {model} | {train} | "
                         + " | ".join(f"{1000 * table[(model, train, t)]['energy_rmse']:.2f}"
                                      for t in SETS) + " |")
    lines += ["", "| model | trained on | tested on | median coverage distance | "
              "Spearman(coverage, RSE) |", "|---|---|---|---:|---:|"]
    lines += [f"| {r['model']} | {r['train']} | {r['test']} | {r['coverage_median']:.2f} | "
              f"{r['coverage_spearman']:.2f} |" for r in rows]
    (OUT / "fig4.md").write_text("\n".join(lines) + "\n")
    plot(table)


def coverage_scores(train, test):
    """Per-configuration coverage score of ``test``'s test part by ``train``'s train+validation
    environments (in the order of the test dataset, as the RSE lists)."""
    from emtool.workflows import compute_descriptors
    from emtool.data.dataset import read_dataset
    from study import snap_params
    ref = np.load(descriptor_cache(train, TWOJMAX))["B"]
    path = OUT / f"{test.lower()}_test_2j{TWOJMAX}.npz"
    if not path.exists():
        compute_descriptors(read_dataset(split_set(test)[1]), snap_params(TWOJMAX), path)
    other = np.load(path)
    return coverage_by_configuration(ref, other["B"], other["config_offsets"].astype(np.int64))


def plot(table):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(9, 7), sharex=True)
    all_rse = [x["rse"] for r in table.values() for x in r["rse"] if x["rse"] > 0]
    bins = np.logspace(np.log10(min(all_rse)), np.log10(max(all_rse)), 40)
    for row, train in enumerate(SETS):
        for col, test in enumerate(SETS):
            ax = axes[row, col]
            for model in MODELS:
                rse = [x["rse"] for x in table[(model, train, test)]["rse"]]
                ax.hist(rse, bins=bins, histtype="step", label=model)
            ax.set(xscale="log", title=f"trained on {train}, tested on {test}")
    for ax in axes[1]:
        ax.set_xlabel("RSE (eV/atom)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "fig4.png", dpi=120)
    log(f"wrote {OUT / 'fig4.png'}")


if __name__ == "__main__":
    main()
