"""LAMMPS ML-SNAP potential files, read strictly and written exactly.

A SNAP model in LAMMPS is two files given to ``pair_coeff * * snap X.snapcoeff X.snapparam W``:

``.snapparam``
    ``keyword value`` lines (``rcutfac 4.73442``); ``#`` starts a comment anywhere on a line,
    blank lines are skipped. ``rcutfac`` and ``twojmax`` are required, every other keyword
    takes the pair_snap default of ``LAMMPS_DEFAULTS`` when absent.
``.snapcoeff``
    after optional comment/blank lines, a header ``nelements ncoeffall``, then for each element a
    line ``name radelem wj`` followed by exactly ``ncoeffall`` lines of one coefficient each
    (beta_0 first; a trailing ``# comment`` is allowed). LAMMPS allows no blank or comment-only
    line inside the element blocks.

A published potential often comes as a LAMMPS include file (``W_2940_2017_2.snap``) adding ZBL
repulsion with ``pair_style hybrid/overlay zbl INNER OUTER snap``; ``read_snap_include`` reads the
small subset of the input language such files use.

The readers follow ``PairSNAP::read_files`` (LAMMPS 2025.7.22), checked against the LAMMPS
library, and are stricter where LAMMPS silently accepts a probably broken file: extra words after a
``.snapparam`` value (LAMMPS ignores them), a repeated keyword (LAMMPS keeps the last), content
after the last coefficient block (LAMMPS ignores it, so a ``.snapcoeff`` with one coefficient too
many loads), flags other than 0 and 1 (LAMMPS treats any non-zero as 1), and ``nan``, ``inf`` or
hexadecimal coefficients. Lines longer than 1022 characters are refused because LAMMPS reads these
files in 1024-byte pieces and would split them. A first line tagged ``UNITS:`` must say ``metal``.

The writers print floats with ``repr`` (the shortest string that reads back to the same double, at
most 17 significant digits), so write -> read (and LAMMPS's ``strtod``) is exact to the last bit.
"""
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emtool.descriptors.params import FIXED_KEYWORDS, SnapParams, n_bispectrum
from emtool.errors import ParameterError
from emtool.potentials.zbl import ZBLSpec

#: PairSNAP defaults of the optional ``.snapparam`` keywords.
LAMMPS_DEFAULTS = {"rfac0": 0.99363, "rmin0": 0.0, "switchflag": 1, "bzeroflag": 1,
                   "quadraticflag": 0, **FIXED_KEYWORDS}

#: Keywords that tune KOKKOS/GPU performance only; accepted and returned, not part of a model.
TUNING_KEYWORDS = ("chunksize", "parallelthresh")

_KEYWORD_TYPES = {"rcutfac": float, "twojmax": int, "rfac0": float, "rmin0": float,
                  "switchflag": int, "bzeroflag": int, "quadraticflag": int,
                  **{name: int for name in FIXED_KEYWORDS}, **{name: int for name in TUNING_KEYWORDS}}
_FLAGS = ("switchflag", "bzeroflag", "quadraticflag")
_MAX_LINE = 1022                                  # LAMMPS fgets(line, 1024, ...) keeps 1023 bytes
_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
_FILE_SEPARATORS = re.compile(r"[ \t\r\f\"']+")   # LAMMPS strips quotes from these words
_COEFF_SEPARATORS = re.compile(r"[ \t\r\f]+")     # ... but not from coefficients
UNSAFE_NAME = re.compile(r"[\s#\"'$&]")          # would break a LAMMPS command or file line


