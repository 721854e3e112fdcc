"""The command line, the ASE calculator and the default job."""
import numpy as np
from ase.build import bulk
from ase.io import read, write
from click.testing import CliRunner

import emtool
import emtool.data.dataset
from conftest import displaced_bcc, random_box
from emtool import SnapParams, bispectrum, bispectrum_derivatives
from emtool.cli import main
from emtool.lammps import lammps_potential


def test_descriptors_command(tmp_path):
    write(tmp_path / "in.extxyz", [random_box(1), displaced_bcc(2)])
    images = read(tmp_path / "in.extxyz", ":")  # as written (extxyz rounds positions)
    out = tmp_path / "b.npz"
    result = CliRunner().invoke(main, ["descriptors", str(tmp_path / "in.extxyz"), "-o", str(out),
                                       "--twojmax", "6", "--bzeroflag", "0", "--derivatives"])
    assert result.exit_code == 0, result.output
    data = np.load(out)
    params = SnapParams(twojmax=6, bzeroflag=0)
    offsets = data["config_offsets"]
    for k, atoms in enumerate(images):
        rows = slice(offsets[k], offsets[k + 1])
        np.testing.assert_allclose(data["B"][rows], bispectrum(atoms, params), rtol=1e-13)
        der = bispectrum_derivatives(atoms, params)
        np.testing.assert_allclose(data["dBdr"][rows], der.per_atom(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(data["virial"][k], der.virial(), rtol=1e-12, atol=1e-12)
    assert int(data["twojmax"]) == 6


def test_descriptors_from_dataset(tmp_path):
    images = [random_box(4), displaced_bcc(6)]
    for k, atoms in enumerate(images):
        atoms.info["index"] = k
    emtool.write_dataset(tmp_path / "d.h5", images)
    result = CliRunner().invoke(main, ["descriptors", str(tmp_path / "d.h5"), "-o",
                                       str(tmp_path / "b.npz"), "--twojmax", "4", "--index", "-1"])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(tmp_path / "b.npz")["B"],
                               bispectrum(images[1], SnapParams(twojmax=4, bzeroflag=0)), rtol=1e-13)


def test_descriptors_from_snapparam(tmp_path, shared_data):
    write(tmp_path / "one.xyz", displaced_bcc(5))
    atoms = read(tmp_path / "one.xyz")
    snapparam = shared_data / "lammps_W_SNAP" / "W_2940_2017_2.snapparam"
    result = CliRunner().invoke(main, ["descriptors", str(tmp_path / "one.xyz"), "-o",
                                       str(tmp_path / "b.npz"), "--snapparam", str(snapparam)])
    assert result.exit_code == 0, result.output
    expected = bispectrum(atoms, SnapParams(twojmax=8, rcutfac=4.73442, bzeroflag=0))
    np.testing.assert_allclose(np.load(tmp_path / "b.npz")["B"], expected, rtol=1e-13)


def test_calculator_spec_runs_published_potential(shared_data):
    atoms = random_box(3, tetragonal=False)
    folder = shared_data / "lammps_W_SNAP"
    atoms.calc = emtool.calculator(str(folder / "W_2940_2017_2.snap"))
    ref = lammps_potential(atoms, ["pair_style hybrid/overlay zbl 4.0 4.8 snap",
                                   "pair_coeff 1 1 zbl 74 74",
                                   f"pair_coeff * * snap {folder}/W_2940_2017_2.snapcoeff "
                                   f"{folder}/W_2940_2017_2.snapparam W"])
    assert abs(atoms.get_potential_energy() - ref["energy"]) < 1e-9
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"], atol=1e-9)
    np.testing.assert_allclose(atoms.get_stress(), ref["stress"], atol=1e-12)
    # BCC is a stationary point of the published potential: zero forces, cubic stress
    bcc = bulk("W", "bcc", a=3.1652, cubic=True).repeat(2)
    bcc.calc = emtool.calculator(str(folder / "W_2940_2017_2.snap"))
    assert np.abs(bcc.get_forces()).max() < 1e-10
    stress = bcc.get_stress()
    np.testing.assert_allclose(stress[:3], stress[0], rtol=1e-10)
    np.testing.assert_allclose(stress[3:], 0, atol=1e-12)


def test_default_run(tmp_path):
    """generate -> label -> fit -> nve on embedded defaults, with a report and plots."""
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "-o", str(out), "-n", "6", "--epochs", "5"])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "entropy_max | 3 |" in report and "6 labeled" in report
    assert "| linear SNAP | 31 | validation |" in report and "| NN-A1 | 383 | test |" in report
    nve = report.split("## 4. Energy conservation")[1]
    slopes = [float(line.rsplit("|", 2)[1]) for line in nve.splitlines()
              if line.startswith(("| linear SNAP |", "| NN-A1 |"))]
    assert len(slopes) == 2 and all(1.5 < slope < 2.5 for slope in slopes)
    for name in ("entropy.png", "snap/errors.png", "nn_a1/errors.png", "nve_snap.png",
                 "nve_nn_a1.png"):
        assert (out / name).stat().st_size > 1000, name
    assert all(np.isfinite(a.get_potential_energy())
               for a in emtool.read_dataset(out / "em_labeled.h5"))


def test_expert_command(tmp_path):
    out = tmp_path / "de.h5"
    result = CliRunner().invoke(main, ["expert", "-o", str(out)])
    assert result.exit_code == 0, result.output
    info = emtool.data.dataset.dataset_info(out)
    assert len(info["groups"]) == 9 and info["configs"] == 300
    again = CliRunner().invoke(main, ["expert", "-o", str(out)])
    assert again.exit_code == 2 and "exists" in again.output


def test_a_model_file_is_recognized_by_its_content_whatever_its_name(tmp_path, shared_data):
    from emtool.potentials.models import save_model
    from emtool.potentials.snap import SnapPotential
    folder = shared_data / "lammps_W_SNAP"
    published = SnapPotential.read(folder / "W_2940_2017_2.snapparam")
    save_model(tmp_path / "model", published)                # no suffix, as `fit -o model`
    atoms = displaced_bcc(4)
    atoms.calc = emtool.calculator(str(tmp_path / "model"))
    assert abs(atoms.get_potential_energy() - published.evaluate(atoms)["energy"]) < 1e-12
    emtool.data.dataset.write_dataset(tmp_path / "data.h5", [atoms])
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "model"),
                                       str(tmp_path / "data.h5")])
    assert result.exit_code == 0, result.output
    (tmp_path / "notes").write_text("not a model\n")
    bad = CliRunner().invoke(main, ["evaluate", str(tmp_path / "notes"), str(tmp_path / "data.h5")])
    assert bad.exit_code == 2 and "unknown potential spec" in bad.output
