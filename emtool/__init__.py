"""emtool: entropy-optimized training sets for machine-learned interatomic potentials.

The pipeline, one function a stage (units everywhere: Å, eV, eV/Å, eV/Å^3; files are emtool
datasets, docs/dataset.md, and model files, ``emtool.potentials.models``):

- ``generate``: entropy-optimized configurations (paper Eq. 1) into a dataset;
- ``label``: reference energies, forces and stress of a dataset's configurations;
- ``select``: which configurations of a pool deserve DFT;
- ``fit``: a SNAP potential or one of the paper's networks, saved as a model file;
- ``evaluate``: errors of a potential on a labeled dataset;
- ``nve``: the paper's energy-conservation test of a potential;
- ``compare``: datasets side by side in descriptor space.

Also: ``calculator(spec)`` (an ASE calculator for any potential spec), ``SnapParams``,
``bispectrum``, ``bispectrum_derivatives``, ``n_bispectrum``, ``SnapPotential``,
``read_dataset``, ``write_dataset``, and the errors (``EmtoolError`` and its subclasses).
The stages load their modules on first use, so ``import emtool`` stays light.
"""
from importlib.metadata import version

from emtool.data.dataset import read_dataset, write_dataset
from emtool.descriptors.params import SnapParams, n_bispectrum
from emtool.descriptors.snap import bispectrum, bispectrum_derivatives
from emtool.errors import DatasetError, EmtoolError, MDError, ParameterError, StructureError

__version__ = version("emtool")
__all__ = ["DatasetError", "EmtoolError", "MDError", "ParameterError", "SnapParams",
           "SnapPotential", "StructureError", "bispectrum", "bispectrum_derivatives",
           "calculator", "compare", "evaluate", "fit", "generate", "label", "n_bispectrum",
           "nve", "read_dataset", "select", "write_dataset"]


def calculator(spec):
    """An ASE calculator for the potential named by ``spec`` (``reference:W``, ``chgnet``,
    a model file, a .snapparam or .snap file: ``emtool.potentials.calculators``)."""
    from emtool.potentials.calculators import calculator as _calculator
    return _calculator(spec)


def generate(output, n, seed=0, params=None, workers=1, scheduler=None, progress=None):
    """Configurations 0..n-1 of job ``seed`` into the dataset ``output``: random tetragonal
    boxes relaxed by FIRE on V = V_rep - K S (paper Eq. 1; ``params``: a
    ``emtool.generator.generate.GeneratorParams``, default tungsten's). Resumable; identical
    for any ``workers`` or Dask ``scheduler``. ``progress(done, total)`` after each one.
    Returns a summary dict (new, skipped, seconds, FIRE statistics)."""
    from emtool.generator.generate import generate_dataset
    return generate_dataset(output, n, seed, params, workers, scheduler, progress)


def label(dataset, potential=None, output=None, calc_args=None, command=None, timeout=None,
          workers=1, scheduler=None, relabel=False, retry_failed=False, progress=None):
    """Label the unlabeled configurations of ``dataset`` (energy eV, forces eV/Å, stress
    eV/Å^3) with ``potential`` (a spec, default ``reference:W``; ``calc_args``: keyword
    arguments of an ASE calculator factory ``module:factory``) or an external ``command``
    (with ``timeout`` s), into ``output`` (default: in place). Journaled and resumable;
    failures are recorded, not raised. Returns a summary dict (labeled, failed, skipped,
    errors, seconds)."""
    from emtool.labeling.label import label_dataset, labeler_from_options
    spec = labeler_from_options(potential, calc_args, command, timeout)
    return label_dataset(dataset, spec, output, workers, scheduler, relabel, retry_failed,
                         progress)


def select(pool, n, output, method="coverage", existing=(), params=None, seed=0, workers=1,
           scheduler=None, progress=None):
    """Write the ``n`` configurations of dataset ``pool`` that ``method`` (coverage,
    farthest, entropy or random) picks, given the datasets ``existing``, to ``output``;
    ``params``: the descriptors (default twojmax 8). Returns a summary dict."""
    from emtool.analysis.select import select_dataset
    return select_dataset(pool, n, output, method, existing, params, seed, workers, scheduler,
                          progress)


def fit(train, output, model="linear", params=None, **options):
    """Fit ``model`` (``linear`` or ``quadratic`` SNAP, or a network ``nn:A1`` ... ``nn:B5``)
    to the labeled configurations of dataset ``train`` and save it as the model file
    ``output``; ``params``: the descriptors (``SnapParams``, default twojmax 8, bzeroflag 0).
    ``options``: those of ``emtool.fitting.snap.fit_dataset`` (weights, zbl, ridge,
    validation, seed, validation_groups, fitsnap_input, workers) or, for a network, of
    ``emtool.fitting.networks.fit_network_dataset`` (settings, zbl, test_groups,
    descriptors, workers, on_epoch, threads). Returns the model's metadata (split, metrics)."""
    params = params or SnapParams(bzeroflag=0)
    if model.lower().startswith("nn:"):
        from dataclasses import replace

        from emtool.fitting.networks import TrainingSettings, fit_network_dataset
        settings = replace(options.pop("settings", TrainingSettings()), architecture=model[3:])
        return fit_network_dataset(train, output, settings, params, **options)
    from emtool.fitting.snap import fit_dataset
    return fit_dataset(train, output, model, params, **options)


def evaluate(potential, data, workers=1):
    """Errors of ``potential`` (a spec or a potential object) on the labeled configurations
    of dataset ``data``: energy per atom (eV/atom) and force (eV/Å) RMSE and MAE, overall
    and per group, and the per-configuration RSE (paper Fig. 4)."""
    from emtool.analysis.evaluate import evaluate_images
    from emtool.potentials.calculators import load_potential
    model = load_potential(potential) if isinstance(potential, (str, bytes)) or \
        hasattr(potential, "__fspath__") else potential
    return evaluate_images(model, read_dataset(data), workers, data)


def nve(potential, protocol=None, atoms=None, trajectory=None, progress=None):
    """The paper's energy-conservation test (Eq. 2, Fig. 5) of ``potential`` (a spec):
    ``protocol`` an ``emtool.dynamics.nve.NVEProtocol`` (default the paper's), ``atoms`` the
    start (default 16-atom BCC W). Returns the ΔH(δt) table and its log-log slope."""
    from emtool.dynamics.nve import NVEProtocol, energy_conservation
    from emtool.potentials.calculators import load_potential
    return energy_conservation(load_potential(potential), protocol or NVEProtocol(), atoms,
                               trajectory, progress)


def compare(reference, *others, params=None, components=(0, 1, 2), max_environments=100_000,
            seed=0, workers=1):
    """Datasets ``others`` against the dataset ``reference`` in descriptor space (paper
    Fig. 2, 6): distributions (of the bispectrum columns ``components``), whitened
    broadening, PCA, entropy, coverage (on up to ``max_environments`` environments a set),
    structure types (``emtool.analysis.compare.Comparison``); ``params`` default twojmax 8,
    bzeroflag 0."""
    from emtool.analysis.compare import compare_datasets
    return compare_datasets([reference, *others], params or SnapParams(bzeroflag=0),
                            components, max_environments, seed, workers)


def __getattr__(name):
    if name == "SnapPotential":
        from emtool.potentials.snap import SnapPotential
        return SnapPotential
    raise AttributeError(f"module 'emtool' has no attribute {name!r}")
