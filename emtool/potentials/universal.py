"""Universal machine-learned potentials as emtool potential specs: CHGNet and SevenNet.

Specs (everywhere a potential spec is taken: ``--potential``, ``emtool.calculator``):

- ``chgnet`` = ``chgnet:0.3.0`` (CHGNet's default pretrained model), ``chgnet:0.2.0``,
  ``chgnet:r2scan`` (transfer-learned to r2SCAN: another functional, not PBE);
- ``sevenn`` = ``sevenn:7net-0`` (SevenNet-0, 11 Jul 2024), ``sevenn:7net-0_22May2024``,
  ``sevenn:7net-l3i5``.

Only checkpoints that the installed wheels ship are accepted: emtool never downloads (the
packages would fetch some of their other models from the internet at run time). Install with
``pip install 'emtool[umlip]'``. Both are trained on PBE(+U) data of the Materials Project
(MPtrj); their energies are total energies in eV on the packages' own reference, so compare
energy *differences* (e.g. above BCC) with DFT, not absolute energies.

A ``UniversalPotential`` has emtool's potential interface: ``evaluate(atoms)`` returns
``energy`` (eV), ``forces`` (N, 3) eV/Å and, for periodic cells, ``stress`` (6,) eV/Å^3 in
ASE's Voigt order and sign; ``evaluate_many(images, batch_size)`` evaluates a list (CHGNet:
``batch_size`` graphs per forward pass); ``check(atoms)`` refuses elements the model does not
know; ``provenance()`` names package, version, model and checkpoint file.
"""
import contextlib
import importlib
import importlib.metadata
import os
import warnings
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from emtool.errors import ParameterError
from emtool.parallel import match_torch_threads
from emtool.structure import voigt

#: package -> (default model, {model name: checkpoint path relative to the package folder}).
MODELS = {
    "chgnet": ("0.3.0", {
        "0.3.0": "pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
        "0.2.0": "pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
        "r2scan": "pretrained/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
    }),
    "sevenn": ("7net-0", {
        "7net-0": "pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
        "7net-0_22May2024": "pretrained_potentials/SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
        "7net-l3i5": "pretrained_potentials/SevenNet_l3i5/checkpoint_l3i5.pth",
    }),
}

#: Largest atomic number CHGNet embeds (SevenNet: the type map of its checkpoint).
CHGNET_MAX_Z = 94

_LOADED = {}


def is_universal(spec):
    """Whether ``spec`` names a universal potential (``chgnet``, ``sevenn[:model]``)."""
    return str(spec).split(":", 1)[0] in MODELS


def parse_spec(spec):
    """(package, model) of a universal-potential spec; ``ParameterError`` if unknown."""
    package, _, model = str(spec).partition(":")
    if package not in MODELS:
        raise ParameterError(f"unknown universal potential {spec!r}: expected one of "
                             f"{', '.join(MODELS)}")
    default, models = MODELS[package]
    model = model or default
    if model not in models:
        raise ParameterError(f"{package} model {model!r} is not shipped with the installed "
                             f"package (emtool downloads nothing); available: "
                             f"{', '.join(models)}")
    return package, model


def load_universal(spec):
    """The ``UniversalPotential`` of ``spec``, loaded once per process."""
    key = parse_spec(spec)
    if key not in _LOADED:
        _LOADED[key] = UniversalPotential(*key)
    return _LOADED[key]


class UniversalPotential:
    """A CHGNet or SevenNet model on the CPU (see the module docstring).

    package : "chgnet" or "sevenn"; model : a name of ``MODELS[package]``.
    """

    def __init__(self, package, model):
        self.package, self.model = package, model
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise ParameterError(f"the potential {package!r} needs the package {package}: "
                                 f"pip install 'emtool[umlip]'") from None
        self.version = importlib.metadata.version(package)
        self.checkpoint = Path(module.__file__).parent / MODELS[package][1][model]
        if not self.checkpoint.is_file():
            raise ParameterError(f"{package} {self.version} does not ship the model {model} "
                                 f"({self.checkpoint} is missing)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if package == "chgnet":
                self._load_chgnet()
            else:
                self._load_sevenn()

    def _load_chgnet(self):
        from chgnet.model import CHGNet
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            self._net = CHGNet.load(model_name=self.model, use_device="cpu", verbose=False)
        self._net.eval()
        self.species = set(range(1, CHGNET_MAX_Z + 1))

    def _load_sevenn(self):
        from sevenn.calculator import SevenNetCalculator
        self._calc = SevenNetCalculator(model=str(self.checkpoint), device="cpu")
        self.species = {int(z) for z in self._calc.type_map}

    def __reduce__(self):
        # worker processes load the model themselves instead of receiving its tensors
        return load_universal, (f"{self.package}:{self.model}",)

    def provenance(self):
        """JSON-ready: package, version, model name and checkpoint file."""
        return {"package": self.package, "version": self.version, "model": self.model,
                "checkpoint": str(self.checkpoint.relative_to(self.checkpoint.parents[2]))}

    def check(self, atoms):
        """``ParameterError`` if ``atoms`` holds an element the model does not know."""
        unknown = sorted({s for s in atoms.get_chemical_symbols()
                          if atomic_numbers[s] not in self.species})
        if unknown:
            raise ParameterError(f"{self.package}:{self.model} does not know the element(s) "
                                 f"{', '.join(unknown)}")

    def evaluate(self, atoms):
        """dict(energy eV, forces (N, 3) eV/Å, stress (6,) eV/Å^3 for periodic cells)."""
        return self.evaluate_many([atoms])[0]

    def evaluate_many(self, images, batch_size=1):
        """``evaluate`` of each configuration of ``images`` (a list of ASE Atoms); CHGNet runs
        ``batch_size`` graphs per forward pass. On one CPU thread batching does not pay
        (36-atom W boxes: 0.20, 0.21, 0.35 s per configuration at batch 1, 4, 16), so the
        default is 1; larger batches are for GPUs and many threads."""
        for atoms in images:
            self.check(atoms)
        match_torch_threads()
        if self.package == "chgnet":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # CHGNet's own tensor-copy warnings
                return self._chgnet_many(images, batch_size)
        results = []
        for atoms in images:
            work = atoms.copy()
            work.calc = self._calc
            periodic = bool(np.all(atoms.pbc))
            results.append(dict(energy=float(work.get_potential_energy()),
                                forces=np.array(work.get_forces(), float),
                                stress=np.array(work.get_stress(), float) if periodic else None))
        return results

    def _chgnet_many(self, images, batch_size):
        from ase.units import GPa
        from pymatgen.io.ase import AseAtomsAdaptor

        graphs = [self._net.graph_converter(AseAtomsAdaptor.get_structure(atoms))
                  for atoms in images]
        predictions = self._net.predict_graph(graphs, task="efs", batch_size=batch_size)
        if isinstance(predictions, dict):
            predictions = [predictions]
        results = []
        for atoms, p in zip(images, predictions):
            periodic = bool(np.all(atoms.pbc))
            results.append(dict(energy=float(p["e"]) * len(atoms),
                                forces=np.array(p["f"], float),
                                stress=voigt(np.array(p["s"], float)) * GPa if periodic else None))
        return results

