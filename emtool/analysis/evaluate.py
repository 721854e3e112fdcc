"""Errors of a potential on labeled configurations (paper Fig. 3, Fig. 4), and its predictions.

Energies per atom (eV/atom), forces per Cartesian component (eV/Å). The per-configuration
root squared error RSE_c = |E_pred - E_ref| / N_c is the quantity of the paper's Fig. 4.

A predictions file (``write_predictions``; ``emtool evaluate --predictions``) is an emtool
dataset holding each evaluated configuration with its reference labels as they were (the
dataset's energy, forces and stress fields; NaN where absent) and the model's predictions in
its info items: ``predicted_energy`` (eV), ``predicted_forces`` (N x 3 nested list, eV/Å) and,
where the potential gives one (fully periodic cells), ``predicted_stress`` (6 values, eV/Å^3,
ASE Voigt order xx yy zz yz xz xy). Info items are JSON, whose floats round-trip exactly, so
the values read back equal the potential's. Unlabeled configurations get predictions too.
"""
import logging
from pathlib import Path

import numpy as np

from emtool import plots
from emtool.data.dataset import dataset_info, provenance_record, read_dataset, write_dataset
from emtool.errors import DatasetError, ParameterError
from emtool.potentials.models import configurations_fingerprint, training_subsets
from emtool.parallel import ProgressLog, run_indexed

LOG = logging.getLogger(__name__)

#: Info items of a predictions file (see the module docstring).
PREDICTED = ("predicted_energy", "predicted_forces", "predicted_stress")
SUBSETS = ("train", "validation", "test")


def labels_minus_reference(atoms, reference):
    """The labels of ``atoms`` minus those of the ``reference`` potential (None: nothing
    subtracted): (E/N eV/atom, F (3N,) eV/Å, stress (6,) eV/Å^3 or None)."""
    calc = atoms.calc
    if calc is None or "energy" not in calc.results or "forces" not in calc.results:
        raise ParameterError(f"configuration {atoms.info.get('index', '?')} has no energy/forces")
    n = len(atoms)
    energy = calc.results["energy"]
    forces = np.asarray(calc.results["forces"], float)
    stress = calc.results.get("stress")
    stress = None if stress is None or not np.all(np.isfinite(stress)) else np.asarray(stress, float)
    if reference is not None:
        ref = reference.evaluate(atoms)
        energy = energy - ref["energy"]
        forces = forces - ref["forces"]
        if stress is not None:
            stress = stress - ref["stress"]
    return energy / n, forces.reshape(-1), stress


def metrics_summary(result):
    """An ``evaluate_images`` result without its per-configuration RSE list."""
    return {key: value for key, value in result.items() if key != "rse"}


def _metrics(e_err, f_err):
    e_err, f_err = np.asarray(e_err), np.asarray(f_err)
    return dict(configs=int(e_err.size), force_components=int(f_err.size),
                energy_rmse=float(np.sqrt(np.mean(e_err ** 2))) if e_err.size else None,
                energy_mae=float(np.mean(np.abs(e_err))) if e_err.size else None,
                force_rmse=float(np.sqrt(np.mean(f_err ** 2))) if f_err.size else None,
                force_mae=float(np.mean(np.abs(f_err))) if f_err.size else None)


def _labeled(atoms):
    calc = atoms.calc
    return calc is not None and np.isfinite(calc.results.get("energy", np.nan))


def predict(potential, atoms):
    """dict(energy (eV), forces (N, 3) eV/Å, stress (6,) eV/Å^3 or None where the potential
    gives none) of ``atoms`` by ``potential``."""
    result = potential.evaluate(atoms)
    stress = result.get("stress")
    return dict(energy=float(result["energy"]), forces=np.asarray(result["forces"], np.float64),
                stress=None if stress is None else np.asarray(stress, np.float64))


def configuration_errors(potential, atoms, prediction=None):
    """(group, index, energy error per atom, force errors (3N,) or None) of one labeled
    configuration, or None when it has no energy label. ``prediction``: ``predict(potential,
    atoms)`` when already computed."""
    if not _labeled(atoms):
        return None
    calc = atoms.calc
    result = prediction if prediction is not None else potential.evaluate(atoms)
    e_err = (result["energy"] - calc.results["energy"]) / len(atoms)
    f_err = ((result["forces"] - calc.results["forces"]).ravel()
             if "forces" in calc.results else None)
    return atoms.info.get("group", ""), int(atoms.info.get("index", 0)), float(e_err), f_err


def _evaluate_one(potential, keep, atoms):
    """(prediction if ``keep`` else None, errors or None) of one configuration; an unlabeled
    one is evaluated only when its prediction is kept."""
    prediction = predict(potential, atoms) if keep or _labeled(atoms) else None
    return (prediction if keep else None), configuration_errors(potential, atoms, prediction)


def _evaluate_from_file(potential, keep, path, index):
    return (index, *_evaluate_one(potential, keep, read_dataset(path, indices=[index])[0]))


