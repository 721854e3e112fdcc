"""Row weights of a SNAP fit per group of configurations (``emtool fit``, FitSNAP inputs)."""
from dataclasses import dataclass

import numpy as np

from emtool.errors import ParameterError


@dataclass(frozen=True)
class GroupWeights:
    """Row weights of one group: energy (per eV/atom), force (per eV/Å), stress (per eV/Å^3)."""

    energy: float = 1.0
    force: float = 1.0
    stress: float = 0.0

    def __post_init__(self):
        values = (self.energy, self.force, self.stress)
        if not all(np.isfinite(v) and v >= 0 for v in values):
            raise ParameterError(f"weights must be finite and >= 0, got energy {self.energy}, "
                                 f"force {self.force}, stress {self.stress}")


class UniformWeights(dict):
    """A {group: GroupWeights} mapping that gives the same weights to every group."""

    def __init__(self, weights):
        super().__init__()
        self.weights = weights

    def get(self, key, default=None):
        return self.weights
