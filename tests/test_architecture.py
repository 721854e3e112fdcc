"""The floor plan (docs/architecture.md) holds: emtool's modules import each other without a
circle, never from a higher floor, and at the top of the module (the command line's lazy
loading and the package's lazy names excepted)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "emtool"

#: The floors, ground first: a module imports only from its own floor or lower ones.
#: Keep in step with docs/architecture.md.
FLOORS = [
    ("errors", "files", "kernels"),
    ("params", "structure", "lammps"),
    ("neighbors", "parallel", "snapfiles", "weights", "plots"),
    ("snap", "zbl", "nearest", "entropy", "structure_types", "dataset", "universal"),
    ("snap_model", "reference", "nn", "md", "compare", "exchange", "subset", "fitsnap_input"),
    ("models", "calculators", "select", "compare_report"),
    ("evaluate", "generate", "label", "expert"),
    ("fit", "nn_train"),
    ("workflows",),
    ("cli", "__init__"),
]

#: Modules that may import emtool modules inside functions: the command line loads each
#: command's modules only when it runs; the package resolves its lazy names on first use.
LAZY = {"cli", "__init__"}


def floor_of(name):
    for k, floor in enumerate(FLOORS):
        if name in floor:
            return k
    raise AssertionError(f"emtool/{name}.py is on no floor: add it to FLOORS and "
                         "docs/architecture.md")


def emtool_imports(path):
    """[(imported module, line, at top level?)] of the emtool modules ``path`` imports."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "emtool":
                names = [alias.name for alias in node.names]
            elif node.module.startswith("emtool."):
                names = [node.module.split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [alias.name.split(".")[1] for alias in node.names
                     if alias.name.startswith("emtool.")]
        for name in names:
            found.append((name, node.lineno, id(node) in top))
    return found


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def graph():
    return {name: emtool_imports(PACKAGE / f"{name}.py") for name in MODULES}


def test_every_module_is_on_a_floor():
    on_floors = {name for floor in FLOORS for name in floor}
    assert set(MODULES) | {"kernels"} == on_floors


@pytest.mark.parametrize("name", MODULES)
def test_imports_go_down_and_sit_at_the_top(name):
    for target, line, at_top in graph()[name]:
        if target not in MODULES and target != "kernels":
            continue  # emtool's public names through the package (``from emtool import X``)
        assert floor_of(target) <= floor_of(name), \
            f"emtool/{name}.py:{line} imports {target} from a higher floor"
        assert at_top or name in LAZY, \
            f"emtool/{name}.py:{line} imports {target} inside a function"


def test_no_import_circle():
    edges = {name: {t for t, _, _ in imports if t in MODULES}
             for name, imports in graph().items()}
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import circle: {' -> '.join(path + [node])}"
        state[node] = "open"
        for target in sorted(edges[node]):
            visit(target, path + [node])
        state[node] = "done"
    for name in MODULES:
        visit(name, [])
