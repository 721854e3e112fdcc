"""The ``emtool`` command line: thin click commands over the importable workflows."""
import functools
import logging
from pathlib import Path

import click

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
@snap_options
@user_errors
def descriptors(structures, output, index, derivatives, **snap):
    """Bispectrum components B (LAMMPS compute sna/atom columns) of STRUCTURES.

    STRUCTURES are files ASE reads (extxyz, POSCAR, LAMMPS data, ...). The .npz holds
    B (n_atoms_total, D), config_offsets (n_configs+1,), the parameters and, with
    --derivatives, dBdr (n_atoms_total, D, 3) and virial (n_configs, D, 3, 3).
    """
    from emtool.workflows import compute_descriptors, read_structures
    params = params_from_options(**snap)
    images = read_structures(structures, index)
    path = compute_descriptors(images, params, output, derivatives=derivatives)
    click.echo(f"wrote {path}: {sum(len(a) for a in images)} atoms in {len(images)} "
               f"configurations, D = {params.ncoeff}")


@main.command()
@click.option("-o", "--output", default="emtool-out", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the results and the report.")
@user_errors
def run(output):
    """Run the main job on the embedded defaults and write a short report.

    For now: bispectrum components (2J = 8, R = 4.73 Å) of a built-in thermally displaced
    BCC tungsten cell, with their summary statistics.
    """
    from emtool.workflows import default_run
    report = default_run(Path(output))
    click.echo(f"report: {report}")
