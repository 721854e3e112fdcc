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


def test_converged_k_point_labels_of_twelve_of_them(reference_set):
    """w_gpaw_k222.h5: 12 configurations of the set again at 2x2x2 k-points and 500 eV, the
    same structures; on the DE ones it agrees with the DE set's VASP energies above BCC."""
    k222 = read_dataset(DATA / "w_gpaw_k222.h5")
    gpaw = dataset_info(DATA / "w_gpaw_k222.h5")["parameters"]["gpaw"]
    assert list(gpaw["kpts"]) == [2, 2, 2] and gpaw["ecut"] >= 500
    assert len(k222) >= 12
    source = {(a.info["part"], a.info["part_index"]): a for a in reference_set}
    pairs = [(source[(a.info["source_part"], a.info["source_index"])], a) for a in k222]
    for main, converged in pairs:
        assert np.array_equal(main.positions, converged.positions)
        assert np.array_equal(main.cell.array, converged.cell.array)
        assert np.isfinite(converged.get_potential_energy())
        assert np.all(np.isfinite(converged.get_forces()))
    groups = {a.info["group"] for a in k222}
    assert {"bcc", "entropy_max", "entropy_min"} <= groups and len(groups & DE_GROUPS) >= 2
    bcc = next(a for _, a in pairs if a.info["group"] == "bcc")
    vasp_bcc = -8.909125  # eV/atom, the DE set's lowest-energy BCC cell (bench_labelers)
    for main, converged in pairs:
        if converged.info["group"] in DE_GROUPS:
            gpaw_above = (converged.get_potential_energy() / len(converged)
                          - bcc.get_potential_energy() / len(bcc))
            vasp_above = main.info["vasp_energy"] / len(main) - vasp_bcc
            assert gpaw_above == pytest.approx(vasp_above, abs=0.03)
