"""Crash-safe, resumable writing of one dataset by one long job (``DatasetWriter``).

The writer journals batches as small shard files and merges them into the main file
(``consolidate``), so that a SIGKILL at any moment leaves a readable dataset and complete (or
absent) shards, and a resumed job ends with the same content as an uninterrupted one. The
file format, shards included, is ``emtool.data.schema``'s.
"""
import json
import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from emtool.data.dataset import provenance_record
from emtool.data.schema import (Output, WriterLock, atomic_h5, block_rows, canonical_json,
                                check_index, concat_blocks, config_record, journal_path,
                                journal_shards, open_dataset, parameters_json, read_block,
                                root_attrs, stack_records, take_rows)
from emtool.errors import DatasetError, ParameterError
from emtool.files import fsync_path

LOG = logging.getLogger(__name__)

#: Journal atoms merged per consolidation pass (held in memory).
JOURNAL_ATOMS = 1 << 20


class DatasetWriter:
    """Crash-safe incremental writing of one dataset by one long job.

    ``DatasetWriter(path, parameters)`` locks ``path`` (one writer at a time, a second raises
    ``DatasetError``; the lock dies with the process), then

    - if ``path`` exists and was made with other ``parameters`` (compared as canonical JSON,
      key by key), raises ``ParameterError`` naming the keys and touches nothing;
    - if it does not exist, creates an empty dataset (atomically);
    - deletes temporary files left by a killed writer and consolidates a leftover journal.

    ``add(atoms)`` buffers one configuration (``atoms.info["index"]`` required, unique);
    every ``batch`` configurations, when ``commit_seconds`` have passed since the last commit
    or the start (so a slow labeler such as DFT commits every configuration as it comes), or
    on ``commit()``, the buffer becomes one journal shard
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
        self._parameters = parameters_json(parameters, self.path)
        self._lock = WriterLock(self.path).__enter__()
        try:
            self._start()
        except BaseException:
            self._lock.__exit__()
            raise

    def _start(self):
        shards = journal_shards(self.path)
        self._done, self._done_view = set(), None
        for source in ([self.path] if self.path.exists() else []) + shards:
            with open_dataset(source) as (h5, meta):
                _check_parameters(source, root_attrs(h5, source)["parameters"], self._parameters)
                self._done.update(meta.index.tolist())
        _remove_temporaries(self.path)
        if not self.path.exists():
            atomic_h5(self.path, lambda h5: Output(h5, 0, 0, self._parameters, "[]"),
                      f".{self.path.name}.tmp-")
        self._buffer = []
        self._committed = time.monotonic()     # the work since then is in the buffer
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
        """Buffer one configuration; commits when the buffer holds ``batch`` of them or
        ``commit_seconds`` have passed since the last commit (the work the buffer holds)."""
        self._check_open()
        if not isinstance(atoms, Atoms):
            raise DatasetError(f"{self.path}: expected ase.Atoms, got {type(atoms).__name__}")
        if atoms.info.get("index") is None:
            raise DatasetError(f"{self.path}: DatasetWriter.add needs atoms.info['index']")
        index = check_index(atoms.info["index"], self.path)
        if index in self._done:
            raise DatasetError(f"{self.path}: configuration index {index} is already in the "
                               f"dataset, journal or buffer")
        self._buffer.append(config_record(atoms, index, self.path))
        self._done.add(index)
        self._done_view = None
        if (len(self._buffer) >= self.batch
                or time.monotonic() - self._committed >= self.commit_seconds):
            self.commit()

    def commit(self):
        """Write the buffer as one journal shard (atomic, fsynced); returns its path or None."""
        self._check_open()
        if not self._buffer:
            return None
        block = stack_records(sorted(self._buffer, key=lambda rec: rec[0]))
        shard = self.journal / f"{block['index'][0]}-{len(block['index'])}.h5"
        if shard.exists():
            raise DatasetError(f"{shard}: journal shard exists already")
        if not self.journal.is_dir():
            self.journal.mkdir()
            fsync_path(self.path.parent)

        def fill(h5):
            Output(h5, len(block["index"]), len(block["numbers"]), self._parameters, "[]") \
                .append(block)
        atomic_h5(shard, fill, ".tmp-")
        self._buffer = []
        self._committed = time.monotonic()
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
        shards = journal_shards(self.path)
        if shards or record is not None:
            start = 0
            while True:
                blocks = []
                while start < len(shards) and \
                        sum(len(b["numbers"]) for b in blocks) < JOURNAL_ATOMS:
                    with open_dataset(shards[start]) as (h5, meta):
                        _check_parameters(shards[start],
                                          root_attrs(h5, shards[start])["parameters"],
                                          self._parameters)
                        blocks.append(read_block(h5, meta, 0, meta.n))
                    start += 1
                merged = shards[start - len(blocks):start]
                last = start == len(shards)
                _merge(self.path, concat_blocks(blocks), record if last else None)
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
        with open_dataset(self.path) as (h5, _):
            history = root_attrs(h5, self.path)["provenance"]
        repeat = bool(history) and all(history[-1].get(key) == record[key]
                                       for key in ("action", "settings"))
        self.consolidate(None if repeat and not self._changed and not journal_shards(self.path)
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


def _merge(path, journal, record):
    """Rewrite ``path`` with its configurations and those of the in-memory block ``journal``
    whose index it lacks (first occurrence wins), in ascending index order."""
    with open_dataset(path) as (h5, meta):
        attrs = root_attrs(h5, path)
        keys = np.r_[meta.index, journal["index"]]
        natoms = np.r_[meta.natoms, journal["natoms"]]
        n_main = meta.n
    order = np.argsort(keys, kind="stable")
    order = order[np.r_[True, np.diff(keys[order]) != 0]] if len(order) else order
    provenance = attrs["provenance"] + ([record] if record is not None else [])

    def fill(out_h5):
        out = Output(out_h5, len(order), int(natoms[order].sum()),
                     canonical_json(attrs["parameters"]), canonical_json(provenance))
        with open_dataset(path) as (h5, meta):
            for piece in block_rows(natoms[order]):
                picked = order[piece]
                mine = picked[picked < n_main]
                parts = [take_rows(journal, picked[picked >= n_main] - n_main)]
                if len(mine):
                    parts.append(take_rows(read_block(h5, meta, mine[0], mine[-1] + 1),
                                           mine - mine[0]))
                block = concat_blocks(parts)
                out.append(take_rows(block, np.argsort(block["index"], kind="stable")))

    atomic_h5(path, fill, f".{path.name}.tmp-")


def _check_parameters(path, stored, given_json):
    """Raise ParameterError naming the keys where ``stored`` differs from ``given_json``."""
    given = json.loads(given_json)
    if not isinstance(stored, dict):
        stored = {}
    keys = [k for k in sorted(set(stored) | set(given))
            if (k in stored) != (k in given)
            or canonical_json(stored[k]) != canonical_json(given[k])]
    if keys:
        def show(values, key):
            text = canonical_json(values[key]) if key in values else "(absent)"
            return text if len(text) <= 40 else text[:37] + "..."
        diff = "; ".join(f"{k}: file {show(stored, k)}, given {show(given, k)}" for k in keys)
        raise ParameterError(f"{path} was made with other parameters ({diff}); use the same "
                             f"parameters or another file")


def _remove_temporaries(path):
    """Delete the temporary files a killed writer of ``path`` left (caller holds the lock)."""
    leftovers = list(path.parent.glob(f".{path.name}.tmp-*.h5"))
    if journal_path(path).is_dir():
        leftovers += list(journal_path(path).glob(".tmp-*.h5"))
    for tmp in leftovers:
        LOG.info("removing %s, left by an interrupted writer", tmp)
        tmp.unlink()
