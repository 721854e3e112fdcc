"""emtool's HDF5 datasets of atomic configurations: write, read, stream and summarize them.

The format (schema: ``docs/dataset.md``) is ``emtool.data.schema``'s; long jobs append
through ``emtool.data.journal.DatasetWriter``. Readers return the main file only (a journal
not yet consolidated is logged and counted by ``dataset_info``) and stream in blocks; no
function but ``read_arrays`` and ``read_dataset`` holds a whole file in memory.
"""
import json
import logging
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from emtool.data.schema import (ATOM_FIELDS, BLOCK_CONFIGS, CONFIG_FIELDS, FORMAT_VERSION,
                                VERSION, Output, WriterLock, atomic_h5, block_ranges,
                                block_rows, canonical_json, check_index, config_record,
                                journal_path, journal_shards, open_dataset, parameters_json,
                                provenance_json, read_block, read_field, root_attrs,
                                stack_records, take_rows, to_atoms)
from emtool.errors import DatasetError

LOG = logging.getLogger(__name__)


def write_dataset(path, images, parameters=None, provenance=None):
    """Write ``images`` as a new dataset at ``path``, atomically (replaces an existing file).

    Parameters
    ----------
    path : str or Path
    images : ase.Atoms or iterable of ase.Atoms
        Stored: numbers, positions (Å), cell (rows = lattice vectors), pbc; energy (eV),
        forces (eV/Å), stress (eV/Å³, Voigt or 3x3) when ``atoms.calc.results`` holds them
        (never computed here); ``info["group"]`` (str, default ""), ``info["index"]`` (int,
        default: position in ``images``); every other ``info`` item as JSON. Not stored:
        momenta, masses, tags, charges, magnetic moments, constraints.
    parameters : mapping or dataclass, optional
        Parameters of the job that made the data (JSON); ``DatasetWriter`` compares them.
    provenance : list of dict, optional
        Records such as ``provenance_record(...)``, stored as given.

    Configurations are written in ascending ``index``. Raises ``DatasetError`` (file left as
    it was) on duplicate indices, invalid structures or labels, non-JSON info.
    """
    path = Path(path)
    images = [images] if isinstance(images, Atoms) else list(images)
    params = parameters_json(parameters, path)
    prov = provenance_json(provenance, path)
    for k, atoms in enumerate(images):
        if not isinstance(atoms, Atoms):
            raise DatasetError(f"{path}: image {k} is a {type(atoms).__name__}, not ase.Atoms")
    indices = np.array([check_index(k if a.info.get("index") is None else a.info["index"], path)
                        for k, a in enumerate(images)], dtype=np.int64)
    order = np.argsort(indices, kind="stable")
    repeated = indices[order][1:][np.diff(indices[order]) == 0]
    if len(repeated):
        raise DatasetError(f"{path}: duplicate configuration index {int(repeated[0])}")
    natoms = np.array([len(a) for a in images], dtype=np.int64)

    def fill(h5):
        out = Output(h5, len(images), int(natoms.sum()), params, prov)
        for rows in block_rows(natoms[order]):
            out.append(stack_records([config_record(images[i], int(indices[i]), path)
                                      for i in order[rows]]))

    with WriterLock(path):
        shards = journal_shards(path)
        if shards:
            raise DatasetError(f"{path}: {len(shards)} unconsolidated journal shards in "
                               f"{journal_path(path)}; finish the job that owns them "
                               f"(DatasetWriter) or delete the folder")
        atomic_h5(path, fill, f".{path.name}.tmp-")
    return path


