"""ASE calculators for every potential emtool knows, named by one spec string.

A potential spec is used the same way everywhere (``--potential SPEC`` on the command line):

- ``path/to/model.snapparam``: a LAMMPS SNAP model, its ``.snapcoeff`` beside it;
- ``path/to/model.snap``: a LAMMPS include file (SNAP, or SNAP + ZBL as the file says);
- ``reference:W``: the embedded Ackland–Thetford Finnis–Sinclair tungsten reference;
- ``path/to/model.json``: a potential fitted by ``emtool fit`` (an emtool model file,
  recognized by its content whatever its name);
- ``chgnet[:MODEL]``, ``sevenn[:MODEL]``: a universal machine-learned potential shipped with
  its package (``pip install 'emtool[umlip]'``, ``emtool.potentials.universal``).
"""
from pathlib import Path

from ase.calculators.calculator import Calculator, all_changes

from emtool.potentials.models import load_model
from emtool.descriptors.neighbors import check_overlap
from emtool.errors import ParameterError
from emtool.potentials.reference import reference_potential
from emtool.potentials.snap import SnapPotential
from emtool.structure import check_structure
from emtool.potentials.universal import is_universal, load_universal


def load_potential(spec):
    """The potential object named by ``spec`` (see the module docstring)."""
    spec = str(spec)
    if spec.startswith("reference:"):
        return reference_potential(spec)
    if is_universal(spec):
        return load_universal(spec)
    path = Path(spec)
    if path.suffix == ".json" or (path.suffix not in (".snapparam", ".snap")
                                  and _starts_like_json(path)):
        if not path.is_file():
            raise ParameterError(f"model file not found: {spec}")
        return load_model(path)
    if path.suffix in (".snapparam", ".snap"):
        if not path.is_file():
            raise ParameterError(f"potential file not found: {spec}")
        return SnapPotential.read(path)
    raise ParameterError(f"unknown potential spec {spec!r}: expected reference:W, chgnet, "
                         f"sevenn, an emtool model file, a .snapparam or a .snap file")


def _starts_like_json(path):
    """Whether ``path`` is a file whose first non-blank character is '{' (an emtool model
    file is recognized by its content, whatever its name)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4096).lstrip()[:1] == b"{"
    except OSError:
        return False


class EmtoolCalculator(Calculator):
    """ASE calculator around an emtool potential (anything with ``evaluate(atoms) -> dict``).

    Properties: ``energy`` and ``free_energy`` (eV), ``energies`` (eV per atom), ``forces``
    (eV/Å) and, for fully periodic cells, ``stress`` (eV/Å^3, Voigt xx yy zz yz xz xy).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, potential, **kwargs):
        super().__init__(**kwargs)
        self.potential = potential

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        check_overlap(*check_structure(self.atoms.positions, self.atoms.cell.array,
                                       self.atoms.pbc))
        result = self.potential.evaluate(self.atoms)
        self.results = dict(result, free_energy=result["energy"])


def calculator(spec):
    """An ASE calculator for the potential named by ``spec`` (a string or path)."""
    return EmtoolCalculator(load_potential(spec))