def ncoeffall(twojmax, quadraticflag):
    """Coefficients per element of a SNAP model: 1 + D, plus D(D+1)/2 when quadratic."""
    d = n_bispectrum(twojmax)
    return 1 + d + (d * (d + 1) // 2 if quadraticflag else 0)


@dataclass(frozen=True, eq=False)
class SnapFile:
    """A SNAP model read from LAMMPS files.

    Attributes
    ----------
    params : SnapParams
        Descriptor parameters; ``elements`` in ``pair_coeff`` order (or file order).
    coeffs : ndarray, shape (n_elements, ncoeffall), float64, read-only
        Row a, c = coeffs[a], gives the energy (eV) of an atom of element a with bispectrum B:
        E = c_0 + sum_k c_{1+k} B_k [+ sum_{k<=l} c_kl B_k B_l, halved for k = l], the quadratic
        c_kl following the D linear ones in the order (0,0), (0,1), ..., (0,D-1), (1,1), ...
    zbl : ZBLSpec or None
        The ZBL repulsion of an include file, None for SNAP alone.
    snapcoeff, snapparam : Path
        The files read.
    include : Path or None
        The include file, when read with ``read_snap_include``.
    """

    params: SnapParams
    coeffs: np.ndarray
    zbl: ZBLSpec = None
    snapcoeff: Path = None
    snapparam: Path = None
    include: Path = None

    def __post_init__(self):
        coeffs = np.array(self.coeffs, dtype=np.float64)
        shape = (self.params.n_elements, ncoeffall(self.params.twojmax, self.params.quadraticflag))
        if coeffs.shape != shape:
            raise ParameterError(f"coeffs must have shape {shape}, got {coeffs.shape}")
        if self.zbl is not None and len(self.zbl.z) != self.params.n_elements:
            raise ParameterError(f"ZBL has {len(self.zbl.z)} charges for {self.params.n_elements} elements")
        coeffs.flags.writeable = False
        object.__setattr__(self, "coeffs", coeffs)
        for name in ("snapcoeff", "snapparam", "include"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))


# ----------------------------------------------------------------------------- reading

