"""Local structure types (emtool.descriptors.structure_types, kernels/cna.py) on perfect, perturbed and
rotated lattices, and per atom against OVITO's adaptive CNA."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.cluster import Icosahedron
from ase.lattice.hexagonal import Graphite

from emtool import StructureError
from emtool.descriptors.structure_types import (STRUCTURE_TYPES, classify_atoms,
                                                classify_structures, type_fractions)

CODE = {name: k for k, name in enumerate(STRUCTURE_TYPES)}

#: (structure, nearest-neighbor distance in Å, expected type) of every lattice tested.
LATTICES = {
    "bcc": (lambda: bulk("W", "bcc", a=3.1652, cubic=True).repeat(3), 3.1652 * 3 ** 0.5 / 2, "bcc"),
    "bcc1": (lambda: bulk("W", "bcc", a=3.1652), 3.1652 * 3 ** 0.5 / 2, "bcc"),
    "fcc": (lambda: bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3), 3.6 / 2 ** 0.5, "fcc"),
    "hcp": (lambda: bulk("Mg", "hcp", a=3.2, c=5.2).repeat((4, 4, 3)), 3.2, "hcp"),
    "sc": (lambda: bulk("Po", "sc", a=3.35).repeat(5), 3.35, "sc"),
    "diamond": (lambda: bulk("Si", "diamond", a=5.43, cubic=True).repeat(2), 5.43 * 3 ** 0.5 / 4,
                "diamond"),
    "lonsdaleite": (lambda: bulk("SiC", "wurtzite", a=3.08, c=3.08 * (8 / 3) ** 0.5).repeat(
        (3, 3, 2)), 3.08 * 3 ** 0.5 / 8 ** 0.5, "diamond"),
    "graphite": (lambda: Graphite("C", latticeconstant={"a": 2.46, "c": 6.7}).repeat((4, 4, 2)),
                 2.46 / 3 ** 0.5, "graphitic"),
}


@pytest.mark.parametrize("name", sorted(LATTICES))
def test_perfect_lattices(name):
    build, _, expected = LATTICES[name]
    labels = classify_atoms(build())
    assert (labels == CODE[expected]).all(), np.bincount(labels, minlength=len(STRUCTURE_TYPES))


@pytest.mark.parametrize("name", sorted(LATTICES))
def test_perturbed_lattices(name):
    """Gaussian displacements of 3% of the nearest-neighbor distance per component."""
    build, nn, expected = LATTICES[name]
    atoms = build().repeat(2)
    atoms.positions += np.random.default_rng(7).normal(scale=0.03 * nn, size=atoms.positions.shape)
    labels = classify_atoms(atoms)
    assert np.mean(labels == CODE[expected]) >= 0.95


def test_icosahedral_cluster_in_a_box():
    """A 55-atom Mackay icosahedron: its center is icosahedral, its shells are surface-like."""
    atoms = Icosahedron("Cu", 3)
    atoms.center(vacuum=10.0)
    center = int(np.argmin(np.linalg.norm(atoms.positions - atoms.positions.mean(0), axis=1)))
    for pbc in (False, True):
        atoms.pbc = pbc
        labels = classify_atoms(atoms)
        assert labels[center] == CODE["ico"]
        assert (np.delete(labels, center) != CODE["ico"]).all()


def test_invariant_under_rotation_translation_permutation():
    rng = np.random.default_rng(3)
    atoms = bulk("W", "bcc", a=3.1652, cubic=True).repeat(3)
    atoms.positions += rng.normal(scale=0.2, size=atoms.positions.shape)
    labels = classify_atoms(atoms)
    assert 0 < np.sum(labels == CODE["bcc"]) < len(atoms)   # a mix, so the test can fail
    rotated = atoms.copy()
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated.set_cell(atoms.cell.array @ q.T, scale_atoms=True)
    rotated.positions += [0.3, -1.1, 2.0]
    order = rng.permutation(len(atoms))
    assert (classify_atoms(rotated[order]) == labels[order]).all()


def test_amorphous_and_small_inputs():
    from conftest import random_box
    labels = classify_structures([random_box(k) for k in range(3)])
    assert all(np.mean(lab == CODE["unknown"]) > 0.9 for lab in labels)
    assert classify_atoms(Atoms("W", positions=[[0, 0, 0]])).tolist() == [CODE["unknown"]]
    dimer = Atoms("W2", positions=[[0, 0, 0], [2.5, 0, 0]])
    assert classify_atoms(dimer).tolist() == [0, 0]


def test_type_fractions():
    fractions = type_fractions(np.array([3, 3, 0, 1]))
    assert list(fractions) == list(STRUCTURE_TYPES)
    assert fractions["bcc"] == 0.5 and fractions["unknown"] == 0.25 and fractions["ico"] == 0.0


def test_bad_input():
    with pytest.raises(StructureError):
        classify_atoms("W")
    atoms = bulk("W", "bcc", a=3.1652)
    atoms.positions[0, 0] = np.nan
    with pytest.raises(StructureError, match="non-finite"):
        classify_atoms(atoms)


# -- independent reference: OVITO 3.17.2 CommonNeighborAnalysisModifier (adaptive cutoff),
#    per-atom types 0 other, 1 fcc, 2 hcp, 3 bcc, 4 ico (the codes of emtool), computed once on
#    the structures built below (pip install ovito in a separate environment).

def _noisy(name, fraction, seed):
    atoms = {"bcc": lambda: bulk("W", "bcc", a=3.1652, cubic=True).repeat(4),
             "fcc": lambda: bulk("Cu", "fcc", a=3.6, cubic=True).repeat(4),
             "hcp": lambda: bulk("Mg", "hcp", a=3.2, c=5.2).repeat((5, 5, 4))}[name]()
    nn = {"bcc": 3.1652 * 3 ** 0.5 / 2, "fcc": 3.6 / 2 ** 0.5, "hcp": 3.2}[name]
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(scale=fraction * nn, size=atoms.positions.shape)
    return atoms


def _cluster():
    atoms = Icosahedron("Cu", 4)
    atoms.center(vacuum=8.0)
    atoms.pbc = True
    return atoms


OVITO_ACNA = {
    ("bcc", 0.06, 1): ("30333330333333333333333333333333333333333333333333333333333333333303033333333333"
     "333333333333033330303333333333333333333333333333"),
    ("bcc", 0.08, 2): ("30003333000333330033033333333333303030333033300030333333033333333000300000030200"
     "000330003000300030000333000030003000333333003303"),
    ("fcc", 0.06, 3): ("11111111110101011111111111110011101111111011001111110111101110101111111111111110"
     "11101111111111100000111111101001000111111111100111111111111100011111111110111011"
     "11011110111111111110101101001111011111110001110111101111111101111010001101111100"
     "1110011100111111"),
    ("hcp", 0.06, 4): ("22222002222202220000222022222202222220222222200222222002222022222222222222022222"
     "20202320202220222222222222222222222222222222000200220022020022222202222222222222"
     "2222022222222022202002022220222222222222"),
    "cluster": ("40000000000000200200200200200202222222222222222222222220000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000000"),
}


@pytest.mark.parametrize("case", list(OVITO_ACNA), ids=str)
def test_against_ovito_adaptive_cna(case):
    atoms = _cluster() if case == "cluster" else _noisy(*case)
    expected = np.array([int(c) for c in OVITO_ACNA[case]])
    assert len(set(expected.tolist())) > 1   # mixed labels: the comparison is discriminating
    assert classify_atoms(atoms).tolist() == expected.tolist()
