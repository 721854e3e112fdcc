"""What the exchange formats (``emtool.data.fitsnap_json``, ``emtool.data.ase_formats``) share.

Their error (``ExchangeError``), the refusal of an existing destination, the checks of
elements and numeric arrays that readers apply, and the conversions of labels and info
values that writers apply. Configurations are ``ase.Atoms`` with a ``SinglePointCalculator``
(energy eV, forces eV/Å, stress eV/Å³ in ASE's Voigt order and sign).
"""
import re

import numpy as np
from ase.data import atomic_numbers
from ase.stress import full_3x3_to_voigt_6_stress

from emtool.errors import DatasetError, ParameterError


class ExchangeError(DatasetError):
    """An input file that cannot be read as a training set, or configurations that cannot be
    written in the requested format."""


def check_destination(dest, overwrite, want_dir):
    """Refuse an existing ``dest`` (a Path) unless ``overwrite``, and always one that is a
    file where a folder is to be written (``want_dir``) or the reverse."""
    if dest.exists() or dest.is_symlink():
        if not overwrite:
            raise ExchangeError(f"{dest} exists; pass overwrite=True to replace it")
        if dest.is_dir() != want_dir:
            raise ExchangeError(f"{dest} exists and is {'a folder' if dest.is_dir() else 'a file'}"
                                f"; refusing to replace it with a "
                                f"{'folder' if want_dir else 'file'}")


def natural_key(name):
    """Sort key of a name in natural order (``x_2`` before ``x_10``)."""
    parts = re.split(r"(\d+)", name)
    return [int(p) if k % 2 else p for k, p in enumerate(parts)], name


def allowed_elements(element):
    """The set of chemical symbols ``element`` (a symbol or a sequence of them), or None."""
    if element is None:
        return None
    allowed = {element} if isinstance(element, str) else set(element)
    unknown = sorted(e for e in allowed if e not in atomic_numbers or e == "X")
    if not allowed or unknown:
        raise ParameterError(f"element must be chemical symbols, got {element!r}")
    return allowed


def real_array(where, key, value, shape):
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


def calculator_labels(atoms):
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


def plain(value):
    """JSON-compatible Python value: NumPy arrays to lists, NumPy scalars to Python ones."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
