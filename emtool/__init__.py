"""emtool: entropy-optimized training sets for machine-learned interatomic potentials.

Public API (stable names): ``SnapParams``, ``bispectrum``, ``bispectrum_derivatives``,
``calculator``, ``SnapPotential``, ``read_dataset``, ``write_dataset``.
"""
from importlib.metadata import version

from emtool.params import ParameterError, SnapParams, n_bispectrum
from emtool.snap import bispectrum, bispectrum_derivatives
from emtool.structure import StructureError
from emtool.dataset import read_dataset, write_dataset

__version__ = version("emtool")
__all__ = ["ParameterError", "SnapParams", "StructureError", "bispectrum",
           "bispectrum_derivatives", "calculator", "n_bispectrum", "read_dataset",
           "write_dataset", "SnapPotential"]


def calculator(spec):
    """An ASE calculator for the potential named by ``spec`` (see ``emtool.calculators``)."""
    from emtool.calculators import calculator as _calculator
    return _calculator(spec)


def __getattr__(name):
    if name == "SnapPotential":
        from emtool.snap_model import SnapPotential
        return SnapPotential
    raise AttributeError(f"module 'emtool' has no attribute {name!r}")
