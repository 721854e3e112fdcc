"""Importable workflows behind the CLI commands."""
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from emtool.snap import bispectrum, bispectrum_derivatives
from emtool.structure import StructureError

LOG = logging.getLogger(__name__)


def atomic_write(path, write):
    """Call ``write(tmp_path)`` then move the finished file to ``path``.

    An interrupted write never leaves a truncated ``path``; an existing file is replaced only
    once the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_structures(paths, index=":"):
    """ASE ``Atoms`` from every frame ``index`` of each file in ``paths`` (emtool datasets,
    extxyz, POSCAR, ... anything ASE reads)."""
    import h5py
    from ase.io import read
    from emtool.dataset import read_dataset
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
    """Bispectrum components of ``images`` into the .npz ``output`` (see ``emtool descriptors``)."""
    blocks, grads, virials = [], [], []
    start = time.perf_counter()
    for k, atoms in enumerate(images):
        blocks.append(bispectrum(atoms, params))
        if derivatives:
            der = bispectrum_derivatives(atoms, params)
            grads.append(der.per_atom())
            virials.append(der.virial())
        LOG.info("configuration %d/%d: %d atoms", k + 1, len(images), len(atoms))
    LOG.info("descriptors of %d configurations in %.2f s", len(images), time.perf_counter() - start)
    arrays = dict(B=np.vstack(blocks),
                  config_offsets=np.cumsum([0] + [len(a) for a in images]),
                  twojmax=params.twojmax, rcutfac=params.rcutfac, rfac0=params.rfac0,
                  rmin0=params.rmin0, switchflag=params.switchflag, bzeroflag=params.bzeroflag,
                  quadraticflag=params.quadraticflag, radelem=np.array(params.radelem),
                  wj=np.array(params.wj), elements=np.array(params.elements, dtype=str))
    if derivatives:
        arrays.update(dBdr=np.concatenate(grads), virial=np.array(virials))

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return atomic_write(output, write)


def default_run(output, n=24, seed=0, workers=1):
    """The main job on embedded defaults; returns the path of its Markdown report.

    Generates ``n`` entropy-optimized W configurations (half K > 0, half K < 0) into
    ``output/em.h5``, computes their bispectrum components (2J = 8, R = 4.73 Å) and writes
    ``output/report.md`` with a figure of the entropy change per configuration.
    """
    from emtool.dataset import read_dataset
    from emtool.generate import generate_dataset
    from emtool.params import SnapParams
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    summary = generate_dataset(output / "em.h5", n, seed=seed, workers=workers)
    images = read_dataset(output / "em.h5")
    params = SnapParams()
    start = time.perf_counter()
    compute_descriptors(images, params, output / "descriptors.npz")
    seconds = time.perf_counter() - start
    figure = _entropy_figure(images, output / "entropy.png")
    lines = ["# emtool report", "",
             f"## Generation ({len(images)} W configurations, seed {seed})", "",
             f"`em.h5`: {summary['new']} new configurations in {summary['seconds']:.1f} s "
             f"({summary['skipped']} were already there).", "",
             "| group | configurations | S start (mean) | S end (mean) | moved in the direction of K |",
             "|---|---:|---:|---:|---:|"]
    for group, sign in (("entropy_max", 1), ("entropy_min", -1)):
        half = [a for a in images if a.info["group"] == group]
        if not half:
            continue
        s0 = np.mean([a.info["entropy_start"] for a in half])
        s1 = np.mean([a.info["entropy"] for a in half])
        moved = np.mean([np.sign(a.info["entropy"] - a.info["entropy_start"]) == sign
                         for a in half])
        lines.append(f"| {group} | {len(half)} | {s0:.3f} | {s1:.3f} | {100 * moved:.0f}% |")
    lines += ["", f"![entropy per configuration]({figure.name})", "",
              "## Descriptors", "",
              f"SNAP bispectrum, twojmax {params.twojmax}, R = {params.rcutfac} Å, "
              f"D = {params.ncoeff} per atom (LAMMPS compute sna/atom columns), in "
              f"`descriptors.npz`: {sum(len(a) for a in images)} atoms in {seconds:.2f} s."]
    report = output / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _entropy_figure(images, path):
    """Scatter of S before and after the entropy stage, one point per configuration."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for group, color in (("entropy_max", "tab:red"), ("entropy_min", "tab:blue")):
        half = [a for a in images if a.info["group"] == group]
        ax.scatter([a.info["entropy_start"] for a in half], [a.info["entropy"] for a in half],
                   s=12, color=color, label=group)
    lims = ax.get_xlim()
    ax.plot(lims, lims, color="gray", lw=0.8)
    ax.set_xlabel("S after overlap removal")
    ax.set_ylabel("S after entropy optimization")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
