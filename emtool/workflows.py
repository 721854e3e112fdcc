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
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_structures(paths, index=":"):
    """ASE ``Atoms`` from every frame ``index`` of each file in ``paths``."""
    from ase.io import read
    images = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such structure file: {path}")
        try:
            frames = read(path, index=index)
        except Exception as err:  # ASE raises many types for unreadable files
            raise StructureError(f"cannot read {path}: {err}") from None
        images.extend(frames if isinstance(frames, list) else [frames])
    if not images:
        raise StructureError(f"no structures in {', '.join(map(str, paths))}")
    return images


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


def builtin_structure(seed=0):
    """The embedded default structure: 2x2x2 BCC W (a = 3.1652 Å), displaced by 0.1 Å (Gaussian)."""
    from ase.build import bulk
    atoms = bulk("W", "bcc", a=3.1652, cubic=True).repeat((2, 2, 2))
    atoms.positions += np.random.default_rng(seed).normal(scale=0.1, size=atoms.positions.shape)
    return atoms


def default_run(output):
    """The main job on embedded defaults; returns the path of its Markdown report."""
    from emtool.params import SnapParams
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    atoms = builtin_structure()
    params = SnapParams()
    start = time.perf_counter()
    path = compute_descriptors([atoms], params, output / "descriptors.npz")
    elapsed = time.perf_counter() - start
    b = np.load(path)["B"]
    lines = ["# emtool report", "",
             f"Structure: built-in BCC W 2x2x2 ({len(atoms)} atoms), 0.1 Å Gaussian displacements.",
             f"Descriptors: SNAP bispectrum, twojmax {params.twojmax}, R = {params.rcutfac} Å, "
             f"D = {params.ncoeff}, bzeroflag {params.bzeroflag} (LAMMPS compute sna/atom columns).",
             f"Time: {elapsed:.2f} s (including JIT compilation on first use).", "",
             "| component | (j1, j2, j) | mean | std |", "|---:|---|---:|---:|"]
    from emtool.kernels.snap_basis import snap_basis
    for k, (j1, j2, j) in enumerate(snap_basis(params.twojmax).idxb[:10]):
        lines.append(f"| {k} | ({j1}, {j2}, {j}) | {b[:, k].mean():.6g} | {b[:, k].std():.3g} |")
    lines += ["", f"All {params.ncoeff} components per atom: `{path.name}` (array `B`)."]
    report = output / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
