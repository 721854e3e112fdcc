"""Neural-network potentials on bispectrum descriptors (paper "Neural Network Models", Fig. 7).

The energy of a structure is a sum of atomic energies, E = sum_i E_i + E_ref,

    E_i = NN((B_i - shift) / scale),

one multilayer perceptron shared by all atoms (one element), B_i the linear bispectrum
components of atom i (LAMMPS ``compute sna/atom`` columns, bzero shift as in the params) and
E_ref an optional ZBL overlay. Forces use the SNAP adjoint path with per-atom coefficients
beta_i = dE_i/dB_i from the network's backward pass (``emtool.kernels.mlp``), so MD needs no
PyTorch. Training is in :mod:`emtool.fitting.networks`.

The ten architectures of the paper's Fig. 7 are named by their hidden-layer widths from the
input side; the output layer has one node (the atomic energy) and no activation:

- type A (step-down): A1 10-6, A2 20-10-6, A3 25-20-15-10-8-6, A4 28-25-22-20-15-10-8-6,
  A5 28-25-22-20-15-12-10-8-6;
- type B (expand-then-contract): B1 64-30, B2 128-64-30, B3 64-128-128-64-50-30,
  B4 64-128-256-128-64-30-15-6, B5 64-128-256-512-256-128-64-30-6.

With D = 30 inputs A1 has 383 parameters and B1 3965, as the paper states. (The figure's
text for B5 is ambiguous in the extracted paper: one stray "X 64" is not placed; emtool
reads B5 as printed on its line.)
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emtool.kernels import mlp as _k
from emtool.descriptors.params import SnapParams
from emtool.errors import ParameterError
from emtool.descriptors.snap import bispectrum_from_pairs, snap_pair_forces, snap_pairs
from emtool.potentials.snap import DescriptorPotential
from emtool.potentials.snapfiles import UNSAFE_NAME, check_expressible, lammps_number
from emtool.potentials.zbl import ZBLSpec

#: Hidden-layer widths of the paper's Fig. 7 networks, input side first.
ARCHITECTURES = {
    "A1": (10, 6),
    "A2": (20, 10, 6),
    "A3": (25, 20, 15, 10, 8, 6),
    "A4": (28, 25, 22, 20, 15, 10, 8, 6),
    "A5": (28, 25, 22, 20, 15, 12, 10, 8, 6),
    "B1": (64, 30),
    "B2": (128, 64, 30),
    "B3": (64, 128, 128, 64, 50, 30),
    "B4": (64, 128, 256, 128, 64, 30, 15, 6),
    "B5": (64, 128, 256, 512, 256, 128, 64, 30, 6),
}

#: Activation names and kernel codes; LAMMPS ML-IAP ``model nn`` has all but softplus.
ACTIVATIONS = {"linear": _k.LINEAR, "sigmoid": _k.SIGMOID, "tanh": _k.TANH, "relu": _k.RELU,
               "softplus": _k.SOFTPLUS}
LAMMPS_ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu")


def architecture_layers(architecture, d):
    """(L,) node counts of every layer after the D inputs, output layer (1) last."""
    name = architecture.upper().removeprefix("NN:").removeprefix("NN-")
    if name not in ARCHITECTURES:
        raise ParameterError(f"unknown network architecture {architecture!r}: one of "
                             f"{', '.join('nn:' + k for k in ARCHITECTURES)}")
    return np.array(ARCHITECTURES[name] + (1,), np.int64)


def n_parameters(nnodes, d):
    """Number of weights and biases of a network with D inputs and layer widths ``nnodes``."""
    widths = [d] + [int(n) for n in nnodes]
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


@dataclass(frozen=True, eq=False)
class NetworkPotential(DescriptorPotential):
    """A per-atom MLP on bispectrum descriptors (module docstring), single element.

    params : SnapParams (linear descriptors, one element).
    nnodes : (L,) int64 layer widths, the last 1.
    activation : str, the activation of every hidden layer (key of ``ACTIVATIONS``).
    coeffs : flat float64 parameters in ML-IAP layout (``emtool.kernels.mlp``), eV.
    shift, scale : (D,) input standardization (units of B).
    zbl : ZBLSpec or None, the repulsion overlaid (and subtracted in training).
    """

    params: SnapParams
    nnodes: np.ndarray
    activation: str
    coeffs: np.ndarray
    shift: np.ndarray
    scale: np.ndarray
    zbl: ZBLSpec = None

    def __post_init__(self):
        d = self.params.ncoeff
        if self.params.n_elements != 1 or self.params.quadraticflag:
            raise ParameterError("network potentials take linear descriptors of one element")
        if self.activation not in ACTIVATIONS:
            raise ParameterError(f"unknown activation {self.activation!r}: one of "
                                 f"{', '.join(ACTIVATIONS)}")
        nnodes = np.array(self.nnodes, np.int64)
        if nnodes.ndim != 1 or len(nnodes) == 0 or nnodes.min() < 1 or nnodes[-1] != 1:
            raise ParameterError(f"layer widths must be positive and end with 1, got {nnodes}")
        arrays = {name: np.array(getattr(self, name), np.float64).ravel()
                  for name in ("coeffs", "shift", "scale")}
        if arrays["coeffs"].size != n_parameters(nnodes, d):
            raise ParameterError(f"a network {d}-{'-'.join(map(str, nnodes))} has "
                                 f"{n_parameters(nnodes, d)} parameters, got {arrays['coeffs'].size}")
        if arrays["shift"].size != d or arrays["scale"].size != d:
            raise ParameterError(f"shift and scale need D = {d} values")
        if not all(np.all(np.isfinite(a)) for a in arrays.values()) or arrays["scale"].min() <= 0:
            raise ParameterError("network parameters must be finite and scales positive")
        for name, value in dict(arrays, nnodes=nnodes).items():
            value.flags.writeable = False
            object.__setattr__(self, name, value)

    def activation_codes(self):
        """(L,) kernel activation codes: the hidden activation, then linear output."""
        codes = np.full(len(self.nnodes), ACTIVATIONS[self.activation], np.int64)
        codes[-1] = _k.LINEAR
        return codes

    def atomic_energies(self, b):
        """E_i (N,) eV and beta_i = dE_i/dB_i (N, D) for descriptors b (N, D)."""
        return _k.mlp_energy_beta(np.ascontiguousarray(b, dtype=np.float64), self.shift,
                                  self.scale, self.coeffs, self.nnodes, self.activation_codes())

    def evaluate(self, atoms, neighbors=None):
        """Energy (eV), per-atom energies (N,), forces (N, 3) eV/Å and, for periodic cells, the
        ASE stress (6,) eV/Å^3; returned as a dict (as ``SnapPotential.evaluate``, also
        ``neighbors``)."""
        params = self.params
        pairs = snap_pairs(atoms, params, neighbors)
        energies, beta = self.atomic_energies(bispectrum_from_pairs(params, pairs))
        dedr, _ = snap_pair_forces(params, pairs, beta)
        return self.result(atoms, pairs, energies, dedr, neighbors)

    def write(self, stem):
        """Write LAMMPS ML-IAP files (``write_mliap``); returns the paths written."""
        return write_mliap(stem, self)


def _lines_of(values, per_line=10):
    values = list(values)
    return [" ".join(lammps_number(v) for v in values[k:k + per_line]) for k in range(0, len(values), per_line)]


def write_mliap(stem, potential):
    """LAMMPS ML-IAP files of a network potential: ``stem.mliap.model`` (``model nn``
    coefficients), ``stem.mliap.descriptor`` (``descriptor sna``) and the include file
    ``stem.mliap`` (with ``hybrid/overlay zbl`` when the model has ZBL). As with SNAP
    exports, run ``include`` from the folder of the files. SoftPlus networks are refused:
    LAMMPS ``model nn`` has linear, sigmoid, tanh and relu only (and would silently treat any
    other name as linear).
    """
    if potential.activation not in LAMMPS_ACTIVATIONS:
        raise ParameterError(f"LAMMPS ML-IAP 'model nn' has no {potential.activation} activation "
                             f"(only {', '.join(LAMMPS_ACTIVATIONS)}); train with --activation "
                             f"tanh, sigmoid or relu to export to LAMMPS")
    stem = Path(stem)
    if UNSAFE_NAME.search(stem.name):
        raise ParameterError(f"file name '{stem.name}' would break a LAMMPS command")
    params = potential.params
    check_expressible(params)
    element = params.elements[0]
    model, descriptor, include = (stem.parent / f"{stem.name}.{ext}"
                                  for ext in ("mliap.model", "mliap.descriptor", "mliap"))
    names = [potential.activation] * (len(potential.nnodes) - 1) + ["linear"]
    layers = " ".join(f"{a} {n}" for a, n in zip(names, potential.nnodes))
    model.write_text("\n".join([
        "# emtool network potential, LAMMPS ML-IAP 'model nn' coefficients",
        f"1 {potential.ndof}", f"NET {params.ncoeff} {len(potential.nnodes)} {layers}",
        *_lines_of(potential.shift), *_lines_of(potential.scale),
        *_lines_of(potential.coeffs)]) + "\n", encoding="utf-8")
    descriptor.write_text("\n".join([
        "# emtool network potential, LAMMPS ML-IAP 'descriptor sna' parameters",
        "nelems 1", f"elems {element}", f"radelems {lammps_number(params.radelem[0])}",
        f"welems {lammps_number(params.wj[0])}", f"rcutfac {lammps_number(params.rcutfac)}",
        f"twojmax {params.twojmax}", f"rfac0 {lammps_number(params.rfac0)}", f"rmin0 {lammps_number(params.rmin0)}",
        f"switchflag {params.switchflag}", f"bzeroflag {params.bzeroflag}"]) + "\n",
        encoding="utf-8")
    mliap = f"mliap model nn {model.name} descriptor sna {descriptor.name}"
    if potential.zbl is None:
        lines = [f"pair_style {mliap}", f"pair_coeff * * {element}"]
    else:
        z = lammps_number(potential.zbl.z[0])
        lines = [f"pair_style hybrid/overlay zbl {lammps_number(potential.zbl.r_inner)} "
                 f"{lammps_number(potential.zbl.r_outer)} {mliap}",
                 f"pair_coeff 1 1 zbl {z} {z}", f"pair_coeff * * mliap {element}"]
    include.write_text("\n".join(["# UNITS: metal CONTRIBUTOR: emtool",
                                  f"# network potential for {element}; run 'include' from this "
                                  f"folder", ""] + lines) + "\n", encoding="utf-8")
    return model, descriptor, include