def evaluate_images(potential, images, workers=1, source=None, predictions=False):
    """dict of overall and per-group errors, and the per-configuration RSE list.

    ``images`` must carry reference energies (and forces) on their calculators; unlabeled
    configurations are skipped and counted in ``unlabeled``. With ``workers`` > 1 and
    ``source`` (their dataset path), worker processes evaluate them. With ``predictions``
    the dict also holds ``predictions``: ``predict``'s dict of every configuration of
    ``images``, labeled or not, in their order. Progress is logged (INFO) every 10 %.
    """
    groups, rse, found = {}, [], []
    kept = [None] * len(images)
    progress = ProgressLog(LOG, "evaluate", len(images))

    def take(position, prediction, errors):
        progress.advance()
        kept[position] = prediction
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
        indices = [a.info["index"] for a in images]
        position = {index: k for k, index in enumerate(indices)}
        run_indexed(_evaluate_from_file, (potential, predictions, str(source)), indices,
                    lambda item: take(position[item[0]], *item[1:]), workers, chunk=32)
    else:
        for k, atoms in enumerate(images):
            take(k, *_evaluate_one(potential, predictions, atoms))
    unlabeled = sum(errors is None for errors in found)
    rse.sort(key=lambda row: row["index"])
    if not rse:
        raise ParameterError("no labeled configurations to evaluate")
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    overall = _metrics([e for g in groups.values() for e in g[0]],
                       cat([f for g in groups.values() for f in g[1]]))
    result = dict(overall, unlabeled=unlabeled,
                  groups={name: _metrics(e, cat(f)) for name, (e, f) in sorted(groups.items())},
                  rse=rse)
    if predictions:
        result["predictions"] = kept
    return result


def subset_configurations(model, data, images, subset):
    """The configurations of ``images`` (all those of dataset ``data``, in file order) that
    the fit of the model file ``model`` put in ``subset`` (train, validation or test), as
    recorded in the model (``emtool.potentials.models``). ``ParameterError`` when the model records no
    such subset or it is empty; ``DatasetError`` when ``data`` is not the dataset the model
    was fitted on (another configuration count, or other structures)."""
    if subset not in SUBSETS:
        raise ParameterError(f"unknown subset {subset!r}: one of {', '.join(SUBSETS)}")
    record = training_subsets(model)
    parts = [name for name in SUBSETS if name in record]
    if subset not in parts:
        raise ParameterError(f"{model}: the fit recorded no {subset} subset (only "
                             f"{', '.join(parts)})")
    fitted = record["dataset"]
    if len(images) != record["configs"]:
        raise DatasetError(f"{data} has {len(images)} configurations, but {model} was fitted "
                           f"on {fitted} with {record['configs']}: its subsets refer to that "
                           f"dataset")
    if configurations_fingerprint(images) != record["fingerprint"]:
        raise DatasetError(f"{data} is not {fitted}, the dataset {model} was fitted on: same "
                           f"configuration count, other configurations")
    if not record[subset]:
        raise ParameterError(f"{model}: its {subset} subset is empty")
    by_index = {int(a.info["index"]): a for a in images}
    return [by_index[int(k)] for k in record[subset]]


def write_predictions(path, images, predictions, source=None, settings=None):
    """Write ``images`` with their reference labels and ``predictions`` (``predict``'s dicts,
    one per image) as the emtool dataset ``path``, atomically (layout: the module docstring).
    ``source``: the dataset the images come from, whose parameters and provenance are kept;
    ``settings``: those of the added provenance record (action "evaluate")."""
    from ase.calculators.singlepoint import SinglePointCalculator
    if len(predictions) != len(images):
        raise ParameterError(f"{len(predictions)} predictions for {len(images)} configurations")
    out = []
    for atoms, prediction in zip(images, predictions):
        copy = atoms.copy()
        labels = {key: value for key, value in (atoms.calc.results if atoms.calc else {}).items()
                  if key in ("energy", "forces", "stress")}
        if labels:
            copy.calc = SinglePointCalculator(copy, **labels)
        for key in PREDICTED:
            copy.info.pop(key, None)
        copy.info.update(predicted_energy=prediction["energy"],
                         predicted_forces=prediction["forces"].tolist())
        if prediction["stress"] is not None:
            copy.info["predicted_stress"] = prediction["stress"].tolist()
        out.append(copy)
    info = (dataset_info(source) if source is not None
            else dict(parameters=None, provenance=[]))
    return write_dataset(path, out, parameters=info["parameters"],
                         provenance=info["provenance"] + [provenance_record("evaluate", settings)])


def plot_errors(potential, images, folder, predictions=None):
    """``folder``/errors.png: the parity plot of energies per atom and the RSE histogram of
    ``potential`` on the labeled ``images`` (:func:`emtool.plots.errors`). ``predictions``:
    ``evaluate_images``' list for ``images`` when already evaluated (then ``potential`` is
    not called). ``ParameterError`` when no configuration is labeled."""
    ref, pred = [], []
    for k, atoms in enumerate(images):
        if _labeled(atoms):
            ref.append(atoms.calc.results["energy"] / len(atoms))
            energy = (predictions[k]["energy"] if predictions is not None
                      else potential.evaluate(atoms)["energy"])
            pred.append(energy / len(atoms))
    if not ref:
        raise ParameterError("no labeled configurations to plot")
    return plots.errors(ref, pred, Path(folder) / "errors.png")
