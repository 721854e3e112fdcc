"""emtool: entropy-optimized training sets for machine-learned interatomic potentials.

Public API (stable names): ``SnapParams``, ``bispectrum``, ``bispectrum_derivatives``,
``calculator``, ``SnapPotential``, ``read_dataset``, ``write_dataset``.
"""
from importlib.metadata import version

from emtool.descriptors.params import SnapParams, n_bispectrum
from emtool.errors import ParameterError, StructureError
from emtool.descriptors.snap import bispectrum, bispectrum_derivatives
from emtool.data.dataset import read_dataset, write_dataset

__version__ = version("emtool")
__all__ = ["ParameterError", "SnapParams", "StructureError", "bispectrum",
           "bispectrum_derivatives", "calculator", "n_bispectrum", "read_dataset",
           "write_dataset", "SnapPotential"]


def calculator(spec):
    """An ASE calculator for the potential named by ``spec`` (see ``emtool.potentials.calculators``)."""
    from emtool.potentials.calculators import calculator as _calculator
    return _calculator(spec)


def __getattr__(name):
    if name == "SnapPotential":
        from emtool.potentials.snap import SnapPotential
        return SnapPotential
    raise AttributeError(f"module 'emtool' has no attribute {name!r}")
