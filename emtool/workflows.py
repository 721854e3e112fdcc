"""Importable workflows behind the CLI commands."""
import importlib.util
import logging
from pathlib import Path

import numpy as np

from emtool import plots
from emtool.potentials.calculators import load_potential
from emtool.data.dataset import read_dataset
from emtool.analysis.evaluate import plot_errors
from emtool.files import atomic_write
from emtool.fitting.snap import fit_dataset
from emtool.generator.generate import generate_dataset
from emtool.labeling.label import label_dataset
from emtool.dynamics.nve import NVEProtocol, energy_conservation, plot_energy_conservation
from emtool.potentials.models import model_metadata
from emtool.fitting.networks import TrainingSettings, fit_network_dataset
from emtool.parallel import ProgressLog
from emtool.descriptors.params import SnapParams
from emtool.descriptors.snap import bispectrum, bispectrum_derivatives
from emtool.errors import StructureError

LOG = logging.getLogger(__name__)


def read_structures(paths, index=":"):
    """ASE ``Atoms`` from every frame ``index`` of each file in ``paths`` (emtool datasets,
    extxyz, POSCAR, ... anything ASE reads)."""
    import h5py
    from ase.io import read
    images = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such structure file: {path}")
        if h5py.is_hdf5(path):
            chosen = read_dataset(path)[_slice(index)]
            images.extend(chosen if isinstance(chosen, list) else [chosen])
            continue
        try:
            frames = read(path, index=index)
        except Exception as err:  # ASE raises many types for unreadable files
            raise StructureError(f"cannot read {path}: {err}") from None
        images.extend(frames if isinstance(frames, list) else [frames])
    if not images:
        raise StructureError(f"no structures in {', '.join(map(str, paths))}")
    return images


def _slice(index):
    """An ASE-style index string ('-1', '2:10', ':') as an int or slice."""
    from ase.io.formats import string2index
    return string2index(index)


def compute_descriptors(images, params, output, derivatives=False):
    """Bispectrum components of ``images`` into the .npz ``output`` (see ``emtool descriptors``);
    progress is logged (INFO) every 10 % of the configurations."""
    blocks, grads, virials = [], [], []
    progress = ProgressLog(LOG, "descriptors", len(images))
    for atoms in images:
        blocks.append(bispectrum(atoms, params))
        if derivatives:
            der = bispectrum_derivatives(atoms, params)
            grads.append(der.per_atom())
            virials.append(der.virial())
        progress.advance()
    arrays = dict(B=np.vstack(blocks),
                  config_offsets=np.cumsum([0] + [len(a) for a in images]),
                  **params.keywords(), radelem=np.array(params.radelem),
                  wj=np.array(params.wj), elements=np.array(params.elements, dtype=str))
    if derivatives:
        arrays.update(dBdr=np.concatenate(grads), virial=np.array(virials))

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return atomic_write(output, write)


#: The main job's energy-conservation protocol: the paper's (16-atom BCC W, 3000 K) with
#: shorter runs, so that the whole job takes a few minutes.
QUICK_NVE = dict(timesteps=(0.5, 1.0, 2.0, 4.0), duration=1000.0, samples=200,
                 equilibration=1000.0)