def read_dataset(path, indices=None):
    """The configurations of ``path`` as a list of ``ase.Atoms``.

    ``indices``: the ``index`` keys to return, in that order (default: all, ascending).
    Labeled configurations carry a ``SinglePointCalculator`` with energy and, when stored,
    forces and stress; ``atoms.info`` holds ``index``, ``group`` and the stored info items.
    Configurations still in an unconsolidated journal are not included (see ``dataset_info``).
    """
    if indices is None:
        return list(iter_dataset(path))
    path = Path(path)
    wanted = np.asarray(indices)
    if wanted.ndim != 1 or (wanted.size and not np.issubdtype(wanted.dtype, np.integer)):
        raise DatasetError(f"{path}: indices must be a 1-d sequence of integers")
    wanted = wanted.astype(np.int64)
    if not len(wanted):
        return []
    _warn_journal(path)
    with open_dataset(path) as (h5, meta):
        rows = np.searchsorted(meta.index, wanted)
        found = (rows < meta.n) & (meta.index[np.minimum(rows, meta.n - 1)] == wanted) \
            if meta.n else np.zeros(len(wanted), bool)
        if not found.all():
            missing = wanted[~found]
            raise DatasetError(f"{path}: no configuration with index "
                               f"{', '.join(map(str, missing[:5]))}"
                               f"{' ...' if len(missing) > 5 else ''}")
        result = [None] * len(wanted)
        by_row = np.argsort(rows, kind="stable")
        sorted_rows = rows[by_row]
        starts = np.flatnonzero(np.r_[True, np.diff(sorted_rows // BLOCK_CONFIGS) != 0])
        for a, b in zip(starts, np.r_[starts[1:], len(sorted_rows)]):
            r0, r1 = sorted_rows[a], sorted_rows[b - 1] + 1
            block = take_rows(read_block(h5, meta, r0, r1), sorted_rows[a:b] - r0)
            for k, atoms in zip(by_row[a:b], to_atoms(block)):
                result[k] = atoms
    return result


def iter_dataset(path, batch=1024):
    """Yield the configurations of ``path`` as ``ase.Atoms`` (as ``read_dataset``), reading
    ``batch`` configurations at a time, so memory does not grow with the file."""
    path = Path(path)
    if batch < 1:
        raise DatasetError(f"{path}: batch must be >= 1, got {batch}")
    _warn_journal(path)
    with open_dataset(path) as (h5, meta):
        for r0 in range(0, meta.n, batch):
            yield from to_atoms(read_block(h5, meta, r0, min(meta.n, r0 + batch)))


def read_arrays(path, fields=None):
    """The raw arrays of ``path`` as a dict of NumPy arrays (the whole file in memory).

    ``fields``: names to read (default: all of ``CONFIG_FIELDS`` and ``ATOM_FIELDS``).
    ``group`` and ``info`` are object arrays of str (``info``: JSON text).
    """
    path = Path(path)
    fields = list(CONFIG_FIELDS) + list(ATOM_FIELDS) if fields is None else list(fields)
    unknown = [f for f in fields if f not in CONFIG_FIELDS and f not in ATOM_FIELDS]
    if unknown:
        raise DatasetError(f"{path}: unknown fields {unknown}; known: "
                           f"{', '.join(list(CONFIG_FIELDS) + list(ATOM_FIELDS))}")
    _warn_journal(path)
    with open_dataset(path) as (h5, meta):
        return {name: read_field(h5, name, 0,
                                 meta.n if name in CONFIG_FIELDS else meta.natoms_total)
                for name in fields}


def dataset_info(path):
    """Summary of ``path`` as a JSON-serializable dict (streams through the file).

    Keys: path, format_version, emtool_version, configs, atoms, labeled_configs (finite
    energy), configs_with_forces, configs_with_stress, groups {name: count}, natoms
    [min, max], periodic_configs (pbc all true), volume and volume_per_atom [min, max] Å³ of
    the periodic ones, energy_per_atom [min, max] eV of the labeled ones, elements (symbols,
    by atomic number), parameters, provenance, journal {path, shards, configs} (configurations
    waiting in the journal of an unfinished job, not counted above). Ranges are None when
    empty.
    """
    path = Path(path)
    groups, elements = Counter(), set()
    counts = dict(labeled=0, forces=0, stress=0, periodic=0)
    ranges = {key: [np.inf, -np.inf] for key in ("natoms", "volume", "volume_per_atom",
                                                 "energy_per_atom")}

    def widen(key, values):
        if len(values):
            ranges[key] = [min(ranges[key][0], values.min()), max(ranges[key][1], values.max())]

    with open_dataset(path) as (h5, meta):
        attrs = root_attrs(h5, path)
        for r0, r1 in block_ranges(meta):
            block = read_block(h5, meta, r0, r1, ("group", "energy", "stress", "pbc", "cell",
                                                  "numbers", "forces"))
            natoms = block["natoms"]
            groups.update(block["group"].tolist())
            elements.update(np.unique(block["numbers"]).tolist())
            energy = block["energy"]
            labeled = np.isfinite(energy)
            counts["labeled"] += int(labeled.sum())
            counts["stress"] += int(np.isfinite(block["stress"]).all(axis=1).sum())
            first = np.r_[0, np.cumsum(natoms)[:-1]]
            counts["forces"] += int(np.isfinite(block["forces"][first]).all(axis=1).sum())
            periodic = block["pbc"].all(axis=1)
            counts["periodic"] += int(periodic.sum())
            cell = block["cell"][periodic]
            volume = np.abs(np.einsum("ij,ij->i", cell[:, 0], np.cross(cell[:, 1], cell[:, 2])))
            widen("natoms", natoms)
            widen("volume", volume)
            widen("volume_per_atom", volume / natoms[periodic])
            widen("energy_per_atom", energy[labeled] / natoms[labeled])
        shards = journal_shards(path)
        waiting = set()
        for shard in shards:
            try:
                with open_dataset(shard) as (_, shard_meta):
                    waiting.update(shard_meta.index.tolist())
            except DatasetError:
                if shard.exists():
                    raise
                continue  # consolidated and deleted meanwhile by the running job
        waiting.difference_update(meta.index.tolist())
    return {
        "path": str(path), "format_version": FORMAT_VERSION,
        "emtool_version": attrs["emtool_version"],
        "configs": meta.n, "atoms": meta.natoms_total, "labeled_configs": counts["labeled"],
        "configs_with_forces": counts["forces"], "configs_with_stress": counts["stress"],
        "groups": dict(sorted(groups.items())),
        "natoms": _range(ranges["natoms"], int), "periodic_configs": counts["periodic"],
        "volume": _range(ranges["volume"], float),
        "volume_per_atom": _range(ranges["volume_per_atom"], float),
        "energy_per_atom": _range(ranges["energy_per_atom"], float),
        "elements": [chemical_symbols[z] for z in sorted(elements)],
        "parameters": attrs["parameters"], "provenance": attrs["provenance"],
        "journal": {"path": str(journal_path(path)), "shards": len(shards),
                    "configs": len(waiting)},
    }


def summary_lines(info, title):
    """Lines of text, after ``title``, of the counts, labels, volumes, energies, elements and
    groups in ``info`` (a ``dataset_info`` dict, or ``exchange.structures_info``'s)."""
    def span(values, fmt, unit=""):
        return "none" if values is None else f"{values[0]:{fmt}} to {values[1]:{fmt}}{unit}"

    lines = [title,
             f"configurations: {info['configs']} ({info['atoms']} atoms, natoms "
             f"{span(info['natoms'], 'd')})",
             f"labels: {info['labeled_configs']} with energy, {info['configs_with_forces']} with "
             f"forces, {info['configs_with_stress']} with stress",
             f"periodic: {info['periodic_configs']}, volume "
             f"{span(info['volume'], '.2f', ' Å^3')}, per atom "
             f"{span(info['volume_per_atom'], '.3f', ' Å^3')}",
             f"energy per atom: {span(info['energy_per_atom'], '.6g', ' eV')}",
             f"elements: {' '.join(info['elements']) or 'none'}",
             f"groups ({len(info['groups'])}):"]
    names = {name: name or "(none)" for name in info["groups"]}
    width = max(map(len, names.values()), default=0)
    return lines + [f"  {names[name]:<{width}}  {count}" for name, count in info["groups"].items()]


def format_info(info):
    """Human-readable text of a ``dataset_info`` dict (what ``emtool info`` prints)."""
    lines = summary_lines(info, f"{info['path']}: emtool dataset, format "
                                f"{info['format_version']}, written by emtool "
                                f"{info['emtool_version']}")
    lines.append(f"parameters: {canonical_json(info['parameters'])}")
    lines.append(f"provenance ({len(info['provenance'])} records):")
    lines += [f"  {r.get('time', '?')}  {r.get('action', '?')}"
              f"{'  (in ' + str(r['source']) + ')' if 'source' in r else ''}  emtool "
              f"{r.get('emtool_version', '?')}  {canonical_json(r.get('settings', {}))}"
              for r in info["provenance"]]
    journal = info["journal"]
    if journal["shards"]:
        lines.append(f"journal: {journal['configs']} configurations in {journal['shards']} shards "
                     f"not yet consolidated ({journal['path']}); resume the job to merge them")
    return "\n".join(lines)


def provenance_record(action, settings=None):
    """A provenance record: {"action", "time" (ISO 8601 UTC), "emtool_version", "settings"}."""
    return {"action": str(action),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "emtool_version": VERSION,
            "settings": json.loads(canonical_json(settings or {}))}


def _warn_journal(path):
    shards = journal_shards(path)
    if shards:
        LOG.warning("%s: %d journal shards not yet consolidated (%s) are not included",
                    path, len(shards), journal_path(path))


def _range(values, kind):
    return None if values[0] > values[1] else [kind(values[0]), kind(values[1])]
