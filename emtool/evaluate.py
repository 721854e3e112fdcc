"""Errors of a potential on labeled configurations (paper Fig. 3, Fig. 4).

Energies per atom (eV/atom), forces per Cartesian component (eV/Å). The per-configuration
root squared error RSE_c = |E_pred - E_ref| / N_c is the quantity of the paper's Fig. 4.
"""
import numpy as np

from emtool.params import ParameterError


def _metrics(e_err, f_err):
    e_err, f_err = np.asarray(e_err), np.asarray(f_err)
    return dict(configs=int(e_err.size), force_components=int(f_err.size),
                energy_rmse=float(np.sqrt(np.mean(e_err ** 2))) if e_err.size else None,
                energy_mae=float(np.mean(np.abs(e_err))) if e_err.size else None,
                force_rmse=float(np.sqrt(np.mean(f_err ** 2))) if f_err.size else None,
                force_mae=float(np.mean(np.abs(f_err))) if f_err.size else None)


def configuration_errors(potential, atoms):
    """(group, index, energy error per atom, force errors (3N,) or None) of one labeled
    configuration, or None when it has no energy label."""
    calc = atoms.calc
    if calc is None or not np.isfinite(calc.results.get("energy", np.nan)):
        return None
    result = potential.evaluate(atoms)
    e_err = (result["energy"] - calc.results["energy"]) / len(atoms)
    f_err = ((result["forces"] - calc.results["forces"]).ravel()
             if "forces" in calc.results else None)
    return atoms.info.get("group", ""), int(atoms.info.get("index", 0)), float(e_err), f_err


def _errors_from_file(potential, path, index):
    from emtool.dataset import read_dataset
    return configuration_errors(potential, read_dataset(path, indices=[index])[0])


def evaluate_images(potential, images, workers=1, source=None):
    """dict of overall and per-group errors, and the per-configuration RSE list.

    ``images`` must carry reference energies (and forces) on their calculators; unlabeled
    configurations are skipped and counted in ``unlabeled``. With ``workers`` > 1 and
    ``source`` (their dataset path), worker processes evaluate them.
    """
    from emtool.parallel import run_indexed
    groups, rse, found = {}, [], []

    def take(errors):
        found.append(errors)
        if errors is None:
            return
        name, index, e_err, f_err = errors
        group = groups.setdefault(name, ([], []))
        group[0].append(e_err)
        if f_err is not None:
            group[1].append(f_err)
        rse.append(dict(index=index, group=name, rse=abs(e_err)))

    if workers > 1 and source is not None:
        run_indexed(_errors_from_file, (potential, str(source)),
                    [a.info["index"] for a in images], take, workers, chunk=32)
    else:
        for atoms in images:
            take(configuration_errors(potential, atoms))
    unlabeled = sum(errors is None for errors in found)
    rse.sort(key=lambda row: row["index"])
    if not rse:
        raise ParameterError("no labeled configurations to evaluate")
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    overall = _metrics([e for g in groups.values() for e in g[0]],
                       cat([f for g in groups.values() for f in g[1]]))
    return dict(overall, unlabeled=unlabeled,
                groups={name: _metrics(e, cat(f)) for name, (e, f) in sorted(groups.items())},
                rse=rse)


def plot_errors(potential, images, folder):
    """Parity plot of energies per atom and the RSE histogram (log bins) as PNG files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pathlib import Path
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ref, pred = [], []
    for atoms in images:
        if atoms.calc is not None and np.isfinite(atoms.calc.results.get("energy", np.nan)):
            ref.append(atoms.calc.results["energy"] / len(atoms))
            pred.append(potential.evaluate(atoms)["energy"] / len(atoms))
    ref, pred = np.array(ref), np.array(pred)
    fig, ax = plt.subplots(1, 2, figsize=(9, 4))
    ax[0].scatter(ref, pred, s=6)
    lims = [min(ref.min(), pred.min()), max(ref.max(), pred.max())]
    ax[0].plot(lims, lims, color="gray", lw=0.8)
    ax[0].set_xlabel("reference energy (eV/atom)")
    ax[0].set_ylabel("model energy (eV/atom)")
    rse = np.maximum(np.abs(pred - ref), 1e-8)
    ax[1].hist(rse, bins=np.logspace(np.log10(rse.min()), np.log10(rse.max()) + 1e-9, 40))
    ax[1].set_xscale("log")
    ax[1].set_xlabel("RSE (eV/atom)")
    ax[1].set_ylabel("configurations")
    fig.tight_layout()
    path = folder / "errors.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
