"""FitSNAP input files (``.in``): descriptor settings, group weights and the reference potential.

Read strictly: unknown sections or keys, and options emtool does not implement, are errors
naming the file. Stress weights are converted from FitSNAP's rows in bar to emtool's rows in
eV/Å^3, so that weighted residuals are the same numbers.
"""
import configparser
from dataclasses import dataclass
from pathlib import Path

from ase import units

from emtool.descriptors.params import SnapParams
from emtool.errors import ParameterError
from emtool.potentials.zbl import ZBLPotential, ZBLSpec
from emtool.fitting.weights import GroupWeights

KNOWN = {
    "BISPECTRUM": {"numtypes", "twojmax", "rcutfac", "rfac0", "rmin0", "wj", "radelem", "type",
                   "wselfallflag", "chemflag", "bzeroflag", "quadraticflag", "bnormflag",
                   "switchflag"},
    "CALCULATOR": {"calculator", "energy", "force", "stress"},
    "ESHIFT": None,
    "SOLVER": {"solver", "compute_testerrs", "detailed_errors"},
    "SCRAPER": {"scraper"},
    "PATH": {"datapath"},
    "OUTFILE": {"metrics", "potential"},
    "REFERENCE": None,
    "GROUPS": None,
    "EXTRAS": None,
    "MEMORY": None,
}


@dataclass(frozen=True)
class FitSnapInput:
    """What emtool takes from a FitSNAP input: descriptor ``params``, per-group ``weights``
    (GroupWeights in emtool units), per-group training fractions, the ``reference`` potential
    (ZBLPotential or None), ``energy_shift`` per element (eV/atom), and the data path."""

    params: SnapParams
    weights: dict
    training_size: dict
    reference: object
    energy_shift: dict
    data_path: Path
    source: Path


def _flag(section, key, default, path):
    try:
        return int(section.get(key, default))
    except ValueError:
        raise ParameterError(f"{path}: [{section.name}] {key} must be an integer") from None


def read_fitsnap_input(path):
    """Parse a FitSNAP ``.in`` file into a ``FitSnapInput``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such FitSNAP input: {path}")
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",), delimiters=("=",))
    try:
        parser.read(path)
    except configparser.Error as err:
        raise ParameterError(f"{path}: {err}".replace("\n", " ")) from None
    for name in parser.sections():
        if name not in KNOWN:
            raise ParameterError(f"{path}: unknown section [{name}]")
        allowed = KNOWN[name]
        if allowed is not None:
            unknown = set(parser[name]) - allowed
            if unknown:
                raise ParameterError(f"{path}: unknown key(s) in [{name}]: {', '.join(sorted(unknown))}")
    if "BISPECTRUM" not in parser:
        raise ParameterError(f"{path}: missing [BISPECTRUM]")
    bis = parser["BISPECTRUM"]
    for key, default in (("wselfallflag", 0), ("chemflag", 0), ("bnormflag", 0)):
        if _flag(bis, key, default, path) != 0:
            raise ParameterError(f"{path}: {key} = 1 is not supported by emtool")
    elements = tuple(bis.get("type", "").split())
    try:
        params = SnapParams(
            twojmax=int(bis["twojmax"]), rcutfac=float(bis["rcutfac"]),
            rfac0=float(bis.get("rfac0", 0.99363)), rmin0=float(bis.get("rmin0", 0.0)),
            switchflag=_flag(bis, "switchflag", 1, path), bzeroflag=_flag(bis, "bzeroflag", 1, path),
            quadraticflag=_flag(bis, "quadraticflag", 0, path),
            radelem=tuple(float(v) for v in bis.get("radelem", "0.5").split()),
            wj=tuple(float(v) for v in bis.get("wj", "1.0").split()), elements=elements)
    except (KeyError, ValueError) as err:
        raise ParameterError(f"{path}: [BISPECTRUM] {err}") from None
    solver = parser.get("SOLVER", "solver", fallback="SVD")
    if solver.upper() != "SVD":
        raise ParameterError(f"{path}: solver {solver} is not supported (emtool solves by SVD)")
    calc = parser["CALCULATOR"] if "CALCULATOR" in parser else {}
    use = {key: _flag(calc, key, 1, path) if calc else 1 for key in ("energy", "force", "stress")}
    weights, training = _groups(parser, path, use)
    shifts = dict(parser["ESHIFT"].items()) if "ESHIFT" in parser else {}
    shifts = {element: float(shifts.get(element.lower(), 0.0)) for element in elements}
    data = parser.get("PATH", "dataPath", fallback="JSON")
    return FitSnapInput(params, weights, training, _reference(parser, path, elements), shifts,
                        (path.parent / data).resolve(), path)


def _groups(parser, path, use):
    if "GROUPS" not in parser:
        return {}, {}
    section = parser["GROUPS"]
    columns = section.get("group_sections", "name training_size testing_size eweight fweight vweight").split()
    weights, training = {}, {}
    for key, value in section.items():
        if key in ("group_sections", "group_types", "smartweights", "random_sampling", "bolt_temp"):
            if key in ("smartweights", "random_sampling") and int(value) != 0:
                raise ParameterError(f"{path}: [GROUPS] {key} = {value} is not supported")
            continue
        values = dict(zip(columns[1:], value.split()))
        try:
            group = next(g for g in _original_keys(path, "GROUPS") if g.lower() == key)
            weights[group] = GroupWeights(
                energy=float(values["eweight"]) * use["energy"],
                force=float(values["fweight"]) * use["force"],
                stress=float(values["vweight"]) / units.bar * use["stress"])
            training[group] = float(values.get("training_size", 1.0))
        except (KeyError, ValueError, StopIteration):
            raise ParameterError(f"{path}: [GROUPS] cannot read group line {key} = {value}") from None
    return weights, training


def _original_keys(path, section):
    """Keys of ``section`` with their original case (configparser lower-cases them)."""
    keys, current = [], None
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and "=" in line:
            keys.append(line.split("=", 1)[0].strip())
    return keys


def _reference(parser, path, elements):
    """ZBLPotential for ``hybrid/overlay zero CUT zbl RIN ROUT`` (+ ``* * zbl Z Z``), or None."""
    if "REFERENCE" not in parser:
        return None
    ref = parser["REFERENCE"]
    style = ref.get("pair_style", "zero").split()
    if style[0] == "zero":
        return None
    if style[:2] != ["hybrid/overlay", "zero"] or "zbl" not in style:
        raise ParameterError(f"{path}: reference pair_style {' '.join(style)} is not supported "
                             f"(emtool supports zero, and hybrid/overlay zero ... zbl RIN ROUT)")
    k = style.index("zbl")
    r_inner, r_outer = float(style[k + 1]), float(style[k + 2])
    charges = None
    for key, value in ref.items():
        words = value.split()
        if key.startswith("pair_coeff") and "zbl" in words:
            z = words[words.index("zbl") + 1:]
            if words[:2] != ["*", "*"] or len(set(z)) != 1:
                raise ParameterError(f"{path}: only 'pair_coeff * * zbl Z Z' (one species) is supported")
            charges = float(z[0])
    if charges is None:
        raise ParameterError(f"{path}: reference zbl without 'pair_coeff * * zbl Z Z'")
    return ZBLPotential(ZBLSpec(r_inner, r_outer, (charges,) * max(1, len(elements))), elements)
