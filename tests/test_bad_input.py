"""Bad input gives one clear error naming the problem, in the API and on the command line."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from click.testing import CliRunner

from emtool import ParameterError, SnapParams, StructureError, bispectrum
from emtool.cli import main
from emtool.potentials.snap import SnapPotential


def test_non_finite_positions():
    atoms = bulk("W", "bcc", a=3.1652, cubic=True)
    atoms.positions[1, 2] = np.nan
    with pytest.raises(StructureError, match="non-finite"):
        bispectrum(atoms, SnapParams(twojmax=2))


def test_zero_volume_cell():
    atoms = Atoms("W2", positions=[[0, 0, 0], [1, 1, 1]], cell=[[3, 0, 0], [0, 3, 0], [3, 3, 0]],
                  pbc=True)
    with pytest.raises(StructureError, match="zero cell volume"):
        bispectrum(atoms, SnapParams(twojmax=2))


def test_overlapping_atoms():
    atoms = Atoms("W2", positions=[[0, 0, 0], [0, 0, 0]], cell=[4, 4, 4], pbc=True)
    with pytest.raises(StructureError, match="overlap"):
        bispectrum(atoms, SnapParams(twojmax=2))


@pytest.mark.parametrize("kwargs, message", [
    (dict(twojmax=-2), "twojmax must be >= 0"),
    (dict(twojmax=2.5), "twojmax must be an integer"),
    (dict(rcutfac=0), "rcutfac must be > 0"),
    (dict(rfac0=1.5), "rfac0"),
    (dict(switchflag=2), "switchflag must be 0 or 1"),
    (dict(radelem=(0.5, 0.4), wj=(1.0,)), "radelem and wj"),
])
def test_invalid_params(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        SnapParams(**kwargs)


def test_unknown_element():
    atoms = bulk("Ta", "bcc", a=3.3)
    with pytest.raises(ParameterError, match="Ta"):
        bispectrum(atoms, SnapParams(twojmax=2, elements=("W",)))


def test_unknown_snapparam_keyword(tmp_path):
    (tmp_path / "m.snapparam").write_text("rcutfac 4.7\ntwojmax 2\nfancyflag 1\n")
    (tmp_path / "m.snapcoeff").write_text("1 6\nW 0.5 1\n" + "0.1\n" * 6)
    with pytest.raises(ParameterError, match="fancyflag"):
        SnapPotential.read(tmp_path / "m.snapparam")


def test_mismatched_coefficient_count(tmp_path):
    (tmp_path / "m.snapparam").write_text("rcutfac 4.7\ntwojmax 4\n")
    (tmp_path / "m.snapcoeff").write_text("1 6\nW 0.5 1\n" + "0.1\n" * 6)
    with pytest.raises(ParameterError, match="15"):
        SnapPotential.read(tmp_path / "m.snapparam")
    params = SnapParams(twojmax=4, elements=("W",))
    with pytest.raises(ParameterError, match="needs"):
        SnapPotential(params, np.zeros((1, 7)))


def test_cli_errors_are_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\n\nW 0 0 0\nW nan 0 0\n")
    runner = CliRunner()
    result = runner.invoke(main, ["descriptors", str(bad), "-o", str(tmp_path / "out.npz")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.npz").exists()
    result = runner.invoke(main, ["descriptors", str(tmp_path / "missing.xyz"), "-o",
                                  str(tmp_path / "out.npz")])
    assert result.exit_code == 2 and "missing.xyz" in result.output
    good = tmp_path / "good.xyz"
    bulk("W", "bcc", a=3.1652, cubic=True).write(good)
    result = runner.invoke(main, ["descriptors", str(good), "-o", str(tmp_path / "o.npz"),
                                  "--twojmax", "-1"])
    assert result.exit_code == 2 and "twojmax" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["fit", "{data}", "-o", "{out}", "--energy-weight", "-1"], "--energy-weight must be finite and >= 0"),
    (["fit", "{data}", "-o", "{out}", "--stress-weight", "nan"], "--stress-weight must be finite and >= 0"),
    (["fit", "{data}", "-o", "{out}", "--workers", "0"], "--workers must be >= 1"),
    (["label", "{data}", "-o", "{out}", "--workers", "0"], "--workers must be >= 1"),
    (["evaluate", "{data}", "{data}", "--workers", "-2"], "--workers must be >= 1"),
    (["fit", "{data}", "-o", "{data}", "--overwrite"], "would replace the input"),
    (["descriptors", "{data}", "-o", "{data}", "--overwrite"], "would replace the input"),
    (["descriptors", "{data}", "-o", "{kept}"], "exists; pass --overwrite"),
    (["fit", "{data}", "-o", "{kept}"], "exists; pass --overwrite"),
])
def test_cli_options_and_outputs_follow_one_policy(tmp_path, args, message):
    from emtool import write_dataset
    from ase.calculators.singlepoint import SinglePointCalculator
    atoms = bulk("W", "bcc", a=3.1652, cubic=True).repeat(2)
    atoms.calc = SinglePointCalculator(atoms, energy=-70.0, forces=np.zeros((16, 3)))
    write_dataset(tmp_path / "d.h5", [atoms])
    (tmp_path / "kept.json").write_text("keep me")
    paths = dict(data=tmp_path / "d.h5", out=tmp_path / "o.json", kept=tmp_path / "kept.json")
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    result = CliRunner().invoke(main, [a.format(**paths) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_model_names_have_one_spelling_in_any_case(tmp_path):
    from emtool.cli import _model_name
    assert _model_name(None, None, "NN:a1") == "nn:A1"
    assert _model_name(None, None, "Quadratic") == "quadratic"
    result = CliRunner().invoke(main, ["fit", "--help"])
    assert "nn:A1" in result.output and "nn:a1" not in result.output


def test_one_overlap_check_for_datasets_and_calculators(tmp_path):
    """Atoms 0.1 Å apart (E = +1.8 keV under ZBL) are refused by every dataset write and by
    the ASE calculator; 0.6 Å apart (above the documented 0.5 Å bound) pass."""
    import emtool
    from emtool.errors import DatasetError
    from emtool.descriptors.neighbors import OVERLAP_DISTANCE
    for gap, refused in ((0.1, True), (OVERLAP_DISTANCE + 0.1, False)):
        atoms = Atoms("W2", positions=[[0, 0, 0], [gap, 0, 0]], cell=[5, 5, 5], pbc=True)
        if refused:
            with pytest.raises(DatasetError, match="closer than 0.5 Å"):
                emtool.write_dataset(tmp_path / "o.h5", [atoms])
            assert not (tmp_path / "o.h5").exists()
            atoms.calc = emtool.calculator("reference:W")
            with pytest.raises(StructureError, match="0.1 Å apart"):
                atoms.get_potential_energy()
        else:
            emtool.write_dataset(tmp_path / "o.h5", [atoms])
            atoms.calc = emtool.calculator("reference:W")
            assert np.isfinite(atoms.get_potential_energy())
