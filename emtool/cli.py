"""The ``emtool`` command line: thin click commands over the importable workflows."""
import errno
import logging
import sys
from pathlib import Path

import click

import emtool
from emtool import plots
from emtool.potentials.nn import ACTIVATIONS, ARCHITECTURES, LAMMPS_ACTIVATIONS
from emtool.errors import EmtoolError, interrupted
from emtool.files import StagedFile
from emtool.descriptors.params import SnapParams

LOG = logging.getLogger("emtool")


class CliError(click.ClickException):
    """A user error: printed as one line, exit code 2."""

    exit_code = 2


#: What an interrupted command keeps (default: nothing; no existing file is changed).
RESUMABLE = "finished work is kept: rerun the same command to resume"
INTERRUPTED = {"generate": RESUMABLE, "label": RESUMABLE,
               "md": "the thermo log and trajectory so far are kept",
               "nve": "the trajectory so far is kept",
               "fit": "no existing file was changed; a network's checkpoint is kept: rerun the "
                      "same command to resume"}


class EmtoolGroup(click.Group):
    """The ``emtool`` group. Every error a user can cause or meet ends here, in one place, as
    one line on stderr: emtool's own errors (``EmtoolError``), files that cannot be read or
    written (``OSError``: permissions, a full disk, a corrupt HDF5 file), Ctrl-C and memory
    exhaustion, exit code 2. Anything else is a bug: one line, exit code 3 (``--debug``
    shows the traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as err:  # a bad option value: one line, the help pointed to
            name = ctx.invoked_subcommand
            raise CliError(f"{err.format_message()} (see 'emtool {name} --help')" if name
                           else err.format_message()) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (Exception, KeyboardInterrupt) as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise _one_line(err, ctx.invoked_subcommand or "emtool") from None


def _one_line(err, command):
    """The CliError (or, for a bug, exit code 3) that tells a user what went wrong."""
    if interrupted(err):
        return CliError(f"{command} interrupted; "
                        + INTERRUPTED.get(command, "no existing file was changed"))
    if isinstance(err, EmtoolError):
        return CliError(str(err))
    if isinstance(err, OSError):
        return CliError(os_error_message(err))
    if isinstance(err, MemoryError):
        return CliError(f"{command}: out of memory; use a smaller job")
    bug = CliError(f"internal error in {command} ({type(err).__name__}: {err}); "
                   "rerun with 'emtool --debug' for the traceback and report it")
    bug.exit_code = 3
    return bug


def os_error_message(err):
    """One line for an OSError: the file, then the problem (h5py's messages included)."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.errno == errno.ENOSPC:
        reason = "no space left on device; nothing was replaced, free space and rerun"
    names = [name for name in (err.filename, err.filename2) if name]
    return f"{': '.join(map(str, names))}: {reason}" if names else reason


def _at_least_one(ctx, param, value):
    """The one rule for --workers: an integer >= 1 (1: run in this process)."""
    if value < 1:
        raise CliError(f"--workers must be >= 1, got {value}")
    return value


def _non_negative(ctx, param, value):
    """Weights and penalties: finite and >= 0 (or unset)."""
    if value is not None and not 0.0 <= value < float("inf"):
        raise CliError(f"--{param.name.replace('_', '-')} must be finite and >= 0, got {value}")
    return value


def _positive(ctx, param, value):
    """Times and scales: finite and > 0."""
    if not 0.0 < value < float("inf"):
        raise CliError(f"--{param.name.replace('_', '-')} must be finite and > 0, got {value}")
    return value


#: ``fit`` options that apply to one kind of model only.
SNAP_ONLY = ("ridge", "validation", "stress_weight", "fitsnap_input")
NETWORK_ONLY = ("activation", "epochs", "batch_size", "learning_rate", "split", "descriptors",
                "threads")


def reject_options_of_other_model(ctx, model):
    """Refuse ``fit`` options given on the command line that the chosen --model ignores."""
    network = model.startswith("nn:")
    ignored = [name for name in (SNAP_ONLY if network else NETWORK_ONLY)
               if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
    if ignored:
        options = ", ".join("--" + name.replace("_", "-") for name in ignored)
        raise CliError(f"{options}: only for {'SNAP' if network else 'network'} models, "
                       f"not --model {model}")


def check_output(output, overwrite, inputs=()):
    """The output policy: an output never replaces an input, and replaces an existing file
    only with --overwrite (the file itself is then written atomically by the library)."""
    out = Path(output)
    for path in inputs:
        if path and Path(path).exists() and out.exists() and out.resolve() == Path(path).resolve():
            raise CliError(f"{output}: the output would replace the input {path}")
    if out.exists() and not overwrite:
        raise CliError(f"{output} exists; pass --overwrite to replace it")


@click.group(cls=EmtoolGroup, context_settings=dict(help_option_names=["-h", "--help"]))
@click.version_option(package_name="emtool")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx, verbose, debug):
    """emtool: entropy-optimized training sets for machine-learned interatomic potentials.

    Units everywhere: Å, eV, eV/Å, amu; time in fs.
    """
    ctx.obj = {"debug": debug}
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
        click.option("--bzeroflag", type=click.IntRange(0, 1), default=0, show_default=True,
                     help="1: subtract the B of an isolated atom (LAMMPS compute's default). 0, "
                          "as in fit, compare, select and the published SNAPs, by default."),
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
        from emtool.potentials.snap import SnapPotential
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
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Global seed; configuration k is a pure function of (seed, k).")
@click.option("--workers", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Local worker processes (one Numba thread each).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run on a Dask cluster (e.g. tcp://host:8786) instead of local workers; "
                   "same result.")
@click.option("--element", default="W", show_default=True,
              help="Chemical symbol. Elements other than W take their atomic volume and "
                   "nearest-neighbor distance from ASE's reference states (docs/generator.md).")
@click.option("--atomic-volume", type=float,
              help="Volume per atom at ambient density, Å^3 (scales the box volumes) "
                   "[default: 15.9 for W, else the element's reference solid].")
@click.option("--volume-range", type=float, nargs=2, metavar="MIN MAX",
              help="Box volume range in Å^3 [default: 470 990 for W, scaled by the atomic "
                   "volume otherwise].")
@click.option("--natoms", type=int, nargs=2, default=(32, 40), show_default=True,
              metavar="MIN MAX", help="Atom count range (inclusive).")
@click.option("--exclusion-radius", type=float,
              help="r_ex (Å) of the repulsive pair term; pairs end at >= 0.85 of V_rep's "
                   "radius (r_ex, or r_ex times --min-exclusion-factor for K < 0) [default: 2.7 "
                   "for W, scaled by the nearest-neighbor distance otherwise; docs/generator.md].")
@click.option("-K", "--K", "k_weight", type=float, default=5.0, show_default=True,
              help="Entropy weight |K| (eV) in V = V_rep - K S.")
@click.option("--sign", type=click.Choice(["both", "max", "min"]), default="both",
              show_default=True,
              help="both: even indices maximize S (K > 0), odd minimize it (K < 0).")
@click.option("--min-start", type=click.Choice(["lattice", "random"]), default="lattice",
              show_default=True,
              help="Start of the K < 0 configurations: a crystal (bcc, fcc, sc or diamond) with "
                   "1-2 vacancies and random displacements in a tetragonal box of random volume "
                   "(docs/generator.md), or the paper's random start.")
@click.option("--min-exclusion-factor", type=click.FloatRange(0, 1, min_open=True), default=0.85,
              show_default=True,
              help="V_rep's radius for the K < 0 configurations, as a fraction of r_ex: "
                   "their crystals keep compressed pairs (docs/generator.md).")
@click.option("--max-steps", type=int, default=200, show_default=True,
              help="FIRE step budget of the entropy stage.")
@click.option("--fmax", type=float, default=0.05, show_default=True,
              help="FIRE stops when the largest force is below this (eV/Å).")
def generate(count, output, seed, workers, scheduler, element, atomic_volume, volume_range,
             natoms, exclusion_radius, k_weight, sign, min_start, min_exclusion_factor,
             max_steps, fmax):
    """Generate entropy-optimized configurations (paper Eq. 1, Fig. 6) into an HDF5 dataset.

    Each start is a random tetragonal box with random positions (K > 0) or a defective
    crystal (K < 0, --min-start), relaxed by FIRE at fixed cell on V = V_rep - K S of the
    twojmax-2 bispectrum entropy. Interrupt any time (even kill -9)
    and rerun the same command to resume.
    """
    from dataclasses import replace

    from emtool.generator.generate import GeneratorParams
    material = GeneratorParams.for_element(element, atomic_volume, exclusion_radius)
    volumes = (tuple(v / material.atomic_volume for v in volume_range) if volume_range
               else material.box_volumes)
    params = replace(material, box_volumes=volumes, natoms=tuple(natoms), K=k_weight, sign=sign,
                     min_start=min_start, min_exclusion_factor=min_exclusion_factor,
                     max_steps=max_steps, fmax=fmax)
    with click.progressbar(length=count, label="generate", show_eta=True, show_pos=True,
                           file=sys.stderr) as bar:
        summary = emtool.generate(output, count, seed, params, workers, scheduler,
                                   progress=lambda done, total: bar.update(1))
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
def info(path, as_json):
    """Summary of a dataset: counts, groups, volume and energy ranges, provenance. Also of any
    file `emtool import` reads (extxyz, POSCAR, OUTCAR, traj, ...): counts, elements, labels."""
    import json
    import h5py
    from emtool.data.dataset import dataset_info, format_info
    from emtool.data.exchange import format_structures_info, structures_info
    if h5py.is_hdf5(path) or Path(path).suffix in (".h5", ".hdf5"):
        summary, text = dataset_info(path), format_info
    else:
        summary, text = structures_info(path), format_structures_info
    click.echo(json.dumps(summary, indent=2) if as_json else text(summary))



@main.command()
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the labeled dataset here instead of updating DATASET in place.")
@click.option("--potential", metavar="SPEC",
              help="reference:W, chgnet[:MODEL], sevenn[:MODEL] (universal potentials, "
                   "docs/labels.md), a .snapparam/.snap potential, an emtool model .json, or an "
                   "ASE calculator factory 'module:factory' or 'path/to/file.py:factory' (e.g. "
                   "GPAW, docs/dft.md) [default: reference:W].")
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
def label(dataset, output, potential, calc_args, command, timeout, workers, scheduler, relabel,
          retry_failed, overwrite):
    """Compute reference energies, forces and stress for the configurations of DATASET.

    Takes the configurations without labels (and without a recorded failure). Interrupt any
    time and rerun to resume: meanwhile finished configurations wait in OUTPUT.labeling.h5
    and the journal folder beside it (emtool datasets). Failed calculations are stored with
    their error message and retried with --retry-failed; the exit code is 1 when any failed.
    """
    if output and not (Path(output).exists() and Path(dataset).exists()
                       and Path(output).resolve() == Path(dataset).resolve()):
        check_output(output, overwrite)       # -o DATASET is the in-place default
    progress = _LazyProgress("label")  # opens on the first result: input errors stay one line
    try:
        summary = emtool.label(dataset, potential, output, calc_args, command, timeout, workers,
                               scheduler, relabel, retry_failed, progress)
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
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of every group.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def expert(output, element, structure, lattice_a, lattice_c, seed, overwrite):
    """Write expert-style configuration groups (strained and displaced crystals, vacancies,
    interstitials, surfaces, gamma surfaces, liquid snapshots) for an element with no public
    expert-curated set (docs/expert.md). Unlabeled; label them with `emtool label`."""
    from emtool.data.dataset import provenance_record, write_dataset
    from emtool.generator.expert import expert_groups
    check_output(output, overwrite)
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
@click.option("--keys", type=click.Choice(["ase", "mace"]),
              help="Names of the labels in an extxyz/ASE file: ase (energy, forces, stress, "
                   "group) or mace (REF_energy, REF_forces, REF_stress, config_type) [default: "
                   "mace when the file has REF_ labels, else ase].")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def import_(source, output, fmt, element, keys, overwrite):
    """Import SOURCE into an emtool dataset: a FitSNAP JSON folder (groups = folder names;
    energies total eV, stress in bar), extxyz (ASE's or MACE's label names), or anything ASE
    reads, with its labels."""
    from emtool.data.exchange import import_to_dataset
    check_output(output, overwrite, (source,))
    summary = import_to_dataset(source, output, element=element, fmt=fmt, overwrite=overwrite,
                                keys=keys)
    names = f", {summary['keys']} keys" if summary["keys"] else ""
    click.echo(f"{output}: {summary['configs']} configurations, {summary['atoms']} atoms, "
               f"{len(summary['groups'])} groups from {source} ({summary['format']}{names})")


@main.command()
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "dest", required=True, type=click.Path(),
              help="extxyz file, folder for FitSNAP JSON, or folder for LAMMPS files.")
@click.option("--format", "fmt", type=click.Choice(["extxyz", "fitsnap-json", "lammps"]),
              required=True)
@click.option("--keys", type=click.Choice(["ase", "mace"]), default="ase", show_default=True,
              help="Label names in extxyz: ase (energy, forces, stress, group) or mace "
                   "(REF_energy, REF_forces, REF_stress, config_type).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def export(dataset, dest, fmt, keys, overwrite):
    """Export a DATASET to extxyz (full precision) or a FitSNAP JSON folder, or a fitted
    model (emtool model .json) to LAMMPS (--format lammps): SNAP as DEST/model.snapcoeff,
    .snapparam and model.snap for `include` (pair_style snap, or with ZBL); a network as ML-IAP files
    DEST/model.mliap.model, .mliap.descriptor and the include file model.mliap (tanh,
    sigmoid, relu or linear activations; LAMMPS has no softplus)."""
    from emtool.data.exchange import export_dataset
    if fmt == "lammps":
        from emtool.potentials.models import load_model
        if keys != "ase":
            raise CliError("--keys applies to --format extxyz")
        folder = Path(dest)
        if folder.exists() and any(folder.iterdir()) and not overwrite:
            raise CliError(f"{dest} exists and is not empty; pass --overwrite to replace it")
        model = load_model(dataset)
        folder.mkdir(parents=True, exist_ok=True)
        written = model.write(folder / "model")
        click.echo(f"{dest}: {', '.join(Path(p).name for p in written)}")
        return
    check_output(dest, overwrite, (dataset,))
    summary = export_dataset(dataset, dest, fmt, overwrite=overwrite, keys=keys)
    names = f", {keys} keys" if summary["keys"] else ""
    click.echo(f"{dest}: {summary['configs']} configurations ({fmt}{names})")


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
              callback=_non_negative,
              help="Weight of energy rows / loss (per eV/atom).")
@click.option("--force-weight", type=float, callback=_non_negative,
              help="Weight of force rows / loss (per eV/Å) [default: 1 for SNAP, 0 (energy-only, "
                   "as the paper) for networks].")
@click.option("--stress-weight", type=float, default=0.0, show_default=True,
              callback=_non_negative,
              help="Weight of stress rows (per eV/Å^3; SNAP only).")
@click.option("--zbl", type=float, nargs=3, metavar="Z R_INNER R_OUTER",
              help="Subtract ZBL (charge Z, switching R_INNER..R_OUTER Å) before fitting and "
                   "overlay it in the model.")
@click.option("--ridge", type=float, default=0.0, show_default=True, callback=_non_negative,
              help="Ridge penalty (SNAP).")
@click.option("--validation", type=float, default=0.0, show_default=True,
              help="Random fraction of configurations held out for validation (SNAP).")
@click.option("--validation-groups", default="",
              help="Comma-separated groups held out of training (group-wise split): the "
                   "validation set of a SNAP fit, the test set of a network (whose validation "
                   "set is then drawn from the other groups).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
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
def fit(train, output, model, twojmax, rcutfac, energy_weight, force_weight, stress_weight, zbl,
        ridge, validation, validation_groups, seed, fitsnap_input, workers, activation, epochs,
        batch_size, learning_rate, split, descriptors, threads, overwrite):
    """Fit a linear or quadratic SNAP potential (least squares) or train a neural network
    (PyTorch, the paper's protocol; needs the nn extra) on the labeled configurations of TRAIN.
    A network job writes OUTPUT.checkpoint.pt as it goes; rerunning the same command resumes.
    """
    from emtool.fitting.weights import GroupWeights, UniformWeights
    from emtool.potentials.zbl import ZBLSpec
    reject_options_of_other_model(click.get_current_context(), model)
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
        meta = emtool.fit(train, output, model, params, weights=weights, zbl=spec, ridge=ridge,
                          validation=validation, seed=seed, validation_groups=groups,
                          fitsnap_input=fitsnap_input, workers=workers)
    for part, m in meta["metrics"].items():
        click.echo(f"{part}: {m['configs']} configurations, energy RMSE {m['energy_rmse']:.4g} "
                   f"eV/atom, force RMSE {m['force_rmse']:.4g} eV/Å")
    click.echo(f"{output}: {meta['model']}, {meta['ndof']} parameters")


def _fit_network(train, output, model, params, zbl, groups, energy_weight, force_weight, seed,
                 workers, activation, epochs, batch_size, learning_rate, split, descriptors,
                 threads):
    from emtool.fitting.networks import TrainingSettings
    try:
        fractions = tuple(float(f) for f in split.split(","))
    except ValueError:
        raise CliError(f"--split must be three comma-separated fractions, got {split!r}") from None
    settings = TrainingSettings(architecture=model[3:], activation=activation,
                                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                energy_weight=energy_weight, force_weight=force_weight or 0.0,
                                seed=seed, split=fractions)
    if activation not in LAMMPS_ACTIVATIONS:  # say it now, not at export after training
        click.echo(f"note: LAMMPS's ML-IAP has no {activation}: this network runs in emtool "
                   f"only; for LAMMPS use --activation {'|'.join(LAMMPS_ACTIVATIONS)}", err=True)
    every = max(1, epochs // 20)
    logged = logging.getLogger("emtool.fitting.networks").isEnabledFor(logging.INFO)  # -v logs them

    def progress(epoch, record):
        if not logged and (epoch % every == 0 or epoch == epochs):
            click.echo(f"epoch {epoch}/{epochs}: train loss {record['train_loss']:.4g}, "
                       f"validation loss {record['validation_loss']:.4g}, "
                       f"lr {record['learning_rate']:.3g}, {record['seconds']:.2f} s/epoch",
                       err=True)
    return emtool.fit(train, output, model, params, settings=settings, zbl=zbl,
                      test_groups=groups, descriptors=descriptors, workers=workers,
                      on_epoch=progress, threads=threads)


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="DATA",
                type=click.Path(dir_okay=False))
@click.option("--potential", "model", metavar="SPEC",
              help="The model to evaluate: an emtool model .json (from `emtool fit`), a "
                   ".snapparam/.snap SNAP potential, reference:W, chgnet[:MODEL] or "
                   "sevenn[:MODEL]. `emtool evaluate SPEC DATA` is the same.")
@click.option("--subset", type=click.Choice(["train", "validation", "test"]),
              help="Evaluate only the configurations that the fit of the model put in this part "
                   "of its split (recorded in the model file; DATA must be its training "
                   "dataset).")
@click.option("--predictions", type=click.Path(dir_okay=False),
              help="Write the evaluated configurations to this emtool dataset (.h5): reference "
                   "labels kept as they are, the model's predictions in the info items "
                   "predicted_energy (eV), predicted_forces (N x 3, eV/Å) and "
                   "predicted_stress (Voigt, eV/Å^3; periodic cells).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --predictions file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON (with the RSE list).")
@click.option("--plots", type=click.Path(file_okay=False), help="Folder for parity/RSE plots.")
@click.option("--coverage", "train", type=click.Path(dir_okay=False),
              help="The model's training dataset: report how far DATA's configurations lie "
                   "from it in descriptor space and the rank correlation with the errors "
                   "(docs/compare.md, 'Coverage').")
@click.option("--workers", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Worker processes for the descriptors of --coverage.")
def evaluate(paths, model, subset, predictions, overwrite, as_json, plots, train, workers):
    """Errors of the model --potential SPEC on the labeled configurations of DATA:
    RMSE and MAE of energy per atom and forces, overall and per group, the
    per-configuration RSE (paper Fig. 4) and the model's NDoF (fitted parameters).
    `emtool evaluate SPEC DATA` (the model as first argument) is the same as
    `emtool evaluate --potential SPEC DATA`."""
    import json
    from emtool.potentials.calculators import load_potential
    from emtool.analysis.evaluate import (evaluate_images, plot_errors, subset_configurations,
                                 write_predictions)
    from emtool.data.dataset import read_dataset
    if model is not None and len(paths) > 1:
        raise CliError("the model is given twice: --potential SPEC DATA, or SPEC DATA, not both")
    if len(paths) != (1 if model is not None else 2):
        raise CliError("give the model and one dataset: emtool evaluate --potential SPEC DATA")
    model, data = (model, paths[0]) if model is not None else paths
    if predictions:
        check_output(predictions, overwrite, (data, model, train))
    potential = load_potential(model)
    images = read_dataset(data)
    if subset:
        images = subset_configurations(model, data, images, subset)
    result = dict(evaluate_images(potential, images, predictions=bool(predictions or plots)),
                  ndof=getattr(potential, "ndof", None), subset=subset)
    kept = result.pop("predictions", None)
    if predictions:
        settings = dict(potential=str(model), data=str(data), subset=subset)
        result["predictions"] = str(write_predictions(predictions, images, kept, data,
                                                      settings))
    if plots:
        result["plot"] = str(plot_errors(potential, images, plots, kept))
    if train:
        from emtool.analysis.compare import error_coverage
        params = getattr(potential, "params", None) or SnapParams()
        result["coverage"] = error_coverage(train, data, result["rse"],
                                            params.replace(quadraticflag=0), workers)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    part = f" ({subset} subset of {model})" if subset else ""
    click.echo(f"{data}{part}: {result['configs']} configurations ({result['unlabeled']} "
               f"unlabeled skipped): energy RMSE {result['energy_rmse']:.4g} eV/atom, force RMSE "
               f"{result['force_rmse']:.4g} eV/Å")
    for name, m in result["groups"].items():
        click.echo(f"  {name:28s} {m['configs']:6d}  E {m['energy_rmse']:.4g}  F "
                   f"{m['force_rmse'] if m['force_rmse'] is not None else float('nan'):.4g}")
    if predictions:
        click.echo(f"predictions: {result['predictions']}")
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
md_seed_option = click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
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
@click.option("--plot", type=click.Path(dir_okay=False), help="ΔH(δt) plot, .png, .pdf or .svg.")
@click.option("--trajectory", type=click.Path(dir_okay=False),
              help="All sampled frames of every run, .traj or .extxyz.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON.")
@click.option("--overwrite", is_flag=True, help="Replace existing --plot / --trajectory files.")
def nve(potential, timesteps, temperature, duration, samples, equilibration, seed, structure,
        plot, trajectory, as_json, overwrite):
    """Energy conservation (paper Eq. 2, Fig. 5): equilibrate with the CSVR thermostat, then
    NVE from that same state at each timestep; ΔH(δt) table and log-log slope (δt <= 4 fs).
    A run whose temperature exceeds 10x the larger of its start and 1000 K is marked diverged;
    the exit code is then 1."""
    import json
    from emtool.dynamics.nve import NVEProtocol, format_table, plot_energy_conservation
    from emtool.errors import MDError
    for path in (plot, trajectory):
        if path:
            check_output(path, overwrite, (structure, potential))
    if plot:
        plots.check_path(plot)   # before the run, not after it
    try:
        steps = tuple(float(t) for t in timesteps.split(","))
    except ValueError:
        raise CliError(f"--timesteps must be comma-separated numbers (fs), got {timesteps!r}") \
            from None
    protocol = NVEProtocol(timesteps=steps, temperature=temperature, duration=duration,
                           samples=samples, equilibration=equilibration, seed=seed)
    atoms = _read_structure(structure) if structure else None
    progress = _LazyProgress("nve")
    try:
        result = emtool.nve(potential, protocol, atoms, trajectory, progress)
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
@click.option("--tau", type=float, default=100.0, show_default=True, callback=_positive,
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
@click.option("--skin", type=float, default=0.5, show_default=True,
              help="Neighbor-list skin, Å (emtool's potentials): lists are rebuilt when an atom "
                   "moved more than skin/2; forces identical to rebuilding every step.")
def md(structure, potential, ensemble, timestep, steps, temperature, tau, seed, thermo_every,
       log_path, trajectory, trajectory_every, overwrite, skin):
    """Molecular dynamics of STRUCTURE (any ASE format; velocities are kept if it has them):
    velocity Verlet (NVE) or with the CSVR thermostat (NVT). Thermo columns: step, time (fs),
    potential, kinetic and total energy (eV), temperature (K), conserved quantity (eV). The run
    stops with an error when the temperature exceeds 10x the largest of its start, the NVT
    target and 1000 K (diverged)."""
    from emtool.potentials.calculators import load_potential
    from emtool.dynamics.md import run_md
    for path in (log_path, trajectory):
        if path:
            check_output(path, overwrite, (structure, potential))
    model = load_potential(potential)
    atoms = _read_structure(structure)
    log = StagedFile(log_path) if log_path else None   # in place when the run ends
    out = None

    def thermo(row):
        nonlocal out
        if row["step"] == 0:        # the run is set up: inputs are valid
            out = log.open("w") if log else None
            click.echo("# step time(fs) pe(eV) ke(eV) etotal(eV) T(K) conserved(eV)", file=out)
        click.echo(f"{row['step']:8d} {row['time']:12.4f} {row['potential_energy']:18.10f} "
                   f"{row['kinetic_energy']:16.10f} {row['total_energy']:18.10f} "
                   f"{row['temperature']:10.3f} {row['conserved']:18.10f}", file=out)

    progress = _LazyProgress("md")
    keep = False   # the log of a finished, interrupted or diverged run; not of a failed one
    try:
        summary = run_md(atoms, model, timestep, steps, temperature,
                         tau if ensemble == "nvt" else None, seed, thermo_every, trajectory,
                         trajectory_every, thermo, progress, skin)
        keep = True
    except BaseException as err:
        keep = interrupted(err) or isinstance(err, EmtoolError)
        raise
    finally:
        progress.close()
        if out:
            out.close()
        if log:
            log.close(keep)
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
@click.option("--max-environments", type=click.IntRange(min=0), default=100_000,
              show_default=True,
              help="Environments per set in the nearest-neighbor analyses (entropy, coverage); "
                   "0: the smallest set's count. Their cost grows as the square of it "
                   "(10^5: ~20 s per pass on one core).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random environment samples.")
def compare(reference, others, twojmax, rcutfac, components, outdir, as_json, workers,
            max_environments, seed):
    """Compare datasets with REFERENCE in descriptor space (paper Fig. 2, 6; docs/compare.md).

    Energy and bispectrum distributions, ZCA whitening in the reference frame (counts of
    broader dimensions), PCA, descriptor entropy, coverage (nearest-neighbor distances) and
    local structure types; report in OUTPUT/compare.md.
    """
    import json
    from emtool.analysis.compare_report import write_report
    try:
        columns = [int(c) for c in components.split(",") if c.strip()]
    except ValueError:
        raise CliError(f"--components must be comma-separated integers, got {components!r}") from None
    params = SnapParams(twojmax=twojmax, rcutfac=rcutfac, bzeroflag=0)
    result = emtool.compare(reference, *others, params=params, components=columns,
                            max_environments=max_environments, seed=seed, workers=workers)
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
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of --method random and of the environment sample of coverage.")
@click.option("--workers", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Worker processes for the descriptors.")
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler address (descriptors).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def select_(pool, count, output, method, existing, twojmax, rcutfac, seed, workers, scheduler,
            overwrite):
    """Pick the COUNT configurations of the dataset POOL that most deserve DFT: the scoring
    works on atomic environments (standardized bispectrum descriptors), the picks are
    configurations, given the training sets already held (--existing). Each picked
    configuration keeps its pool index and gains selection_rank and selection_score."""
    check_output(output, overwrite, (pool, *existing))
    params = SnapParams(twojmax=twojmax, rcutfac=rcutfac, bzeroflag=0)
    progress = _LazyProgress("select")
    try:
        summary = emtool.select(pool, count, output, method, existing, params, seed, workers,
                                 scheduler, progress)
    finally:
        progress.close()
    reach = summary["pool_distances"]
    click.echo(f"{output}: {count} of {summary['pool_configurations']} configurations of {pool} "
               f"({method}) in {summary['seconds']:.1f} s"
               + (f"; pool environments' distance to the training set: median "
                  f"{reach['q50']:.3g}, max {reach['q100']:.3g} (standardized units, a sample)"
                  if reach else ""))


def _written(summary):
    """'N configurations (L labeled) in G groups' of a subset/merge summary."""
    groups = summary["group_counts"]
    return (f"{summary['configs']} configurations ({summary['labeled_configs']} labeled) in "
            f"{len(groups)} group{'s' * (len(groups) != 1)}")


@main.command()
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Dataset file (HDF5) for the selected configurations.")
@click.option("--index", default=":", show_default=True,
              help="Which of the configurations left by --group/--labeled to keep, in file "
                   "order (ASE syntax: 3, -1, 0:100, ::2, -10:, or a comma list 3,5,9).")
@click.option("--group", "groups", multiple=True, metavar="NAME",
              help="Keep this group (repeatable; '' = configurations without a group).")
@click.option("--labeled/--unlabeled", default=None,
              help="Keep only configurations with (without) an energy [default: both].")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def subset(dataset, output, index, groups, labeled, overwrite):
    """Write selected configurations of DATASET to OUTPUT: --group and --labeled filter first,
    then --index picks among the rest (--group bulk --index :10 = the first ten of bulk).
    Configurations keep their index, info, group and labels and gain source_file and
    source_index; the dataset keeps its parameters and provenance (+ a subset record)."""
    from emtool.data.subset import subset_dataset
    check_output(output, overwrite, (dataset,))
    summary = subset_dataset(dataset, output, index, groups, labeled)
    click.echo(f"{output}: {_written(summary)}, of the {summary['source_configs']} of "
               f"{dataset}")


@main.command()
@click.argument("datasets", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Dataset file (HDF5) for the merged configurations.")
@click.option("--mixed-labels", is_flag=True,
              help="Merge datasets whose labels come from different labelers (their "
                   "provenance), e.g. two DFT codes known to agree.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def merge(datasets, output, mixed_labels, overwrite):
    """Concatenate DATASETS into OUTPUT, in the order given. Configurations keep info, group
    and labels, are numbered 0..n-1 and gain source_file and source_index; every source's
    parameters and provenance are kept. Labels from different labelers are refused unless
    --mixed-labels."""
    from emtool.data.subset import merge_datasets
    check_output(output, overwrite, datasets)
    summary = merge_datasets(datasets, output, mixed_labels)
    click.echo(f"{output}: {_written(summary)}, from {len(datasets)} datasets")


if __name__ == "__main__":
    main()
