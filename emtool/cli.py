"""The ``emtool`` command line: thin click commands over the importable workflows."""
import functools
import sys
import logging
from pathlib import Path

import click

from emtool.nn import ACTIVATIONS, ARCHITECTURES
from emtool.params import ParameterError, SnapParams
from emtool.structure import StructureError

LOG = logging.getLogger("emtool")


class CliError(click.ClickException):
    """A user error: printed as one line, exit code 2."""

    exit_code = 2


def user_errors(command):
    """Turn the library's validation errors into one-line CLI errors (exit code 2)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ParameterError, StructureError, FileNotFoundError, IsADirectoryError) as err:
            raise CliError(str(err)) from None
    return wrapper


def _at_least_one(ctx, param, value):
    """The one rule for --workers: an integer >= 1 (1: run in this process)."""
    if value < 1:
        raise CliError(f"--workers must be >= 1, got {value}")
    return value


def check_output(output, overwrite, inputs=()):
    """The output policy: an output never replaces an input, and replaces an existing file
    only with --overwrite (the file itself is then written atomically by the library)."""
    out = Path(output)
    for path in inputs:
        if path and Path(path).exists() and out.exists() and out.resolve() == Path(path).resolve():
            raise CliError(f"{output}: the output would replace the input {path}")
    if out.exists() and not overwrite:
        raise CliError(f"{output} exists; pass --overwrite to replace it")


@click.group(context_settings=dict(help_option_names=["-h", "--help"]))
@click.version_option(package_name="emtool")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def main(verbose):
    """emtool: entropy-optimized training sets for machine-learned interatomic potentials.

    Units everywhere: Å, eV, eV/Å, amu; time in fs.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")


