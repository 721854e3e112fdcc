"""Training sets in and out of emtool datasets: FitSNAP JSON, extended XYZ, anything ASE reads.

Mappings, units and sign conventions: ``docs/exchange.md``. In short, configurations become
ASE ``Atoms`` with a ``SinglePointCalculator`` (energy eV, forces eV/Å, stress eV/Å³ in ASE's
Voigt order and sign) and ``atoms.info`` (``group``, ``index``, metadata), which is what
``emtool.data.dataset.write_dataset`` stores. FitSNAP stores the pressure tensor in bar (positive
under compression): ASE stress = −(FitSNAP stress) · ``ase.units.bar``.

extxyz files may carry the labels under ASE's names (``energy``, ``forces``, ``stress``, the
group in ``group``) or MACE's (``REF_energy``, ``REF_forces``, ``REF_stress``, ``config_type``):
``KEYS`` is the one table of these names; units and signs are the same in both.

Round trips are exact to the bit: FitSNAP JSON → dataset → FitSNAP JSON gives the same file
tree and the same parsed values, extxyz → dataset → extxyz the same arrays (floats are written
with Python's shortest round-trip ``repr``). Readers are strict: unknown unit strings raise
``ParameterError``; malformed files, missing labels, wrong shapes, non-finite values and
foreign elements raise ``ExchangeError`` naming the file and configuration. Writers create a
temporary file (or folder) next to the destination and rename it into place, so an error never
destroys what was there.
"""
import json
import logging
import os
import re
import secrets
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers, chemical_symbols
from ase.io.extxyz import (key_val_dict_to_str, key_val_str_to_dict, per_atom_properties,
                           per_config_properties)
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from emtool.data.dataset import provenance_record, read_dataset, summary_lines, write_dataset
from emtool.errors import DatasetError, ParameterError, StructureError
from emtool.files import atomic_write, fsync_path
from emtool.structure import check_structure

LOG = logging.getLogger(__name__)

#: Export formats of ``export_dataset``.
FORMATS = ("extxyz", "fitsnap-json")
#: First line of the FitSNAP JSON files emtool writes (FitSNAP skips a first line that does not
#: start with "{").
FITSNAP_COMMENT = "# A test JSON file for QM data"
#: The only unit strings emtool reads and writes (FitSNAP's metal units; no conversion but bar).
FITSNAP_UNITS = {"LatticeStyle": "angstrom", "EnergyStyle": "electronvolt",
                 "StressStyle": "bar", "AtomTypeStyle": "chemicalsymbol",
                 "PositionsStyle": "angstrom", "ForcesStyle": "electronvoltperangstrom"}
#: ASE stress (eV/Å³) per FitSNAP stress (bar). Negative: FitSNAP (like LAMMPS and VASP) stores
#: the pressure tensor, positive under compression; ASE's stress is negative under compression.
ASE_STRESS_PER_BAR = -units.bar

_REQUIRED = ("AtomTypes", "Positions", "Lattice", "Energy", "Forces")
_DATA_KEYS = ("NumAtoms", "Lattice", "Energy", "Stress", "AtomTypes", "Positions", "Forces")
_STYLE_OF = {"Lattice": "LatticeStyle", "Energy": "EnergyStyle", "Stress": "StressStyle",
             "AtomTypes": "AtomTypeStyle", "Positions": "PositionsStyle",
             "Forces": "ForcesStyle"}
#: info items that describe where a configuration came from (not FitSNAP data keys).
_ORIGIN = ("index", "group", "source", "frame", "fitsnap_stress")
#: Keys FitSNAP's scraper adds or uses itself; metadata may not take these names.
_FITSNAP_RESERVED = set(_DATA_KEYS) | {"Data", "Label", "File", "Group", "QMLattice",
                                       "Rotation", "Translation", "test_bool"}
#: FitSNAP's order of the Voigt components in its 3x3 tensor: upper triangle (xx yy zz yz xz xy).
_VOIGT = (np.array([0, 1, 2, 1, 0, 0]), np.array([0, 1, 2, 2, 2, 1]))
#: extxyz comment-line keys that ASE's reader interprets itself.
_XYZ_RESERVED = {"Lattice", "Properties", "pbc"} | set(per_config_properties)
#: Names under which ASE's readers return calculator results (``atoms.calc.results``); every
#: other name stays in ``atoms.info`` (per configuration) or ``atoms.arrays`` (per atom).
_ASE_RESULTS = set(per_config_properties) | set(per_atom_properties)
#: The names of the labels and of the group in extxyz (and other ASE) files, per convention
#: (``keys=``). "ase": ASE's own names, which its extxyz reader turns into calculator results,
#: and emtool's ``group``. "mace": the names of MACE training files (``--energy_key REF_energy
#: --forces_key REF_forces --stress_key REF_stress``), which ASE leaves in
#: ``atoms.info`` (energy, stress) and ``atoms.arrays`` (forces), and MACE's ``config_type``.
#: Units and signs are the same in both: total energy eV, forces eV/Å, stress eV/Å³ with ASE's
#: sign (MACE's stress is -virial/volume = (1/V) dE/dstrain, as ASE's).
KEYS = {"ase": {"energy": "energy", "forces": "forces", "stress": "stress", "group": "group"},
        "mace": {"energy": "REF_energy", "forces": "REF_forces", "stress": "REF_stress",
                 "group": "config_type"}}
_LABELS = ("energy", "forces", "stress")
_XYZ_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ExchangeError(DatasetError):
    """An input file that cannot be read as a training set, or configurations that cannot be
    written in the requested format."""


# ---------------------------------------------------------------------------------------------
# FitSNAP JSON

