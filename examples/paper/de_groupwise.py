"""The DE set split by expert labels (paper: "DE split"): leave one expert group out, train on
the other groups, test on the held-out group, for linear SNAP and NN-A1 at D = 30
(energy-only, reference labels). A model that interpolates within its training data does
well on random splits; held-out groups measure extrapolation to a new kind of structure.
Writes out/de_groupwise.json and out/de_groupwise.md.

Run: python examples/paper/de_groupwise.py
"""
from emtool.data.dataset import dataset_info
from emtool.fitting.snap import fit_dataset
from emtool.fitting.weights import GroupWeights, UniformWeights
from emtool.fitting.networks import TrainingSettings, fit_network_dataset
from study import EPOCHS, OUT, WORKERS, labeled_set, log, snap_params, write_json

TWOJMAX = 6


def main():
    data = labeled_set("DE")
    groups = sorted(dataset_info(data)["groups"])
    folder = OUT / "groupwise"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for group in groups:
        snap = fit_dataset(data, folder / f"linear_without_{group}.json", "linear",
                           snap_params(TWOJMAX), UniformWeights(GroupWeights(1.0, 0.0)),
                           validation_groups=(group,), workers=WORKERS)
        settings = TrainingSettings(architecture="A1", epochs=EPOCHS, split=(0.875, 0.125, 0.0))
        nn = fit_network_dataset(data, folder / f"a1_without_{group}.json", settings,
                                 snap_params(TWOJMAX), test_groups=(group,), workers=WORKERS)
        row = dict(group=group, configs=snap["metrics"]["validation"]["configs"],
                   linear_train=snap["metrics"]["train"]["energy_rmse"],
                   linear_heldout=snap["metrics"]["validation"]["energy_rmse"],
                   a1_train=nn["metrics"]["train"]["energy_rmse"],
                   a1_heldout=nn["metrics"]["test"]["energy_rmse"])
        rows.append(row)
        log(f"without {group}: linear {1000 * row['linear_heldout']:.1f}, A1 "
            f"{1000 * row['a1_heldout']:.1f} meV/atom on the held-out group")
    write_json(OUT / "de_groupwise.json", rows)
    lines = ["| held-out group | configs | linear SNAP train / held-out (meV/atom) | "
             "NN-A1 train / held-out (meV/atom) |", "|---|---:|---:|---:|"]
    lines += [f"| {r['group']} | {r['configs']} | {1000 * r['linear_train']:.1f} / "
              f"{1000 * r['linear_heldout']:.1f} | {1000 * r['a1_train']:.1f} / "
              f"{1000 * r['a1_heldout']:.1f} |" for r in rows]
    (OUT / "de_groupwise.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
