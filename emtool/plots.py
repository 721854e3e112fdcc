"""Every figure emtool draws, one function each.

A function takes plain data (NumPy arrays, numbers, strings and lists of them; the computing
stays with its concept: ``evaluate``, ``md``, ``compare_report``, ``workflows``) and the
destination ``path``, draws on a ``matplotlib.figure.Figure`` with its own Agg canvas, and
writes the file whole or not at all (:func:`emtool.files.atomic_write`) in the format the
suffix of ``path`` names (.png, .pdf, .svg, ...; another suffix raises ``ParameterError``).
Returns ``path`` as a Path.

Nothing here changes matplotlib's global state: no ``matplotlib.use``, no pyplot (no figure
registry, no GUI backend), no rcParams changes, so a program that uses emtool keeps its own
backend and style. matplotlib is imported inside the functions (docs/architecture.md: heavy
optional packages), so ``import emtool`` does not load it.
"""
from pathlib import Path

import numpy as np

from emtool.files import atomic_write
from emtool.errors import ParameterError


def errors(reference, predicted, path):
    """Parity plot of energies per atom (eV/atom, one point per configuration) beside the
    histogram, in log bins, of RSE = |predicted - reference| (floored at 1e-8 eV/atom)."""
    reference, predicted = np.asarray(reference, float), np.asarray(predicted, float)
    fig, ax = _figure(1, 2, figsize=(9, 4))
    ax[0].scatter(reference, predicted, s=6)
    lims = [min(reference.min(), predicted.min()), max(reference.max(), predicted.max())]
    ax[0].plot(lims, lims, color="gray", lw=0.8)
    ax[0].set_xlabel("reference energy (eV/atom)")
    ax[0].set_ylabel("model energy (eV/atom)")
    rse = np.maximum(np.abs(predicted - reference), 1e-8)
    ax[1].hist(rse, bins=np.logspace(np.log10(rse.min()), np.log10(rse.max()) + 1e-9, 40))
    ax[1].set_xscale("log")
    ax[1].set_xlabel("RSE (eV/atom)")
    ax[1].set_ylabel("configurations")
    return _save(fig, path, dpi=120)


def energy_conservation(timestep, delta_h, error, path, label="emtool", title=None, fit=None,
                        square=None):
    """Log-log plot of ΔH(δt) (eV/atom) against the timestep (fs) with error bars (paper
    Fig. 5). ``fit``: (slope, prefactor) of the fitted power law, drawn dashed over all
    timesteps; ``square``: the prefactor of the δt² guide, dotted."""
    timestep = np.asarray(timestep, float)
    fig, ax = _figure(figsize=(4.5, 3.5))
    ax.errorbar(timestep, delta_h, yerr=error, marker="o", ls="-", label=label, capsize=2)
    if fit is not None:
        slope, prefactor = fit
        ax.plot(timestep, prefactor * timestep ** slope, "k--", lw=0.8,
                label=f"fit, slope {slope:.2f}")
    if square is not None:
        ax.plot(timestep, square * timestep ** 2, "C7:", lw=0.8, label="δt²")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("timestep δt (fs)")
    ax.set_ylabel("ΔH (eV/atom)")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    return _save(fig, path)


#: Colors of the generation groups: K > 0 (entropy maximized) red, K < 0 blue.
GROUP_COLORS = {"entropy_max": "tab:red", "entropy_min": "tab:blue"}


def entropy_change(groups, path):
    """Scatter of the descriptor entropy S before and after the entropy stage, one point per
    configuration; ``groups``: {group: (S before, S after)}, colored by ``GROUP_COLORS``."""
    fig, ax = _figure(figsize=(4.5, 4))
    for group, (before, after) in groups.items():
        ax.scatter(before, after, s=12, color=GROUP_COLORS.get(group), label=group)
    lims = ax.get_xlim()
    ax.plot(lims, lims, color="gray", lw=0.8)
    ax.set_xlabel("S after overlap removal")
    ax.set_ylabel("S after entropy optimization")
    ax.legend(frameon=False)
    return _save(fig, path, dpi=120)