def read_fitsnap_json(path, element=None):
    """Configurations of a FitSNAP JSON training set as a list of ``ase.Atoms``.

    Parameters
    ----------
    path : str or Path
        A FitSNAP JSON root (one subfolder per group holding ``*.json`` files; a folder whose
        ``JSON/`` subfolder is such a root, as in FitSNAP's examples, also works), a single
        group folder, or a single file. The group is the name of the file's folder.
    element : str or sequence of str, optional
        Allowed chemical symbols; any other element is an error.

    Returns
    -------
    list of ase.Atoms, ordered by group, then file name in natural order (``x_2`` before
    ``x_10``), then position in ``"Data"``. Each has pbc True, the ``Lattice`` rows as cell
    (Å), ``Positions`` (Å), symbols from ``AtomTypes``, and a ``SinglePointCalculator`` with
    ``Energy`` (total, eV), ``Forces`` (eV/Å) and, when the file has it, ``Stress`` converted
    from bar to ASE's Voigt stress in eV/Å³ (sign flipped, see ``ASE_STRESS_PER_BAR``).
    ``atoms.info``: ``group``, ``source`` ("<group>/<file name>"), ``frame`` (position in
    ``"Data"``), ``index`` (0, 1, ... in the order above), every other key of the file's
    ``Dataset`` and ``Data`` objects (e.g. ``Label``) under its own name, and
    ``fitsnap_stress`` (the file's 3x3 stress in bar) only when the stored ASE stress cannot
    give it back bit for bit (17-digit values, a non-symmetric tensor).

    Raises
    ------
    ParameterError
        A unit string other than ``FITSNAP_UNITS`` (or one missing), naming file and key.
    ExchangeError
        Malformed JSON (file and line), a missing key, wrong shape or type, a non-finite value,
        an invalid cell, a foreign element (file, configuration and key or element).
    """
    allowed = _allowed_elements(element)
    images, stresses = [], []
    for group, file in _fitsnap_files(Path(path)):
        for atoms, stress in _read_fitsnap_file(file, group, allowed):
            atoms.info["index"] = len(images)
            images.append(atoms)
            stresses.append(stress)
    with_stress = [k for k, s in enumerate(stresses) if s is not None]
    if with_stress:
        tensors = np.array([stresses[k] for k in with_stress])
        back = _bar_from_ase(_ase_from_bar(tensors))
        for k, tensor, same in zip(with_stress, tensors, _bitwise_equal(back, tensors)):
            if not same:
                images[k].info["fitsnap_stress"] = tensor.tolist()
    return images


def write_fitsnap_json(images, folder, overwrite=False):
    """Write ``images`` as a FitSNAP JSON training set in ``folder`` (one subfolder per group).

    A configuration whose ``info["source"]`` is "<group>/<name>.json" (as set by
    ``read_fitsnap_json``) goes to that file, in ``info["frame"]`` order when several share it;
    any other to "<group>/<group>_<index>.json", one per file. Every file has the
    ``FITSNAP_COMMENT`` line, ``Label`` (when in info), the ``FITSNAP_UNITS`` styles and
    ``Data`` items with ``NumAtoms``, ``Lattice``, ``Energy``, ``Stress`` (when labeled: bar,
    FitSNAP's sign; the shortest decimal that reads back to the stored value, or
    ``info["fitsnap_stress"]`` when it agrees with it), ``AtomTypes``, ``Positions``,
    ``Forces``, then the other info items. Floats are written with ``repr`` (exact).

    Needs, per configuration: a non-empty group usable as a folder name, pbc True, a
    right-handed cell (FitSNAP asserts det > 0), finite energy and forces. ``folder`` must not
    exist unless ``overwrite``; it is written as a temporary folder and renamed into place.
    Returns the folder as a Path.
    """
    folder = Path(folder)
    _check_destination(folder, overwrite, want_dir=True)
    files = _fitsnap_layout(list(images))

    def fill(tmp):
        for name, configs in files.items():
            target = tmp / name
            if not target.parent.exists():
                target.parent.mkdir()
            _write_text(target, _fitsnap_text(configs))
        for sub in {tmp / name.split("/")[0] for name in files}:
            fsync_path(sub)

    _replace_folder(folder, fill, overwrite)
    return folder


def _fitsnap_files(path):
    """(group, file) pairs of a FitSNAP JSON tree, in natural order."""
    if path.is_file():
        return [(path.resolve().parent.name, path)]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    root = path
    groups, loose = _group_files(root), _json_files(root)
    if not groups and not loose and (root / "JSON").is_dir():
        root = root / "JSON"
        groups, loose = _group_files(root), _json_files(root)
    if groups:
        if loose:
            LOG.warning("%s: ignoring %d .json files outside group folders", root, len(loose))
        return [(folder.name, f) for folder, files in groups.items() for f in files]
    if not loose:
        raise ExchangeError(f"{path}: no FitSNAP JSON files (expected <root>/<group>/*.json, "
                            f"a group folder or a .json file)")
    return [(root.resolve().name, f) for f in loose]


def _natural_key(name):
    parts = re.split(r"(\d+)", name)
    return [int(p) if k % 2 else p for k, p in enumerate(parts)], name


def _group_files(root):
    """{group folder: its .json files} for the non-hidden subfolders holding .json files."""
    folders = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                     key=lambda d: _natural_key(d.name))
    return {d: files for d in folders if (files := _json_files(d))}


