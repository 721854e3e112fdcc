"""Subsets and merges of emtool datasets (``emtool subset``, ``emtool merge``; docs/dataset.md).

Both copy configurations unchanged — numbers, positions (Å), cell, pbc, group, energy (eV),
forces (eV/Å), stress (eV/Å³) and every info item, bit for bit — and record where each came
from in its info: ``source_file`` (absolute path of the dataset it was read from) and
``source_index`` (its ``index`` there). A configuration that already carried these items
(a subset of a subset, a merge of merges) gets those of the file it was read from this time;
the chain goes on through that file. Both hold the selected configurations in memory and write
the output with ``write_dataset`` (temporary file, fsync, rename: never half-written).

- ``subset_dataset`` keeps the ``index`` keys, the parameters and the provenance of its
  source and appends a "subset" record.
- ``merge_datasets`` numbers the configurations 0..n-1 in input order (the keys of different
  files collide, and renumbered keys no longer follow a generator's (seed, index) rule, so the
  parameters become those of the merge, each source's kept under ``sources``). Its
  provenance is every source's records, each tagged with its ``source`` path, then a "merge"
  record. Labels from different labelers are refused unless asked for (``label_origins``).
"""
import json
from collections import Counter
from pathlib import Path

import numpy as np

from emtool.data.dataset import (dataset_info, iter_dataset, provenance_record, read_arrays,
                                 read_dataset, write_dataset)
from emtool.errors import DatasetError

#: The ASE index syntax ``parse_index`` accepts, for messages.
INDEX_SYNTAX = "3, -1, 0:100, ::2, -10:, 3,5,9 or 0:10,20:30"


def parse_index(spec, n):
    """The positions (sorted, unique int64 array) of ``n`` items that ``spec`` picks.

    ``spec``: ASE index syntax — an integer (negative counts from the end) or a Python slice
    ``start:stop:step`` — or a comma-separated list of them, e.g. ``"0:100"``, ``"::2"``,
    ``"-10:"``, ``"3,5,9"``, ``"0:10,-5:"``. The result is a set: order and repeats do not
    matter. An integer outside ``-n..n-1``, a zero step or other text raises
    ``DatasetError``; slices clip as in Python.
    """
    picked = []
    for piece in str(spec).split(","):
        parts = piece.split(":")
        try:
            bounds = [int(part) if part.strip() else None for part in parts]
        except ValueError:
            bounds = None
        if bounds is None or len(parts) > 3 or (len(parts) == 1 and bounds[0] is None):
            raise DatasetError(f"index {spec!r}: {piece.strip()!r} is not an integer or a "
                               f"slice (examples: {INDEX_SYNTAX})")
        if len(parts) == 1:
            if not -n <= bounds[0] < n:
                raise DatasetError(f"index {spec!r}: {bounds[0]} is out of range for "
                                   f"{n} configurations")
            picked.append([bounds[0] % n])
        elif len(parts) == 3 and bounds[2] == 0:
            raise DatasetError(f"index {spec!r}: slice step cannot be zero")
        else:
            picked.append(np.arange(n)[slice(*bounds)])
    return np.unique(np.concatenate(picked)).astype(np.int64)


def subset_keys(path, index=":", groups=(), labeled=None):
    """The ``index`` keys (ascending int64 array) of the configurations of dataset ``path``
    that the filters pick, and the count they were picked from.

    First the filters: ``groups`` (names, ``""`` = no group; none given: all) and ``labeled``
    (True: finite energy, False: no energy, None: both); then ``index`` (``parse_index``)
    picks among the configurations left, in file order (ascending key): ``groups=["bulk"],
    index=":10"`` are the first ten of group bulk. Raises ``DatasetError`` for a group the
    dataset lacks (listing those present) and for an empty selection.
    """
    path = Path(path)
    groups = _names(groups)
    arrays = read_arrays(path, ["index", "group", "energy"])
    keep = np.ones(len(arrays["index"]), bool)
    if groups:
        present = sorted(set(arrays["group"].tolist()))
        unknown = [name for name in groups if name not in present]
        if unknown:
            raise DatasetError(f"{path}: no group {', '.join(map(_quote, unknown))}; groups "
                               f"present: {', '.join(map(_quote, present)) or 'none'}")
        keep &= np.array([name in groups for name in arrays["group"]], bool)
    if labeled is not None:
        keep &= np.isfinite(arrays["energy"]) == bool(labeled)
    candidates = arrays["index"][keep]
    keys = candidates[parse_index(index, len(candidates))] if len(candidates) else candidates
    if not len(keys):
        filters = [f"index {index!r}"] + [f"group {_quote(name)}" for name in groups] + (
            [] if labeled is None else ["labeled" if labeled else "unlabeled"])
        raise DatasetError(f"{path}: empty selection: none of its {len(arrays['index'])} "
                           f"configurations is picked by {', '.join(filters)}")
    return keys, len(arrays["index"])


def subset_dataset(source, output, index=":", groups=(), labeled=None):
    """Write the configurations of dataset ``source`` that ``subset_keys(source, index,
    groups, labeled)`` picks as the dataset ``output``.

    Keeps their ``index`` keys, info (plus ``source_file``, ``source_index``), groups and
    labels, and the source's parameters and provenance, to which it appends the record
    ``provenance_record("subset", settings)``. ``output`` must not be ``source``
    (``DatasetError``); an existing ``output`` is replaced. Returns a summary dict: the
    settings (source, index, groups, labeled, configs, source_configs), output,
    group_counts {name: count}, labeled_configs (configurations with energy).
    """
    source, output, groups = Path(source), Path(output), _names(groups)
    _refuse_input_as_output(output, [source])
    keys, total = subset_keys(source, index, groups, labeled)
    info = dataset_info(source)
    images = read_dataset(source, indices=keys)
    origin = str(source.resolve())
    for atoms in images:
        atoms.info.update(source_file=origin, source_index=int(atoms.info["index"]))
    settings = dict(source=origin, index=str(index), groups=groups, labeled=labeled,
                    configs=len(images), source_configs=total)
    write_dataset(output, images, parameters=info["parameters"],
                  provenance=info["provenance"] + [provenance_record("subset", settings)])
    return dict(settings, output=str(output), **_counts(images))


