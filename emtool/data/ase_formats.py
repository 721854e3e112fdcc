"""Extended XYZ and the other formats ASE reads: ``read_structures_any`` and ``write_extxyz``.

Mappings, units and sign conventions: ``docs/exchange.md``. extxyz files may carry the labels
under ASE's names (``energy``, ``forces``, ``stress``, the group in ``group``) or MACE's
(``REF_energy``, ``REF_forces``, ``REF_stress``, ``config_type``): ``KEYS`` is the one table of
these names; units and signs are the same in both. Round trips extxyz → dataset → extxyz give
the same arrays, to the bit (floats are written with Python's shortest round-trip ``repr``);
the file is written whole (``emtool.files.atomic_write``).
"""
import json
import logging
import re
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.extxyz import (key_val_dict_to_str, key_val_str_to_dict, per_atom_properties,
                           per_config_properties)
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from emtool.data.exchange_base import (ExchangeError, allowed_elements, calculator_labels,
                                       check_destination, plain, real_array)
from emtool.errors import ParameterError, StructureError
from emtool.files import atomic_write
from emtool.structure import check_structure

LOG = logging.getLogger(__name__)

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
    images, dropped, _ = read_frames(Path(path), index, fmt, element, keys)
    if dropped:
        LOG.warning("%s: not kept: %s", path, ", ".join(sorted(dropped)))
    return images


def read_frames(path, index, fmt, element, keys):
    """(images, names not kept, name of the key convention read) of the file ``path`` (a
    Path), read as ``read_structures_any`` reads it but without its warning: the caller reports
    what was not kept."""
    from ase.io import read

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if keys is not None and keys not in KEYS:
        raise ParameterError(f"unknown keys {keys!r}; choose one of {', '.join(KEYS)}")
    allowed = allowed_elements(element)
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
        info = {key: plain(value) for key, value in frame.info.items()}
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
            found[key] = real_array(where, key, value, shape)
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
    check_destination(path, overwrite, want_dir=False)
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
    energy, forces, stress = calculator_labels(atoms)
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
    value = plain(value)
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
        if list(parsed) == [key] and json.dumps(plain(parsed[key]), sort_keys=True) == wanted:
            cache[key, wanted] = text
            return text
    raise ExchangeError(f"{where}: info item {key}={value!r} cannot be written to extxyz so "
                        f"that ASE reads it back unchanged")


def _replace_file(path, text, overwrite):
    """Write ``text`` to ``path`` atomically (``emtool.files.atomic_write``)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"),
                 check=lambda: check_destination(path, overwrite, want_dir=False))