def _json_files(folder):
    files, other = [], []
    for f in folder.iterdir():
        if f.name.startswith(".") or not f.is_file():
            continue
        (files if f.suffix == ".json" else other).append(f)
    if files and other:
        LOG.warning("%s: ignoring %d files that are not .json", folder, len(other))
    return sorted(files, key=lambda f: _natural_key(f.name))


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _load_fitsnap(file):
    """The ``Dataset`` object of a FitSNAP JSON file (first line skipped unless it is JSON)."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ExchangeError(f"{file}: not UTF-8 text ({err})") from None
    first, _, rest = text.partition("\n")
    skipped = 0 if first.lstrip().startswith("{") else 1
    try:
        doc = json.loads(rest if skipped else text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise ExchangeError(f"{file}: malformed JSON at line {err.lineno + skipped}, column "
                            f"{err.colno}: {err.msg}") from None
    except _DuplicateKey as err:
        raise ExchangeError(f"{file}: key {err.args[0]!r} appears twice in one object") from None
    if not isinstance(doc, dict) or list(doc) != ["Dataset"] or not isinstance(doc["Dataset"],
                                                                                dict):
        raise ExchangeError(f"{file}: expected one JSON object {{\"Dataset\": {{...}}}}")
    dataset = doc["Dataset"]
    data = dataset.get("Data")
    if not isinstance(data, list) or not data or not all(isinstance(c, dict) for c in data):
        raise ExchangeError(f"{file}: \"Dataset\" needs a non-empty list \"Data\" of objects")
    return dataset


def _read_fitsnap_file(file, group, allowed):
    """(Atoms, stress tensor in bar or None) for each configuration of one file."""
    dataset = _load_fitsnap(file)
    shared = {k: v for k, v in dataset.items() if k != "Data"}
    out = []
    for frame, config in enumerate(dataset["Data"]):
        where = f"{file}: configuration {frame}"
        twice = sorted(set(shared) & set(config))
        if twice:
            raise ExchangeError(f"{where}: keys {twice} are both in \"Dataset\" and in \"Data\"")
        merged = {**shared, **config}
        _check_units(file, merged)
        missing = [k for k in _REQUIRED if k not in merged]
        if missing:
            raise ExchangeError(f"{where}: missing {', '.join(missing)}")
        types = merged["AtomTypes"]
        if not isinstance(types, list) or not types or \
                not all(isinstance(s, str) and s in atomic_numbers for s in types):
            raise ExchangeError(f"{where}: AtomTypes must be a non-empty list of chemical "
                                f"symbols")
        natoms = len(types)
        if "NumAtoms" in merged and (type(merged["NumAtoms"]) is not int
                                     or merged["NumAtoms"] != natoms):
            raise ExchangeError(f"{where}: NumAtoms {merged['NumAtoms']!r} but {natoms} "
                                f"AtomTypes")
        foreign = sorted(set(types) - allowed, key=atomic_numbers.get) if allowed else []
        if foreign:
            raise ExchangeError(f"{where}: element {', '.join(foreign)} is not among the "
                                f"allowed elements {', '.join(sorted(allowed))}")
        positions = _real(where, "Positions", merged["Positions"], (natoms, 3))
        lattice = _real(where, "Lattice", merged["Lattice"], (3, 3))
        forces = _real(where, "Forces", merged["Forces"], (natoms, 3))
        energy = _real(where, "Energy", merged["Energy"], ())
        stress = _real(where, "Stress", merged["Stress"], (3, 3)) if "Stress" in merged \
            else None
        try:
            check_structure(positions, lattice, True)
        except StructureError as err:
            raise ExchangeError(f"{where}: {err}") from None
        info = {"group": group, "source": f"{group}/{file.name}", "frame": frame}
        for key, value in merged.items():
            if key in _DATA_KEYS or key.endswith("Style"):
                continue
            if key in _ORIGIN:
                raise ExchangeError(f"{where}: key {key!r} is reserved for emtool's metadata")
            info[key] = value
        atoms = Atoms(numbers=[atomic_numbers[s] for s in types], positions=positions,
                      cell=lattice, pbc=True, info=info)
        results = {"energy": float(energy), "forces": forces}
        if stress is not None:
            results["stress"] = _ase_from_bar(stress)
        atoms.calc = SinglePointCalculator(atoms, **results)
        out.append((atoms, stress))
    return out


def _check_units(file, merged):
    for key, value in merged.items():
        if key.endswith("Style") and key not in FITSNAP_UNITS:
            raise ParameterError(f"{file}: unknown unit key {key!r} (emtool reads "
                                 f"{', '.join(FITSNAP_UNITS)})")
    for quantity, key in _STYLE_OF.items():
        if quantity not in merged and key not in merged:
            continue
        if key not in merged:
            raise ParameterError(f"{file}: {quantity} without {key}; emtool needs "
                                 f"{key} {FITSNAP_UNITS[key]!r}")
        if merged[key] != FITSNAP_UNITS[key]:
            raise ParameterError(f"{file}: {key} {merged[key]!r} is not supported; emtool "
                                 f"reads {key} {FITSNAP_UNITS[key]!r} only")


def _real(where, key, value, shape):
    """``value`` as a finite float64 array of ``shape`` (numbers only; bools are rejected)."""
    try:
        array = np.asarray(value)
    except ValueError:
        raise ExchangeError(f"{where}: {key} is not a rectangular array of numbers") from None
    if array.dtype.kind not in "iuf":
        raise ExchangeError(f"{where}: {key} must hold numbers, got {array.dtype}")
    if array.shape != shape:
        raise ExchangeError(f"{where}: {key} must have shape {shape}, got {array.shape}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ExchangeError(f"{where}: {key} contains non-finite values (NaN or infinity)")
    return array


def _ase_from_bar(tensor):
    """ASE Voigt stress (eV/Å³) from FitSNAP 3x3 stress tensors (bar), ``(..., 3, 3)``; the
    upper triangle is used, as FitSNAP does."""
    return tensor[..., _VOIGT[0], _VOIGT[1]] * ASE_STRESS_PER_BAR


def _bar_from_ase(voigt):
    """FitSNAP 3x3 stress tensors (bar, symmetric) from ASE Voigt stresses ``(..., 6)``.

    Each component is the float with the shortest ``repr`` among those that
    ``_ase_from_bar`` maps to it bit for bit, so decimals of up to 15 significant digits come
    back exactly; without such a float, the nearest ``stress / ASE_STRESS_PER_BAR``.
    """
    y = np.asarray(voigt, dtype=np.float64)
    x = _shortest_preimage(y.ravel()).reshape(y.shape)
    tensor = np.empty(y.shape[:-1] + (3, 3))
    tensor[..., _VOIGT[0], _VOIGT[1]] = x
    tensor[..., _VOIGT[1], _VOIGT[0]] = x
    return tensor


def _shortest_preimage(y):
    nearest = y / ASE_STRESS_PER_BAR
    candidates, up, down = [nearest], nearest, nearest
    for _ in range(2):
        up, down = np.nextafter(up, np.inf), np.nextafter(down, -np.inf)
        candidates += [up, down]
    candidates = np.array(candidates)  # nearest first, then by distance
    exact = (candidates * ASE_STRESS_PER_BAR).view(np.int64) == y.view(np.int64)
    out = nearest.copy()
    for j in np.flatnonzero((exact.sum(axis=0) > 1) | ~exact[0]):
        valid = candidates[exact[:, j], j]
        if len(valid):
            out[j] = min(valid.tolist(), key=lambda v: len(repr(v)))
    return out


def _bitwise_equal(a, b):
    """Per leading index: all components of a and b have the same bits."""
    a, b = np.ascontiguousarray(a, np.float64), np.ascontiguousarray(b, np.float64)
    return (a.view(np.int64) == b.view(np.int64)).reshape(len(a), -1).all(axis=1)


def _fitsnap_layout(images):
    """{relative file path: [(atoms, stress in bar or None), ...] in frame order}."""
    files, origin, stresses = {}, {}, {}
    for k, atoms in enumerate(images):
        if not isinstance(atoms, Atoms):
            raise ExchangeError(f"image {k} is a {type(atoms).__name__}, not ase.Atoms")
        index = atoms.info.get("index", k)
        where = f"configuration index {index}"
        group = atoms.info.get("group", "")
        if not isinstance(group, str) or not group or group.startswith(".") or \
                any(c in group for c in "/\\\0"):
            raise ExchangeError(f"{where}: FitSNAP needs a group usable as a folder name, "
                                f"got {group!r}")
        if not atoms.pbc.all():
            raise ExchangeError(f"{where}: FitSNAP needs periodic cells (pbc True), got "
                                f"pbc {atoms.pbc.tolist()}")
        if not np.linalg.det(atoms.cell.array) > 0:
            raise ExchangeError(f"{where}: FitSNAP needs a right-handed cell (det > 0)")
        energy, forces, stress = _labels(atoms)
        if energy is None or forces is None:
            raise ExchangeError(f"{where}: FitSNAP needs energy and forces")
        if stress is not None:
            stresses[k] = stress
        clash = sorted(key for key in atoms.info
                       if key in _FITSNAP_RESERVED - {"Label"} or key.endswith("Style"))
        if clash:
            raise ExchangeError(f"{where}: info keys {clash} clash with FitSNAP's keys")
        source = atoms.info.get("source")
        if isinstance(source, str) and _is_source_of(source, group):
            name, kind = source, "source"
        else:
            name, kind = f"{group}/{group}_{index}.json", "generated"
        if name in origin and (origin[name] != kind or kind == "generated"):
            raise ExchangeError(f"{where}: file name {name} is taken by configuration "
                                f"{images[files[name][0]].info.get('index')}")
        origin[name] = kind
        files.setdefault(name, []).append(k)
    bars = dict(zip(stresses, _bar_from_ase(np.array(list(stresses.values())).reshape(-1, 6))))
    layout = {}
    for name, members in files.items():
        frames = [images[k].info.get("frame", 0) for k in members]
        if len(members) > 1:
            if len(set(map(repr, frames))) < len(frames) or \
                    not all(type(f) is int for f in frames):
                raise ExchangeError(f"{name}: configurations "
                                    f"{[images[k].info.get('index', k) for k in members]} "
                                    f"share the file but not distinct integer frames")
            members = [k for _, k in sorted(zip(frames, members))]
        layout[name] = [(images[k], _stress_to_write(images[k], stresses.get(k), bars.get(k)))
                        for k in members]
    return layout


def _is_source_of(source, group):
    parts = source.split("/")
    return len(parts) == 2 and parts[0] == group and parts[1].endswith(".json") and \
        not parts[1].startswith(".") and "\\" not in parts[1] and "\0" not in parts[1]


def _stress_to_write(atoms, voigt, decoded):
    """The 3x3 bar tensor to write: ``info["fitsnap_stress"]`` when it maps to the stored
    stress bit for bit, else the decoded stress; None without stress."""
    if voigt is None:
        return None
    kept = atoms.info.get("fitsnap_stress")
    if kept is not None:
        try:
            kept = np.asarray(kept, dtype=np.float64)
        except (TypeError, ValueError):
            kept = None
        if kept is not None and kept.shape == (3, 3) and \
                _bitwise_equal(_ase_from_bar(kept)[None], np.asarray(voigt)[None])[0]:
            return kept
        LOG.warning("configuration index %s: info['fitsnap_stress'] does not match the stored "
                    "stress; writing the stored stress", atoms.info.get("index"))
    return decoded


def _fitsnap_text(configs):
    """Text of one FitSNAP JSON file from [(atoms, stress in bar or None), ...]."""
    labels = {json.dumps(a.info.get("Label")) for a, _ in configs}
    if len(labels) > 1:
        raise ExchangeError(f"configurations {[a.info.get('index') for a, _ in configs]} "
                            f"share a file but have different Labels")
    dataset = {}
    if "Label" in configs[0][0].info:
        dataset["Label"] = configs[0][0].info["Label"]
    dataset.update(FITSNAP_UNITS)
    data = []
    for atoms, stress in configs:
        energy, forces, _ = _labels(atoms)
        item = {"NumAtoms": len(atoms), "Lattice": atoms.cell.array.tolist(),
                "Energy": float(energy)}
        if stress is not None:
            item["Stress"] = stress.tolist()
        item.update({"AtomTypes": atoms.get_chemical_symbols(),
                     "Positions": atoms.positions.tolist(), "Forces": forces.tolist()})
        item.update({k: _plain(v) for k, v in atoms.info.items()
                     if k not in _ORIGIN and k != "Label"})
        data.append(item)
    dataset["Data"] = data
    try:
        body = json.dumps({"Dataset": dataset}, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ExchangeError(f"configuration index {configs[0][0].info.get('index')}: info is "
                            f"not JSON-serializable or not finite: {err}") from None
    return f"{FITSNAP_COMMENT}\n{body}\n"


# ---------------------------------------------------------------------------------------------
# extxyz and other ASE formats

def read_structures_any(path, index=":", fmt=None, element=None, keys=None):
    """Configurations of any file ASE reads (extxyz, OUTCAR, POSCAR, ...) as ``ase.Atoms``.

    ``index``: ASE frame selection (":" all, "-1" last, "2:10", an int or a slice); ``fmt``:
    ASE format name (default: ASE's guess); ``keys``: the names of the labels and the group,
    "ase" or "mace" (see ``KEYS``; default: "mace" when any frame has a ``REF_`` label, else
    "ase"). Kept: numbers, positions, cell, pbc; energy, forces and stress when the file has
    them (other calculator results, per-atom arrays and constraints are dropped, with a
    warning); ``atoms.info`` as JSON values (NumPy arrays become lists); ``group`` from info
    (``config_type`` under "mace" keys), else the file stem; ``index`` from info, else the
    position among the frames read. Raises ``ExchangeError`` naming the file and frame, also
    when, with the default keys, a label or the group is stored under both names with
    different values.
    """
    images, dropped, _ = _read_frames(Path(path), index, fmt, element, keys)
    if dropped:
        LOG.warning("%s: not kept: %s", path, ", ".join(sorted(dropped)))
    return images


def _read_frames(path, index, fmt, element, keys):
    """(images, names not kept, name of the key convention read) of ``read_structures_any``."""
    from ase.io import read

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if keys is not None and keys not in KEYS:
        raise ParameterError(f"unknown keys {keys!r}; choose one of {', '.join(KEYS)}")
    allowed = _allowed_elements(element)
    try:
        frames = read(path, index=index, format=fmt)
    except Exception as err:  # ASE raises many types for unreadable files
        raise ExchangeError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    frames = frames if isinstance(frames, list) else [frames]
    conventions = (keys,) if keys else _conventions_found(frames)
    images, dropped = [], set()
    for k, frame in enumerate(frames):
        where = f"{path}: frame {k}"
        results = dict(frame.calc.results) if frame.calc is not None else {}
        foreign = sorted(set(frame.get_chemical_symbols()) - allowed) if allowed else []
        if foreign:
            raise ExchangeError(f"{where}: element {', '.join(foreign)} is not among the "
                                f"allowed elements {', '.join(sorted(allowed))}")
        try:
            positions, cell, pbc = check_structure(frame.positions, frame.cell.array, frame.pbc)
        except StructureError as err:
            raise ExchangeError(f"{where}: {err}") from None
        info = {key: _plain(value) for key, value in frame.info.items()}
        labels, used = _keyed_labels(where, frame, info, results, conventions)
        dropped.update(set(results) - used)
        dropped.update(set(frame.arrays) - used - {"numbers", "positions"})
        if frame.constraints:
            dropped.add("constraints")
        for key in used - _ASE_RESULTS - set(frame.arrays) - {"group"}:
            info.pop(key, None)
        try:
            json.dumps(info, allow_nan=True)
        except TypeError as err:
            raise ExchangeError(f"{where}: info is not JSON-serializable: {err}") from None
        info["group"] = labels.pop("group", path.stem)
        info.setdefault("index", k)
        if type(info["index"]) is not int:
            raise ExchangeError(f"{where}: info index must be an int, got {info['index']!r}")
        atoms = Atoms(numbers=frame.numbers, positions=positions, cell=cell, pbc=pbc,
                      info=info)
        if labels:
            atoms.calc = SinglePointCalculator(atoms, **labels)
        images.append(atoms)
    return images, dropped, conventions[0]


def _conventions_found(frames):
    """The conventions of ``KEYS`` whose label names occur in ``frames``, then "ase" (whose
    names ASE's readers turn into calculator results), always."""
    found = [name for name, names in KEYS.items() if name != "ase" and any(
        names[q] in frame.info or names[q] in frame.arrays for frame in frames for q in _LABELS)]
    return (*found, "ase")


def _keyed_labels(where, frame, info, results, conventions):
    """({"energy": float, "forces": (N, 3), "stress": Voigt (6,), "group": str}, the names
    read) of one frame, each quantity from every name it has in ``conventions`` (and ``group``,
    emtool's own); absent quantities are left out, names holding different values raise."""
    labels, used = {}, set()
    for quantity, shape in (("energy", ()), ("forces", (len(frame), 3)), ("stress", (6,)),
                            ("group", None)):
        names = dict.fromkeys([KEYS[c][quantity] for c in conventions] +
                              (["group"] if quantity == "group" else []))
        found = {}
        for key in names:
            used.add(key)
            value = results.get(key) if key in _ASE_RESULTS else \
                frame.arrays[key] if key in frame.arrays else info.get(key)
            if value is None:
                continue
            if shape is None:
                if not isinstance(value, str):
                    raise ExchangeError(f"{where}: info {key} must be a str, got {value!r}")
                found[key] = value
                continue
            value = np.asarray(value)
            if quantity == "stress" and value.shape in ((3, 3), (9,)) and \
                    value.dtype.kind in "iuf":
                value = full_3x3_to_voigt_6_stress(value.reshape(3, 3))
            found[key] = _real(where, key, value, shape)
        if len(found) > 1:
            (first, a), *rest = found.items()
            for key, b in rest:
                if not (a == b if shape is None else np.array_equal(a, b)):
                    raise ExchangeError(f"{where}: {quantity} differs between {first} and "
                                        f"{key}; choose the names to read with keys='ase' or "
                                        f"keys='mace' (emtool import --keys)")
        if found:
            value = next(iter(found.values()))
            labels[quantity] = float(value) if quantity == "energy" else value
    return labels, used


def write_extxyz(images, path, overwrite=False, keys="ase"):
    """Write ``images`` as extended XYZ that ASE reads back bit for bit.

    Per frame: the number of atoms; a comment line with ``Lattice`` (cell rows, when the cell
    is not zero), ``Properties=species:S:1:pos:R:3[:forces:R:3]``, ``energy``, ``stress``
    (3x3, eV/Å³, ASE sign) when labeled, ``index``, ``group``, the other info items in
    sorted order, ``pbc``; one line per atom. ``keys="mace"`` writes MACE's names instead
    (``KEYS``): ``REF_forces`` columns, ``REF_energy``, ``REF_stress`` as the Voigt 6-vector
    (xx yy zz yz xz xy, what ``atoms.info["REF_stress"] = atoms.get_stress()`` writes and MACE
    reads) and the group as ``config_type``; an info item with one of these names is an error.
    Every float is written with ``repr`` (ASE's own writer rounds positions and forces to 8
    decimals). Info items that ASE's plain key=value
    syntax would read back differently (a string such as "110" or "T") are written as
    ``_JSON`` values; items that cannot round-trip at all, or that use names ASE's reader
    interprets (``energy``, ``Lattice``, ...), are an error. ``path`` must not exist unless
    ``overwrite``; the file is written under a temporary name and renamed into place.
    Returns the path.
    """
    if keys not in KEYS:
        raise ParameterError(f"unknown keys {keys!r}; choose one of {', '.join(KEYS)}")
    path = Path(path)
    _check_destination(path, overwrite, want_dir=False)
    images = list(images)
    cache = {}
    chunks = [_xyz_frame(atoms, k, cache, KEYS[keys]) for k, atoms in enumerate(images)]
    _replace_file(path, "".join(chunks), overwrite)
    return path


def _xyz_frame(atoms, k, cache, names):
    if not isinstance(atoms, Atoms):
        raise ExchangeError(f"image {k} is a {type(atoms).__name__}, not ase.Atoms")
    index = atoms.info.get("index", k)
    where = f"configuration index {index}"
    read_back = {n for n in names.values() if n not in _ASE_RESULTS} - {"group"}
    clash = sorted(set(atoms.info) & (_XYZ_RESERVED | read_back))
    if clash:
        raise ExchangeError(f"{where}: info keys {clash} would be read back as labels, group "
                            f"or cell")
    odd = [key for key in atoms.info
           if not isinstance(key, str) or not _XYZ_KEY.fullmatch(key)]
    if odd:
        raise ExchangeError(f"{where}: info keys {odd} are not extxyz names "
                            f"([A-Za-z_][A-Za-z0-9_]*)")
    energy, forces, stress = _labels(atoms)
    header = []
    if atoms.cell.array.any():
        header.append('Lattice="' + " ".join(map(repr, atoms.cell.array.ravel().tolist())) + '"')
    header.append("Properties=species:S:1:pos:R:3" + (f":{names['forces']}:R:3"
                                                       if forces is not None else ""))
    if energy is not None:
        header.append(f"{names['energy']}={energy!r}")
    if stress is not None:
        # ASE's reader takes its own stress key as 3x3; MACE reads a Voigt 6-vector
        values = voigt_6_to_full_3x3_stress(stress).ravel() if names["stress"] in _ASE_RESULTS \
            else stress
        header.append(f'{names["stress"]}="' + " ".join(map(repr, values.tolist())) + '"')
    info = {"index": index, names["group"]: atoms.info.get("group", "")}
    info.update({key: atoms.info[key] for key in sorted(atoms.info)
                 if key not in ("index", "group")})
    header += [_xyz_item(key, value, where, cache) for key, value in info.items()]
    header.append('pbc="' + " ".join("T" if p else "F" for p in atoms.pbc) + '"')
    columns = atoms.positions if forces is None else np.hstack([atoms.positions, forces])
    lines = [f"{len(atoms)}", " ".join(header)]
    lines += [symbol + " " + " ".join(map(repr, row))
              for symbol, row in zip(atoms.get_chemical_symbols(), columns.tolist())]
    return "\n".join(lines) + "\n"


def _xyz_item(key, value, where, cache):
    """``key=value`` text that ASE's extxyz reader turns back into ``value``."""
    value = _plain(value)
    if type(value) in (bool, int, float):
        return key_val_dict_to_str({key: value})
    wanted = json.dumps(value, sort_keys=True)
    if (key, wanted) in cache:
        return cache[key, wanted]
    vector = isinstance(value, list) and len(value) > 1 and \
        len({type(v) for v in value}) == 1 and type(value[0]) in (int, float)
    forms = [np.array(value) if vector else value]
    try:
        forms.append("_JSON " + json.dumps(value))
    except (TypeError, ValueError):
        pass
    for form in forms:
        text = key_val_dict_to_str({key: form})
        try:
            parsed = key_val_str_to_dict(text)
        except Exception:  # ASE's parser raises several types on text it cannot read
            continue
        if list(parsed) == [key] and json.dumps(_plain(parsed[key]), sort_keys=True) == wanted:
            cache[key, wanted] = text
            return text
    raise ExchangeError(f"{where}: info item {key}={value!r} cannot be written to extxyz so "
                        f"that ASE reads it back unchanged")


def _plain(value):
    """JSON-compatible Python value: NumPy arrays to lists, NumPy scalars to Python ones."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# dataset import and export

def import_to_dataset(src, output, element=None, fmt=None, overwrite=False, keys=None):
    """Read the training set ``src`` and write it as the emtool dataset ``output``.

    ``src``: a FitSNAP JSON tree, group folder or file (``fmt`` "fitsnap-json", chosen
    automatically for folders and for .json files holding a ``"Dataset"`` object), or any file
    ASE reads (``fmt`` an ASE format name, default ASE's guess). ``element``: allowed chemical
    symbol(s). ``keys``: the names of the labels and the group in an ASE file, "ase" or "mace"
    (``KEYS``; default: found in the file, see ``read_structures_any``). ``output`` must not
    exist unless ``overwrite``; it is written atomically by ``write_dataset`` with a provenance
    record (action "import", settings: source, format, keys, element, configs, atoms, groups).
    Nothing is written when reading fails.

    Returns a summary dict: output, source, format, keys (None for FitSNAP JSON), element,
    configs, atoms, groups {name: count}.
    """
    src, output = Path(src), Path(output)
    _check_destination(output, overwrite, want_dir=False)
    images, fmt, keys, dropped = _read_source(src, fmt, element, keys)
    if dropped:
        LOG.warning("%s: not kept: %s", src, ", ".join(sorted(dropped)))
    groups = Counter(a.info.get("group", "") for a in images)
    summary = {"output": str(output), "source": str(src.resolve()), "format": fmt,
               "keys": keys, "element": element, "configs": len(images),
               "atoms": int(sum(len(a) for a in images)),
               "groups": dict(sorted(groups.items(), key=lambda kv: _natural_key(kv[0])))}
    settings = {k: v for k, v in summary.items() if k != "output"}
    write_dataset(output, images, provenance=[provenance_record("import", settings)])
    return summary


def export_dataset(path, dest, fmt, overwrite=False, keys="ase"):
    """Write the emtool dataset ``path`` to ``dest`` as ``fmt`` ("extxyz": one file, with the
    label names ``keys``, "ase" or "mace"; "fitsnap-json": a folder of group folders), with
    ``write_extxyz`` / ``write_fitsnap_json``.

    ``dest`` must not exist unless ``overwrite``; it is replaced only once the new content is
    complete. Returns a summary dict: dest, format, keys, configs, files.
    """
    if fmt not in FORMATS:
        raise ParameterError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if keys not in KEYS:
        raise ParameterError(f"unknown keys {keys!r}; choose one of {', '.join(KEYS)}")
    if fmt != "extxyz" and keys != "ase":
        raise ParameterError(f"keys {keys!r} applies to extxyz only; {fmt} has its own names")
    dest = Path(dest)
    _check_destination(dest, overwrite, want_dir=fmt == "fitsnap-json")
    images = read_dataset(path)
    if fmt == "extxyz":
        write_extxyz(images, dest, overwrite, keys)
        files = 1
    else:
        write_fitsnap_json(images, dest, overwrite)
        files = sum(1 for _ in dest.glob("*/*.json"))
    return {"dest": str(dest), "format": fmt, "keys": keys if fmt == "extxyz" else None,
            "configs": len(images), "files": files}


def structures_info(path, fmt=None, keys=None):
    """Summary of a file that ``import_to_dataset`` reads (extxyz, POSCAR, OUTCAR, traj, a
    FitSNAP .json file, ...; ``fmt`` and ``keys`` as there), read and validated as import
    would, as a JSON-serializable dict.

    Keys: path, format, keys (the label names found, None for FitSNAP JSON), configs, atoms,
    labeled_configs, configs_with_forces, configs_with_stress, groups {name: count}, natoms
    [min, max], periodic_configs (pbc all true), volume and volume_per_atom [min, max] Å³ of
    the periodic ones, energy_per_atom [min, max] eV of the labeled ones, elements (symbols, by
    atomic number), not_kept (what import drops: other calculator results, per-atom arrays,
    constraints) -- the keys of ``emtool.data.dataset.dataset_info`` that a plain file has. Ranges
    are None when empty. Raises ``ExchangeError`` (a ``DatasetError``) for a missing or
    unreadable file, naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise ExchangeError(f"{path}: no such file")
    images, fmt, keys, dropped = _read_source(path, fmt, None, keys)
    natoms = np.array([len(a) for a in images])
    labels = [_labels(a) for a in images]
    energy = np.array([np.nan if e is None else e for e, _, _ in labels])
    labeled = np.isfinite(energy)
    periodic = np.array([a.pbc.all() for a in images])
    volume = np.array([abs(np.linalg.det(a.cell.array)) for a in images])[periodic]

    def span(values, kind):
        return [kind(values.min()), kind(values.max())] if len(values) else None

    numbers = set().union(*(np.unique(a.numbers).tolist() for a in images))
    return {
        "path": str(path), "format": fmt, "keys": keys, "configs": len(images),
        "atoms": int(natoms.sum()), "labeled_configs": int(labeled.sum()),
        "configs_with_forces": sum(f is not None for _, f, _ in labels),
        "configs_with_stress": sum(s is not None for _, _, s in labels),
        "groups": dict(sorted(Counter(a.info["group"] for a in images).items())),
        "natoms": span(natoms, int), "periodic_configs": int(periodic.sum()),
        "volume": span(volume, float), "volume_per_atom": span(volume / natoms[periodic], float),
        "energy_per_atom": span(energy[labeled] / natoms[labeled], float),
        "elements": [chemical_symbols[z] for z in sorted(numbers)],
        "not_kept": sorted(dropped),
    }


def format_structures_info(info):
    """Human-readable text of a ``structures_info`` dict, in the layout of
    ``emtool.data.dataset.format_info`` (what ``emtool info`` prints for a file that is not a
    dataset)."""
    keys = f", labels under {info['keys']} names ({', '.join(KEYS[info['keys']].values())})" \
        if info["keys"] else ""
    lines = summary_lines(info, f"{info['path']}: {info['format']} file, not an emtool "
                                f"dataset{keys}")
    if info["not_kept"]:
        lines.append(f"not imported: {', '.join(info['not_kept'])}")
    return "\n".join(lines)


def _read_source(src, fmt, element, keys):
    """(images, format, key convention or None, names not kept) of a training-set source, as
    ``import_to_dataset`` reads it; an empty source is an error."""
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or folder")
    if fmt is None and (src.is_dir() or _looks_like_fitsnap(src)):
        fmt = "fitsnap-json"
    if fmt == "fitsnap-json":
        if keys is not None:
            raise ParameterError(f"keys {keys!r} applies to files ASE reads; FitSNAP JSON has "
                                 f"its own names")
        images, keys, dropped = read_fitsnap_json(src, element), None, set()
    else:
        from ase.io.formats import filetype
        if fmt is None:
            try:
                fmt = filetype(str(src))
            except Exception as err:  # ASE raises several types for unknown files
                raise ExchangeError(f"{src}: unknown file format ({err})") from None
        images, dropped, keys = _read_frames(src, ":", fmt, element, keys)
    if not images:
        raise ExchangeError(f"{src}: no configurations")
    return images, fmt, keys, dropped


def _looks_like_fitsnap(path):
    if not path.is_file() or path.suffix != ".json":
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        head = handle.read(4096)
    first, _, rest = head.partition("\n")
    return re.match(r'\s*\{\s*"Dataset"', head if first.lstrip().startswith("{") else rest) \
        is not None


def _allowed_elements(element):
    if element is None:
        return None
    allowed = {element} if isinstance(element, str) else set(element)
    unknown = sorted(e for e in allowed if e not in atomic_numbers or e == "X")
    if not allowed or unknown:
        raise ParameterError(f"element must be chemical symbols, got {element!r}")
    return allowed


def _labels(atoms):
    """(energy float or None, forces (N, 3) or None, Voigt stress (6,) or None) from the
    calculator results (never computed); NaN labels count as absent."""
    results = atoms.calc.results if atoms.calc is not None else {}
    energy = results.get("energy")
    energy = None if energy is None or not np.isfinite(energy) else float(energy)
    forces = results.get("forces")
    forces = None if forces is None or not np.isfinite(forces).all() else \
        np.asarray(forces, dtype=np.float64)
    stress = results.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=np.float64)
        stress = full_3x3_to_voigt_6_stress(stress) if stress.shape == (3, 3) else stress
        stress = stress if np.isfinite(stress).all() else None
    return energy, forces, stress


# ---------------------------------------------------------------------------------------------
# files

def _check_destination(dest, overwrite, want_dir):
    if dest.exists() or dest.is_symlink():
        if not overwrite:
            raise ExchangeError(f"{dest} exists; pass overwrite=True to replace it")
        if dest.is_dir() != want_dir:
            raise ExchangeError(f"{dest} exists and is {'a folder' if dest.is_dir() else 'a file'}"
                                f"; refusing to replace it with a "
                                f"{'folder' if want_dir else 'file'}")


def _write_text(path, text):
    with open(path, "x", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _replace_file(path, text, overwrite):
    """Write ``text`` to ``path`` atomically (``emtool.files.atomic_write``)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"),
                 check=lambda: _check_destination(path, overwrite, want_dir=False))


def _replace_folder(folder, fill, overwrite):
    """``fill(tmp)`` a temporary folder next to ``folder``, then rename it to ``folder``.

    An existing ``folder`` (``overwrite``) is first renamed aside and deleted only after the
    new one is in place; if the swap fails, it is renamed back.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{secrets.token_hex(6)}")
    tmp.mkdir()
    try:
        fill(tmp)
        fsync_path(tmp)
        _check_destination(folder, overwrite, want_dir=True)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{secrets.token_hex(6)}")
            os.rename(folder, old)
            try:
                os.rename(tmp, folder)
            except BaseException:
                os.rename(old, folder)
                raise
            fsync_path(folder.parent)
            shutil.rmtree(old)
        else:
            os.rename(tmp, folder)
            fsync_path(folder.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