def default_run(output, n=48, seed=0, workers=1, epochs=300):
    """The main job on embedded defaults: generate -> label -> fit -> nve; returns the path of
    its Markdown report (``output/report.md``, with PNG figures beside it).

    1. ``n`` entropy-optimized W configurations (half K > 0, half K < 0) into ``output/em.h5``;
    2. labels from the embedded reference ``reference:W`` into ``output/em_labeled.h5``;
    3. a linear SNAP model (2J = 6, D = 30, energies and forces, 20 % held out for validation)
       ``output/snap.json`` and, when PyTorch is installed, the paper's network NN-A1 on the
       same descriptors (``output/nn_a1.json``, ``epochs`` epochs, energy + force loss);
    4. the paper's energy-conservation test (Eq. 2) of each fitted model with shorter runs
       (``QUICK_NVE``).
    Every step reuses what an earlier run left in ``output``.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    summary = generate_dataset(output / "em.h5", n, seed=seed, workers=workers)
    images = read_dataset(output / "em.h5")
    lines = ["# emtool report", "",
             f"## 1. Generation ({len(images)} W configurations, seed {seed})", "",
             f"`em.h5`: {summary['new']} new configurations in {summary['seconds']:.1f} s "
             f"({summary['skipped']} were already there).", "",
             "| group | configurations | S start (mean) | S end (mean) | moved in the direction of K |",
             "|---|---:|---:|---:|---:|"]
    entropy = {}
    for group, sign in (("entropy_max", 1), ("entropy_min", -1)):
        half = [a for a in images if a.info["group"] == group]
        start = np.array([a.info["entropy_start"] for a in half])
        end = np.array([a.info["entropy"] for a in half])
        entropy[group] = (start, end)
        if not half:
            continue
        moved = np.mean(np.sign(end - start) == sign)
        lines.append(f"| {group} | {len(half)} | {start.mean():.3f} | {end.mean():.3f} | "
                     f"{100 * moved:.0f}% |")
    figure = plots.entropy_change(entropy, output / "entropy.png")
    lines += ["", f"![entropy per configuration]({figure.name})", ""]
    labeled = output / "em_labeled.h5"
    result = label_dataset(output / "em.h5", output=labeled, workers=workers)
    lines += ["## 2. Labels", "",
              f"`em_labeled.h5`: energies and forces from the embedded reference (`reference:W`, "
              f"Ackland–Thetford Finnis–Sinclair W): {result['labeled']} labeled in "
              f"{result['seconds']:.2f} s, {result['skipped']} already labeled.", ""]
    models = _fit_models(labeled, output, seed, workers, epochs, lines)
    _nve_section(models, output, lines)
    report = output / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _fit_models(labeled, output, seed, workers, epochs, lines):
    """Step 3 of ``default_run``: fit and report; returns {name: model path}."""
    params = SnapParams(twojmax=6, rcutfac=4.73, bzeroflag=0)
    models = {"linear SNAP": output / "snap.json"}
    if not models["linear SNAP"].exists():
        fit_dataset(labeled, models["linear SNAP"], "linear", params, validation=0.2, seed=seed,
                    workers=workers)
    if importlib.util.find_spec("torch") is None:
        lines.append("NN-A1 skipped: PyTorch is not installed (`pip install 'emtool[nn]'`).")
    else:
        models["NN-A1"] = output / "nn_a1.json"
        if not models["NN-A1"].exists():
            settings = TrainingSettings(architecture="A1", epochs=epochs, batch_size=8,
                                        learning_rate=5e-3, force_weight=0.1, seed=seed,
                                        split=(0.7, 0.15, 0.15))
            fit_network_dataset(labeled, models["NN-A1"], settings, params, workers=workers)
    lines += ["## 3. Fits", "",
              f"Descriptors: SNAP bispectrum, twojmax {params.twojmax}, R = {params.rcutfac} Å, "
              f"D = {params.ncoeff}. Errors are emtool's own evaluation of the saved models.", "",
              "| model | NDoF | split | configurations | energy RMSE (meV/atom) | force RMSE (eV/Å) |",
              "|---|---:|---|---:|---:|---:|"]
    images = read_dataset(labeled)
    figures = []
    for name, path in models.items():
        meta = model_metadata(path)
        for split, m in meta["metrics"].items():
            lines.append(f"| {name} | {meta['ndof']} | {split} | {m['configs']} | "
                         f"{1000 * m['energy_rmse']:.1f} | {m['force_rmse']:.3f} |")
        figure = plot_errors(load_potential(path), images, output / path.stem)
        figures.append(f"![{name} errors]({figure.relative_to(output)})")
    lines += [""] + figures + [""]
    return models


def _nve_section(models, output, lines):
    """Step 4 of ``default_run``: the energy-conservation test of each model."""
    protocol = NVEProtocol(**QUICK_NVE)
    lines += ["## 4. Energy conservation (paper Eq. 2, Fig. 5)", "",
              f"16-atom BCC W, {protocol.temperature:g} K (CSVR equilibration "
              f"{protocol.equilibration:g} fs), NVE {protocol.duration:g} fs per timestep, "
              f"n = {protocol.samples}; velocity Verlet gives dH ∝ dt^2 (slope 2).", "",
              "| model | " + " | ".join(f"dH at {t:g} fs" for t in protocol.timesteps)
              + " | slope |", "|---|" + "---:|" * (len(protocol.timesteps) + 1)]
    for name, path in models.items():
        result = energy_conservation(load_potential(path), protocol)
        cells = ["diverged" if r["diverged"] else f"{r['delta_h']:.2e}" for r in result["table"]]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {result['slope']:.2f} |")
        plot_energy_conservation(result, output / f"nve_{path.stem}.png", label=name)
    lines.append("")
    lines += [f"![energy conservation {name}](nve_{path.stem}.png)"
              for name, path in models.items()]