def merge_datasets(sources, output, mixed_labels=False):
    """Concatenate the datasets ``sources`` (in that order, each in file order) into the
    dataset ``output``.

    Each configuration keeps its info (plus ``source_file``, ``source_index``), group and
    labels and gets the ``index`` 0..n-1 of its place in the result. Parameters:
    ``{"job": "merge", "sources": [{"path", "parameters"}, ...]}``; provenance: the records
    of every source in order, each with ``"source": path`` added (one already tagged by an
    earlier merge keeps its tag), then ``provenance_record("merge", {"sources": [{"path",
    "configs"}], "configs", "mixed_labels"})``.

    Raises ``DatasetError`` when ``output`` is one of ``sources``, a source is given twice,
    none holds a configuration, or the sources that hold labeled configurations differ in
    ``label_origins`` and ``mixed_labels`` is false (one training set needs one reference
    method; with ``mixed_labels`` they are merged and ``source_file`` tells them apart).
    Label units cannot differ: every dataset stores emtool's units, checked on open.
    Returns a summary dict: output, sources, configs, group_counts {name: count},
    labeled_configs.
    """
    sources, output = [Path(p) for p in sources], Path(output)
    if not sources:
        raise DatasetError(f"{output}: no datasets to merge")
    _refuse_input_as_output(output, sources)
    seen = {}
    for path in sources:
        if path.resolve() in seen:
            raise DatasetError(f"{path}: given twice (also as {seen[path.resolve()]})")
        seen[path.resolve()] = path
    infos = [dataset_info(path) for path in sources]
    _check_label_origins(sources, infos, mixed_labels)
    images, provenance, parameters, parts = [], [], [], []
    for path, info in zip(sources, infos):
        origin = str(path.resolve())
        for atoms in iter_dataset(path):
            atoms.info.update(source_file=origin, source_index=int(atoms.info["index"]),
                              index=len(images))
            images.append(atoms)
        provenance += [dict(record, source=record.get("source", origin))
                       for record in info["provenance"]]
        parameters.append({"path": origin, "parameters": info["parameters"]})
        parts.append({"path": origin, "configs": info["configs"]})
    if not images:
        raise DatasetError(f"{', '.join(map(str, sources))}: no configurations to merge")
    settings = dict(sources=parts, configs=len(images), mixed_labels=bool(mixed_labels))
    write_dataset(output, images, parameters={"job": "merge", "sources": parameters},
                  provenance=provenance + [provenance_record("merge", settings)])
    return dict(output=str(output), sources=[p["path"] for p in parts], configs=len(images),
                **_counts(images))


def label_origins(provenance):
    """Where the labels of a dataset come from, as its provenance records name it: a sorted
    tuple of texts — ``"KIND:TARGET KWARGS"`` of every "label" record's labeler (e.g.
    ``"potential:reference:W"``, ``"ase:gpaw_w.py:calc {...}"``); without one, ``"import
    PATH"`` of every "import" record; without either, ``("unrecorded",)``. Versions and
    timeouts are not part of the origin. A dataset relabeled with another labeler names both.
    """
    labelers = {_labeler(r.get("settings") or {})
                for r in provenance if r.get("action") == "label"}
    if labelers:
        return tuple(sorted(labelers))
    imports = {f"import {(r.get('settings') or {}).get('source', '?')}"
               for r in provenance if r.get("action") == "import"}
    return tuple(sorted(imports)) or ("unrecorded",)


def _labeler(settings):
    kwargs = settings.get("kwargs") or {}
    text = f"{settings.get('kind', '?')}:{settings.get('target', '?')}"
    return text + (f" {json.dumps(kwargs, sort_keys=True)}" if kwargs else "")


def _check_label_origins(sources, infos, mixed_labels):
    by_origin = {}
    for path, info in zip(sources, infos):
        if info["labeled_configs"]:
            by_origin.setdefault(label_origins(info["provenance"]), []).append(str(path))
    if mixed_labels or len(by_origin) <= 1:
        return
    described = "; ".join(f"{' + '.join(map(_short, origins))}: {', '.join(paths)}"
                          for origins, paths in by_origin.items())
    raise DatasetError(f"labels of different origin ({described}): one training set needs "
                       f"one reference method; merge them with --mixed-labels if they share one")


def _short(text, width=60):
    return text if len(text) <= width else text[:width - 3] + "..."


def _refuse_input_as_output(output, sources):
    for path in sources:
        if output.resolve() == Path(path).resolve():
            raise DatasetError(f"{output}: the output would replace the input {path}")


def _names(groups):
    """Group names as a list (one name given as a str is one name, not its letters)."""
    return [groups] if isinstance(groups, str) else list(groups)


def _quote(name):
    return json.dumps(name, ensure_ascii=False)


def _counts(images):
    return {"group_counts": dict(sorted(Counter(a.info["group"] for a in images).items())),
            "labeled_configs": sum(a.calc is not None and "energy" in a.calc.results
                                   for a in images)}
