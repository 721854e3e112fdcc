"""Universal machine-learned potentials (CHGNet, SevenNet) as potential specs and labelers.

References: the packages' own ASE calculators (energies, forces, stress of the same model),
finite differences of the energy (forces, stress: signs and units), and a run with every
socket refused (the weights ship in the wheels; nothing is downloaded).
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk

import emtool
from emtool.data.dataset import dataset_info, read_dataset, write_dataset
from emtool.errors import ParameterError
from emtool.potentials.universal import is_universal, load_universal, parse_spec
from conftest import random_box

SPECS = ["chgnet", "sevenn"]


def small_box(seed=3, natoms=8):
    atoms = random_box(seed, natoms=natoms, volume_per_atom=16.5, min_distance=2.3)
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_spec_names():
    assert parse_spec("chgnet") == ("chgnet", "0.3.0")
    assert parse_spec("chgnet:r2scan") == ("chgnet", "r2scan")
    assert parse_spec("sevenn") == ("sevenn", "7net-0")
    assert parse_spec("sevenn:7net-l3i5") == ("sevenn", "7net-l3i5")
    assert is_universal("chgnet:0.2.0") and not is_universal("reference:W")
    assert not is_universal("model.json")
    for bad in ("chgnet:9.9", "sevenn:7net-omat"):  # the second exists but is not shipped
        with pytest.raises(ParameterError, match="downloads nothing"):
            parse_spec(bad)


@pytest.mark.parametrize("spec", SPECS)
def test_same_as_the_packages_calculator(spec):
    atoms = small_box()
    ours = load_universal(spec).evaluate(atoms)
    if spec == "chgnet":
        from chgnet.model.dynamics import CHGNetCalculator
        theirs = CHGNetCalculator(model=load_universal(spec)._net, use_device="cpu")
    else:
        from sevenn.calculator import SevenNetCalculator
        theirs = SevenNetCalculator(model="7net-0", device="cpu")
    work = atoms.copy()
    work.calc = theirs
    assert ours["energy"] == pytest.approx(work.get_potential_energy(), abs=1e-4)
    np.testing.assert_allclose(ours["forces"], work.get_forces(), atol=1e-4)
    np.testing.assert_allclose(ours["stress"], work.get_stress(), atol=1e-6)


@pytest.mark.parametrize("spec", SPECS)
def test_forces_and_stress_are_energy_derivatives(spec):
    """Forces = -dE/dx and stress = (1/V) dE/dstrain (ASE's sign), central differences.

    The models compute in float32 (energy resolution ~1e-5 eV here), hence h and tolerances."""
    potential = load_universal(spec)
    atoms = small_box(seed=5)
    result = potential.evaluate(atoms)
    h = 5e-3
    for a, k in ((0, 0), (3, 2), (6, 1)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, k] += h
        minus.positions[a, k] -= h
        numeric = -(potential.evaluate(plus)["energy"] - potential.evaluate(minus)["energy"]) / (2 * h)
        assert result["forces"][a, k] == pytest.approx(numeric, abs=1e-2)
    for voigt, (p, q) in ((0, (0, 0)), (2, (2, 2)), (5, (0, 1))):
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[p, q] += sign * h / (1 if p == q else 2)
            strain[q, p] = strain[p, q]
            work = atoms.copy()
            work.set_cell(atoms.cell.array @ strain, scale_atoms=True)
            energies.append(potential.evaluate(work)["energy"])
        numeric = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
        assert result["stress"][voigt] == pytest.approx(numeric, abs=5e-4)


def test_chgnet_batches_equal_single_evaluations():
    potential = load_universal("chgnet")
    images = [small_box(seed, natoms) for seed, natoms in ((1, 6), (2, 9), (3, 8))]
    batch = potential.evaluate_many(images, batch_size=2)
    for atoms, got in zip(images, batch):
        alone = potential.evaluate(atoms)
        # CHGNet computes in float32 and a batch sums in another order: forces of ~10 eV/Å
        # then differ by a few 1e-5 eV/Å; a mixed-up image would differ by ~1 eV/Å
        assert got["energy"] == pytest.approx(alone["energy"], abs=1e-4)
        np.testing.assert_allclose(got["forces"], alone["forces"], atol=2e-4)


@pytest.mark.parametrize("spec", SPECS)
def test_pytorch_runs_on_the_kernels_thread_count(spec):
    import numba
    import torch
    before = numba.get_num_threads()
    try:
        for threads in (1, before):
            numba.set_num_threads(threads)
            load_universal(spec).evaluate(small_box())
            assert torch.get_num_threads() == threads
    finally:
        numba.set_num_threads(before)


def test_bcc_tungsten_is_near_dft():
    """Both models put BCC W's equilibrium near the PBE lattice constant (3.17-3.19 Å)."""
    for spec in SPECS:
        potential = load_universal(spec)
        a_grid = np.linspace(3.08, 3.28, 11)
        e = [potential.evaluate(bulk("W", "bcc", a=a, cubic=True))["energy"] for a in a_grid]
        best = a_grid[int(np.argmin(e))]
        assert 3.12 <= best <= 3.24, (spec, best)


def test_unknown_element_is_refused():
    with pytest.raises(ParameterError, match="does not know the element"):
        load_universal("chgnet").evaluate(bulk("Cf", "fcc", a=5.0))


def test_missing_package_is_one_clear_error(monkeypatch):
    import emtool.potentials.universal as universal
    monkeypatch.setitem(sys.modules, "chgnet", None)
    with pytest.raises(ParameterError, match=r"pip install 'emtool\[umlip\]'"):
        universal.UniversalPotential("chgnet", "0.3.0")


def test_calculator_spec_everywhere():
    atoms = small_box()
    atoms.calc = emtool.calculator("chgnet")
    assert np.isfinite(atoms.get_potential_energy())
    assert atoms.get_forces().shape == (len(atoms), 3)


NO_NETWORK = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from emtool.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("spec", SPECS)
def test_label_cli_without_network(tmp_path, spec):
    """``emtool label --potential chgnet|sevenn`` with every connection refused: labels, and
    the model's package, version and checkpoint in the provenance."""
    source = tmp_path / "in.h5"
    images = [small_box(seed, 6) for seed in range(3)]
    for k, atoms in enumerate(images):
        atoms.info["index"] = k
    write_dataset(source, images)
    out = tmp_path / "out.h5"
    done = subprocess.run([sys.executable, "-c", NO_NETWORK, "label", str(source), "--potential",
                           spec, "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    labeled = read_dataset(out)
    assert all(np.isfinite(a.get_potential_energy()) for a in labeled)
    record = dataset_info(out)["provenance"][-1]
    settings = record["settings"] if "settings" in record else record
    text = json.dumps(settings)
    package = "chgnet" if spec == "chgnet" else "sevenn"
    assert f'"package": "{package}"' in text and "checkpoint" in text
    direct = load_universal(spec).evaluate(images[1])["energy"]
    assert labeled[1].get_potential_energy() == pytest.approx(direct, abs=1e-4)


def test_label_cli_bad_model_name(tmp_path):
    source = tmp_path / "in.h5"
    atoms = small_box()
    atoms.info["index"] = 0
    write_dataset(source, [atoms])
    done = subprocess.run([sys.executable, "-m", "emtool.cli", "label", str(source),
                           "--potential", "sevenn:nonsense", "-o", str(tmp_path / "o.h5")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "o.h5").exists()


def test_label_cli_unknown_element_writes_nothing(tmp_path):
    source = tmp_path / "in.h5"
    atoms = bulk("Cf", "fcc", a=5.0)
    atoms.info["index"] = 0
    write_dataset(source, [atoms])
    done = subprocess.run([sys.executable, "-m", "emtool.cli", "label", str(source),
                           "--potential", "chgnet", "-o", str(tmp_path / "o.h5")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "does not know the element(s) Cf" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5"]