def _read_lines(path, kind):
    """Lines of a LAMMPS potential file, split at '\\n' only ('\\r' is whitespace to LAMMPS)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ParameterError(f"{path}: {kind} file not found") from None
    except OSError as err:
        raise ParameterError(f"{path}: cannot read {kind} file: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ParameterError(f"{path}: {kind} file is not UTF-8 text (byte {err.start})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    for lineno, line in enumerate(lines, 1):
        if len(line.encode()) > _MAX_LINE:
            raise ParameterError(f"{path}:{lineno}: line longer than {_MAX_LINE} characters; "
                                 "LAMMPS reads these files in 1024-byte pieces and would split it")
    if lines:
        first = lines[0].split()
        if "UNITS:" in first[:-1] and first[first.index("UNITS:") + 1] != "metal":
            raise ParameterError(f"{path}:1: file is for LAMMPS units "
                                 f"'{first[first.index('UNITS:') + 1]}'; emtool reads metal units only")
    return lines


def _words(line, separators=_FILE_SEPARATORS):
    """Words of a line after cutting it at the first '#', as LAMMPS ``trim_comment``."""
    return [w for w in separators.split(line.split("#", 1)[0]) if w]


def _number(word, kind, where, what):
    """``word`` as an int or a finite float, in the number syntax LAMMPS accepts."""
    if not (_INT_RE if kind is int else _FLOAT_RE).fullmatch(word):
        raise ParameterError(f"{where}: {what} must be {'an integer' if kind is int else 'a number'}, "
                             f"got '{word}'")
    value = kind(word)
    if not math.isfinite(value):
        raise ParameterError(f"{where}: {what} '{word}' overflows a double")
    return value


def read_snapparam(path):
    """Keywords and values of a LAMMPS ``.snapparam`` file.

    Returns
    -------
    dict
        keyword -> value for the keywords present in the file (int for twojmax, the flags and the
        tuning keywords, float otherwise); absent keywords take ``LAMMPS_DEFAULTS``.

    Raises
    ------
    ParameterError
        Naming file and line, for an unknown keyword, a keyword repeated or without exactly one
        value, a malformed number, a flag other than 0/1, a non-default value of chemflag, bnormflag,
        wselfallflag or switchinnerflag (or sinner/dinner, which need switchinnerflag 1), which emtool
        does not support, and a missing rcutfac or twojmax.
    """
    path = Path(path)
    values, line_of = {}, {}
    for lineno, line in enumerate(_read_lines(path, "SNAP parameter"), 1):
        words = _words(line)
        if not words:
            continue
        key, here = words[0], f"{path}:{lineno}"
        if key in ("sinner", "dinner"):
            raise ParameterError(f"{here}: keyword '{key}' is not supported (it needs switchinnerflag 1)")
        if key not in _KEYWORD_TYPES:
            raise ParameterError(f"{here}: unknown keyword '{key}' in .snapparam")
        if len(words) != 2:
            raise ParameterError(f"{here}: keyword '{key}' needs exactly one value, got {len(words) - 1}")
        if key in values:
            raise ParameterError(f"{here}: keyword '{key}' repeated (first on line {line_of[key]})")
        value = _number(words[1], _KEYWORD_TYPES[key], here, f"value of '{key}'")
        if key in FIXED_KEYWORDS and value != FIXED_KEYWORDS[key]:
            raise ParameterError(f"{here}: {key} {words[1]} is not supported; emtool supports only "
                                 f"the LAMMPS default {key} {FIXED_KEYWORDS[key]}")
        if key in _FLAGS and value not in (0, 1):
            raise ParameterError(f"{here}: {key} must be 0 or 1, got {words[1]}")
        values[key], line_of[key] = value, lineno
    missing = [key for key in ("rcutfac", "twojmax") if key not in values]
    if missing:
        raise ParameterError(f"{path}: required keyword(s) {', '.join(missing)} missing in .snapparam")
    return values


def read_snapcoeff(path):
    """Elements and coefficients of a LAMMPS ``.snapcoeff`` file.

    Returns
    -------
    elements : tuple of str
        Element names in file order.
    radelem, wj : tuple of float
        Radius and neighbor weight of each element.
    coeffs : ndarray, shape (n_elements, ncoeffall), float64

    Raises
    ------
    ParameterError
        Naming file and line, for a missing or malformed header, a truncated file, a block line
        that is not ``name radelem wj`` or not a single number, a repeated element, a non-finite or
        malformed number, and any content other than comments after the last block.
    """
    path = Path(path)
    lines = _read_lines(path, "SNAP coefficient")
    lineno = next((i + 1 for i, line in enumerate(lines) if _words(line)), None)
    if lineno is None:
        raise ParameterError(f"{path}: no header line 'nelements ncoeffall' in .snapcoeff")
    header, here = _words(lines[lineno - 1]), f"{path}:{lineno}"
    if len(header) != 2:
        raise ParameterError(f"{here}: header must be 'nelements ncoeffall', "
                             f"got '{lines[lineno - 1].strip()}'")
    n_elements = _number(header[0], int, here, "nelements")
    n_coeff = _number(header[1], int, here, "ncoeffall")
    if n_elements < 1 or n_coeff < 1:
        raise ParameterError(f"{here}: nelements and ncoeffall must be >= 1, got {n_elements} {n_coeff}")
    elements, radelem, wj = [], [], []
    coeffs = np.empty((n_elements, n_coeff))
    for a in range(n_elements):
        if lineno == len(lines):
            raise ParameterError(f"{path}:{lineno}: file ends before element {a + 1} of {n_elements}")
        lineno += 1
        words, here = _words(lines[lineno - 1]), f"{path}:{lineno}"
        if len(words) != 3:
            hint = f" (is ncoeffall {n_coeff} in the header right?)" if a else ""
            raise ParameterError(f"{here}: expected 'element radelem wj' of element {a + 1}, got "
                                 f"'{lines[lineno - 1].strip()}'{hint}")
        name = words[0]
        if name in elements:
            raise ParameterError(f"{here}: element '{name}' repeated")
        elements.append(name)
        radelem.append(_number(words[1], float, here, f"radelem of {name}"))
        wj.append(_number(words[2], float, here, f"wj of {name}"))
        if lineno + n_coeff > len(lines):
            raise ParameterError(f"{path}:{len(lines)}: file ends after {len(lines) - lineno} of the "
                                 f"{n_coeff} coefficients of {name}")
        for k in range(n_coeff):
            lineno += 1
            words, here = _words(lines[lineno - 1], _COEFF_SEPARATORS), f"{path}:{lineno}"
            if len(words) != 1:
                raise ParameterError(f"{here}: expected coefficient {k} of {name} alone on its line, "
                                     f"got '{lines[lineno - 1].strip()}'")
            coeffs[a, k] = _number(words[0], float, here, f"coefficient {k} of {name}")
    for extra in range(lineno, len(lines)):
        if _words(lines[extra]):
            raise ParameterError(f"{path}:{extra + 1}: unexpected '{lines[extra].strip()}' after the "
                                 f"{n_elements} element block(s) of {n_coeff} coefficients")
    return tuple(elements), tuple(radelem), tuple(wj), coeffs


def _build_model(snapcoeff, snapparam, elements=None, zbl=None, include=None):
    """SnapFile from the two files, keeping ``elements`` (default: all, in file order)."""
    values = read_snapparam(snapparam)
    names, radelem, wj, coeffs = read_snapcoeff(snapcoeff)
    elements = names if elements is None else tuple(dict.fromkeys(elements))
    for name in elements:
        if name not in names:
            raise ParameterError(f"{snapcoeff}: element '{name}' not found (file has {', '.join(names)})")
    rows = [names.index(name) for name in elements]
    settings = {**LAMMPS_DEFAULTS, **values}
    need = ncoeffall(settings["twojmax"], settings["quadraticflag"])
    if coeffs.shape[1] != need:
        raise ParameterError(f"{snapcoeff} has {coeffs.shape[1]} coefficients per element but "
                             f"twojmax={settings['twojmax']} with quadraticflag="
                             f"{settings['quadraticflag']} needs {need}")
    try:
        params = SnapParams(**{key: settings[key] for key in ("rcutfac", "twojmax", "rfac0", "rmin0",
                                                              "switchflag", "bzeroflag", "quadraticflag")},
                            radelem=[radelem[r] for r in rows], wj=[wj[r] for r in rows],
                            elements=elements)
    except ParameterError as err:
        raise ParameterError(f"{snapparam} with {snapcoeff}: {err}") from None
    return SnapFile(params, coeffs[rows], zbl, Path(snapcoeff), Path(snapparam), include)


def read_snap_model(snapparam_path, elements=None):
    """SNAP model from ``X.snapparam`` and the ``X.snapcoeff`` beside it.

    ``elements`` selects and orders elements like the element names of ``pair_coeff``
    (default: every element of the .snapcoeff, in file order). No ZBL.
    """
    snapparam = Path(snapparam_path)
    if snapparam.suffix != ".snapparam":
        raise ParameterError(f"{snapparam}: expected a .snapparam file")
    return _build_model(snapparam.with_suffix(".snapcoeff"), snapparam, elements)


# ----------------------------------------------------------------------------- include files

_SCRIPT_PIECE = re.compile(r"""("[^"]*"|'[^']*'|[^\s"'#]+)|(#.*)|(\s+)|(.)""", re.S)
_VARIABLE = re.compile(r"\$(?:\{([^}]*)\}|(\()|(.))", re.S)


