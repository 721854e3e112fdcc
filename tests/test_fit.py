"""SNAP fitting: recovery of known coefficients from synthetic data."""
import json

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from conftest import displaced_bcc, random_box
from emtool import SnapParams
from emtool.fitting.snap import fit_snap
from emtool.fitting.weights import GroupWeights, UniformWeights
from emtool.potentials.snap import SnapPotential


def labeled(images, model):
    out = []
    for atoms in images:
        result = model.evaluate(atoms)
        atoms = atoms.copy()
        atoms.calc = SinglePointCalculator(atoms, energy=result["energy"], forces=result["forces"],
                                           stress=result["stress"])
        out.append(atoms)
    return out


@pytest.mark.parametrize("quadratic", [0, 1])
def test_fit_recovers_known_coefficients(quadratic):
    params = SnapParams(twojmax=4, rcutfac=4.73, quadraticflag=quadratic, elements=("W",))
    d = params.ncoeff
    ncoeff = 1 + d + (d * (d + 1) // 2 if quadratic else 0)
    truth = np.random.default_rng(1).normal(scale=1e-2, size=ncoeff)
    truth[0] = -8.0
    model = SnapPotential(params, truth[None, :])
    images = labeled([random_box(k, natoms=12) for k in range(6)]
                     + [displaced_bcc(k, repeat=(1, 1, 2)) for k in range(6)], model)
    weights = {"": GroupWeights(energy=10.0, force=1.0, stress=1.0)}
    coefficients, info = fit_snap(images, params, weights, quadratic=bool(quadratic))
    np.testing.assert_allclose(coefficients, truth, rtol=1e-6, atol=1e-9)
    assert info["residual"] < 1e-8


def test_fitsnap_ta_reference_fit_is_reproduced(shared_data):
    """Peer check: FitSNAP's own settings and weights on its Ta example give its coefficients
    and errors (energy RMSE 0.380 eV/atom, force RMSE 0.161 eV/Å) within 1%."""
    from emtool.data.exchange import read_fitsnap_json
    from emtool.fitting.fitsnap_input import read_fitsnap_input
    from emtool.potentials.snapfiles import read_snapcoeff
    folder = shared_data / "fitsnap_Ta_JCP2014"
    setup = read_fitsnap_input(folder / "Ta-example_20May21_Standard.in")
    images = read_fitsnap_json(setup.data_path)
    coefficients, _ = fit_snap(images, setup.params, setup.weights, setup.reference)
    reference = read_snapcoeff(folder / "Ta_pot_20May21_Standard.snapcoeff")[3][0]
    np.testing.assert_allclose(coefficients, reference, rtol=1e-2, atol=1e-6)
    model = SnapPotential(setup.params, coefficients[None, :])
    e_err, f_err = [], []
    for atoms in images:
        ours, zbl = model.evaluate(atoms), setup.reference.evaluate(atoms)
        e_err.append((ours["energy"] + zbl["energy"] - atoms.get_potential_energy()) / len(atoms))
        f_err.append((ours["forces"] + zbl["forces"] - atoms.get_forces()).ravel())
    assert np.sqrt(np.mean(np.square(e_err))) == pytest.approx(0.379769, rel=1e-2)
    assert np.sqrt(np.mean(np.square(np.concatenate(f_err)))) == pytest.approx(0.160973, rel=1e-2)


def test_fit_command_model_file_and_lammps_export(tmp_path):
    """emtool fit -> model file -> emtool.calculator and LAMMPS give the same energies/forces."""
    import emtool
    from click.testing import CliRunner
    from emtool.cli import main
    from emtool.lammps import lammps_potential
    params = SnapParams(twojmax=4, rcutfac=4.73, bzeroflag=0, elements=("W",))
    truth = np.random.default_rng(2).normal(scale=1e-2, size=(1, 1 + params.ncoeff))
    zbl_model = SnapPotential(params, truth)
    images = labeled([random_box(k, natoms=12) for k in range(8)], zbl_model)
    for k, atoms in enumerate(images):
        atoms.info["index"] = k
    emtool.write_dataset(tmp_path / "train.h5", images)
    model = tmp_path / "m.json"
    result = CliRunner().invoke(main, ["fit", str(tmp_path / "train.h5"), "-o", str(model),
                                       "--twojmax", "4", "--zbl", "74", "4.0", "4.8"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "lmp"
    result = CliRunner().invoke(main, ["export", str(model), "--format", "lammps", "-o", str(folder)])
    assert result.exit_code == 0, result.output
    atoms = random_box(20)
    atoms.calc = emtool.calculator(str(model))
    ref = lammps_potential(atoms, ["pair_style hybrid/overlay zbl 4.0 4.8 snap",
                                   "pair_coeff 1 1 zbl 74 74",
                                   f"pair_coeff * * snap {folder}/model.snapcoeff "
                                   f"{folder}/model.snapparam W"])
    assert abs(atoms.get_potential_energy() - ref["energy"]) <= 1e-8
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"], atol=1e-8)


def test_evaluate_command_json(tmp_path):
    import json
    import emtool
    from click.testing import CliRunner
    from emtool.cli import main
    params = SnapParams(twojmax=2, rcutfac=4.73, elements=("W",))
    model = SnapPotential(params, np.r_[-8.0, np.full(params.ncoeff, 1e-3)][None, :])
    images = labeled([random_box(k, natoms=10) for k in range(4)], model)
    for k, atoms in enumerate(images):
        atoms.info.update(index=k, group="a" if k < 2 else "b")
    emtool.write_dataset(tmp_path / "d.h5", images)
    from emtool.potentials.models import save_model
    save_model(tmp_path / "m.json", model)
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "m.json"), str(tmp_path / "d.h5"),
                                       "--json", "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["energy_rmse"] < 1e-12 and report["force_rmse"] < 1e-12
    assert set(report["groups"]) == {"a", "b"} and len(report["rse"]) == 4
    assert report["ndof"] == 1 + params.ncoeff
    assert (tmp_path / "plots" / "errors.png").exists()


def test_energy_only_fit_uses_energy_rows_alone():
    """With force and stress weights 0 the rows come from B alone (no derivatives): one row
    per configuration, and known linear coefficients are still recovered."""
    params = SnapParams(twojmax=2, rcutfac=4.73, elements=("W",))
    truth = np.r_[-8.0, np.random.default_rng(4).normal(scale=1e-2, size=params.ncoeff)]
    images = labeled([random_box(k, natoms=8 + k % 5) for k in range(12)],
                     SnapPotential(params, truth[None, :]))
    for weights in ({"": GroupWeights(energy=1.0, force=0.0)},
                    UniformWeights(GroupWeights(energy=1.0, force=0.0))):
        coefficients, info = fit_snap(images, params, weights)
        assert info["rows"] == len(images)
        np.testing.assert_allclose(coefficients, truth, rtol=1e-6, atol=1e-9)


def test_fit_command_applies_its_weights(tmp_path):
    """--force-weight 0 gives one row per configuration (a uniform-weights mapping has no
    items, and must not be mistaken for no weights)."""
    import emtool
    from click.testing import CliRunner
    from emtool.cli import main
    params = SnapParams(twojmax=2, rcutfac=4.73, elements=("W",))
    truth = np.r_[-8.0, np.full(params.ncoeff, 1e-3)]
    images = labeled([random_box(k, natoms=8 + k % 3) for k in range(9)],
                     SnapPotential(params, truth[None, :]))
    for k, atoms in enumerate(images):
        atoms.info["index"] = k
    emtool.write_dataset(tmp_path / "d.h5", images)
    for force_weight, rows in (("0", 9), ("1", 9 + 3 * sum(len(a) for a in images))):
        out = tmp_path / f"m{force_weight}.json"
        result = CliRunner().invoke(main, ["fit", str(tmp_path / "d.h5"), "-o", str(out),
                                           "--twojmax", "2", "--force-weight", force_weight])
        assert result.exit_code == 0, result.output
        assert json.loads(out.read_text())["metadata"]["rows"] == rows
