"""The on-disk format of emtool's HDF5 datasets (schema: ``docs/dataset.md``, format_version 1).

One file holds n configurations with N atoms in total: per-configuration arrays under
``/configs`` (n rows, ascending unique ``index``) and ragged per-atom arrays under ``/atoms``
(N rows; configuration k owns rows ``offset[k] : offset[k] + natoms[k]``). Units are ASE's:
Å, eV, eV/Å, stress eV/Å³ in Voigt order (xx, yy, zz, yz, xz, xy) with ASE's sign; NaN marks
a missing label (energy, forces, stress).

Files are only ever written whole: a temporary file in the same folder, fsync, ``os.replace``.
Beside a dataset ``data.h5`` lie the lock ``.data.h5.lock`` of its one writer and the journal
folder ``data.h5.journal`` of shards (``emtool.data.journal``). In memory, configurations
travel as blocks: dicts of field arrays holding rows of consecutive configurations and of
their atoms, which this module validates, stacks, reads and writes for
``emtool.data.dataset`` and ``emtool.data.journal``.
"""
import dataclasses
import fcntl
import json
import os
import re
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from emtool.errors import DatasetError, ParameterError, StructureError
from emtool.files import atomic_write
from emtool.descriptors.neighbors import check_overlap
from emtool.structure import check_structure

#: emtool's version, recorded in every file written.
VERSION = version("emtool")

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
_CACHE = 16 << 20
_SHARD = re.compile(r"^(-?\d+)-(\d+)\.h5$")


# ---------------------------------------------------------------------------------------------
# reading

class _Meta:
    """Validated per-configuration keys of an open dataset."""

    def __init__(self, index, natoms, offset, natoms_total):
        self.index, self.natoms, self.offset = index, natoms, offset
        self.n, self.natoms_total = len(index), natoms_total


@contextmanager
def open_dataset(path):
    """``with open_dataset(path) as (h5, meta)``: open and validate a dataset read-only."""
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


def root_attrs(h5, path):
    """{"emtool_version": str, "parameters", "provenance"} of an open dataset (JSON decoded)."""
    return {"emtool_version": str(h5.attrs.get("emtool_version", "?")),
            "parameters": _load_json(h5.attrs.get("parameters"), "parameters", path),
            "provenance": _load_json(h5.attrs.get("provenance"), "provenance", path)}


def _load_json(text, name, path):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: root attribute {name} is not JSON text") from None


def read_field(h5, name, a, b):
    """Rows a:b of the field ``name`` (str fields as object arrays of str)."""
    ds = h5["configs" if name in CONFIG_FIELDS else "atoms"][name]
    return ds.asstr()[a:b] if h5py.check_string_dtype(ds.dtype) else ds[a:b]


def read_block(h5, meta, r0, r1, fields=None):
    """Rows r0:r1 as a block: dict of the config fields but offset (natoms always) and of
    the atom fields of their atoms; ``fields`` restricts the set."""
    names = [name for name in list(CONFIG_FIELDS) + list(ATOM_FIELDS)
             if name != "offset" and (fields is None or name in fields or name == "natoms")]
    a0 = int(meta.offset[r0]) if r1 > r0 else 0
    a1 = int(meta.offset[r1 - 1] + meta.natoms[r1 - 1]) if r1 > r0 else 0
    return {name: read_field(h5, name, *((r0, r1) if name in CONFIG_FIELDS else (a0, a1)))
            for name in names}


def block_ranges(meta):
    """(r0, r1) row ranges of at most BLOCK_ATOMS atoms / BLOCK_CONFIGS configurations."""
    for rows in block_rows(meta.natoms):
        if len(rows):
            yield int(rows[0]), int(rows[-1]) + 1


def block_rows(natoms):
    """Split range(len(natoms)) into consecutive pieces of bounded atom and config count."""
    ends = np.cumsum(natoms)
    start = 0
    while start < len(natoms):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + BLOCK_ATOMS, side="right"))
        stop = min(max(stop, start + 1), start + BLOCK_CONFIGS, len(natoms))
        yield np.arange(start, stop)
        start = stop


