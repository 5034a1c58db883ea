"""Mutation testing of the core modules: do the tests notice small deliberate bugs?

For each module this parses the source with ``ast``, lists every small mutant (an operator flipped, a
constant changed, ``and``/``or`` swapped, ``not`` dropped, ``mean``/``sum`` swapped, a returned value
replaced, a statement deleted, ...), writes each one over the module in a private copy of the
repository and runs that module's own test files on it (``-x -q``, no slow tests, with a timeout).
A mutant is *killed* when a test fails, *survived* when all pass, *timeout* when they run too long.

One worker: a process started with the copy on its PYTHONPATH imports NumPy, Chainer and pytest
once, then forks a child per mutant that imports ``branchynet`` afresh from the copy (so each child
sees its mutant). Results go to a JSON-lines file, one line per mutant, and a rerun skips the
mutants already recorded there (delete the file to start over); its summary, a Markdown table per
module and the surviving mutants, goes beside it (``.md``). ``--sample N`` draws N mutants per module
with a fixed seed. The real tree is only read. See docs/mutation.md for the command and kill rates.

    python benchmarks/mutation.py --out results/mutation/after.jsonl --sample 60 [--module metrics]
"""
import argparse
import ast
import copy
import difflib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each module, with the test files that cover it (its ``*_mutants.py`` companions are added when present).
MODULES = {
    "branchynet/model/exit_rule.py": ["tests/model/test_exit_rule.py"],
    "branchynet/model/measures.py": ["tests/model/test_measures.py"],
    "branchynet/model/sample_weights.py": ["tests/model/test_sample_weights.py"],
    "branchynet/model/loss.py": ["tests/model/test_loss.py"],
    "branchynet/model/serialization.py": ["tests/model/test_serialization.py"],
    "branchynet/evaluation/selection.py": ["tests/evaluation/test_selection.py"],
    "branchynet/evaluation/metrics.py": ["tests/evaluation/test_metrics.py"],
    "branchynet/evaluation/costs.py": ["tests/evaluation/test_costs.py"],
    "branchynet/evaluation/outputs.py": ["tests/evaluation/test_outputs.py"],
    "branchynet/evaluation/frontier.py": ["tests/evaluation/test_frontier.py"],
    "branchynet/fast/jit_train.py": ["tests/fast/test_jit_train.py", "tests/fast/test_kernels.py"],
    "branchynet/fast/calibration.py": ["tests/fast/test_calibration.py"],
    "branchynet/fast/conv_nodes.py": ["tests/fast/test_fused.py", "tests/fast/test_kernels.py"],
    "branchynet/fast/halving.py": ["tests/fast/test_halving.py", "tests/fast/test_conv_pool.py"],
    "branchynet/fast/conv_pool.py": ["tests/fast/test_conv_pool.py"],
    "branchynet/fast/linear.py": ["tests/fast/test_linear.py"],
    "branchynet/fast/memory.py": ["tests/fast/test_memory.py"],
    "branchynet/fast/layout.py": ["tests/fast/test_padding.py", "tests/fast/test_microkernel.py",
                                  "tests/fast/test_kernels.py"],
}
COPIED = ["branchynet", "networks", "tests", "docs", "ruff.toml", "setup.py"]

COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
           ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
BINARY = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
          ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}
NAMES = {"mean": "sum", "sum": "mean", "max": "min", "min": "max", "argmax": "argmin", "argmin": "argmax",
         "any": "all", "all": "any", "maximum": "minimum", "minimum": "maximum", "log": "log1p"}
DELETABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Raise, ast.Assert)


def _is_docstring(node, parent):
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str) and parent is not None
            and getattr(parent, "body", [None])[0] is node)


