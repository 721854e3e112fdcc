"""FitSNAP JSON training sets: ``read_fitsnap_json`` and ``write_fitsnap_json``.

Mappings, units and sign conventions: ``docs/exchange.md``. A training set is a root folder
with one subfolder per group of ``*.json`` files, each a comment line and
``{"Dataset": {<styles>, "Label": ..., "Data": [{...}, ...]}}`` in FitSNAP's metal units
(``FITSNAP_UNITS``, strict). FitSNAP stores the pressure tensor in bar (positive under
compression): ASE stress = −(FitSNAP stress) · ``ase.units.bar`` (``ASE_STRESS_PER_BAR``).
Round trips FitSNAP JSON → dataset → FitSNAP JSON give the same file tree and the same parsed
values, to the bit; the folder is written whole (``emtool.files.atomic_folder``).
"""
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from emtool.data.exchange_base import (ExchangeError, allowed_elements, calculator_labels,
                                       check_destination, natural_key, plain, real_array)
from emtool.errors import ParameterError, StructureError
from emtool.files import atomic_folder, fsync_path
from emtool.structure import check_structure

LOG = logging.getLogger(__name__)

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
    allowed = allowed_elements(element)
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
    check_destination(folder, overwrite, want_dir=True)
    files = _fitsnap_layout(list(images))

    def fill(tmp):
        for name, configs in files.items():
            target = tmp / name
            if not target.parent.exists():
                target.parent.mkdir()
            _write_text(target, _fitsnap_text(configs))
        for sub in {tmp / name.split("/")[0] for name in files}:
            fsync_path(sub)

    return atomic_folder(folder, fill,
                         check=lambda: check_destination(folder, overwrite, want_dir=True))


def looks_like_fitsnap(path):
    """Whether ``path`` (a Path) is a .json file holding a ``{"Dataset": ...}`` object (after
    an optional comment line): the test by which a file is taken for FitSNAP JSON."""
    if not path.is_file() or path.suffix != ".json":
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        head = handle.read(4096)
    first, _, rest = head.partition("\n")
    return re.match(r'\s*\{\s*"Dataset"', head if first.lstrip().startswith("{") else rest) \
        is not None


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


def _group_files(root):
    """{group folder: its .json files} for the non-hidden subfolders holding .json files."""
    folders = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                     key=lambda d: natural_key(d.name))
    return {d: files for d in folders if (files := _json_files(d))}


def _json_files(folder):
    files, other = [], []
    for f in folder.iterdir():
        if f.name.startswith(".") or not f.is_file():
            continue
        (files if f.suffix == ".json" else other).append(f)
    if files and other:
        LOG.warning("%s: ignoring %d files that are not .json", folder, len(other))
    return sorted(files, key=lambda f: natural_key(f.name))


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
        positions = real_array(where, "Positions", merged["Positions"], (natoms, 3))
        lattice = real_array(where, "Lattice", merged["Lattice"], (3, 3))
        forces = real_array(where, "Forces", merged["Forces"], (natoms, 3))
        energy = real_array(where, "Energy", merged["Energy"], ())
        stress = real_array(where, "Stress", merged["Stress"], (3, 3)) if "Stress" in merged \
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
        energy, forces, stress = calculator_labels(atoms)
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
        energy, forces, _ = calculator_labels(atoms)
        item = {"NumAtoms": len(atoms), "Lattice": atoms.cell.array.tolist(),
                "Energy": float(energy)}
        if stress is not None:
            item["Stress"] = stress.tolist()
        item.update({"AtomTypes": atoms.get_chemical_symbols(),
                     "Positions": atoms.positions.tolist(), "Forces": forces.tolist()})
        item.update({k: plain(v) for k, v in atoms.info.items()
                     if k not in _ORIGIN and k != "Label"})
        data.append(item)
    dataset["Data"] = data
    try:
        body = json.dumps({"Dataset": dataset}, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ExchangeError(f"configuration index {configs[0][0].info.get('index')}: info is "
                            f"not JSON-serializable or not finite: {err}") from None
    return f"{FITSNAP_COMMENT}\n{body}\n"


def _write_text(path, text):
    """Write ``text`` to the new file ``path`` (it must not exist) and fsync it."""
    with open(path, "x", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
