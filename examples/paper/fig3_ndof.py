"""Paper Fig. 3: test RMSE (energy per atom) against the number of fitted parameters (NDoF)
for linear and quadratic SNAP and the ten networks of Fig. 7 at D = 14, 30, 55 (twojmax 4,
6, 8), trained on EM and on DE (energy-only; study.py has the split and scale knobs).

``EMTOOL_PAPER_MODELS`` (comma-separated, default all twelve) and ``EMTOOL_PAPER_TWOJMAX``
(default 4,6,8) restrict the grid. Writes out/fig3.json, out/fig3.md and out/fig3.png.

Run: python examples/paper/fig3_ndof.py
"""
import os

import numpy as np

from emtool.potentials.models import model_metadata
from emtool.potentials.nn import ARCHITECTURES
from study import D_OF_TWOJMAX, OUT, SETS, fitted_model, log, test_errors, write_json

MODELS = os.environ.get("EMTOOL_PAPER_MODELS",
                        ",".join(["linear", "quadratic"] + [f"nn:{k}" for k in ARCHITECTURES]))
TWOJMAX = os.environ.get("EMTOOL_PAPER_TWOJMAX", "4,6,8")


def main():
    rows = []
    for twojmax in (int(t) for t in TWOJMAX.split(",")):
        for model in MODELS.split(","):
            for name in SETS:
                path = fitted_model(name, model, twojmax)
                meta = model_metadata(path)
                result = test_errors(path, name)
                rows.append(dict(set=name, model=model, twojmax=twojmax,
                                 d=D_OF_TWOJMAX[twojmax], ndof=meta["ndof"],
                                 test_energy_rmse=result["energy_rmse"],
                                 seconds=meta.get("seconds_training")))
                log(f"{name} {model} D={D_OF_TWOJMAX[twojmax]}: NDoF {meta['ndof']}, "
                    f"test RMSE {1000 * result['energy_rmse']:.2f} meV/atom")
    write_json(OUT / "fig3.json", rows)
    lines = ["| set | model | D | NDoF | test RMSE (meV/atom) |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['set']} | {r['model']} | {r['d']} | {r['ndof']} | "
              f"{1000 * r['test_energy_rmse']:.2f} |" for r in rows]
    (OUT / "fig3.md").write_text("\n".join(lines) + "\n")
    plot(rows)


def plot(rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    colors = {14: "tab:blue", 30: "tab:orange", 55: "tab:green"}
    markers = {"linear": "s", "quadratic": "D", "A": "o", "B": "^"}
    for ax, name in zip(axes, SETS):
        for r in (r for r in rows if r["set"] == name):
            family = r["model"] if not r["model"].startswith("nn:") else r["model"][3]
            ax.scatter(r["ndof"], 1000 * r["test_energy_rmse"], c=colors[r["d"]],
                       marker=markers[family], s=30)
        ax.set(xscale="log", yscale="log", xlabel="NDoF", title=f"trained and tested on {name}")
    axes[0].set_ylabel("test energy RMSE (meV/atom)")
    handles = [plt.Line2D([], [], ls="", marker=m, color="gray", label=k)
               for k, m in markers.items()]
    handles += [plt.Line2D([], [], ls="", marker="o", color=c, label=f"D = {d}")
                for d, c in colors.items()]
    axes[1].legend(handles=handles, fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "fig3.png", dpi=120)
    log(f"wrote {OUT / 'fig3.png'}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
