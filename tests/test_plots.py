"""emtool.plots: every figure is a valid file of the suffix's format, written atomically, and
drawing never touches matplotlib's global state (no backend switch, no pyplot, no rcParams
change); no other module of emtool draws or imports matplotlib."""
import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emtool import plots
from emtool.dynamics.nve import plot_energy_conservation
from emtool.errors import ParameterError

PACKAGE = Path(plots.__file__).resolve().parent
SIGNATURES = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-", ".svg": b"<?xml"}


def cases():
    """{name: function of the destination path that draws one figure on small data}."""
    rng = np.random.default_rng(0)
    ref = rng.normal(-8.0, 0.5, 30)
    dt = np.array([0.5, 1.0, 2.0, 4.0])
    dh = 1e-5 * dt ** 2
    two = [rng.normal(0, 1, 200), rng.normal(0.5, 2, 300)]
    distances = [rng.lognormal(0, 1, 100) for _ in range(3)]
    return {
        "errors": lambda path: plots.errors(ref, ref + rng.normal(0, 1e-3, 30), path),
        "energy_conservation": lambda path: plots.energy_conservation(
            dt, dh, 0.1 * dh, path, label="test", title="NVE", fit=(2.0, 1e-5), square=1e-5),
        "entropy_change": lambda path: plots.entropy_change(
            {"entropy_max": (two[0][:20], two[0][:20] + 1),
             "entropy_min": (two[1][:20], two[1][:20] - 1)}, path),
        "energy_histograms": lambda path: plots.energy_histograms(
            [("A", two[0]), ("B", two[1])], path),
        "component_histograms": lambda path: plots.component_histograms(
            [("B0", two), ("B1", [2 * v for v in two])], ["A", "B"], path),
        "pca": lambda path: plots.pca(
            [("A", rng.normal(size=(50, 2))), ("B", rng.normal(size=(60, 2)))], (0.6, 0.2),
            path),
        "broadening": lambda path: plots.broadening(
            [("B", np.exp(rng.normal(0, 1, 30)))], 5.0, path),
        "coverage": lambda path: plots.coverage(
            [("of each set", [("A (leave-one-out)", distances[0]), ("B", distances[1])], [2.0]),
             ("of A", [("in B", distances[2])], [3.0])], 1e-3, path),
    }


@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
@pytest.mark.parametrize("name", sorted(cases()))
def test_every_figure_is_a_valid_file_of_its_suffix(tmp_path, name, suffix):
    path = tmp_path / f"figure{suffix}"
    assert cases()[name](str(path)) == path
    data = path.read_bytes()
    assert data.startswith(SIGNATURES[suffix]) and len(data) > 5000
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_a_figure_replaces_an_existing_file_whole(tmp_path):
    path = tmp_path / "errors.png"
    path.write_bytes(b"old")
    cases()["errors"](path)
    assert path.read_bytes().startswith(SIGNATURES[".png"])
    assert [p.name for p in tmp_path.iterdir()] == ["errors.png"]


@pytest.mark.parametrize("name", ["figure.txt", "figure", "figure.h5"])
def test_a_suffix_that_is_no_image_format_is_refused(tmp_path, name):
    with pytest.raises(ParameterError, match="png, .pdf or .svg"):
        cases()["broadening"](tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_plot_energy_conservation_draws_a_result_with_and_without_a_slope(tmp_path):
    rows = [dict(timestep=t, diverged=False, delta_h=1e-5 * t ** 2, delta_h_error=1e-7)
            for t in (0.5, 1.0, 2.0)] + [dict(timestep=8.0, diverged=True)]
    result = dict(table=rows, slope=2.0, slope_timesteps=[0.5, 1.0, 2.0], natoms=16,
                  temperature=300.0, duration=500.0)
    for name, slope in (("dh.pdf", 2.0), ("flat.png", None)):
        path = plot_energy_conservation(dict(result, slope=slope), tmp_path / name)
        assert path.read_bytes().startswith(SIGNATURES[path.suffix])


def test_drawing_leaves_backend_and_rcparams_as_they_were(tmp_path):
    import matplotlib
    backend, params = matplotlib.get_backend(), dict(matplotlib.rcParams.copy())
    for k, draw in enumerate(cases().values()):
        draw(tmp_path / f"{k}.png")
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams.copy()) == params


def test_a_fresh_process_draws_every_figure_without_pyplot(tmp_path):
    """emtool loads no matplotlib until a figure is drawn, then no pyplot, and the backend
    setting stays unresolved (reading it through ``get_backend`` would import pyplot)."""
    script = f"""
import sys
import emtool, emtool.analysis.compare_report, emtool.analysis.evaluate, emtool.dynamics.md, emtool.dynamics.nve, emtool.workflows
assert "matplotlib" not in sys.modules, "importing emtool loads matplotlib"
import matplotlib
backend = dict.__getitem__(matplotlib.rcParams, "backend")
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_plots import cases
for k, draw in enumerate(cases().values()):
    draw({str(tmp_path)!r} + f"/{{k}}.png")
assert "matplotlib.pyplot" not in sys.modules, "drawing imported pyplot"
assert dict.__getitem__(matplotlib.rcParams, "backend") is backend, "the backend changed"
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert len(list(tmp_path.glob("*.png"))) == len(cases())


def test_only_plots_imports_matplotlib_and_nothing_uses_pyplot_or_changes_its_state():
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        nodes = list(ast.walk(tree))
        imported = [alias.name for node in nodes if isinstance(node, ast.Import)
                    for alias in node.names]
        imported += [f"{node.module}.{alias.name}" for node in nodes
                     if isinstance(node, ast.ImportFrom) and node.module for alias in node.names]
        assert not [m for m in imported if "pyplot" in m or m.startswith("pylab")], \
            f"emtool/{path.name} imports pyplot"
        global_state = [node.attr for node in nodes if isinstance(node, ast.Attribute)
                        and isinstance(node.value, ast.Name) and node.value.id == "matplotlib"
                        and node.attr in ("use", "rcParams", "rc", "rcdefaults", "style")]
        assert not global_state, f"emtool/{path.name} sets matplotlib.{global_state[0]}"
        if path.stem != "plots":
            assert not [m for m in imported if m.split(".")[0] == "matplotlib"], \
                f"emtool/{path.name} imports matplotlib: draw in emtool/plots.py"
