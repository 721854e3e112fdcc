"""emtool's model files: one JSON document per fitted potential.

Layout: {"format": "emtool-model", "format_version": 1, "kind": "snap" or "nn", "params":
{SnapParams fields}, "zbl": null or {"r_inner", "r_outer", "z"}, "metadata": {...training
settings and metrics}} and, by kind,

- "snap": "coefficients": [[c0, beta..., (quadratic...)] per element];
- "nn": "nnodes": [layer widths, last 1], "activation": name, "coefficients": [flat ML-IAP
  layout], "shift": [D], "scale": [D] (see ``emtool.potentials.nn``).

Floats are written with repr (JSON), so a model round-trips exactly. ``emtool.calculator("model.json")`` and
every ``--potential`` option accept these files.

``metadata["subsets"]``, written by ``emtool fit`` (model files from before it have none and
load as before), says which configurations of the training dataset each part of the
split took: {"dataset": path of the training file, "configs": its number of configurations
(labeled or not), "fingerprint": ``configurations_fingerprint`` of them, "train": [...],
"validation": [...] and, for networks, "test": [...]}, each list the ascending ``index`` keys
of those configurations in the training file (what ``emtool.read_dataset(path, indices=...)``
takes; unlabeled configurations are in no part). ``emtool evaluate --subset`` reads it.
"""
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from emtool.files import atomic_write
from emtool.potentials.nn import NetworkPotential
from emtool.descriptors.params import SnapParams
from emtool.errors import ParameterError
from emtool.potentials.snap import SnapPotential
from emtool.potentials.zbl import ZBLSpec

MODEL_FORMAT = "emtool-model"
MODEL_VERSION = 1


def save_model(path, potential, metadata=None):
    """Write a ``SnapPotential`` or ``NetworkPotential`` (with its ZBL overlay, if any) and
    ``metadata`` to ``path``."""
    document = dict(format=MODEL_FORMAT, format_version=MODEL_VERSION, kind="snap",
                    params=asdict(potential.params), coefficients=potential.coeffs.tolist())
    if isinstance(potential, NetworkPotential):
        document.update(kind="nn", nnodes=potential.nnodes.tolist(),
                        activation=potential.activation, shift=potential.shift.tolist(),
                        scale=potential.scale.tolist())
    document.update(zbl=asdict(potential.zbl) if potential.zbl else None, metadata=metadata or {})

    def write(tmp):
        Path(tmp).write_text(json.dumps(document, indent=1) + "\n")
    return atomic_write(path, write)


def load_model(path):
    """The potential stored in an emtool model file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ParameterError(f"{path}: not an emtool model file ({err})") from None
    if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
        raise ParameterError(f"{path}: not an emtool model file (format is not {MODEL_FORMAT!r})")
    if document.get("format_version") != MODEL_VERSION or document.get("kind") not in ("snap", "nn"):
        raise ParameterError(f"{path}: unsupported model version/kind "
                             f"{document.get('format_version')}/{document.get('kind')}")
    try:
        params = SnapParams(**document["params"])
        zbl = ZBLSpec(**document["zbl"]) if document.get("zbl") else None
        coeffs = np.array(document["coefficients"], dtype=float)
        if document["kind"] == "nn":
            return NetworkPotential(params, document["nnodes"], document["activation"], coeffs,
                                    document["shift"], document["scale"], zbl)
        return SnapPotential(params, coeffs, zbl)
    except (KeyError, TypeError, ValueError) as err:  # ParameterError among them
        raise ParameterError(f"{path}: malformed model file ({err})") from None


def model_metadata(path):
    """The ``metadata`` of a model file (training settings and metrics)."""
    return json.loads(Path(path).read_text()).get("metadata", {})


def configurations_fingerprint(images):
    """SHA-256 (hex) of the structures of ``images`` in order: index key, atomic numbers,
    positions, cell and pbc of each (labels excluded, so a relabeled dataset keeps it)."""
    digest = hashlib.sha256()
    for atoms in images:
        for value in (np.int64(atoms.info.get("index", -1)), np.asarray(atoms.numbers, np.int64),
                      np.asarray(atoms.positions, np.float64),
                      np.asarray(atoms.cell.array, np.float64), np.asarray(atoms.pbc, bool)):
            digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def subset_record(path, images, **parts):
    """The ``metadata["subsets"]`` record (module docstring) of a fit on dataset ``path``:
    ``images`` all its configurations in file order, ``parts`` name -> list of the images of
    that part."""
    return dict(dataset=str(Path(path).resolve()), configs=len(images),
                fingerprint=configurations_fingerprint(images),
                **{name: sorted(int(a.info["index"]) for a in part)
                   for name, part in parts.items()})


def training_subsets(path):
    """The ``metadata["subsets"]`` record of the emtool model file ``path``; ``ParameterError``
    when ``path`` is not a model file or was written without the record."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
        raise ParameterError(f"{path}: training subsets are recorded only in emtool model files "
                             f"(written by emtool fit)")
    record = (document.get("metadata") or {}).get("subsets")
    if record is None:
        raise ParameterError(f"{path}: the model file records no training subsets (written "
                             f"before emtool fit kept them); refit to evaluate its subsets")
    if not isinstance(record, dict) or not {"dataset", "configs", "fingerprint",
                                            "train"} <= set(record):
        raise ParameterError(f"{path}: malformed training subsets record")
    return record
