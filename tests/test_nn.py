"""Network potentials: architectures, Numba evaluation against PyTorch and finite differences,
training (forces, resume, splits), the fit command and bad input."""
import json

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner

import emtool
from conftest import displaced_bcc, fd_forces, fd_stress, random_box
from emtool.cli import main
from emtool.parallel import match_torch_threads, run_indexed
from emtool.potentials.nn import ARCHITECTURES, NetworkPotential, architecture_layers, n_parameters
from emtool.fitting.networks import (TrainingData, TrainingSettings, _Trainer, build_network,
                             descriptor_record, network_coefficients, train_network)
from emtool.fitting.split import split_configurations
from emtool.errors import ParameterError
from emtool.potentials.reference import reference_potential

PARAMS = emtool.SnapParams(twojmax=4, bzeroflag=0, elements=("W",))


def random_network(d, architecture="A1", activation="softplus", seed=0):
    torch.manual_seed(seed)
    network = build_network(torch, d, architecture_layers(architecture, d), activation)
    with torch.no_grad():
        for p in network.parameters():
            p.mul_(3.0)      # make the nonlinearity matter
    return network


def potential_of(network, shift, scale, activation="softplus", params=PARAMS, architecture="A1"):
    return NetworkPotential(params, architecture_layers(architecture, params.ncoeff), activation,
                            network_coefficients(network), shift, scale)


def labeled_set(path, n=24, potential=None, groups=None):
    potential = potential or reference_potential("reference:W")
    images = []
    for k in range(n):
        atoms = random_box(k, natoms=10) if k % 2 else displaced_bcc(k, repeat=(2, 1, 1))
        r = potential.evaluate(atoms)
        atoms.calc = SinglePointCalculator(atoms, energy=r["energy"], forces=r["forces"])
        atoms.info.update(index=k, group=groups[k % len(groups)] if groups else "")
        images.append(atoms)
    emtool.write_dataset(path, images)
    return images


def test_paper_parameter_counts():
    """Paper: A1 at D = 30 has 383 parameters, B1 3965 (quadratic SNAP 495)."""
    assert n_parameters(architecture_layers("A1", 30), 30) == 383
    assert n_parameters(architecture_layers("nn:B1", 30), 30) == 3965
    for name in ARCHITECTURES:
        for d in (14, 30, 55):
            network = build_network(torch, d, architecture_layers(name, d), "softplus")
            assert sum(p.numel() for p in network.parameters()) == \
                n_parameters(architecture_layers(name, d), d)


@pytest.mark.parametrize("activation", ["softplus", "tanh", "sigmoid", "relu", "linear"])
@pytest.mark.parametrize("architecture", ["A3", "B1"])
def test_numba_network_equals_pytorch(activation, architecture):
    d = 14
    rng = np.random.default_rng(1)
    b = rng.normal(size=(50, d)) * 5 + 2
    shift, scale = rng.normal(size=d), rng.uniform(0.5, 2.0, d)
    network = random_network(d, architecture, activation)
    x = torch.tensor(b, requires_grad=True)
    e_torch = network((x - torch.tensor(shift)) / torch.tensor(scale))[:, 0]
    beta_torch = torch.autograd.grad(e_torch.sum(), x)[0].numpy()
    potential = potential_of(network, shift, scale, activation, architecture=architecture)
    energy, beta = potential.atomic_energies(b)
    assert np.abs(energy - e_torch.detach().numpy()).max() <= 1e-10
    assert np.abs(beta - beta_torch).max() <= 1e-10 * max(1.0, np.abs(beta_torch).max())


@pytest.mark.parametrize("atoms", [random_box(3, natoms=12), displaced_bcc(4)])
def test_network_forces_and_stress_match_finite_differences(atoms):
    d = PARAMS.ncoeff
    b = emtool.bispectrum(atoms, PARAMS)
    potential = potential_of(random_network(d, "A2"), b.mean(0), b.std(0) + 1e-3,
                             architecture="A2")
    result = potential.evaluate(atoms)
    assert result["energy"] == pytest.approx(result["energies"].sum(), abs=1e-12)
    energy = lambda a: potential.evaluate(a)["energy"]  # noqa: E731
    np.testing.assert_allclose(result["forces"][:4], fd_forces(energy, atoms, range(4)), atol=1e-6)
    np.testing.assert_allclose(result["stress"], fd_stress(energy, atoms), atol=1e-7)


