"""The library's shape: module and function sizes, the controller's size, and which subpackage may
import which. ``python tests/test_layout.py`` prints the tree with sizes and the imports between
subpackages."""
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "branchynet"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_CONTROLLER_LINES = 200
# Each subpackage may import itself and those listed (the top-level modules of branchynet: anyone).
# The CPU backend compiles the model's layers, so it knows their types, and nothing else of the model.
LAYER_VOCABULARY = {"branchynet.model.layers", "branchynet.model.links"}
ALLOWED = {
    "fast": set(),
    "gpu": set(),
    "model": {"fast", "gpu"},
    "data": set(),
    "training": {"model", "data", "fast", "gpu"},
    "evaluation": {"model", "data", "fast", "gpu"},
    "reporting": {"evaluation", "model", "data", "training", "fast", "gpu"},
}


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def subpackage(path):
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def imported_subpackages(path):
    """Subpackages of branchynet that the module at ``path`` imports (the fast backend's imports of
    the layer vocabulary not counted)."""
    found = set()
    backend = subpackage(path) == "fast"
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            package = node.module.count(".") < 2  # "from branchynet.model import layers"
            names = (["%s.%s" % (node.module, a.name) for a in node.names] if package
                     else [node.module])
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if backend and ".".join(parts[:3]) in LAYER_VOCABULARY:
                continue
            if parts[0] == "branchynet" and len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
                found.add(parts[1])
    return found


def functions(path):
    """(qualified name, lines) of every function and method in a module."""
    out = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((prefix + child.name, child.end_lineno - child.lineno + 1))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
    visit(ast.parse(path.read_text()), "")
    return out


def line_count(path):
    return len(path.read_text().splitlines())


def test_no_module_is_too_long():
    long = ["%s: %d" % (p.relative_to(ROOT), line_count(p)) for p in modules()
            if line_count(p) > MAX_MODULE_LINES]
    assert long == []


def test_no_function_is_too_long():
    long = ["%s %s: %d" % (p.relative_to(ROOT), name, n) for p in modules()
            for name, n in functions(p) if n > MAX_FUNCTION_LINES]
    assert long == []


def test_the_controller_class_is_small():
    tree = ast.parse((PACKAGE / "model" / "net.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BranchyNet")
    assert cls.end_lineno - cls.lineno + 1 <= MAX_CONTROLLER_LINES


def test_subpackages_import_only_those_below_them():
    wrong = []
    for path in modules():
        sub = subpackage(path)
        if sub is None:
            continue
        extra = imported_subpackages(path) - ALLOWED[sub] - {sub}
        if extra:
            wrong.append("%s imports %s" % (path.relative_to(ROOT), sorted(extra)))
    assert wrong == []


def test_every_subpackage_has_a_rule():
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} == set(ALLOWED)


def test_importing_the_library_loads_no_plotting():
    import subprocess
    code = "import branchynet, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_no_script_edits_sys_path():
    offenders = [str(p.relative_to(ROOT)) for folder in ("experiments", "benchmarks", "results",
                                                          "networks", "branchynet")
                 for p in (ROOT / folder).rglob("*.py") if "sys.path" in p.read_text()]
    assert offenders == []


def report():
    """The tree with line counts, and which subpackage imports which."""
    for path in modules():
        print("%5d  %s" % (line_count(path), path.relative_to(ROOT)))
    print()
    edges = {}
    for path in modules():
        sub = subpackage(path) or "(top)"
        edges.setdefault(sub, set()).update(imported_subpackages(path) - {sub})
    for sub in sorted(edges):
        print("%-11s imports %s" % (sub, ", ".join(sorted(edges[sub])) or "-"))


if __name__ == "__main__":
    report()
