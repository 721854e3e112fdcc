"""Paper Fig. 5: energy conservation dH(dt) (Eq. 2) of the type-A networks and linear SNAP
trained on EM (D = 30), with the embedded reference for comparison: the paper's protocol
(16-atom BCC W, 3000 K, NVE 7.5 ps per timestep, n = 1000 samples) through
``emtool.dynamics.nve.energy_conservation``. Writes out/fig5.json, out/fig5.md, out/fig5.png.

``EMTOOL_PAPER_TIMESTEPS`` (default 0.5,1,2,4,8,10,12 fs) sets the timesteps.

Run: python examples/paper/fig5_nve.py
"""
import os

from emtool.potentials.calculators import load_potential
from emtool.dynamics.nve import NVEProtocol, energy_conservation
from study import OUT, fitted_model, log, write_json

MODELS = ("linear", "nn:A1", "nn:A2", "nn:A3", "nn:A4", "nn:A5")
TIMESTEPS = tuple(float(t) for t in
                  os.environ.get("EMTOOL_PAPER_TIMESTEPS", "0.5,1,2,4,8,10,12").split(","))


def main():
    protocol = NVEProtocol(timesteps=TIMESTEPS)
    results = {}
    specs = {"reference:W": "reference:W"}
    specs.update({model: fitted_model("EM", model, 6) for model in MODELS})
    for name, spec in specs.items():
        result = energy_conservation(load_potential(spec), protocol)
        results[name] = result
        log(f"{name}: slope {_value(result['slope'], '.2f')} ({result['seconds']:.0f} s)")
    write_json(OUT / "fig5.json", results)
    columns = list(results)
    lines = ["| dt (fs) | " + " | ".join(columns) + " |", "|---:|" + "---:|" * len(columns)]
    for k, dt in enumerate(TIMESTEPS):
        lines.append(f"| {dt:g} | " + " | ".join(_value(results[c]["table"][k]["delta_h"])
                                                for c in columns) + " |")
    lines.append("| slope (dt <= 4 fs) | " + " | ".join(_value(results[c]["slope"], ".2f")
                                                     for c in columns) + " |")
    (OUT / "fig5.md").write_text("dH in eV/atom\n\n" + "\n".join(lines) + "\n")
    plot(results)


def _value(x, fmt=".3g"):
    """A table cell: the number, or "unstable" for a run that blew up (None)."""
    return "unstable" if x is None else format(x, fmt)


def plot(results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, result in results.items():
        rows = [row for row in result["table"] if row["delta_h"] is not None]
        dt = [row["timestep"] for row in rows]
        dh = [row["delta_h"] for row in rows]
        ax.plot(dt, dh, marker="o", label=f"{name} (slope {_value(result['slope'], '.2f')})")
    ax.plot(TIMESTEPS[:4], [1e-5 * (t / TIMESTEPS[0]) ** 2 for t in TIMESTEPS[:4]], "k--",
            label="dt^2")
    ax.set(xscale="log", yscale="log", xlabel="timestep (fs)", ylabel="dH (eV/atom)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "fig5.png", dpi=120)
    log(f"wrote {OUT / 'fig5.png'}")


if __name__ == "__main__":
    main()
