"""emtool's model files: one JSON document per fitted potential.

Layout: {"format": "emtool-model", "format_version": 1, "kind": "snap" or "nn", "params":
{SnapParams fields}, "zbl": null or {"r_inner", "r_outer", "z"}, "metadata": {...training
settings and metrics}} and, by kind,

- "snap": "coefficients": [[c0, beta..., (quadratic...)] per element];
- "nn": "nnodes": [layer widths, last 1], "activation": name, "coefficients": [flat ML-IAP
  layout], "shift": [D], "scale": [D] (see ``emtool.nn``).

Floats are written with repr (JSON), so a model round-trips exactly. ``emtool.calculator("model.json")`` and
every ``--potential`` option accept these files.
"""
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from emtool.params import ParameterError, SnapParams

MODEL_FORMAT = "emtool-model"
MODEL_VERSION = 1


def save_model(path, potential, metadata=None):
    """Write a ``SnapPotential`` or ``NetworkPotential`` (with its ZBL overlay, if any) and
    ``metadata`` to ``path``."""
    from emtool.nn import NetworkPotential
    from emtool.workflows import atomic_write
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
    from emtool.snap_model import SnapPotential
    from emtool.snapfiles import ZBLSpec
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
            from emtool.nn import NetworkPotential
            return NetworkPotential(params, document["nnodes"], document["activation"], coeffs,
                                    document["shift"], document["scale"], zbl)
        return SnapPotential(params, coeffs, zbl)
    except (KeyError, TypeError) as err:
        raise ParameterError(f"{path}: malformed model file ({err})") from None


def model_metadata(path):
    """The ``metadata`` of a model file (training settings and metrics)."""
    return json.loads(Path(path).read_text()).get("metadata", {})