def _variants(node, parent):
    """The mutated copies of one node, each as (kind, new node); the statement deletion as ``pass``."""
    out = []
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in COMPARE:
                new = copy.deepcopy(node)
                new.ops[i] = COMPARE[type(op)]()
                out.append(("compare", new))
    elif isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        new = copy.deepcopy(node)
        new.op = BINARY[type(node.op)]()
        out.append(("arithmetic", new))
    elif isinstance(node, ast.AugAssign) and type(node.op) in BINARY:
        new = copy.deepcopy(node)
        new.op = BINARY[type(node.op)]()
        out.append(("arithmetic", new))
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append(("boolean", new))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        one = isinstance(node.operand, ast.Constant) and node.operand.value == 1
        if isinstance(node.op, ast.USub) and one and isinstance(parent, ast.Subscript):
            out.append(("index", ast.Constant(0)))          # [-1] -> [0]
        else:
            out.append(("unary", copy.deepcopy(node.operand)))
    elif isinstance(node, ast.Constant) and node.value is not None \
            and not isinstance(node.value, (str, bytes)):
        value = node.value
        if isinstance(value, bool):
            out.append(("constant", ast.Constant(not value)))
        elif isinstance(value, (int, float)):
            for new in ([1] if value == 0 else [0] if value == 1 else [value + 1]):
                out.append(("constant", ast.Constant(type(value)(new))))
    elif isinstance(node, ast.Attribute) and node.attr in NAMES:
        new = copy.deepcopy(node)
        new.attr = NAMES[node.attr]
        out.append(("name", new))
    elif isinstance(node, ast.Name) and node.id in NAMES and isinstance(parent, ast.Call) \
            and parent.func is node:
        out.append(("name", ast.Name(NAMES[node.id], ast.Load())))
    if isinstance(node, ast.Return) and node.value is not None \
            and not (isinstance(node.value, ast.Constant) and node.value.value is None):
        out.append(("return", ast.Return(ast.Constant(None))))
    if isinstance(node, DELETABLE) and not _is_docstring(node, parent):
        out.append(("delete", ast.Pass()))
    return out


def _walk(tree):
    """Every node with its parent, in a fixed order, skipping f-strings and annotations."""
    stack = [(tree, None)]
    while stack:
        node, parent = stack.pop()
        if isinstance(node, ast.JoinedStr):
            continue
        yield node, parent
        children = []
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns", "decorator_list"):
                continue
            for child in (value if isinstance(value, list) else [value]):
                if isinstance(child, ast.AST):
                    children.append((child, node))
        stack.extend(reversed(children))


def mutants(source):
    """All mutants of a module's source: dicts with kind, line, and the mutated source."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line.encode()))
    raw = source.encode()
    out = []
    for node, parent in _walk(tree):
        if not hasattr(node, "lineno") or node.end_lineno is None:
            continue
        begin = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset
        for kind, new in _variants(node, parent):
            text = ast.unparse(new)
            if isinstance(new, ast.expr) and not isinstance(new, (ast.Constant, ast.Name, ast.Attribute)):
                text = "(%s)" % text
            mutated = (raw[:begin] + text.encode() + raw[end:]).decode()
            if mutated == source:
                continue
            out.append({"kind": kind, "line": node.lineno, "source": mutated})
    for i, m in enumerate(out):
        m["index"] = i
    return out


def _diff(source, mutated):
    lines = difflib.unified_diff(source.splitlines(), mutated.splitlines(), lineterm="", n=0)
    return "\n".join(line for line in lines if not line.startswith(("---", "+++", "@@")))


def _run_child(copy_root, tests, timeout):
    """Forks a child that runs ``tests`` with pytest in ``copy_root``; returns (status, seconds)."""
    start = time.time()
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        import pytest
        code = pytest.main(["-x", "-q", "-m", "not slow", "-p", "no:cacheprovider", *tests])
        os._exit(int(code))
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return ("survived" if code == 0 else "killed"), code, time.time() - start
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", None, time.time() - start
        time.sleep(0.05)


def _tests_for(module, root):
    """The module's test files, its ``test_<module>_mutants.py`` first (fast: most kills come early)."""
    tests = list(MODULES[module])
    stem = Path(module).stem
    folders = sorted({str(Path(t).parent) for t in tests} | {"tests/" + Path(module).parent.name})
    extras = [str(Path(f) / ("test_%s_mutants.py" % stem)) for f in folders]
    return [t for t in extras if (root / t).exists()] + tests


def _copy():
    """A private copy of the code and tests, where the mutants are written."""
    root = Path(tempfile.mkdtemp(prefix="mutation-"))
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, root / name)
    return root


