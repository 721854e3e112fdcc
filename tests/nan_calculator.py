"""An ASE calculator factory whose results are NaN (for the labeling tests)."""
import numpy as np
from ase.calculators.calculator import Calculator, all_changes


class NaNCalculator(Calculator):
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = dict(energy=np.nan, forces=np.zeros((len(self.atoms), 3)))


def calculator():
    return NaNCalculator()