def test_training_forces_equal_numba_forces():
    """The force loss of training is zero on labels made by the same network's Numba
    evaluation: PyTorch's force path (beta . dB/dr) equals emtool's adjoint path."""
    d = PARAMS.ncoeff
    images = [random_box(k, natoms=9) for k in range(3)] + [displaced_bcc(5, repeat=(1, 1, 2))]
    b = np.vstack([emtool.bispectrum(a, PARAMS) for a in images])
    shift, scale = b.mean(0), b.std(0)
    network = random_network(d, "B1", "tanh")
    potential = potential_of(network, shift, scale, "tanh", architecture="B1")
    records = []
    for atoms in images:
        r = potential.evaluate(atoms)
        atoms.calc = SinglePointCalculator(atoms, energy=r["energy"], forces=r["forces"])
        records.append(descriptor_record(atoms, PARAMS, forces=True))
    settings = TrainingSettings(architecture="B1", activation="tanh", force_weight=1.0)
    trainer = _Trainer(torch, TrainingData(records, True), shift, scale, settings)
    total, loss_e, loss_f = trainer.loss(network, np.arange(len(images)), create_graph=False)
    assert loss_e.item() < 1e-24 and loss_f.item() < 1e-22
    forces_scale = np.mean([np.mean(a.get_forces() ** 2) for a in images])
    assert forces_scale > 1.0       # the labels are not trivially zero


def test_split_fractions_groups_and_empty_sets():
    groups = ["a"] * 10 + ["b"] * 10
    train, val, test = split_configurations(groups, (0.7, 0.1, 0.2), seed=3)
    assert (len(train), len(val), len(test)) == (14, 2, 4)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(20))
    train, val, test = split_configurations(groups, (0.7, 0.1, 0.2), seed=3, test_groups=("b",))
    assert test.tolist() == list(range(10, 20)) and len(val) == 1 and len(train) == 9
    with pytest.raises(ParameterError, match="validation set empty"):
        split_configurations(groups[:5], (0.9, 0.05, 0.05))
    with pytest.raises(ParameterError, match="training set empty"):
        split_configurations(groups, (0.7, 0.1, 0.2), test_groups=("a", "b"))
    with pytest.raises(ParameterError, match="not in the data"):
        split_configurations(groups, test_groups=("c",))


def test_training_learns_and_resumes_identically(tmp_path):
    """Loss falls; a run interrupted after epoch 3 and rerun equals an uninterrupted run."""
    images = labeled_set(tmp_path / "d.h5", n=16)
    data = TrainingData([descriptor_record(a, PARAMS) for a in images], False)
    settings = TrainingSettings(epochs=6, batch_size=4, learning_rate=1e-2, split=(0.75, 0.25, 0))
    train, val, _ = split_configurations([""] * 16, settings.split)
    whole, info = train_network(data, PARAMS, settings, train, val)
    history = info["history"]
    assert history[-1]["validation_loss"] < history[0]["validation_loss"]

    def interrupt(epoch, record):
        if epoch == 3:
            raise KeyboardInterrupt
    checkpoint = tmp_path / "job.checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        train_network(data, PARAMS, settings, train, val, checkpoint, 1, interrupt)
    assert checkpoint.exists()
    resumed, _ = train_network(data, PARAMS, settings, train, val, checkpoint, 1)
    assert not checkpoint.exists()
    np.testing.assert_array_equal(resumed.coeffs, whole.coeffs)