def to_atoms(block):
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


# ---------------------------------------------------------------------------------------------
# writing

def check_index(value, path):
    """``value`` as a configuration index (int that fits in int64), or DatasetError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DatasetError(f"{path}: configuration index must be an integer, got {value!r}")
    if not -2**63 <= int(value) < 2**63:
        raise DatasetError(f"{path}: configuration index {value} does not fit in int64")
    return int(value)


def config_record(atoms, index, path):
    """Validate one configuration; returns the tuple of its values in ``stack_records`` order."""
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
            canonical_json(value)
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: info[{key!r}] is a {type(value).__name__}, "
                               f"not JSON-serializable") from None
    return (index, len(numbers), cell, pbc, group, energy, stress, canonical_json(info),
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


def stack_records(records):
    """Block (dict of arrays) from ``config_record`` tuples."""
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


def take_rows(block, rows):
    """The configurations ``rows`` (any order, repeats allowed) of a block."""
    rows = np.asarray(rows, dtype=np.int64)
    natoms = block["natoms"]
    starts = np.r_[0, np.cumsum(natoms)[:-1]][rows]
    counts = natoms[rows]
    atom_rows = np.repeat(starts - np.r_[0, np.cumsum(counts)[:-1]], counts) + \
        np.arange(counts.sum())
    return {name: values[atom_rows] if name in ATOM_FIELDS else values[rows]
            for name, values in block.items()}


def concat_blocks(blocks):
    """One block from several (an empty one from none)."""
    if not blocks:
        return stack_records([])
    return {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}


class Output:
    """A new dataset in an open, empty HDF5 file, filled block by block in index order."""

    def __init__(self, h5, n, natoms_total, parameters, provenance):
        h5.attrs["format"] = FORMAT
        h5.attrs["format_version"] = np.int64(FORMAT_VERSION)
        h5.attrs["units"] = canonical_json(UNITS)
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


def atomic_h5(path, fill, prefix):
    """Create ``path`` atomically (``emtool.files.atomic_write``): ``fill(h5)`` on a temporary
    file named ``prefix...`` in the same folder."""
    def write(tmp):
        with h5py.File(tmp, "w", rdcc_nbytes=_CACHE) as h5:
            fill(h5)
    atomic_write(path, write, prefix)


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


def canonical_json(value):
    """Canonical JSON text: sorted keys, no spaces, UTF-8, NumPy scalars as Python ones."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def parameters_json(parameters, path):
    """Canonical JSON of job parameters (mapping with str keys, dataclass or None)."""
    if parameters is None:
        parameters = {}
    elif dataclasses.is_dataclass(parameters) and not isinstance(parameters, type):
        parameters = dataclasses.asdict(parameters)
    if not isinstance(parameters, dict) or not all(isinstance(k, str) for k in parameters):
        raise ParameterError(f"{path}: parameters must be a mapping with str keys (or a "
                             f"dataclass), got {type(parameters).__name__}")
    try:
        return canonical_json(parameters)
    except (TypeError, ValueError) as err:
        raise ParameterError(f"{path}: parameters are not JSON-serializable: {err}") from None


def provenance_json(provenance, path):
    """Canonical JSON of a list of provenance records (dicts with an "action" str)."""
    records = [] if provenance is None else provenance
    if not isinstance(records, (list, tuple)) or not all(
            isinstance(r, dict) and isinstance(r.get("action"), str) for r in records):
        raise DatasetError(f"{path}: provenance must be a list of dicts with an 'action' str")
    try:
        return canonical_json(list(records))
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{path}: provenance is not JSON-serializable: {err}") from None


# ---------------------------------------------------------------------------------------------
# the files beside a dataset: journal and lock

def journal_path(path):
    """The journal folder ``<path>.journal`` of a dataset."""
    path = Path(path)
    return path.with_name(path.name + ".journal")


def journal_shards(path):
    """Journal shard files of ``path``, sorted by first index."""
    journal = journal_path(path)
    if not journal.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in journal.iterdir() if (m := _SHARD.match(p.name))]
    return [p for _, p in sorted(found)]


class WriterLock:
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