def snap_options(command):
    """Descriptor options shared by commands that compute bispectrum components."""
    options = [
        click.option("--snapparam", type=click.Path(dir_okay=False),
                     help="Read the descriptor settings from a LAMMPS .snapparam file (with its "
                          ".snapcoeff beside it for element radii and weights); overrides the "
                          "options below."),
        click.option("--twojmax", type=int, default=8, show_default=True,
                     help="2J, twice the angular-momentum limit; D = 5, 14, 30, 55 components "
                          "for 2, 4, 6, 8."),
        click.option("--rcutfac", type=float, default=4.73, show_default=True,
                     help="Cutoff scale in Å; the pair cutoff is rcutfac*(radelem_a+radelem_b) "
                          "= rcutfac for one element of radelem 0.5."),
        click.option("--rfac0", type=float, default=0.99363, show_default=True,
                     help="Angular scale of the map to the 3-sphere (dimensionless, 0 < rfac0 <= 1)."),
        click.option("--rmin0", type=float, default=0.0, show_default=True,
                     help="Inner distance of the angular map and switching function, Å."),
        click.option("--switchflag", type=click.IntRange(0, 1), default=1, show_default=True,
                     help="1: smooth cosine cutoff function; 0: none."),
        click.option("--bzeroflag", type=click.IntRange(0, 1), default=1, show_default=True,
                     help="1: subtract the B of an isolated atom (LAMMPS default)."),
        click.option("--quadratic", is_flag=True,
                     help="Append the D(D+1)/2 quadratic products (LAMMPS quadraticflag 1)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def params_from_options(snapparam, twojmax, rcutfac, rfac0, rmin0, switchflag, bzeroflag,
                        quadratic):
    """A SnapParams from the ``snap_options`` values."""
    if snapparam:
        from emtool.snap_model import SnapPotential
        params = SnapPotential.read(snapparam).params
        return params.replace(quadraticflag=int(quadratic) or params.quadraticflag)
    return SnapParams(twojmax=twojmax, rcutfac=rcutfac, rfac0=rfac0, rmin0=rmin0,
                      switchflag=switchflag, bzeroflag=bzeroflag, quadraticflag=int(quadratic))


@main.command()
@click.argument("structures", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output .npz file (written atomically).")
@click.option("--index", default=":", show_default=True,
              help="Which frames of each input to read (ASE index syntax, e.g. ':' or '-1').")
@click.option("--derivatives", is_flag=True,
              help="Also store dB/dr: per-atom gradients of the summed descriptors (per Å) and "
                   "their strain derivatives (virial, per configuration).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@snap_options
@user_errors
def descriptors(structures, output, index, derivatives, overwrite, **snap):
    """Bispectrum components B (LAMMPS compute sna/atom columns) of STRUCTURES.

    STRUCTURES are emtool datasets (.h5) or files ASE reads (extxyz, POSCAR, LAMMPS data,
    ...). The .npz holds
    B (n_atoms_total, D), config_offsets (n_configs+1,), the parameters and, with
    --derivatives, dBdr (n_atoms_total, D, 3) and virial (n_configs, D, 3, 3).
    """
    from emtool.workflows import compute_descriptors, read_structures
    check_output(output, overwrite, structures)
    params = params_from_options(**snap)
    images = read_structures(structures, index)
    path = compute_descriptors(images, params, output, derivatives=derivatives)
    click.echo(f"wrote {path}: {sum(len(a) for a in images)} atoms in {len(images)} "
               f"configurations, D = {params.ncoeff}")


@main.command()
@click.option("-o", "--output", default="emtool-out", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the results and the report.")
@click.option("-n", "count", type=int, default=48, show_default=True,
              help="Configurations to generate.")
@click.option("--workers", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Local worker processes.")
@click.option("--epochs", type=int, default=300, show_default=True,
              help="Training epochs of the network.")
@user_errors
def run(output, count, workers, epochs):
    """Run the main job on the embedded defaults and write OUTPUT/report.md with plots.

    generate (entropy-optimized W configurations, half maximizing, half minimizing the
    descriptor entropy) -> label (embedded reference potential) -> fit (linear SNAP and, with
    PyTorch installed, the paper's network NN-A1, 2J = 6) -> nve (the paper's
    energy-conservation test of each model, shorter runs). Rerunning reuses what is there.
    """
    from emtool.workflows import default_run
    report = default_run(Path(output), n=count, workers=workers, epochs=epochs)
    click.echo(f"report: {report}")


@main.command()
@click.option("-n", "count", type=int, required=True, help="Number of configurations (indices 0..N-1).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Dataset file (HDF5). An existing file of the same job is resumed/extended.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Global seed; configuration k is a pure function of (seed, k).")
@click.option("--workers", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Local worker processes (one Numba thread each).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run on a Dask cluster (e.g. tcp://host:8786) instead of local workers; "
                   "same result.")
@click.option("--element", default="W", show_default=True, help="Chemical symbol.")
@click.option("--atomic-volume", type=float, default=15.9, show_default=True,
              help="Volume per atom at ambient density, Å^3 (scales the box volumes).")
@click.option("--volume-range", type=float, nargs=2, metavar="MIN MAX",
              help="Box volume range in Å^3 [default: 470 990 for W, scaled by "
                   "--atomic-volume/15.9 otherwise].")
@click.option("--natoms", type=int, nargs=2, default=(32, 40), show_default=True,
              metavar="MIN MAX", help="Atom count range (inclusive).")
@click.option("--exclusion-radius", type=float,
              help="r_ex (Å) of the repulsive pair term; pairs end at >= 0.85 r_ex "
                   "[default: 2.7 for W, docs/generator.md].")
@click.option("-K", "--K", "k_weight", type=float, default=5.0, show_default=True,
              help="Entropy weight |K| (eV) in V = V_rep - K S.")
@click.option("--sign", type=click.Choice(["both", "max", "min"]), default="both",
              show_default=True,
              help="both: even indices maximize S (K > 0), odd minimize it (K < 0).")
@click.option("--max-steps", type=int, default=200, show_default=True,
              help="FIRE step budget of the entropy stage.")
@click.option("--fmax", type=float, default=0.05, show_default=True,
              help="FIRE stops when the largest force is below this (eV/Å).")
@user_errors
def generate(count, output, seed, workers, scheduler, element, atomic_volume, volume_range,
             natoms, exclusion_radius, k_weight, sign, max_steps, fmax):
    """Generate entropy-optimized configurations (paper Eq. 1, Fig. 6) into an HDF5 dataset.

    Each start is a random tetragonal box with random positions, relaxed by FIRE at fixed cell
    on V = V_rep - K S of the twojmax-2 bispectrum entropy. Interrupt any time (even kill -9)
    and rerun the same command to resume.
    """
    from emtool.generate import GeneratorParams, generate_dataset
    from emtool.dataset import DatasetError
    defaults = GeneratorParams()
    volumes = (tuple(v / atomic_volume for v in volume_range) if volume_range
               else defaults.box_volumes)
    params = GeneratorParams(element=element, atomic_volume=atomic_volume, box_volumes=volumes,
                             natoms=tuple(natoms),
                             exclusion_radius=(defaults.exclusion_radius if exclusion_radius is None
                                               else exclusion_radius),
                             K=k_weight,
                             sign=sign, max_steps=max_steps, fmax=fmax)
    with click.progressbar(length=count, label="generate", show_eta=True, show_pos=True,
                           file=sys.stderr) as bar:
        try:
            summary = generate_dataset(output, count, seed, params, workers, scheduler,
                                       progress=lambda done, total: bar.update(1))
        except DatasetError as err:
            raise CliError(str(err)) from None
    new = summary["new"]
    rate = new / summary["seconds"] if summary["seconds"] > 0 else float("nan")
    click.echo(f"{output}: {new} new configurations ({summary['skipped']} already present) in "
               f"{summary['seconds']:.1f} s ({rate:.1f}/s)")
    if new:
        click.echo(f"  K > 0: {summary['entropy_up']}/{summary['K_positive']} raised S; "
                   f"K < 0: {summary['entropy_down']}/{summary['K_negative']} lowered S; "
                   f"{summary['steps'] / new:.0f} FIRE steps per configuration, "
                   f"{summary['converged']} reached fmax")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON.")
@user_errors
def info(path, as_json):
    """Summary of a dataset: counts, groups, volume and energy ranges, provenance."""
    import json
    from emtool.dataset import DatasetError, dataset_info, format_info
    try:
        summary = dataset_info(path)
    except DatasetError as err:
        raise CliError(str(err)) from None
    click.echo(json.dumps(summary, indent=2) if as_json else format_info(summary))



@main.command()
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the labeled dataset here instead of updating DATASET in place.")
@click.option("--potential", default="reference:W", show_default=True, metavar="SPEC",
              help="reference:W, chgnet[:MODEL], sevenn[:MODEL] (universal potentials, "
                   "docs/labels.md), a .snapparam/.snap potential, an emtool model .json, or an "
                   "ASE calculator factory 'module:factory' or 'path/to/file.py:factory' (e.g. "
                   "GPAW, docs/dft.md).")
@click.option("--calc-args", metavar="JSON",
              help="Keyword arguments of the ASE calculator factory, as a JSON object.")
@click.option("--command", metavar="TEMPLATE",
              help="External labeler: shell command with {input} (extxyz written by emtool), "
                   "{output} (file read back: energy, forces, stress), {dir}, {index}; write "
                   "literal braces as {{ and }}.")
@click.option("--timeout", type=float, help="Seconds allowed per configuration (--command).")
@click.option("--workers", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Local worker processes.")
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler address.")
@click.option("--relabel", is_flag=True, help="Label every configuration, also labeled ones.")
@click.option("--retry-failed", is_flag=True,
              help="Also retry configurations whose earlier calculation failed.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing OUTPUT (another file than DATASET).")
@user_errors
def label(dataset, output, potential, calc_args, command, timeout, workers, scheduler, relabel,
          retry_failed, overwrite):
    """Compute reference energies, forces and stress for the configurations of DATASET.

    Takes the configurations without labels (and without a recorded failure). Interrupt any
    time and rerun to resume: meanwhile finished configurations wait in OUTPUT.labeling.h5
    and the journal folder beside it (emtool datasets). Failed calculations are stored with
    their error message and retried with --retry-failed; the exit code is 1 when any failed.
    """
    from emtool.dataset import DatasetError
    from emtool.label import label_dataset, labeler_from_options
    if output and not (Path(output).exists() and Path(dataset).exists()
                       and Path(output).resolve() == Path(dataset).resolve()):
        check_output(output, overwrite)       # -o DATASET is the in-place default
    spec = labeler_from_options(potential, calc_args, command, timeout)
    progress = _LazyProgress("label")  # opens on the first result: input errors stay one line
    try:
        summary = label_dataset(dataset, spec, output, workers, scheduler, relabel,
                                retry_failed, progress)
    except DatasetError as err:
        raise CliError(str(err)) from None
    finally:
        progress.close()
    click.echo(f"{output or dataset}: {summary['labeled']} labeled, {summary['failed']} failed, "
               f"{summary['skipped']} skipped, in {summary['seconds']:.1f} s")
    for index, error in summary["errors"]:
        click.echo(f"  configuration {index}: {error}")
    if summary["failed"]:
        sys.exit(1)



@main.command()
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Dataset file (HDF5) to write.")
@click.option("--element", default="W", show_default=True, help="Chemical symbol.")
@click.option("--structure", type=click.Choice(["bcc", "fcc", "hcp"]),
              help="Crystal structure [default: bcc for W].")
@click.option("-a", "lattice_a", type=float, help="Lattice constant a, Å [default: 3.1652 for W].")
@click.option("-c", "lattice_c", type=float, help="Lattice constant c, Å (hcp).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every group.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@user_errors
def expert(output, element, structure, lattice_a, lattice_c, seed, overwrite):
    """Write expert-style configuration groups (strained and displaced crystals, vacancies,
    interstitials, surfaces, gamma surfaces, liquid snapshots) for an element with no public
    expert-curated set (docs/expert.md). Unlabeled; label them with `emtool label`."""
    from emtool.dataset import provenance_record, write_dataset
    from emtool.expert import expert_groups
    if Path(output).exists() and not overwrite:
        raise CliError(f"{output} exists; use --overwrite to replace it")
    images = expert_groups(element, structure, lattice_a, seed, c=lattice_c)
    settings = dict(element=element, structure=structure, a=lattice_a, c=lattice_c, seed=seed)
    write_dataset(output, images, parameters={"job": "expert", **settings},
                  provenance=[provenance_record("expert", settings)])
    groups = sorted({a.info["group"] for a in images})
    click.echo(f"{output}: {len(images)} configurations in {len(groups)} groups "
               f"({', '.join(groups)})")


@main.command("import")
@click.argument("source", type=click.Path(exists=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Dataset file (HDF5) to write.")
@click.option("--format", "fmt", help="ASE format name of SOURCE (default: FitSNAP JSON for "
                                      "folders and FitSNAP .json files, else ASE's guess).")
@click.option("--element", help="Require every atom to be this element.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@user_errors
def import_(source, output, fmt, element, overwrite):
    """Import SOURCE into an emtool dataset: a FitSNAP JSON folder (groups = folder names;
    energies total eV, stress in bar), extxyz, or anything ASE reads, with its labels."""
    from emtool.dataset import DatasetError
    from emtool.exchange import import_to_dataset
    try:
        summary = import_to_dataset(source, output, element=element, fmt=fmt, overwrite=overwrite)
    except DatasetError as err:
        raise CliError(str(err)) from None
    click.echo(f"{output}: {summary['configs']} configurations, {summary['atoms']} atoms, "
               f"{len(summary['groups'])} groups from {source} ({summary['format']})")


@main.command()
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "dest", required=True, type=click.Path(),
              help="extxyz file, folder for FitSNAP JSON, or folder for LAMMPS files.")
@click.option("--format", "fmt", type=click.Choice(["extxyz", "fitsnap-json", "lammps"]),
              required=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@user_errors
def export(dataset, dest, fmt, overwrite):
    """Export a DATASET to extxyz (full precision) or a FitSNAP JSON folder, or a fitted
    model (emtool model .json) to LAMMPS (--format lammps): SNAP as DEST/model.snapcoeff,
    .snapparam and, with ZBL, model.snap for `include`; a network as ML-IAP files
    DEST/model.mliap.model, .mliap.descriptor and the include file model.mliap (tanh,
    sigmoid, relu or linear activations; LAMMPS has no softplus)."""
    from emtool.dataset import DatasetError
    from emtool.exchange import export_dataset
    if fmt == "lammps":
        from emtool.models import load_model
        folder = Path(dest)
        if folder.exists() and any(folder.iterdir()) and not overwrite:
            raise CliError(f"{dest} exists and is not empty; use --overwrite")
        folder.mkdir(parents=True, exist_ok=True)
        written = load_model(dataset).write(folder / "model")
        click.echo(f"{dest}: {', '.join(Path(p).name for p in written)}")
        return
    try:
        summary = export_dataset(dataset, dest, fmt, overwrite=overwrite)
    except DatasetError as err:
        raise CliError(str(err)) from None
    click.echo(f"{dest}: {summary['configs']} configurations ({fmt})")


MODELS = ["linear", "quadratic"] + [f"nn:{name}" for name in ARCHITECTURES]


def _model_name(ctx, param, value):
    """--model in its one spelling (``nn:A1``), whatever the case typed."""
    for name in MODELS:
        if value.lower() == name.lower():
            return name
    raise CliError(f"unknown --model {value!r}: one of {', '.join(MODELS)}")


@main.command()
@click.argument("train", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (emtool model JSON; export to LAMMPS with "
                   "`emtool export MODEL --format lammps`).")
@click.option("--model", default="linear", show_default=True, callback=_model_name,
              metavar="|".join(MODELS),
              help="SNAP form (paper Eq. 3) or a network of paper Fig. 7 (any case).")
@click.option("--twojmax", type=int, default=8, show_default=True, help="2J of the descriptors.")
@click.option("--rcutfac", type=float, default=4.73, show_default=True, help="Cutoff, Å.")
@click.option("--energy-weight", type=float, default=1.0, show_default=True,
              help="Weight of energy rows / loss (per eV/atom).")
@click.option("--force-weight", type=float,
              help="Weight of force rows / loss (per eV/Å) [default: 1 for SNAP, 0 (energy-only, "
                   "as the paper) for networks].")
@click.option("--stress-weight", type=float, default=0.0, show_default=True,
              help="Weight of stress rows (per eV/Å^3; SNAP only).")
@click.option("--zbl", type=float, nargs=3, metavar="Z R_INNER R_OUTER",
              help="Subtract ZBL (charge Z, switching R_INNER..R_OUTER Å) before fitting and "
                   "overlay it in the model.")
@click.option("--ridge", type=float, default=0.0, show_default=True, help="Ridge penalty (SNAP).")
@click.option("--validation", type=float, default=0.0, show_default=True,
              help="Random fraction of configurations held out for validation (SNAP).")
@click.option("--validation-groups", default="",
              help="Comma-separated groups held out of training (group-wise split): the "
                   "validation set of a SNAP fit, the test set of a network (whose validation "
                   "set is then drawn from the other groups).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random split (and of network initialization and batch order).")
@click.option("--fitsnap-input", type=click.Path(dir_okay=False),
              help="Take descriptor settings, group weights and the reference potential from a "
                   "FitSNAP input file (overrides the options above; SNAP).")
@click.option("--workers", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Worker processes building the rows/descriptors (one Numba thread each).")
@click.option("--activation", type=click.Choice(list(ACTIVATIONS)), default="softplus",
              show_default=True, help="Hidden-layer activation of a network (LAMMPS export: not "
                                      "softplus).")
@click.option("--epochs", type=int, default=800, show_default=True, help="Network training epochs.")
@click.option("--batch-size", type=int, default=32, show_default=True,
              help="Configurations per Adam step.")
@click.option("--learning-rate", type=float, default=1e-3, show_default=True,
              help="Initial Adam learning rate (halved after 50 epochs without a 1e-4 "
                   "improvement of the validation loss).")
@click.option("--split", default="0.7,0.1,0.2", show_default=True,
              help="Network train,validation,test fractions of a random split.")
@click.option("--descriptors", type=click.Path(dir_okay=False),
              help="Descriptors of TRAIN from `emtool descriptors` (.npz), reused by an "
                   "energy-only network fit.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="PyTorch threads training a network (1 is fastest for small networks).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@user_errors
def fit(train, output, model, twojmax, rcutfac, energy_weight, force_weight, stress_weight, zbl,
        ridge, validation, validation_groups, seed, fitsnap_input, workers, activation, epochs,
        batch_size, learning_rate, split, descriptors, threads, overwrite):
    """Fit a linear or quadratic SNAP potential (least squares) or train a neural network
    (PyTorch, the paper's protocol; needs the nn extra) on the labeled configurations of TRAIN.
    A network job writes OUTPUT.checkpoint.pt as it goes; rerunning the same command resumes.
    """
    from emtool.fit import GroupWeights, UniformWeights, fit_dataset
    from emtool.snapfiles import ZBLSpec
    check_output(output, overwrite, (train, fitsnap_input, descriptors))
    params = SnapParams(twojmax=twojmax, rcutfac=rcutfac, bzeroflag=0)
    spec = ZBLSpec(zbl[1], zbl[2], (zbl[0],)) if zbl else None
    groups = tuple(g for g in validation_groups.split(",") if g)
    if model.startswith("nn:"):
        meta = _fit_network(train, output, model, params, spec, groups, energy_weight,
                            force_weight, seed, workers, activation, epochs, batch_size,
                            learning_rate, split, descriptors, threads)
    else:
        weights = UniformWeights(GroupWeights(energy_weight, 1.0 if force_weight is None
                                               else force_weight, stress_weight))
        meta = fit_dataset(train, output, model, params, weights, spec, ridge, validation, seed,
                           groups, fitsnap_input, workers)
    for part, m in meta["metrics"].items():
        click.echo(f"{part}: {m['configs']} configurations, energy RMSE {m['energy_rmse']:.4g} "
                   f"eV/atom, force RMSE {m['force_rmse']:.4g} eV/Å")
    click.echo(f"{output}: {meta['model']}, {meta['ndof']} parameters")


def _fit_network(train, output, model, params, zbl, groups, energy_weight, force_weight, seed,
                 workers, activation, epochs, batch_size, learning_rate, split, descriptors,
                 threads):
    from emtool.nn_train import TrainingSettings, fit_network_dataset
    try:
        fractions = tuple(float(f) for f in split.split(","))
    except ValueError:
        raise CliError(f"--split must be three comma-separated fractions, got {split!r}") from None
    settings = TrainingSettings(architecture=model[3:], activation=activation,
                                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                energy_weight=energy_weight, force_weight=force_weight or 0.0,
                                seed=seed, split=fractions)
    every = max(1, epochs // 20)

    def progress(epoch, record):
        if epoch % every == 0 or epoch == epochs:
            click.echo(f"epoch {epoch}/{epochs}: train loss {record['train_loss']:.4g}, "
                       f"validation loss {record['validation_loss']:.4g}, "
                       f"lr {record['learning_rate']:.3g}, {record['seconds']:.2f} s/epoch",
                       err=True)
    return fit_network_dataset(train, output, settings, params, zbl, groups, descriptors,
                               workers, progress, threads)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON (with the RSE list).")
@click.option("--plots", type=click.Path(file_okay=False), help="Folder for parity/RSE plots.")
@click.option("--coverage", "train", type=click.Path(dir_okay=False),
              help="MODEL's training dataset: report how far DATA's configurations lie from it "
                   "in descriptor space and the rank correlation with the errors "
                   "(docs/compare.md, 'Coverage').")
@click.option("--workers", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Worker processes for the descriptors of --coverage.")
@user_errors
def evaluate(model, data, as_json, plots, train, workers):
    """Errors of MODEL (any --potential spec) on the labeled configurations of DATA:
    RMSE and MAE of energy per atom and forces, overall and per group, the
    per-configuration RSE (paper Fig. 4) and the model's NDoF (fitted parameters)."""
    import json
    from emtool.calculators import load_potential
    from emtool.evaluate import evaluate_images, plot_errors
    from emtool.dataset import DatasetError, read_dataset
    potential = load_potential(model)
    images = read_dataset(data)
    result = dict(evaluate_images(potential, images), ndof=getattr(potential, "ndof", None))
    if plots:
        result["plot"] = str(plot_errors(potential, images, plots))
    if train:
        from emtool.compare import error_coverage
        params = getattr(potential, "params", None) or SnapParams()
        try:
            result["coverage"] = error_coverage(train, data, result["rse"],
                                                params.replace(quadraticflag=0), workers)
        except DatasetError as err:
            raise CliError(str(err)) from None
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(f"{data}: {result['configs']} configurations ({result['unlabeled']} unlabeled "
               f"skipped): energy RMSE {result['energy_rmse']:.4g} eV/atom, force RMSE "
               f"{result['force_rmse']:.4g} eV/Å")
    for name, m in result["groups"].items():
        click.echo(f"  {name:28s} {m['configs']:6d}  E {m['energy_rmse']:.4g}  F "
                   f"{m['force_rmse'] if m['force_rmse'] is not None else float('nan'):.4g}")
    if train:
        cov = result["coverage"]
        within, beyond = (f"{x:.4g}" if x is not None else "-"
                          for x in (cov["rse_median_within"], cov["rse_median_beyond"]))
        click.echo(f"coverage by {train}: {100 * cov['fraction_beyond_covering']:.1f}% of "
                   f"configurations beyond its spacing threshold {cov['threshold_covering']:.3g}"
                   f" (median RSE within {within}, beyond {beyond} eV/atom), "
                   f"{100 * cov['fraction_beyond_own']:.1f}% beyond {data}'s own spacing "
                   f"threshold {cov['threshold_own']:.3g}; Spearman(coverage, RSE) "
                   f"{cov['spearman']:.2f}")


class _LazyProgress:
    """A progress(done, total) callback whose bar (stderr) opens on the first call, so that
    input errors found before the first step or result stay one-line messages."""

    def __init__(self, label):
        self.label, self.bar = label, None

    def __call__(self, done, total):
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, show_eta=True,
                                         file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _read_structure(path):
    """The last frame of an ASE-readable structure file, as a one-line error otherwise."""
    from ase.io import read
    try:
        return read(path)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except Exception as err:  # ASE raises many kinds for unreadable files
        raise CliError(f"{path}: cannot read a structure ({type(err).__name__}: {err})") from None


#: Options shared by the MD commands.
potential_option = click.option(
    "--potential", default="reference:W", show_default=True, metavar="SPEC",
    help="reference:W, chgnet[:MODEL], sevenn[:MODEL], a .snapparam/.snap SNAP potential or an "
         "emtool model .json.")
md_seed_option = click.option("--seed", type=int, default=0, show_default=True,
                              help="Seed of the velocities and the thermostat.")


@main.command()
@potential_option
@click.option("--timesteps", default="0.5,1,2,4,8,10,12", show_default=True, metavar="DT,...",
              help="NVE timesteps, fs, comma-separated.")
@click.option("--temperature", type=float, default=3000.0, show_default=True,
              help="Equilibration temperature, K.")
@click.option("--duration", type=float, default=7500.0, show_default=True,
              help="Length of every NVE run, fs.")
@click.option("--samples", type=int, default=1000, show_default=True,
              help="Samples n of Eq. 2 per run.")
@click.option("--equilibration", type=float, default=5000.0, show_default=True,
              help="CSVR equilibration at --temperature (1 fs steps), fs.")
@md_seed_option
@click.option("--structure", type=click.Path(dir_okay=False),
              help="Start structure (any ASE format) instead of 16-atom BCC W, a = 3.1652 Å.")
@click.option("--plot", type=click.Path(dir_okay=False), help="ΔH(δt) plot, .png or .pdf.")
@click.option("--trajectory", type=click.Path(dir_okay=False),
              help="All sampled frames of every run, .traj or .extxyz.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON.")
@click.option("--overwrite", is_flag=True, help="Replace existing --plot / --trajectory files.")
@user_errors
def nve(potential, timesteps, temperature, duration, samples, equilibration, seed, structure,
        plot, trajectory, as_json, overwrite):
    """Energy conservation (paper Eq. 2, Fig. 5): equilibrate with the CSVR thermostat, then
    NVE from that same state at each timestep; ΔH(δt) table and log-log slope (δt <= 4 fs).
    A run whose temperature exceeds 10x the larger of its start and 1000 K is marked diverged;
    the exit code is then 1."""
    import json
    from emtool.calculators import load_potential
    from emtool.md import (MDError, NVEProtocol, energy_conservation, format_table,
                           plot_energy_conservation)
    for path in (plot, trajectory):
        if path:
            check_output(path, overwrite, (structure, potential))
    try:
        steps = tuple(float(t) for t in timesteps.split(","))
    except ValueError:
        raise CliError(f"--timesteps must be comma-separated numbers (fs), got {timesteps!r}") \
            from None
    protocol = NVEProtocol(timesteps=steps, temperature=temperature, duration=duration,
                           samples=samples, equilibration=equilibration, seed=seed)
    model = load_potential(potential)
    atoms = _read_structure(structure) if structure else None
    progress = _LazyProgress("nve")
    try:
        result = energy_conservation(model, protocol, atoms, trajectory, progress)
    except MDError as err:
        raise CliError(f"equilibration failed: {err}") from None
    finally:
        progress.close()
    result.update(potential=potential, trajectory=trajectory)
    if plot:
        result["plot"] = str(plot_energy_conservation(result, plot, label=potential))
    if as_json:
        click.echo(json.dumps(result, indent=1))
    else:
        click.echo(f"{potential}: {result['natoms']} atoms equilibrated at {temperature:g} K "
                   f"(start {result['equilibrated_temperature']:.0f} K), NVE {duration:g} fs "
                   f"per timestep, {result['seconds']:.1f} s")
        click.echo(format_table(result))
    if any(row["diverged"] for row in result["table"]):
        sys.exit(1)


@main.command()
@click.argument("structure", type=click.Path(dir_okay=False))
@potential_option
@click.option("--ensemble", type=click.Choice(["nve", "nvt"]), default="nve", show_default=True,
              help="nvt: CSVR thermostat at --temperature.")
@click.option("--timestep", type=float, default=1.0, show_default=True, help="Timestep, fs.")
@click.option("--steps", type=int, default=1000, show_default=True, help="Number of steps.")
@click.option("--temperature", type=float,
              help="K: Maxwell–Boltzmann start when STRUCTURE has no velocities; NVT target.")
@click.option("--tau", type=float, default=100.0, show_default=True,
              help="CSVR time constant (nvt), fs.")
@md_seed_option
@click.option("--thermo-every", type=int, default=100, show_default=True,
              help="Steps between thermo lines.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False),
              help="Write the thermo table to this file instead of stdout.")
@click.option("--trajectory", type=click.Path(dir_okay=False), help=".traj or .extxyz file.")
@click.option("--trajectory-every", type=int, default=100, show_default=True,
              help="Steps between trajectory frames.")
@click.option("--overwrite", is_flag=True, help="Replace existing --log / --trajectory files.")
@user_errors
def md(structure, potential, ensemble, timestep, steps, temperature, tau, seed, thermo_every,
       log_path, trajectory, trajectory_every, overwrite):
    """Molecular dynamics of STRUCTURE (any ASE format; velocities are kept if it has them):
    velocity Verlet (NVE) or with the CSVR thermostat (NVT). Thermo columns: step, time (fs),
    potential, kinetic and total energy (eV), temperature (K), conserved quantity (eV). The run
    stops with an error when the temperature exceeds 10x the largest of its start, the NVT
    target and 1000 K (diverged)."""
    from emtool.calculators import load_potential
    from emtool.md import MDError, run_md
    for path in (log_path, trajectory):
        if path:
            check_output(path, overwrite, (structure, potential))
    model = load_potential(potential)
    atoms = _read_structure(structure)
    out = None

    def thermo(row):
        nonlocal out
        if row["step"] == 0:        # the run is set up: inputs are valid
            out = open(log_path, "w") if log_path else None
            click.echo("# step time(fs) pe(eV) ke(eV) etotal(eV) T(K) conserved(eV)", file=out)
        click.echo(f"{row['step']:8d} {row['time']:12.4f} {row['potential_energy']:18.10f} "
                   f"{row['kinetic_energy']:16.10f} {row['total_energy']:18.10f} "
                   f"{row['temperature']:10.3f} {row['conserved']:18.10f}", file=out)

    progress = _LazyProgress("md")
    try:
        summary = run_md(atoms, model, timestep, steps, temperature,
                         tau if ensemble == "nvt" else None, seed, thermo_every, trajectory,
                         trajectory_every, thermo, progress)
    except MDError as err:
        raise CliError(str(err)) from None
    finally:
        progress.close()
        if out:
            out.close()
    click.echo(f"md: {summary['natoms']} atoms, {steps} steps of {timestep:g} fs in "
               f"{summary['seconds']:.1f} s ({summary['ns_per_day']:.3g} ns/day), "
               f"{summary['frames']} trajectory frames")


@main.command()
@click.argument("reference", type=click.Path(dir_okay=False))
@click.argument("others", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--twojmax", type=int, default=8, show_default=True,
              help="2J of the bispectrum descriptors (D = 5, 14, 30, 55 for 2, 4, 6, 8).")
@click.option("--rcutfac", type=float, default=4.73, show_default=True, help="Cutoff, Å.")
@click.option("--components", default="0,1,2", show_default=True,
              help="Comma-separated bispectrum columns whose distributions are plotted.")
@click.option("-o", "--output", "outdir", default="compare-out", show_default=True,
              type=click.Path(file_okay=False), help="Folder for compare.md, compare.json, PNGs.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--workers", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Worker processes for the descriptors.")
@click.option("--max-environments", type=int, default=100_000, show_default=True,
              help="Environments per set in the nearest-neighbor analyses (entropy, coverage); "
                   "0: the smallest set's count. Their cost grows as the square of it "
                   "(10^5: ~20 s per pass on one core).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random environment samples.")
@user_errors
def compare(reference, others, twojmax, rcutfac, components, outdir, as_json, workers,
            max_environments, seed):
    """Compare datasets with REFERENCE in descriptor space (paper Fig. 2, 6; docs/compare.md).

    Energy and bispectrum distributions, ZCA whitening in the reference frame (counts of
    broader dimensions), PCA, descriptor entropy, coverage (nearest-neighbor distances) and
    local structure types; report in OUTPUT/compare.md.
    """
    import json
    from emtool.compare import compare_datasets
    from emtool.compare_report import write_report
    from emtool.dataset import DatasetError
    try:
        columns = [int(c) for c in components.split(",") if c.strip()]
    except ValueError:
        raise CliError(f"--components must be comma-separated integers, got {components!r}") from None
    try:
        result = compare_datasets([reference, *others], SnapParams(twojmax=twojmax, rcutfac=rcutfac),
                                  columns, max_environments, seed, workers)
    except DatasetError as err:
        raise CliError(str(err)) from None
    report = write_report(result, outdir)
    if as_json:
        click.echo(json.dumps(result.summary, indent=1))
        return
    for row in result.summary["others"]:
        click.echo(f"{row['path']}: broader than {reference} in {row['broader_dims']} of "
                   f"{row['n_dims']} whitened dimensions, >= 5x in {row['broader5x_dims']}")
    click.echo(f"report: {report}")


@main.command("select")
@click.argument("pool", type=click.Path(dir_okay=False))
@click.option("-n", "count", type=int, required=True, help="Number of configurations to pick.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Dataset file (HDF5) for the picked configurations.")
@click.option("--method", type=click.Choice(["coverage", "farthest", "entropy", "random"]),
              default="coverage", show_default=True,
              help="coverage: the configuration that most lowers the summed distance of the "
                   "pool's environments to the training set; farthest: the one whose "
                   "environments lie farthest from it; entropy: the one that adds the most "
                   "descriptor entropy; random: the baseline (docs/select.md).")
@click.option("--existing", multiple=True, type=click.Path(dir_okay=False),
              help="A training set already held (dataset file; repeatable): its environments "
                   "count as covered.")
@click.option("--twojmax", type=int, default=8, show_default=True,
              help="2J of the bispectrum descriptors (D = 5, 14, 30, 55 for 2, 4, 6, 8).")
@click.option("--rcutfac", type=float, default=4.73, show_default=True, help="Cutoff, Å.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of --method random and of the environment sample of coverage.")
@click.option("--workers", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Worker processes for the descriptors.")
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler address (descriptors).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@user_errors
def select_(pool, count, output, method, existing, twojmax, rcutfac, seed, workers, scheduler,
            overwrite):
    """Pick the COUNT configurations of the dataset POOL that most deserve DFT: the scoring
    works on atomic environments (standardized bispectrum descriptors), the picks are
    configurations, given the training sets already held (--existing). Each picked
    configuration keeps its pool index and gains selection_rank and selection_score."""
    from emtool.dataset import DatasetError
    from emtool.select import select_dataset
    check_output(output, overwrite, (pool, *existing))
    progress = _LazyProgress("select")
    try:
        summary = select_dataset(pool, count, output, method, existing,
                                 SnapParams(twojmax=twojmax, rcutfac=rcutfac), seed, workers,
                                 scheduler, progress)
    except DatasetError as err:
        raise CliError(str(err)) from None
    finally:
        progress.close()
    reach = summary["pool_distances"]
    click.echo(f"{output}: {count} of {summary['pool_configurations']} configurations of {pool} "
               f"({method}) in {summary['seconds']:.1f} s"
               + (f"; pool environments' distance to the training set: median "
                  f"{reach['q50']:.3g}, max {reach['q100']:.3g} (standardized units, a sample)"
                  if reach else ""))


if __name__ == "__main__":
    main()