def energy_histograms(series, path):
    """Density histograms, on shared bins, of the energy per atom (eV) of each set (paper
    Fig. 2 left); ``series``: [(name, energies per atom)]."""
    fig, ax = _figure(figsize=(5, 3.8))
    bins = np.histogram_bin_edges(np.concatenate([e for _, e in series]), bins=60)
    for name, e in series:
        ax.hist(e, bins=bins, density=True, histtype="step", lw=1.5, label=name)
    ax.set_xlabel("energy per atom (eV)")
    ax.set_ylabel("probability density (1/eV)")
    ax.legend(frameon=False)
    return _save(fig, path, dpi=120)


def component_histograms(panels, names, path):
    """One panel per descriptor column, log density histograms of each set on shared bins
    (paper Fig. 2 right); ``panels``: [(axis label, [values of each set])], the sets named by
    ``names`` in the same order."""
    fig, axes = _figure(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for ax, (xlabel, values) in zip(axes[0], panels):
        bins = np.histogram_bin_edges(np.concatenate(values), bins=80)
        for name, v in zip(names, values):
            ax.hist(v, bins=bins, density=True, histtype="step", lw=1.5, label=name)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("probability density")
    axes[0][0].legend(frameon=False)
    return _save(fig, path, dpi=120)


def pca(series, explained, path):
    """Scatter of each set on the reference's first two principal axes; ``series``: [(name,
    (n, 2) projections)], ``explained``: the variance fractions of PC1 and PC2."""
    fig, ax = _figure(figsize=(5, 4.5))
    for name, y in series:
        ax.scatter(y[:, 0], y[:, 1], s=2, alpha=0.4, label=name, rasterized=True)
    ax.set_xlabel(f"PC1 of REF ({100 * explained[0]:.1f}%)")
    ax.set_ylabel(f"PC2 of REF ({100 * explained[1]:.1f}%)")
    ax.legend(frameon=False, markerscale=5)
    return _save(fig, path, dpi=120)


def broadening(series, much_broader, path):
    """Standard deviation ratio to the reference per whitened dimension, log scale, with
    guides at 1 and ``much_broader``; ``series``: [(name, ratios)]."""
    fig, ax = _figure(figsize=(7, 3.6))
    for name, ratio in series:
        ax.plot(np.arange(len(ratio)), ratio, "o-", ms=3, lw=1, label=name)
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.axhline(much_broader, color="gray", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("whitened dimension (bispectrum column)")
    ax.set_ylabel("std / std of REF")
    ax.legend(frameon=False)
    return _save(fig, path, dpi=120)


def coverage(panels, floor, path):
    """Histograms of nearest-neighbor distances in log bins from ``floor`` up (distances
    below it drawn at it), one panel per entry of ``panels``: (title, [(label, distances)],
    thresholds drawn as dashed vertical lines)."""
    fig, axes = _figure(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (title, series, thresholds) in zip(axes[0], panels):
        values = np.concatenate([d for _, d in series])
        bins = np.logspace(np.log10(floor), np.log10(max(values.max(), 10 * floor)), 60)
        for label, d in series:
            ax.hist(np.maximum(d, floor), bins=bins, histtype="step", lw=1.5, label=label)
        for threshold in thresholds:
            ax.axvline(threshold, color="gray", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("nearest-neighbor distance (REF-whitened units)")
        ax.set_ylabel("environments")
        ax.set_title(title, fontsize=9)
        ax.legend(frameon=False, fontsize=8)
    return _save(fig, path, dpi=120)


def _figure(nrows=1, ncols=1, figsize=None, **subplots):
    """A new Figure on its own Agg canvas (never registered with pyplot) and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplots)


def check_path(path):
    """The format (png, pdf, svg, ...) that the suffix of ``path`` names; ``ParameterError``
    when matplotlib cannot write it. Callers check before a long run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    path = Path(path)
    fmt = path.suffix[1:].lower()
    if fmt not in FigureCanvasAgg.get_supported_filetypes():
        raise ParameterError(f"{path}: the suffix names the plot's format, and matplotlib "
                             f"cannot write {path.suffix or 'a file without one'}; use .png, "
                             f".pdf or .svg")
    return fmt


def _save(fig, path, dpi=None):
    """Lay out ``fig`` and write it atomically to ``path`` in the format of its suffix
    (``dpi`` None: matplotlib's default)."""
    path = Path(path)
    fmt = check_path(path)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi))
    return path
