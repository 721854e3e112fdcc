"""The committed GPAW reference set of tungsten (examples/data/w_gpaw.h5, docs/labels.md):
a readable emtool dataset, every configuration labeled with finite energy and forces, the
groups of its parts, the BCC reference, and the GPAW settings in its parameters."""
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from emtool.data.dataset import dataset_info, read_dataset

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
DE_GROUPS = {"Disordered_Struc", "vacancy", "gamma_surface_vacancy"}


@pytest.fixture(scope="module")
def reference_set():
    return read_dataset(DATA / "w_gpaw.h5")


def test_every_configuration_is_labeled(reference_set):
    for atoms in reference_set:
        assert np.isfinite(atoms.get_potential_energy())
        forces = atoms.get_forces()
        assert forces.shape == (len(atoms), 3) and np.all(np.isfinite(forces))
        assert "label_error" not in atoms.info


def test_parts_and_groups(reference_set):
    groups = {a.info["group"] for a in reference_set}
    assert "bcc" in groups
    assert groups <= {"bcc", "entropy_max", "entropy_min"} | DE_GROUPS
    bcc = [a for a in reference_set if a.info["group"] == "bcc"]
    assert len(bcc) == 1
    expected = bulk("W", "bcc", a=6.36806381 / 2, cubic=True).repeat(3)
    assert np.allclose(bcc[0].cell.array, expected.cell.array)
    # periodic boxes: forces sum to zero (translation invariance of DFT, up to SCF noise)
    for atoms in reference_set:
        assert np.abs(atoms.get_forces().sum(axis=0)).max() < 0.05 * len(atoms) ** 0.5
    # DE configurations keep their VASP energies; relative to BCC both codes agree on the order
    de = [a for a in reference_set if a.info["group"] in DE_GROUPS]
    for atoms in de:
        assert np.isfinite(atoms.info["vasp_energy"])


def test_settings_in_the_parameters():
    gpaw = dataset_info(DATA / "w_gpaw.h5")["parameters"]["gpaw"]
    assert gpaw["xc"] == "PBE" and gpaw["ecut"] >= 400
    assert gpaw["occupations"].startswith("marzari-vanderbilt") and "W.PBE" in gpaw["setup"]
    assert gpaw["convergence"]["forces"] <= 1e-3