def _script_commands(path):
    """(path:line, text) of each command of a LAMMPS input file, '&' continuations joined.

    As in LAMMPS, a line whose last non-blank character is '&' continues on the next line even
    inside a comment, and the '&' is dropped without inserting a space.
    """
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as err:
        raise ParameterError(f"{path}: cannot read include file: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ParameterError(f"{path}: include file is not UTF-8 text (byte {err.start})") from None
    lineno = 0
    while lineno < len(lines):
        start, text = lineno + 1, ""
        while True:
            line = lines[lineno].rstrip()
            lineno += 1
            if not line.endswith("&"):
                break
            if lineno == len(lines):
                raise ParameterError(f"{path}:{lineno}: '&' continues the last line of the file")
            text += line[:-1]
        yield f"{path}:{start}", text + line


def _script_words(text, here, variables):
    """Words of one command: comment cut at '#' outside quotes, then $x / ${x} substituted."""
    kept = []
    for match in _SCRIPT_PIECE.finditer(text):
        if match.group(2) is not None:
            break
        if match.group(4) is not None:
            raise ParameterError(f"{here}: unbalanced quote")
        kept.append(match.group(0))

    def substitute(match):
        name = match.group(1) if match.group(1) is not None else match.group(3)
        if match.group(2):
            raise ParameterError(f"{here}: immediate variables $(...) are not supported")
        if name not in variables:
            raise ParameterError(f"{here}: variable '{name}' is not defined")
        return variables[name]

    text = _VARIABLE.sub(substitute, "".join(kept))
    if '"""' in text:
        raise ParameterError(f"{here}: triple quotes are not supported")
    return [m.group(1)[1:-1] if m.group(1)[0] in "\"'" else m.group(1)
            for m in _SCRIPT_PIECE.finditer(text) if m.group(1) is not None]


def _type_range(word, n_types, here):
    """Atom types lo..hi of a pair_coeff argument ``*``, ``n``, ``*n``, ``n*`` or ``m*n``."""
    match = re.fullmatch(r"(\d*)\*(\d*)|(\d+)", word)
    if match is None:
        raise ParameterError(f"{here}: atom type '{word}' is not a number or range")
    lo, hi = ((int(match.group(3)),) * 2 if match.group(3)
              else (int(match.group(1) or 1), int(match.group(2) or n_types)))
    if not 1 <= lo <= hi <= n_types:
        raise ParameterError(f"{here}: atom type range '{word}' is outside 1..{n_types}")
    return lo, hi


def _pair_style(args, here):
    """(hybrid, (r_inner, r_outer) or None) of ``snap`` or ``hybrid/overlay zbl IN OUT snap``."""
    if args == ["snap"]:
        return False, None
    if not args or args[0] != "hybrid/overlay":
        raise ParameterError(f"{here}: pair_style {' '.join(args)} is not supported "
                             "(only snap, or hybrid/overlay with zbl and snap)")
    rest, cut, snap = list(args[1:]), None, False
    while rest:
        style = rest.pop(0)
        if style == "snap" and not snap:
            snap = True
        elif style == "zbl" and cut is None and len(rest) >= 2:
            cut = tuple(_number(rest.pop(0), float, here, f"zbl {what} cutoff")
                        for what in ("inner", "outer"))
        else:
            raise ParameterError(f"{here}: pair sub-style '{style}' is not supported in hybrid/overlay "
                                 "(only one 'zbl INNER OUTER' and one 'snap')")
    if not snap:
        raise ParameterError(f"{here}: pair_style hybrid/overlay without snap")
    return True, cut


def _zbl_charges(path, cut, zbl_coeffs, type_elements, elements):
    """ZBLSpec from ``pair_coeff I J zbl Z1 Z2`` lines; every type pair needs a Z per type."""
    n_types = len(type_elements)
    pairs = {}
    for here, i_word, j_word, z1, z2 in zbl_coeffs:
        (ilo, ihi), (jlo, jhi) = _type_range(i_word, n_types, here), _type_range(j_word, n_types, here)
        covered = [(i, j) for i in range(ilo, ihi + 1) for j in range(max(jlo, i), jhi + 1)]
        if not covered:
            raise ParameterError(f"{here}: pair_coeff {i_word} {j_word} sets no pair (LAMMPS needs I <= J)")
        for i, j in covered:
            if i == j and z1 != z2:
                raise ParameterError(f"{here}: zbl needs equal charges for type pair {i} {i}, got {z1} {z2}")
            pairs[i, j] = (z1, z2, here)
    missing = [f"{i} {j}" for i in range(1, n_types + 1) for j in range(i, n_types + 1)
               if (i, j) not in pairs]
    if missing:
        raise ParameterError(f"{path}: zbl has no pair_coeff "
                             f"for type pair(s) {', '.join(missing)}; LAMMPS would apply no ZBL there")
    z_type = {i: pairs[i, i][0] for i in range(1, n_types + 1)}
    for (i, j), (z1, z2, here) in pairs.items():
        if (z1, z2) != (z_type[i], z_type[j]):
            raise ParameterError(f"{here}: zbl charges {z1} {z2} for types {i} {j} differ from those of "
                                 f"types {i} {i} and {j} {j}; per-pair charges are not supported")
    z_element = {}
    for t, name in enumerate(type_elements, 1):
        if z_element.setdefault(name, z_type[t]) != z_type[t]:
            raise ParameterError(f"{pairs[t, t][2]}: element {name} has zbl charges "
                                 f"{z_element[name]} and {z_type[t]} on different types")
    return ZBLSpec(cut[0], cut[1], tuple(z_element[name] for name in elements))


def read_snap_include(path):
    """SNAP (+ ZBL) model from a LAMMPS include file such as ``W_2940_2017_2.snap``.

    Understood: ``variable NAME equal NUMBER`` (substituted as LAMMPS does, with ``%.15g``),
    ``$x`` and ``${NAME}``, ``&`` continuations, ``#`` comments, quotes, ``pair_style snap`` or
    ``pair_style hybrid/overlay zbl INNER OUTER snap``, ``pair_coeff I J zbl Z1 Z2`` and
    ``pair_coeff * * [snap] COEFF PARAM ELEM...``. COEFF and PARAM are resolved relative to the
    include file's folder (LAMMPS itself opens them relative to its working directory). The atom
    types are those of the element list; ``params.elements`` holds its distinct names in order.
    Any other command raises ParameterError naming it.
    """
    path = Path(path)
    variables, style, zbl_coeffs, snap = {}, None, [], None
    for here, text in _script_commands(path):
        words = _script_words(text, here, variables)
        if not words:
            continue
        command, args = words[0], words[1:]
        if command == "variable":
            if len(args) != 3 or args[1] != "equal":
                raise ParameterError(f"{here}: only 'variable NAME equal NUMBER' is supported, got "
                                     f"'{' '.join(words)}'")
            variables[args[0]] = "%.15g" % _number(args[2], float, here, f"variable {args[0]}")
        elif command == "pair_style":
            if style is not None:
                raise ParameterError(f"{here}: pair_style repeated")
            style = _pair_style(args, here)
        elif command == "pair_coeff":
            if style is None:
                raise ParameterError(f"{here}: pair_coeff before pair_style")
            hybrid, cut = style
            sub = args[2] if hybrid and len(args) > 2 else "snap"
            rest = args[3:] if hybrid else args[2:]
            if sub == "zbl" and cut is not None:
                if len(rest) != 2:
                    raise ParameterError(f"{here}: pair_coeff I J zbl needs two charges Z1 Z2")
                zbl_coeffs.append((here, args[0], args[1],
                                   *(_number(z, float, here, "zbl charge") for z in rest)))
            elif sub == "snap":
                if snap is not None:
                    raise ParameterError(f"{here}: second pair_coeff for snap (first at {snap[0]})")
                if args[:2] != ["*", "*"] or len(rest) < 3:
                    raise ParameterError(f"{here}: snap needs 'pair_coeff * * {'snap ' if hybrid else ''}"
                                         "COEFF PARAM ELEMENT...'")
                if "NULL" in rest[2:]:
                    raise ParameterError(f"{here}: NULL element (type without SNAP) is not supported")
                snap = (here, *(path.parent / name for name in rest[:2]), rest[2:])
            else:
                raise ParameterError(f"{here}: pair_coeff for sub-style '{sub}' not in the pair_style")
        else:
            raise ParameterError(f"{here}: command '{command}' is not supported in a SNAP include file "
                                 "(only variable, pair_style, pair_coeff)")
    if snap is None:
        raise ParameterError(f"{path}: no 'pair_coeff * * snap COEFF PARAM ELEMENT...' line")
    _, snapcoeff, snapparam, type_elements = snap
    elements = tuple(dict.fromkeys(type_elements))
    zbl = None if style[1] is None else _zbl_charges(path, style[1], zbl_coeffs, type_elements, elements)
    return _build_model(snapcoeff, snapparam, elements, zbl, path)


# ----------------------------------------------------------------------------- writing

def lammps_number(x):
    """Shortest decimal string that reads back to the same double."""
    return repr(float(x))


def check_expressible(params):
    """Refuse ``params`` that LAMMPS's SNAP files cannot express (``ParameterError``)."""
    if params.wself != 1.0:
        raise ParameterError(f"LAMMPS fixes wself = 1; cannot write a model with wself={params.wself}")


def write_snapparam(path, params):
    """Write ``params`` as a LAMMPS ``.snapparam`` file (every keyword explicit)."""
    check_expressible(params)
    lines = ["# UNITS: metal CONTRIBUTOR: emtool", "", "# required",
             f"rcutfac {lammps_number(params.rcutfac)}", f"twojmax {params.twojmax}", "", "# optional",
             f"rfac0 {lammps_number(params.rfac0)}", f"rmin0 {lammps_number(params.rmin0)}",
             *(f"{flag} {getattr(params, flag)}" for flag in _FLAGS)]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_snapcoeff(path, params, coeffs):
    """Write a LAMMPS ``.snapcoeff`` file: element names, radelem and wj from ``params``.

    ``coeffs`` has shape (n_elements, ncoeffall) in the order of ``params.elements``, which must
    name every element (distinct names without whitespace, quotes, '#', '$' or '&').
    """
    check_expressible(params)
    coeffs = np.asarray(coeffs, dtype=np.float64)
    shape = (params.n_elements, ncoeffall(params.twojmax, params.quadraticflag))
    if coeffs.shape != shape:
        raise ParameterError(f"coeffs must have shape {shape} for twojmax={params.twojmax} with "
                             f"quadraticflag={params.quadraticflag}, got {coeffs.shape}")
    if not np.isfinite(coeffs).all():
        raise ParameterError("coeffs must be finite")
    if not params.elements:
        raise ParameterError("params.elements must name the elements to write a .snapcoeff")
    if len(set(params.elements)) != len(params.elements) or any(
            not name or UNSAFE_NAME.search(name) or name == "NULL" for name in params.elements):
        raise ParameterError(f"element names must be distinct LAMMPS words, got {params.elements}")
    kind = "quadratic" if params.quadraticflag else "linear"
    lines = ["# UNITS: metal CONTRIBUTOR: emtool",
             f"# {kind} SNAP, twojmax {params.twojmax}: beta_0 then {shape[1] - 1} coefficients per element",
             "", f"{shape[0]} {shape[1]}"]
    for name, radelem, wj, row in zip(params.elements, params.radelem, params.wj, coeffs):
        lines.append(f"{name} {lammps_number(radelem)} {lammps_number(wj)}")
        lines.extend(lammps_number(c) for c in row)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_snap_model(stem, params, coeffs, zbl=None):
    """Write ``stem.snapparam``, ``stem.snapcoeff`` and the include file ``stem.snap`` that
    sets ``pair_style snap`` (``hybrid/overlay zbl ... snap`` with ``zbl``) and its pair_coeff.

    The include file names the two files without a folder, like the LAMMPS potentials folder
    does: LAMMPS opens them relative to its working directory, so ``include stem.snap`` must be
    run from the folder of the files (or with it in ``LAMMPS_POTENTIALS``). Atom types 1..n are
    ``params.elements`` in order. Values are written literally rather than through equal-style
    variables, which LAMMPS substitutes with only 15 significant digits.

    Returns
    -------
    tuple of Path
        The files written.
    """
    stem = Path(stem)
    if UNSAFE_NAME.search(stem.name):
        raise ParameterError(f"file name '{stem.name}' would break a LAMMPS command")
    if zbl is not None and len(zbl.z) != params.n_elements:
        raise ParameterError(f"ZBL has {len(zbl.z)} charges for {params.n_elements} elements")
    snapparam, snapcoeff = (stem.parent / f"{stem.name}.{ext}" for ext in ("snapparam", "snapcoeff"))
    write_snapcoeff(snapcoeff, params, coeffs)
    write_snapparam(snapparam, params)
    include = stem.parent / f"{stem.name}.snap"
    n = params.n_elements
    files = f"{snapcoeff.name} {snapparam.name} {' '.join(params.elements)}"
    lines = ["# UNITS: metal CONTRIBUTOR: emtool",
             f"# SNAP{'+ZBL' if zbl else ''} potential; atom types 1..{n} are "
             f"{' '.join(params.elements)}.",
             "# LAMMPS opens the pair_coeff files relative to its working directory:",
             "# run 'include' from this folder.", ""]
    if zbl is None:
        lines += ["pair_style snap", f"pair_coeff * * {files}"]
    else:
        lines += [f"pair_style hybrid/overlay zbl {lammps_number(zbl.r_inner)} {lammps_number(zbl.r_outer)} snap",
                  *(f"pair_coeff {i + 1} {j + 1} zbl {lammps_number(zbl.z[i])} {lammps_number(zbl.z[j])}"
                    for i in range(n) for j in range(i, n)),
                  f"pair_coeff * * snap {files}"]
    include.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return snapparam, snapcoeff, include