def test_fit_command_trains_a_network_emtool_evaluates(tmp_path):
    labeled_set(tmp_path / "d.h5", n=20, groups=["bulk", "random"])
    model = tmp_path / "nn.json"
    result = CliRunner().invoke(main, ["fit", str(tmp_path / "d.h5"), "-o", str(model),
                                       "--model", "nn:A1", "--twojmax", "4", "--epochs", "5",
                                       "--batch-size", "4", "--force-weight", "0.01"])
    assert result.exit_code == 0, result.output
    assert "test:" in result.output and "nn:A1" in result.output
    meta = json.loads(model.read_text())["metadata"]
    assert meta["ndof"] == n_parameters(architecture_layers("A1", 14), 14)
    assert meta["split"] == dict(train=14, validation=2, test=4) and len(meta["history"]) == 5
    result = CliRunner().invoke(main, ["evaluate", str(model), str(tmp_path / "d.h5"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["energy_rmse"] > 0
    atoms = random_box(9, natoms=10)
    atoms.calc = emtool.calculator(model)
    assert np.isfinite(atoms.get_potential_energy())


def test_fit_network_from_descriptor_file_and_bad_input(tmp_path):
    labeled_set(tmp_path / "d.h5", n=12)
    run = lambda *args: CliRunner().invoke(main, [str(a) for a in args])  # noqa: E731
    # the documented reuse works with the defaults of both commands (bzeroflag 0)
    assert run("descriptors", tmp_path / "d.h5", "-o", tmp_path / "b4.npz", "--twojmax", "4"
               ).exit_code == 0
    common = ["fit", tmp_path / "d.h5", "-o", tmp_path / "m.json", "--epochs", "2"]
    ok = run(*common, "--model", "nn:A1", "--twojmax", "4", "--descriptors", tmp_path / "b4.npz")
    assert ok.exit_code == 0, ok.output
    model = (tmp_path / "m.json").read_bytes()
    again = run(*common, "--model", "nn:A1", "--twojmax", "4")
    assert again.exit_code == 2 and "exists; pass --overwrite" in again.output
    bad = run(*common, "--model", "nn:A1", "-o", tmp_path / "d.h5", "--overwrite")
    assert bad.exit_code == 2 and "would replace the input" in bad.output
    assert (tmp_path / "m.json").read_bytes() == model
    common.append("--overwrite")
    bad = run(*common, "--model", "nn:A1", "--twojmax", "6", "--descriptors", tmp_path / "b4.npz")
    assert bad.exit_code == 2 and "twojmax 4, but the fit uses twojmax 6" in bad.output
    bad = run(*common, "--model", "nn:C7")
    assert bad.exit_code == 2 and "nn:C7" in bad.output
    bad = run(*common, "--model", "nn:A1", "--twojmax", "4", "--split", "0.97,0.03,0")
    assert bad.exit_code == 2 and "validation set empty" in bad.output
    emtool.write_dataset(tmp_path / "raw.h5", [random_box(k, natoms=8) for k in range(3)])
    bad = run("fit", tmp_path / "raw.h5", "-o", tmp_path / "r.json", "--model", "nn:A1")
    assert bad.exit_code == 2 and "no labeled configurations" in bad.output
    assert "Traceback" not in bad.output


def test_model_file_round_trip_is_exact(tmp_path):
    from emtool.potentials.models import load_model, save_model
    d = PARAMS.ncoeff
    rng = np.random.default_rng(5)
    potential = potential_of(random_network(d, "A2", "relu"), rng.normal(size=d),
                             rng.uniform(1, 2, d), "relu", architecture="A2")
    save_model(tmp_path / "m.json", potential, {"note": 1})
    again = load_model(tmp_path / "m.json")
    for name in ("coeffs", "shift", "scale", "nnodes"):
        np.testing.assert_array_equal(getattr(again, name), getattr(potential, name))
    assert again.activation == "relu" and again.params == potential.params


def _torch_threads(index):
    match_torch_threads()
    return torch.get_num_threads()


def test_worker_processes_run_pytorch_on_one_thread():
    # Numba's OpenMP layer, started in each worker, would leave PyTorch a thread per core
    threads = []
    run_indexed(_torch_threads, (), [0, 1], threads.append, workers=2)
    assert threads == [1, 1]
