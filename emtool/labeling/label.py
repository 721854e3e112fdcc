"""Reference labels (energy, forces, stress) for the configurations of a dataset.

Three kinds of labeler, all named by a picklable ``LabelerSpec``:

- ``potential``: any emtool potential spec (``reference:W`` by default, SNAP files, models);
- ``ase``: an ASE calculator made by ``module:factory`` or ``path/to/file.py:factory`` with
  keyword arguments (e.g. GPAW, see docs/dft.md), built once per worker process;
- ``command``: an external program (DFT through ``mpirun`` or a batch system): for each
  configuration emtool writes ``{input}`` (extxyz) in a fresh folder ``{dir}``, runs the
  command template through the shell, and reads energy, forces and stress back from
  ``{output}`` (extxyz or anything ASE reads).

``label_dataset`` labels the configurations that need it (no energy and no recorded error;
``relabel`` takes all, ``retry_failed`` also the failed ones) on local workers or a Dask
cluster, journaling results in ``OUT.labeling.h5`` so that an interrupted run resumes, then
writes ``OUT`` atomically. A failed calculation (exception, non-zero exit, NaN) is stored
with ``info["label_error"]`` and no energy: never dropped, retried on request.
"""
import importlib
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator

from emtool.potentials.calculators import load_potential
from emtool.data.dataset import dataset_info, provenance_record, read_dataset, write_dataset
from emtool.data.journal import DatasetWriter
from emtool.data.schema import VERSION, journal_path
from emtool.descriptors.neighbors import check_overlap
from emtool.parallel import chunks, run_indexed
from emtool.errors import ParameterError, StructureError
from emtool.potentials.universal import is_universal, load_universal

_BUILT = {}

#: Configurations per ``evaluate_many`` call for potentials that evaluate lists.
BATCH = 16

#: Calculator packages whose versions go into the provenance when they are loaded.
CALCULATOR_PACKAGES = ("gpaw", "pyscf", "torch", "mace", "chgnet", "sevenn", "nequip", "xtb")


@dataclass(frozen=True)
class LabelerSpec:
    """What computes the labels.

    kind : "potential", "ase" or "command".
    target : potential spec, ``module:factory`` / ``file.py:factory``, or the command template.
    kwargs : keyword arguments of the ASE factory (JSON-serializable).
    timeout : seconds allowed per configuration for a command (None: no limit).
    """

    kind: str = "potential"
    target: str = "reference:W"
    kwargs: dict = field(default_factory=dict)
    timeout: float = None

    def __post_init__(self):
        if self.kind not in ("potential", "ase", "command"):
            raise ParameterError(f"unknown labeler kind {self.kind!r}")
        if self.kind == "command":
            for placeholder in ("{input}", "{output}"):
                if placeholder not in self.target:
                    raise ParameterError(f"the command template needs {placeholder}: {self.target!r}")

    def settings(self):
        """JSON-ready description, with the versions of the codes involved (provenance)."""
        import ase
        versions = {"emtool": VERSION, "ase": ase.__version__}
        if self.kind == "ase":
            roots = {self.target.rsplit(":", 1)[0].split(".")[0], *CALCULATOR_PACKAGES}
            for root in sorted(roots):
                module = sys.modules.get(root)
                if module is not None and hasattr(module, "__version__"):
                    versions[root] = str(module.__version__)
        settings = dict(asdict(self), versions=versions)
        if self.kind == "potential" and is_universal(self.target):
            settings["model"] = load_universal(self.target).provenance()
            versions[settings["model"]["package"]] = settings["model"]["version"]
        return settings


def labeler_from_options(potential=None, calc_args=None, command=None, timeout=None):
    """The ``LabelerSpec`` of the CLI options: ``--potential`` (default ``reference:W``),
    ``--calc-args``, ``--command``, ``--timeout``. Options that name two labelers, or that the
    chosen labeler would ignore, are refused (``ParameterError``)."""
    if command and potential:
        raise ParameterError("--command and --potential name two labelers: give one")
    if timeout is not None and not command:
        raise ParameterError("--timeout applies to --command only")
    if command and calc_args:
        raise ParameterError("--calc-args applies to an ASE calculator factory, not --command")
    potential = potential or "reference:W"
    kwargs = {}
    if calc_args:
        try:
            kwargs = json.loads(calc_args) if isinstance(calc_args, str) else dict(calc_args)
        except json.JSONDecodeError as err:
            raise ParameterError(f"--calc-args is not valid JSON: {err}") from None
        if not isinstance(kwargs, dict):
            raise ParameterError("--calc-args must be a JSON object of keyword arguments")
    if command:
        return LabelerSpec("command", command, timeout=timeout)
    if _is_factory(potential):
        _factory(potential)  # import now: a clear error here, not one per configuration
        return LabelerSpec("ase", potential, kwargs)
    if kwargs:
        raise ParameterError("--calc-args applies to an ASE calculator factory (module:factory)")
    load_potential(potential)  # fail now, with a clear message, not in every worker
    return LabelerSpec("potential", potential)


