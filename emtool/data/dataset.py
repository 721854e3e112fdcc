"""HDF5 datasets of atomic configurations (schema: ``docs/dataset.md``, format_version 1).

One file holds n configurations with N atoms in total: per-configuration arrays under
``/configs`` (n rows, ascending unique ``index``) and ragged per-atom arrays under ``/atoms``
(N rows; configuration k owns rows ``offset[k] : offset[k] + natoms[k]``). Units are ASE's:
Å, eV, eV/Å, stress eV/Å³ in Voigt order (xx, yy, zz, yz, xz, xy) with ASE's sign; NaN marks
a missing label (energy, forces, stress).

Files are only ever written whole: a temporary file in the same folder, fsync, ``os.replace``.
Long jobs append through ``DatasetWriter``, which journals batches as small shard files and
merges them into the main file (``consolidate``), so that a SIGKILL at any moment leaves a
readable dataset and complete (or absent) shards, and a resumed job ends with the same
content as an uninterrupted one. Readers stream in blocks; no function but ``read_arrays``
and ``read_dataset`` holds a whole file in memory.
"""
import dataclasses
import fcntl
import json
import logging
import os
import re
import time
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from emtool.errors import DatasetError, ParameterError, StructureError
from emtool.files import atomic_write, fsync_path
from emtool.descriptors.neighbors import check_overlap
from emtool.structure import check_structure

#: emtool's version, recorded in every file written.
VERSION = version("emtool")

LOG = logging.getLogger(__name__)

FORMAT = "emtool-dataset"
FORMAT_VERSION = 1
UNITS = {"length": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3",
         "stress_convention": "ASE: Voigt order xx yy zz yz xz xy, sigma = (1/V) dE/d(strain), "
                              "negative under compression",
         "time": "fs"}

_STR = h5py.string_dtype("utf-8")
#: name: (dtype, shape of one row); the order is the order of the schema document.
CONFIG_FIELDS = {"index": (np.dtype(np.int64), ()), "natoms": (np.dtype(np.int64), ()),
                 "offset": (np.dtype(np.int64), ()), "cell": (np.dtype(np.float64), (3, 3)),
                 "pbc": (np.dtype(bool), (3,)), "group": (_STR, ()),
                 "energy": (np.dtype(np.float64), ()), "stress": (np.dtype(np.float64), (6,)),
                 "info": (_STR, ())}
ATOM_FIELDS = {"numbers": (np.dtype(np.int32), ()), "positions": (np.dtype(np.float64), (3,)),
               "forces": (np.dtype(np.float64), (3,))}
_LABELS = ("energy", "stress", "forces")

#: HDF5 chunk rows (configs / atoms). Uncompressed: see docs/dataset.md for the measurements.
CONFIG_CHUNK = 4096
ATOM_CHUNK = 32768
#: Streaming block: at most this many atoms (and configurations) in memory at once.
BLOCK_ATOMS = 1 << 19
BLOCK_CONFIGS = 1 << 16
#: Journal atoms merged per consolidation pass (held in memory).
JOURNAL_ATOMS = 1 << 20
_CACHE = 16 << 20
_SHARD = re.compile(r"^(-?\d+)-(\d+)\.h5$")




# ---------------------------------------------------------------------------------------------
# public API

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
    params = _parameters_json(parameters, path)
    prov = _provenance_json(provenance, path)
    for k, atoms in enumerate(images):
        if not isinstance(atoms, Atoms):
            raise DatasetError(f"{path}: image {k} is a {type(atoms).__name__}, not ase.Atoms")
    indices = np.array([_index(k if a.info.get("index") is None else a.info["index"], path)
                        for k, a in enumerate(images)], dtype=np.int64)
    order = np.argsort(indices, kind="stable")
    repeated = indices[order][1:][np.diff(indices[order]) == 0]
    if len(repeated):
        raise DatasetError(f"{path}: duplicate configuration index {int(repeated[0])}")
    natoms = np.array([len(a) for a in images], dtype=np.int64)

    def fill(h5):
        out = _Output(h5, len(images), int(natoms.sum()), params, prov)
        for rows in _blocks(natoms[order]):
            out.append(_stack([_record(images[i], int(indices[i]), path) for i in order[rows]]))

    with _Lock(path):
        shards = _shards(path)
        if shards:
            raise DatasetError(f"{path}: {len(shards)} unconsolidated journal shards in "
                               f"{journal_path(path)}; finish the job that owns them "
                               f"(DatasetWriter) or delete the folder")
        _atomic_h5(path, fill, f".{path.name}.tmp-")
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
    with _open(path) as (h5, meta):
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
            block = _take(_read_block(h5, meta, r0, r1), sorted_rows[a:b] - r0)
            for k, atoms in zip(by_row[a:b], _to_atoms(block)):
                result[k] = atoms
    return result


