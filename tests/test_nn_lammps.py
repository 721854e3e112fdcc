"""Exported networks run in LAMMPS ML-IAP (``model nn``) with emtool's energies and forces."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import emtool
from conftest import displaced_bcc, random_box
from emtool.cli import main
from emtool.lammps import lammps_potential
from emtool.potentials.models import save_model
from emtool.potentials.nn import NetworkPotential, architecture_layers
from emtool.fitting.networks import build_network, network_coefficients
from emtool.potentials.zbl import ZBLSpec


def network_potential(params, architecture, activation, zbl=None, seed=0):
    d = params.ncoeff
    torch.manual_seed(seed)
    network = build_network(torch, d, architecture_layers(architecture, d), activation)
    images = [random_box(k, natoms=12) for k in range(2)]
    b = np.vstack([emtool.bispectrum(a, params) for a in images])
    return NetworkPotential(params, architecture_layers(architecture, d), activation,
                            network_coefficients(network), b.mean(0), b.std(0), zbl)


@pytest.mark.parametrize("twojmax, bzeroflag, architecture, activation, zbl", [
    (4, 0, "A1", "tanh", None),
    (6, 1, "B1", "sigmoid", None),
    (8, 0, "A3", "relu", ZBLSpec(4.0, 4.8, (74.0,))),
])
def test_exported_network_matches_lammps_mliap(tmp_path, twojmax, bzeroflag, architecture,
                                               activation, zbl):
    params = emtool.SnapParams(twojmax=twojmax, bzeroflag=bzeroflag, elements=("W",))
    potential = network_potential(params, architecture, activation, zbl)
    save_model(tmp_path / "m.json", potential)
    folder = tmp_path / "lmp"
    result = CliRunner().invoke(main, ["export", str(tmp_path / "m.json"), "--format", "lammps",
                                       "-o", str(folder)])
    assert result.exit_code == 0, result.output
    mliap = (f"mliap model nn {folder}/model.mliap.model descriptor sna "
             f"{folder}/model.mliap.descriptor")
    if zbl is None:
        commands = [f"pair_style {mliap}", "pair_coeff * * W"]
    else:
        commands = [f"pair_style hybrid/overlay zbl 4.0 4.8 {mliap}", "pair_coeff 1 1 zbl 74.0 74.0",
                    "pair_coeff * * mliap W"]
    include = (folder / "model.mliap").read_text()
    assert all(c.replace(f"{folder}/", "") in include for c in commands)
    for atoms in (random_box(7), displaced_bcc(3), random_box(8, tetragonal=False)):
        ours = potential.evaluate(atoms)
        ref = lammps_potential(atoms, commands)
        assert abs(ours["energy"] - ref["energy"]) <= 1e-8
        np.testing.assert_allclose(ours["forces"], ref["forces"], atol=1e-8)
        np.testing.assert_allclose(ours["energies"], ref["energies"], atol=1e-8)


def test_softplus_export_is_refused(tmp_path):
    params = emtool.SnapParams(twojmax=2, bzeroflag=0, elements=("W",))
    save_model(tmp_path / "m.json", network_potential(params, "A1", "softplus"))
    result = CliRunner().invoke(main, ["export", str(tmp_path / "m.json"), "--format", "lammps",
                                       "-o", str(tmp_path / "lmp")])
    assert result.exit_code == 2
    assert "no softplus activation" in result.output and "Traceback" not in result.output
