"""The floor plan (docs/architecture.md) holds: emtool's packages import only from their own
floor or lower ones, its modules import each other without a circle and at the top of the
module (the command line's lazy loading and the package's lazy names excepted)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "emtool"

#: The floors, ground first: the top-level modules and subpackages of ``emtool`` (and the
#: kernels, installed as ``emtool.kernels``). A module imports only from its own floor or
#: lower ones. Keep in step with docs/architecture.md.
FLOORS = [
    ("errors", "files", "structure", "parallel", "plots", "lammps", "kernels"),
    ("descriptors",),
    ("data",),
    ("potentials",),
    ("dynamics", "generator", "labeling", "analysis"),
    ("fitting",),
    ("workflows",),
    ("cli", "__init__"),
]

#: Modules that may import emtool modules inside functions: the command line loads each
#: command's modules only when it runs; the package resolves its lazy names on first use.
LAZY = {"cli", "__init__"}

MODULES = sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts)
                 for p in PACKAGE.rglob("*.py"))


def room(module):
    """The top-level module or subpackage that holds ``module`` (dotted, below emtool)."""
    return module.split(".")[0]


def floor_of(module):
    for k, floor in enumerate(FLOORS):
        if room(module) in floor:
            return k
    raise AssertionError(f"emtool/{module.replace('.', '/')}.py is on no floor: add its "
                         "package to FLOORS and docs/architecture.md")


def resolve(name):
    """The module of ``emtool.<name>``: itself, or the package's __init__."""
    if name in MODULES or room(name) == "kernels":
        return name
    if f"{name}.__init__" in MODULES:
        return f"{name}.__init__"
    return None


def emtool_imports(module):
    """[(imported module, line, at top level?)] of the emtool modules ``module`` imports."""
    tree = ast.parse((PACKAGE / (module.replace(".", "/") + ".py")).read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                (node.module == "emtool" or node.module.startswith("emtool.")):
            base = node.module[len("emtool."):] if node.module != "emtool" else ""
            for alias in node.names:  # ``from emtool.pkg import module`` or a name
                sub = resolve(f"{base}.{alias.name}" if base else alias.name)
                targets.append(sub or resolve(base))
        elif isinstance(node, ast.Import):
            targets = [resolve(alias.name[len("emtool."):]) for alias in node.names
                       if alias.name.startswith("emtool.")]
        found += [(t, node.lineno, id(node) in top) for t in targets if t]
    return found


def test_every_module_is_on_a_floor():
    for module in MODULES:
        floor_of(module)


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_down_and_sit_at_the_top(module):
    for target, line, at_top in emtool_imports(module):
        assert floor_of(target) <= floor_of(module), \
            f"emtool/{module}:{line} imports {target} from a higher floor"
        assert room(target) == room(module) or floor_of(target) < floor_of(module) \
            or floor_of(module) == 0, \
            f"emtool/{module}:{line} imports {target}, another package on its own floor"
        assert at_top or room(module) in LAZY, \
            f"emtool/{module}:{line} imports {target} inside a function"


def test_no_import_circle():
    edges = {m: {t for t, _, _ in emtool_imports(m) if t in MODULES} for m in MODULES}
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import circle: {' -> '.join(path + [node])}"
        state[node] = "open"
        for target in sorted(edges[node]):
            visit(target, path + [node])
        state[node] = "done"
    for module in MODULES:
        visit(module, [])