def _is_factory(spec):
    if spec.startswith("reference:") or ":" not in spec or is_universal(spec):
        return False
    module, name = spec.rsplit(":", 1)
    return name.isidentifier() and (module.endswith(".py") or
                                    all(part.isidentifier() for part in module.split(".")))


def _factory(target):
    module_name, name = target.rsplit(":", 1)
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ParameterError(f"calculator module file not found: {module_name}")
            loader = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise ParameterError(f"cannot import {module_name!r} for the calculator {target!r}: "
                             f"{err}") from None
    if not callable(getattr(module, name, None)):
        raise ParameterError(f"{module_name} has no callable {name!r}")
    return getattr(module, name)


def _build(spec):
    """The labeler object of ``spec``, built once per process."""
    key = json.dumps(asdict(spec), sort_keys=True)
    if key not in _BUILT:
        if spec.kind == "potential":
            _BUILT[key] = load_potential(spec.target)
        elif spec.kind == "ase":
            _BUILT[key] = _factory(spec.target)(**spec.kwargs)
        else:
            _BUILT[key] = None
    return _BUILT[key]


def _evaluate(spec, atoms):
    """dict(energy, forces, stress or None) of one configuration; raises on failure."""
    periodic = bool(np.all(atoms.pbc))
    if spec.kind == "potential":
        result = _build(spec).evaluate(atoms)
        return dict(energy=result["energy"], forces=result["forces"],
                    stress=result.get("stress") if periodic else None)
    if spec.kind == "ase":
        work = atoms.copy()
        work.calc = _build(spec)
        energy = work.get_potential_energy()
        forces = work.get_forces()
        stress = None
        if periodic and "stress" in getattr(work.calc, "implemented_properties", ()):
            stress = work.get_stress()
        return dict(energy=energy, forces=forces, stress=stress)
    return _run_command(spec, atoms)


def _run_command(spec, atoms):
    from ase.io import read, write
    with tempfile.TemporaryDirectory(prefix=f"emtool-label-{atoms.info.get('index', 0)}-") as work:
        inp, out = os.path.join(work, "input.extxyz"), os.path.join(work, "output.extxyz")
        plain = atoms.copy()
        plain.calc = None
        plain.info = {"index": atoms.info.get("index")}
        write(inp, plain, format="extxyz")
        command = spec.target.format(input=shlex.quote(inp), output=shlex.quote(out),
                                     dir=shlex.quote(work), index=atoms.info.get("index", 0))
        try:
            # env=os.environ: the environment the user started emtool with. Without it the
            # command inherits the C environment, which an MPI library loaded in this process
            # (ASE loads GPAW's to find its ``world``) has filled with its singleton's
            # OMPI_*/PMIX_* variables: an ``mpirun`` in the command then exits 1, silently.
            done = subprocess.run(command, shell=True, cwd=work, capture_output=True, text=True,
                                  timeout=spec.timeout, env=dict(os.environ))
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"command timed out after {spec.timeout} s") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise RuntimeError(f"command exited with code {done.returncode}: "
                               + (tail[0] if tail else "it printed nothing"))
        if not os.path.exists(out):
            raise RuntimeError(f"command wrote no output file {out}")
        result = read(out)
        if len(result) != len(atoms):
            raise RuntimeError(f"output has {len(result)} atoms, input {len(atoms)}")
        calc = result.calc
        if calc is None or "energy" not in calc.results or "forces" not in calc.results:
            raise RuntimeError("output file has no energy and forces")
        return dict(energy=calc.results["energy"], forces=calc.results["forces"],
                    stress=calc.results.get("stress") if np.all(atoms.pbc) else None)


def label_one(spec, atoms):
    """A copy of ``atoms`` with its labels on a SinglePointCalculator, or with
    ``info["label_error"]`` (and no labels) when the calculation failed."""
    return _labeled(atoms, lambda: _evaluate(spec, atoms))


def label_batch(spec, images):
    """``label_one`` of each configuration of ``images``, evaluated together by a potential
    that offers ``evaluate_many`` (the universal potentials); if that fails, each
    configuration is labeled alone so that a failure is recorded per configuration."""
    try:
        results = _build(spec).evaluate_many(images)
    except (ParameterError, KeyboardInterrupt):
        raise
    except Exception:
        return [label_one(spec, atoms) for atoms in images]
    return [_labeled(atoms, lambda result=result: result) for atoms, result in zip(images, results)]


def _labeled(atoms, compute):
    out = atoms.copy()
    out.calc = None
    out.info.pop("label_error", None)
    try:
        result = compute()
        energy = float(result["energy"])
        forces = np.asarray(result["forces"], dtype=float)
        stress = result["stress"]
        if forces.shape != (len(atoms), 3):
            raise RuntimeError(f"forces have shape {forces.shape}, expected ({len(atoms)}, 3)")
        values = [energy, forces] + ([np.asarray(stress, float)] if stress is not None else [])
        if not all(np.all(np.isfinite(v)) for v in values):
            raise RuntimeError("labeler returned non-finite energy, forces or stress")
    except (ParameterError, KeyboardInterrupt):
        raise
    except Exception as err:  # any calculator failure is recorded, not raised
        out.info["label_error"] = f"{type(err).__name__}: {err}"[:2000]
        return out
    results = dict(energy=energy, forces=forces)
    if stress is not None:
        results["stress"] = np.asarray(stress, float)
    out.calc = SinglePointCalculator(out, **results)
    return out