def iter_dataset(path, batch=1024):
    """Yield the configurations of ``path`` as ``ase.Atoms`` (as ``read_dataset``), reading
    ``batch`` configurations at a time, so memory does not grow with the file."""
    path = Path(path)
    if batch < 1:
        raise DatasetError(f"{path}: batch must be >= 1, got {batch}")
    _warn_journal(path)
    with _open(path) as (h5, meta):
        for r0 in range(0, meta.n, batch):
            yield from _to_atoms(_read_block(h5, meta, r0, min(meta.n, r0 + batch)))


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
    with _open(path) as (h5, meta):
        return {name: _read(h5, name, 0, meta.n if name in CONFIG_FIELDS else meta.natoms_total)
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

    with _open(path) as (h5, meta):
        attrs = _attrs(h5, path)
        for r0, r1 in _row_blocks(meta):
            block = _read_block(h5, meta, r0, r1, ("group", "energy", "stress", "pbc", "cell",
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
        shards = _shards(path)
        waiting = set()
        for shard in shards:
            try:
                with _open(shard) as (_, shard_meta):
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
    lines.append(f"parameters: {_dumps(info['parameters'])}")
    lines.append(f"provenance ({len(info['provenance'])} records):")
    lines += [f"  {r.get('time', '?')}  {r.get('action', '?')}"
              f"{'  (in ' + str(r['source']) + ')' if 'source' in r else ''}  emtool "
              f"{r.get('emtool_version', '?')}  {_dumps(r.get('settings', {}))}"
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
            "settings": json.loads(_dumps(settings or {}))}


def journal_path(path):
    """The journal folder ``<path>.journal`` of a dataset."""
    path = Path(path)
    return path.with_name(path.name + ".journal")


class DatasetWriter:
    """Crash-safe incremental writing of one dataset by one long job.

    ``DatasetWriter(path, parameters)`` locks ``path`` (one writer at a time, a second raises
    ``DatasetError``; the lock dies with the process), then

    - if ``path`` exists and was made with other ``parameters`` (compared as canonical JSON,
      key by key), raises ``ParameterError`` naming the keys and touches nothing;
    - if it does not exist, creates an empty dataset (atomically);
    - deletes temporary files left by a killed writer and consolidates a leftover journal.

    ``add(atoms)`` buffers one configuration (``atoms.info["index"]`` required, unique);
    every ``batch`` configurations, when the oldest buffered one waited ``commit_seconds``
    (slow labelers such as DFT), or on ``commit()``, the buffer becomes one journal shard
    ``<path>.journal/<first index>-<n>.h5``, itself a small dataset written atomically.
    ``consolidate()`` merges the main file and all shards into a new file in index order and
    replaces the main file (cost O(file size): the whole file is rewritten);
    ``consolidate_if_due()`` does it when ``max_shards`` shards or ``max_seconds`` have
    accumulated. ``finish(action, settings)`` commits, consolidates, appends a provenance
    record and releases the lock. A SIGKILL at any moment loses at most the buffer (at most
``batch`` configurations or ``commit_seconds`` of work).

    Use as a context manager: leaving the block commits the buffer and releases the lock.
    """

    def __init__(self, path, parameters, *, batch=256, max_shards=32, max_seconds=600.0,
                 commit_seconds=60.0):
        self.path = Path(path)
        self.journal = journal_path(self.path)
        if int(batch) < 1 or int(max_shards) < 1 or not (max_seconds > 0 and commit_seconds > 0):
            raise DatasetError(f"{self.path}: need batch >= 1, max_shards >= 1, max_seconds > 0, "
                               f"commit_seconds > 0; got {batch}, {max_shards}, {max_seconds}, "
                               f"{commit_seconds}")
        self.batch, self.max_shards, self.max_seconds = int(batch), int(max_shards), max_seconds
        self.commit_seconds = commit_seconds
        self._parameters = _parameters_json(parameters, self.path)
        self._lock = _Lock(self.path).__enter__()
        try:
            self._start()
        except BaseException:
            self._lock.__exit__()
            raise

    def _start(self):
        shards = _shards(self.path)
        self._done, self._done_view = set(), None
        for source in ([self.path] if self.path.exists() else []) + shards:
            with _open(source) as (h5, meta):
                _check_parameters(source, _attrs(h5, source)["parameters"], self._parameters)
                self._done.update(meta.index.tolist())
        _remove_temporaries(self.path)
        if not self.path.exists():
            _atomic_h5(self.path, lambda h5: _Output(h5, 0, 0, self._parameters, "[]"),
                       f".{self.path.name}.tmp-")
        self._buffer = []
        self._buffer_since = None
        self._changed = False
        self._shards = len(shards)
        self._last = time.monotonic()
        if shards:
            self.consolidate()

    def done_indices(self):
        """frozenset of the indices already accepted: in the file, the journal or the buffer
        (cached until the next ``add``)."""
        if self._done_view is None:
            self._done_view = frozenset(self._done)
        return self._done_view

    def add(self, atoms):
        """Buffer one configuration; commits when the buffer holds ``batch`` of them or its
        oldest configuration waited ``commit_seconds``."""
        self._check_open()
        if not isinstance(atoms, Atoms):
            raise DatasetError(f"{self.path}: expected ase.Atoms, got {type(atoms).__name__}")
        if atoms.info.get("index") is None:
            raise DatasetError(f"{self.path}: DatasetWriter.add needs atoms.info['index']")
        index = _index(atoms.info["index"], self.path)
        if index in self._done:
            raise DatasetError(f"{self.path}: configuration index {index} is already in the "
                               f"dataset, journal or buffer")
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append(_record(atoms, index, self.path))
        self._done.add(index)
        self._done_view = None
        if (len(self._buffer) >= self.batch
                or time.monotonic() - self._buffer_since >= self.commit_seconds):
            self.commit()

    def commit(self):
        """Write the buffer as one journal shard (atomic, fsynced); returns its path or None."""
        self._check_open()
        if not self._buffer:
            return None
        block = _stack(sorted(self._buffer, key=lambda rec: rec[0]))
        shard = self.journal / f"{block['index'][0]}-{len(block['index'])}.h5"
        if shard.exists():
            raise DatasetError(f"{shard}: journal shard exists already")
        if not self.journal.is_dir():
            self.journal.mkdir()
            fsync_path(self.path.parent)

        def fill(h5):
            _Output(h5, len(block["index"]), len(block["numbers"]), self._parameters, "[]") \
                .append(block)
        _atomic_h5(shard, fill, ".tmp-")
        self._buffer = []
        self._changed = True
        self._shards += 1
        return shard

    def consolidate_if_due(self):
        """Consolidate when the journal holds ``max_shards`` shards, or some shards and
        ``max_seconds`` passed since the last consolidation. Returns whether it did."""
        due = self._shards >= self.max_shards or (
            self._shards and time.monotonic() - self._last >= self.max_seconds)
        if due:
            self.consolidate()
        return bool(due)

    def consolidate(self, record=None):
        """Merge the main file and all journal shards into a new main file (ascending index;
        an index present in the main file is not taken again from a shard), replace the main
        file atomically, then delete the shards. Appends ``record`` to the provenance when
        given. Cost O(file size) per pass; one pass per ``JOURNAL_ATOMS`` atoms of journal
        (held in memory), main file streamed in blocks of ``BLOCK_ATOMS``."""
        self._check_open()
        shards = _shards(self.path)
        if shards or record is not None:
            start = 0
            while True:
                blocks = []
                while start < len(shards) and \
                        sum(len(b["numbers"]) for b in blocks) < JOURNAL_ATOMS:
                    with _open(shards[start]) as (h5, meta):
                        _check_parameters(shards[start], _attrs(h5, shards[start])["parameters"],
                                          self._parameters)
                        blocks.append(_read_block(h5, meta, 0, meta.n))
                    start += 1
                merged = shards[start - len(blocks):start]
                last = start == len(shards)
                _merge(self.path, _concat(blocks), record if last else None)
                for shard in merged:
                    shard.unlink()
                if last:
                    break
            if self.journal.is_dir() and not any(self.journal.iterdir()):
                self.journal.rmdir()
            fsync_path(self.path.parent)
            self._changed = self._changed or bool(shards)
        self._shards = 0
        self._last = time.monotonic()

    def finish(self, action, settings=None):
        """End of the job: commit, consolidate, append the provenance record
        ``provenance_record(action, settings)``, release the lock. The record is skipped when
        this writer changed nothing and the file's last record has the same action and
        settings (a finished job run again)."""
        self.commit()
        record = provenance_record(action, settings)
        with _open(self.path) as (h5, _):
            history = _attrs(h5, self.path)["provenance"]
        repeat = bool(history) and all(history[-1].get(key) == record[key]
                                       for key in ("action", "settings"))
        self.consolidate(None if repeat and not self._changed and not _shards(self.path)
                         else record)
        self.close()

    def close(self):
        """Commit the buffer and release the lock (no consolidation)."""
        if self._lock is None:
            return
        try:
            self.commit()
        finally:
            self._lock.__exit__()
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_open(self):
        if self._lock is None:
            raise DatasetError(f"{self.path}: DatasetWriter is closed")


# ---------------------------------------------------------------------------------------------
# reading

class _Meta:
    """Validated per-configuration keys of an open dataset."""

    def __init__(self, index, natoms, offset, natoms_total):
        self.index, self.natoms, self.offset = index, natoms, offset
        self.n, self.natoms_total = len(index), natoms_total


@contextmanager
def _open(path):
    """``with _open(path) as (h5, meta)``: open and validate a dataset read-only."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    try:
        h5 = h5py.File(path, "r", rdcc_nbytes=_CACHE)
    except OSError as err:
        raise DatasetError(f"{path}: not an emtool dataset (not a readable HDF5 file: "
                           f"{str(err).splitlines()[0]})") from None
    with h5:
        yield h5, _validate(h5, path)


def _validate(h5, path):
    fmt = h5.attrs.get("format")
    if fmt != FORMAT:
        raise DatasetError(f"{path}: not an emtool dataset (root attribute format = {fmt!r}, "
                           f"expected {FORMAT!r})")
    version = h5.attrs.get("format_version")
    version = int(version) if isinstance(version, (int, np.integer)) else version
    if version != FORMAT_VERSION:
        newer = " (written by a newer emtool; upgrade)" if isinstance(version, int) and \
            version > FORMAT_VERSION else ""
        raise DatasetError(f"{path}: unsupported format_version {version!r}{newer}; this emtool "
                           f"reads version {FORMAT_VERSION}")
    units = _load_json(h5.attrs.get("units"), "units", path)
    if not isinstance(units, dict) or any(units.get(k) != v for k, v in UNITS.items()):
        raise DatasetError(f"{path}: units {units!r} differ from emtool's {UNITS!r}")
    rows = {}
    for group, fields in (("configs", CONFIG_FIELDS), ("atoms", ATOM_FIELDS)):
        for name, (dtype, shape) in fields.items():
            ds = h5.get(f"{group}/{name}")
            if not isinstance(ds, h5py.Dataset):
                raise DatasetError(f"{path}: missing dataset /{group}/{name}")
            string = h5py.check_string_dtype(ds.dtype) is not None
            if ds.ndim == 0 or ds.shape[1:] != shape or (
                    not string if dtype is _STR else string or ds.dtype != dtype):
                expected = "(n" + "".join(f", {s}" for s in shape) + ") " + (
                    "str" if dtype is _STR else str(dtype))
                raise DatasetError(f"{path}: /{group}/{name} has shape {ds.shape} dtype "
                                   f"{ds.dtype}, expected {expected}")
            rows.setdefault(group, set()).add(ds.shape[0])
    if len(rows["configs"]) != 1 or len(rows["atoms"]) != 1:
        raise DatasetError(f"{path}: datasets of one group differ in length: {rows}")
    index, natoms, offset = (h5["configs"][name][:] for name in ("index", "natoms", "offset"))
    total = rows["atoms"].pop()
    if (natoms < 1).any() or (len(natoms) and (offset[0] != 0 or offset[-1] + natoms[-1] != total
                                               or (offset[1:] != offset[:-1] + natoms[:-1]).any())):
        raise DatasetError(f"{path}: /configs/natoms and offset are inconsistent (natoms must be "
                           f">= 1 and the offsets must tile the {total} atom rows)")
    if (np.diff(index) <= 0).any():
        raise DatasetError(f"{path}: /configs/index is not strictly ascending")
    return _Meta(index, natoms, offset, total)


def _attrs(h5, path):
    return {"emtool_version": str(h5.attrs.get("emtool_version", "?")),
            "parameters": _load_json(h5.attrs.get("parameters"), "parameters", path),
            "provenance": _load_json(h5.attrs.get("provenance"), "provenance", path)}


def _load_json(text, name, path):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: root attribute {name} is not JSON text") from None


def _read(h5, name, a, b):
    ds = h5["configs" if name in CONFIG_FIELDS else "atoms"][name]
    return ds.asstr()[a:b] if h5py.check_string_dtype(ds.dtype) else ds[a:b]


def _read_block(h5, meta, r0, r1, fields=None):
    """Rows r0:r1 as a block: dict of the config fields but offset (natoms always) and of
    the atom fields of their atoms; ``fields`` restricts the set."""
    names = [name for name in list(CONFIG_FIELDS) + list(ATOM_FIELDS)
             if name != "offset" and (fields is None or name in fields or name == "natoms")]
    a0 = int(meta.offset[r0]) if r1 > r0 else 0
    a1 = int(meta.offset[r1 - 1] + meta.natoms[r1 - 1]) if r1 > r0 else 0
    return {name: _read(h5, name, *((r0, r1) if name in CONFIG_FIELDS else (a0, a1)))
            for name in names}


def _row_blocks(meta):
    """(r0, r1) row ranges of at most BLOCK_ATOMS atoms / BLOCK_CONFIGS configurations."""
    for rows in _blocks(meta.natoms):
        if len(rows):
            yield int(rows[0]), int(rows[-1]) + 1


def _blocks(natoms):
    """Split range(len(natoms)) into consecutive pieces of bounded atom and config count."""
    ends = np.cumsum(natoms)
    start = 0
    while start < len(natoms):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + BLOCK_ATOMS, side="right"))
        stop = min(max(stop, start + 1), start + BLOCK_CONFIGS, len(natoms))
        yield np.arange(start, stop)
        start = stop


def _to_atoms(block):
    images = []
    offset = 0
    for k in range(len(block["index"])):
        n = int(block["natoms"][k])
        atoms = Atoms(numbers=block["numbers"][offset:offset + n],
                      positions=block["positions"][offset:offset + n],
                      cell=block["cell"][k], pbc=block["pbc"][k])
        labels = {}
        if np.isfinite(block["energy"][k]):
            labels["energy"] = float(block["energy"][k])
        forces = block["forces"][offset:offset + n]
        if np.isfinite(forces).all():
            labels["forces"] = forces
        if np.isfinite(block["stress"][k]).all():
            labels["stress"] = block["stress"][k]
        if labels:
            atoms.calc = SinglePointCalculator(atoms, **labels)
        atoms.info.update(json.loads(block["info"][k]))
        atoms.info.update(index=int(block["index"][k]), group=str(block["group"][k]))
        images.append(atoms)
        offset += n
    return images


def _warn_journal(path):
    shards = _shards(path)
    if shards:
        LOG.warning("%s: %d journal shards not yet consolidated (%s) are not included",
                    path, len(shards), journal_path(path))


# ---------------------------------------------------------------------------------------------
# writing

def _index(value, path):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DatasetError(f"{path}: configuration index must be an integer, got {value!r}")
    if not -2**63 <= int(value) < 2**63:
        raise DatasetError(f"{path}: configuration index {value} does not fit in int64")
    return int(value)


def _record(atoms, index, path):
    """Validate one configuration; returns the tuple of its values in ``_stack`` order."""
    where = f"{path}: configuration {index}"
    try:
        positions, cell, pbc = check_structure(atoms.positions, atoms.cell.array, atoms.pbc)
        check_overlap(positions, cell, pbc)
    except StructureError as err:
        raise DatasetError(f"{where}: {err}") from None
    numbers = atoms.numbers
    if len(numbers) == 0:
        raise DatasetError(f"{where}: has no atoms")
    if numbers.min() < 0 or numbers.max() >= len(chemical_symbols):
        raise DatasetError(f"{where}: atomic numbers must be in 0..{len(chemical_symbols) - 1}")
    group = atoms.info.get("group", "")
    if not isinstance(group, str):
        raise DatasetError(f"{where}: info['group'] must be a str, got {group!r}")
    energy, forces, stress = _labels(atoms, where)
    info = {key: value for key, value in atoms.info.items() if key not in ("group", "index")}
    for key, value in info.items():
        if not isinstance(key, str):
            raise DatasetError(f"{where}: info key {key!r} is not a str")
        try:
            _dumps(value)
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: info[{key!r}] is a {type(value).__name__}, "
                               f"not JSON-serializable") from None
    return (index, len(numbers), cell, pbc, group, energy, stress, _dumps(info),
            numbers, positions, forces)


def _labels(atoms, where):
    """energy (float, NaN if absent), forces (N, 3) and stress (6,) (NaN if absent)."""
    calc = atoms.calc
    results = getattr(calc, "results", None) or {}
    n = len(atoms)
    energy, forces, stress = np.nan, np.full((n, 3), np.nan), np.full(6, np.nan)
    if not any(key in results for key in _LABELS):
        return energy, forces, stress
    reference = getattr(calc, "atoms", None)
    if reference is not None:
        changed = [name for name, a, b in (
            ("numbers", reference.numbers, atoms.numbers),
            ("positions", reference.positions, atoms.positions),
            ("cell", reference.cell.array, atoms.cell.array), ("pbc", reference.pbc, atoms.pbc))
            if not np.array_equal(a, b)]
        if changed:
            raise DatasetError(f"{where}: calculator results are stale (atoms changed since: "
                               f"{', '.join(changed)})")
    checks = (("energy", (), None), ("forces", (n, 3), None), ("stress", (6,), (3, 3)))
    values = {}
    for key, shape, alternative in checks:
        if results.get(key) is None:
            continue
        value = np.asarray(results[key])
        if value.dtype.kind not in "iuf" or value.shape not in (shape, alternative):
            raise DatasetError(f"{where}: {key} must be real with shape {shape}"
                               f"{f' or {alternative}' if alternative else ''}, "
                               f"got {value.dtype} {value.shape}")
        value = value.astype(np.float64)
        if not np.isfinite(value).all():
            raise DatasetError(f"{where}: {key} contains non-finite values")
        values[key] = full_3x3_to_voigt_6_stress(value) if key == "stress" and \
            value.shape == (3, 3) else value
    return (float(values.get("energy", energy)), values.get("forces", forces),
            values.get("stress", stress))


def _stack(records):
    """Block (dict of arrays) from ``_record`` tuples."""
    columns = list(zip(*records)) if records else [()] * 11
    names = ("index", "natoms", "cell", "pbc", "group", "energy", "stress", "info",
             "numbers", "positions", "forces")
    block = {}
    for name, values in zip(names, columns):
        dtype, shape = {**CONFIG_FIELDS, **ATOM_FIELDS}[name]
        if dtype is _STR:
            block[name] = np.array(values, dtype=object).reshape(len(values))
        elif name in ATOM_FIELDS:
            block[name] = np.concatenate(values).astype(dtype) if values else \
                np.empty((0,) + shape, dtype)
        else:
            block[name] = np.array(values, dtype=dtype).reshape((len(values),) + shape)
    return block


def _take(block, rows):
    """The configurations ``rows`` (any order, repeats allowed) of a block."""
    rows = np.asarray(rows, dtype=np.int64)
    natoms = block["natoms"]
    starts = np.r_[0, np.cumsum(natoms)[:-1]][rows]
    counts = natoms[rows]
    atom_rows = np.repeat(starts - np.r_[0, np.cumsum(counts)[:-1]], counts) + \
        np.arange(counts.sum())
    return {name: values[atom_rows] if name in ATOM_FIELDS else values[rows]
            for name, values in block.items()}


class _Output:
    """A new dataset in an open, empty HDF5 file, filled block by block in index order."""

    def __init__(self, h5, n, natoms_total, parameters, provenance):
        h5.attrs["format"] = FORMAT
        h5.attrs["format_version"] = np.int64(FORMAT_VERSION)
        h5.attrs["units"] = _dumps(UNITS)
        h5.attrs["emtool_version"] = VERSION
        h5.attrs["parameters"] = parameters
        h5.attrs["provenance"] = provenance
        self.data = {}
        for group, fields, rows, chunk in (("configs", CONFIG_FIELDS, n, CONFIG_CHUNK),
                                           ("atoms", ATOM_FIELDS, natoms_total, ATOM_CHUNK)):
            h5grp = h5.create_group(group)
            for name, (dtype, shape) in fields.items():
                self.data[name] = h5grp.create_dataset(
                    name, shape=(rows,) + shape, maxshape=(None,) + shape, dtype=dtype,
                    chunks=(max(1, min(chunk, rows)),) + shape, track_times=False,
                    fillvalue=np.nan if name in _LABELS else None)
        self.row, self.atom = 0, 0

    def append(self, block):
        n, m = len(block["index"]), len(block["numbers"])
        offset = self.atom + np.r_[0, np.cumsum(block["natoms"])[:-1]].astype(np.int64)
        for name, ds in self.data.items():
            values = offset if name == "offset" else block[name]
            if name in _LABELS and np.isnan(values).all():
                continue  # chunks never written take no space and read as the fill value NaN
            if len(values):
                if name in ATOM_FIELDS:
                    ds[self.atom:self.atom + m] = values
                else:
                    ds[self.row:self.row + n] = values
        self.row += n
        self.atom += m


def _merge(path, journal, record):
    """Rewrite ``path`` with its configurations and those of the in-memory block ``journal``
    whose index it lacks (first occurrence wins), in ascending index order."""
    with _open(path) as (h5, meta):
        attrs = _attrs(h5, path)
        keys = np.r_[meta.index, journal["index"]]
        natoms = np.r_[meta.natoms, journal["natoms"]]
        n_main = meta.n
    order = np.argsort(keys, kind="stable")
    order = order[np.r_[True, np.diff(keys[order]) != 0]] if len(order) else order
    provenance = attrs["provenance"] + ([record] if record is not None else [])

    def fill(out_h5):
        out = _Output(out_h5, len(order), int(natoms[order].sum()), _dumps(attrs["parameters"]),
                      _dumps(provenance))
        with _open(path) as (h5, meta):
            for piece in _blocks(natoms[order]):
                picked = order[piece]
                mine = picked[picked < n_main]
                parts = [_take(journal, picked[picked >= n_main] - n_main)]
                if len(mine):
                    parts.append(_take(_read_block(h5, meta, mine[0], mine[-1] + 1),
                                       mine - mine[0]))
                block = _concat(parts)
                out.append(_take(block, np.argsort(block["index"], kind="stable")))

    _atomic_h5(path, fill, f".{path.name}.tmp-")


def _concat(blocks):
    """One block from several (an empty one from none)."""
    if not blocks:
        return _stack([])
    return {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}


def _atomic_h5(path, fill, prefix):
    """Create ``path`` atomically (``emtool.files.atomic_write``): ``fill(h5)`` on a temporary
    file named ``prefix...`` in the same folder."""
    def write(tmp):
        with h5py.File(tmp, "w", rdcc_nbytes=_CACHE) as h5:
            fill(h5)
    atomic_write(path, write, prefix)


def _shards(path):
    """Journal shard files of ``path``, sorted by first index."""
    journal = journal_path(path)
    if not journal.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in journal.iterdir() if (m := _SHARD.match(p.name))]
    return [p for _, p in sorted(found)]


def _remove_temporaries(path):
    """Delete the temporary files a killed writer of ``path`` left (caller holds the lock)."""
    leftovers = list(path.parent.glob(f".{path.name}.tmp-*.h5"))
    if journal_path(path).is_dir():
        leftovers += list(journal_path(path).glob(".tmp-*.h5"))
    for tmp in leftovers:
        LOG.info("removing %s, left by an interrupted writer", tmp)
        tmp.unlink()


class _Lock:
    """Exclusive ``flock`` on ``.<name>.lock`` next to a dataset, for the writers of one
    process at a time. The kernel releases it when the process dies (no stale locks)."""

    def __init__(self, path):
        self.path = Path(path)
        self.file = self.path.with_name(f".{self.path.name}.lock")
        self.fd = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DatasetError(f"{self.path}: in use by another writer "
                                   f"(lock {self.file})") from None
            try:
                current = os.stat(self.file).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                self.fd = fd
                return self
            os.close(fd)  # the previous holder removed that lock file: take the new one

    def __exit__(self, *exc):
        os.unlink(self.file)
        os.close(self.fd)
        self.fd = None


# ---------------------------------------------------------------------------------------------
# JSON attributes

def _json_default(value):
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _dumps(value):
    """Canonical JSON text: sorted keys, no spaces, UTF-8, NumPy scalars as Python ones."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def _parameters_json(parameters, path):
    if parameters is None:
        parameters = {}
    elif dataclasses.is_dataclass(parameters) and not isinstance(parameters, type):
        parameters = dataclasses.asdict(parameters)
    if not isinstance(parameters, dict) or not all(isinstance(k, str) for k in parameters):
        raise ParameterError(f"{path}: parameters must be a mapping with str keys (or a "
                             f"dataclass), got {type(parameters).__name__}")
    try:
        return _dumps(parameters)
    except (TypeError, ValueError) as err:
        raise ParameterError(f"{path}: parameters are not JSON-serializable: {err}") from None


def _provenance_json(provenance, path):
    records = [] if provenance is None else provenance
    if not isinstance(records, (list, tuple)) or not all(
            isinstance(r, dict) and isinstance(r.get("action"), str) for r in records):
        raise DatasetError(f"{path}: provenance must be a list of dicts with an 'action' str")
    try:
        return _dumps(list(records))
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{path}: provenance is not JSON-serializable: {err}") from None


def _check_parameters(path, stored, given_json):
    """Raise ParameterError naming the keys where ``stored`` differs from ``given_json``."""
    given = json.loads(given_json)
    if not isinstance(stored, dict):
        stored = {}
    keys = [k for k in sorted(set(stored) | set(given))
            if (k in stored) != (k in given) or _dumps(stored[k]) != _dumps(given[k])]
    if keys:
        def show(values, key):
            text = _dumps(values[key]) if key in values else "(absent)"
            return text if len(text) <= 40 else text[:37] + "..."
        diff = "; ".join(f"{k}: file {show(stored, k)}, given {show(given, k)}" for k in keys)
        raise ParameterError(f"{path} was made with other parameters ({diff}); use the same "
                             f"parameters or another file")


def _range(values, kind):
    return None if values[0] > values[1] else [kind(values[0]), kind(values[1])]
