"""Training sets in and out of emtool datasets: the public entry point of the exchange formats.

``import_to_dataset`` and ``export_dataset`` (``emtool import`` / ``emtool export``) and
``structures_info`` (``emtool info`` of a file that is not a dataset) choose the format and
call its module: ``emtool.data.fitsnap_json`` (FitSNAP JSON folders) or
``emtool.data.ase_formats`` (extxyz and anything ASE reads), on the shared
``emtool.data.exchange_base``. The names of ``__all__`` are the documented API
(``docs/exchange.md``: mappings, units and sign conventions).

Readers are strict: unknown unit strings raise ``ParameterError``; malformed files, missing
labels, wrong shapes, non-finite values and foreign elements raise ``ExchangeError`` naming
the file and configuration. Writers create a temporary file (or folder) next to the
destination and rename it into place, so an error never destroys what was there.
"""
import logging
from collections import Counter
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from emtool.data.ase_formats import KEYS, read_frames, read_structures_any, write_extxyz
from emtool.data.dataset import provenance_record, read_dataset, summary_lines, write_dataset
from emtool.data.exchange_base import (ExchangeError, calculator_labels, check_destination,
                                       natural_key)
from emtool.data.fitsnap_json import looks_like_fitsnap, read_fitsnap_json, write_fitsnap_json
from emtool.errors import ParameterError

__all__ = ["KEYS", "ExchangeError", "export_dataset", "format_structures_info",
           "import_to_dataset", "read_fitsnap_json", "read_structures_any", "structures_info",
           "write_extxyz", "write_fitsnap_json"]

LOG = logging.getLogger(__name__)

#: Export formats of ``export_dataset``.
FORMATS = ("extxyz", "fitsnap-json")


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
    check_destination(output, overwrite, want_dir=False)
    images, fmt, keys, dropped = _read_source(src, fmt, element, keys)
    if dropped:
        LOG.warning("%s: not kept: %s", src, ", ".join(sorted(dropped)))
    groups = Counter(a.info.get("group", "") for a in images)
    summary = {"output": str(output), "source": str(src.resolve()), "format": fmt,
               "keys": keys, "element": element, "configs": len(images),
               "atoms": int(sum(len(a) for a in images)),
               "groups": dict(sorted(groups.items(), key=lambda kv: natural_key(kv[0])))}
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
    check_destination(dest, overwrite, want_dir=fmt == "fitsnap-json")
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
    labels = [calculator_labels(a) for a in images]
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
    if fmt is None and (src.is_dir() or looks_like_fitsnap(src)):
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
        images, dropped, keys = read_frames(src, ":", fmt, element, keys)
    if not images:
        raise ExchangeError(f"{src}: no configurations")
    return images, fmt, keys, dropped