def _label_from_file(spec, path, index):
    return label_one(spec, read_dataset(path, indices=[index])[0])


def _label_from_memory(spec, images, index):
    return label_one(spec, images[index])


def finished_labels(output):
    """The configurations that an ``emtool label ... -o OUTPUT`` job has finished so far, as
    ASE Atoms: OUTPUT itself when the job completed, else what its work file
    ``OUTPUT.labeling.h5`` and that file's journal hold (what Ctrl-C or a kill left behind).
    Failed calculations are included (``info["label_error"]``, no labels); [] if neither
    exists."""
    output = Path(output)
    work = output.with_name(output.name + ".labeling.h5")
    if output.exists():
        return read_dataset(output)
    if not work.exists():
        return []
    return read_dataset(work) + [atoms for shard in sorted(journal_path(work).glob("*.h5"))
                                 for atoms in read_dataset(shard)]


def needs_label(atoms, relabel=False, retry_failed=False):
    """Whether ``label_dataset`` takes this configuration."""
    if relabel:
        return True
    if "label_error" in atoms.info:
        return retry_failed
    calc = atoms.calc
    return calc is None or not np.isfinite(calc.results.get("energy", np.nan))


def label_dataset(source, spec=None, output=None, workers=1, scheduler=None, relabel=False,
                  retry_failed=False, progress=None):
    """Label the configurations of dataset ``source`` into ``output`` (default: in place).

    Returns a summary dict (labeled, failed with the first errors, skipped, seconds).
    """
    spec = spec or LabelerSpec()
    source = Path(source)
    output = Path(output) if output else source
    if not source.is_file():
        raise FileNotFoundError(f"no such dataset: {source}")
    start = time.perf_counter()
    images = {a.info["index"]: a for a in read_dataset(source)}
    todo = [k for k, a in images.items() if needs_label(a, relabel, retry_failed)]
    labeler = _build(spec) if spec.kind == "potential" else None
    for k in todo:  # refuse overlapping atoms and elements the labeler does not know
        _check_overlap(images[k], source, k)  # before anything is written
        getattr(labeler, "check", lambda atoms: None)(images[k])
    work = output.with_name(output.name + ".labeling.h5")
    parameters = {"job": "label", "source": str(source.resolve()), "labeler": asdict(spec),
                  "relabel": bool(relabel), "retry_failed": bool(retry_failed)}
    summary = dict(labeled=0, failed=0, errors=[], skipped=len(images) - len(todo))
    results = {}
    with DatasetWriter(work, parameters) as writer:
        done = writer.done_indices()
        pending = [k for k in todo if k not in done]

        def take(atoms):
            writer.add(atoms)
            writer.consolidate_if_due()
            if progress:
                progress(len(todo) - len(pending) + len(results) + 1, len(todo))
            results[atoms.info["index"]] = True

        if workers <= 1 and not scheduler and hasattr(_build(spec), "evaluate_many"):
            for part in chunks(pending, BATCH):
                for atoms in label_batch(spec, [images[k] for k in part]):
                    take(atoms)
        elif workers <= 1 and not scheduler:
            run_indexed(_label_from_memory, (spec, images), pending, take)
        else:
            # a DFT label takes minutes: ASE calculators and commands go one configuration per
            # task, so each is journaled as it finishes; potentials in chunks (task overhead)
            chunk = 1 if spec.kind in ("ase", "command") else 4
            run_indexed(_label_from_file, (spec, str(source)), pending, take, workers, scheduler,
                        chunk)
        writer.finish("label", spec.settings())
    for atoms in read_dataset(work):
        images[atoms.info["index"]] = atoms
        if "label_error" in atoms.info:
            summary["failed"] += 1
            if len(summary["errors"]) < 5:
                summary["errors"].append((atoms.info["index"], atoms.info["label_error"]))
        else:
            summary["labeled"] += 1
    info = dataset_info(source)
    record = provenance_record("label", dict(spec.settings(), configurations=len(todo),
                                             failed=summary["failed"], source=str(source)))
    write_dataset(output, [images[k] for k in sorted(images)], parameters=info["parameters"],
                  provenance=info["provenance"] + [record])
    work.unlink()
    summary["seconds"] = time.perf_counter() - start
    return summary


def _check_overlap(atoms, source, index):
    """A dataset written before emtool refused overlapping atoms: refuse to label it."""
    try:
        check_overlap(atoms.positions, atoms.cell.array, atoms.pbc)
    except StructureError as err:
        raise StructureError(f"{source}: configuration {index}: {err}") from None