def _worker_setup(root):
    """In the worker (started with the copy first on PYTHONPATH): import the heavy libraries once,
    not branchynet, whose modules each forked child imports afresh from the copy."""
    sys.dont_write_bytecode = True  # no cached bytecode: each child compiles the mutant it is given
    os.chdir(root)
    import importlib.util
    spec = importlib.util.spec_from_file_location("_mutation_compat", root / "branchynet" / "_compat.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    import numpy  # noqa: F401
    import pytest  # noqa: F401

    import chainer  # noqa: F401


def run_module(module, root, out_path, done, sample, seed, only=None):
    source = (ROOT / module).read_text()
    every = mutants(source)
    chosen = every if not sample or sample >= len(every) else \
        sorted(random.Random("%s:%s" % (seed, module)).sample(every, sample), key=lambda m: m["index"])
    if only is not None:
        chosen = [m for m in chosen if "%s:%d" % (module, m["index"]) in only]
    tests = _tests_for(module, root)
    target = root / module
    status, code, baseline = _run_child(root, tests, 600)
    if status != "survived":
        raise SystemExit("%s: its tests %s fail without a mutant (exit %s)" % (module, tests, code))
    timeout = 3 * baseline + 10
    print("%s: %d mutants, %d run, tests %s (%.1fs)" % (module, len(every), len(chosen), tests, baseline),
          flush=True)
    for m in chosen:
        key = "%s:%d" % (module, m["index"])
        if key in done:
            continue
        target.write_text(m["source"])
        try:
            status, code, seconds = _run_child(root, tests, timeout)
        finally:
            target.write_text(source)
        record = {"id": key, "module": module, "index": m["index"], "kind": m["kind"], "line": m["line"],
                  "status": status, "exit": code, "seconds": round(seconds, 1), "total": len(every),
                  "diff": _diff(source, m["source"])}
        with open(out_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        done[key] = record
        last = record["diff"].splitlines()[-1].strip()
        print("  %-8s %-10s line %-4d %s" % (status, m["kind"], m["line"], last), flush=True)


def summary(records):
    """A Markdown table per module: mutants in the module, run, killed, survived, timed out, kill rate."""
    rows = ["| module | mutants | run | killed | survived | timeout | kill rate |",
            "|---|---|---|---|---|---|---|"]
    for module in MODULES:
        mine = [r for r in records if r["module"] == module]
        if not mine:
            continue
        count = {s: sum(r["status"] == s for r in mine) for s in ("killed", "survived", "timeout")}
        rate = (count["killed"] + count["timeout"]) / len(mine)
        rows.append("| %s | %d | %d | %d | %d | %d | %.0f %% |" % (
            module, mine[0]["total"], len(mine), count["killed"], count["survived"], count["timeout"],
            100 * rate))
    survivors = ["", "Survivors:", ""] + ["- %s line %d (%s): `%s`" % (
        r["module"], r["line"], r["kind"], r["diff"].replace("\n", " / "))
        for r in records if r["status"] == "survived"]
    return "\n".join(rows + survivors) + "\n"


def _records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()] if Path(path).exists() else []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True,
                        help="JSON-lines file of results (appended to; a rerun resumes)")
    parser.add_argument("--module", action="append", help="a module's path or stem (default: all)")
    parser.add_argument("--sample", type=int, default=0,
                        help="mutants per module, drawn with --seed (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="only count the mutants of each module")
    parser.add_argument("--survivors-of", help="run only the mutants that survived in this JSON-lines file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # the copy's folder, in the worker process
    args = parser.parse_args()
    modules = [m for m in MODULES if not args.module or m in args.module or Path(m).stem in args.module]
    if args.list:
        for module in modules:
            print("%5d  %s" % (len(mutants((ROOT / module).read_text())), module))
        return
    out = Path(args.out).resolve()
    if args.worker:
        only = None
        if args.survivors_of:
            only = {r["id"] for r in _records(args.survivors_of) if r["status"] == "survived"}
        done = {r["id"]: r for r in _records(out)}
        _worker_setup(Path(args.worker))
        for module in modules:
            run_module(module, Path(args.worker), out, done, args.sample, args.seed, only)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    root = _copy()
    try:
        env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        code = subprocess.call([sys.executable, __file__, *sys.argv[1:], "--worker", str(root)], env=env)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = summary(_records(out))
    out.with_suffix(".md").write_text(text)
    print(text)
    sys.exit(code)


if __name__ == "__main__":
    main()
