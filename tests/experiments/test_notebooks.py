"""Every notebook in notebooks/ runs top to bottom, as a fresh kernel would run it.

Jupyter is not a dependency: the code cells are read from the notebook's JSON and executed in order,
in one namespace, in a fresh Python process started in notebooks/ (where Jupyter starts a kernel),
with matplotlib's Agg backend. IPython magics (lines such as %matplotlib inline or !pip ...) are
dropped.

The notebooks explore the committed B-LeNet run (results/b-lenet/run). Until its weights are
committed, a tiny run is trained for them in a temporary folder (one epoch per stage on 5,000
images) together with a tiny results.json, and the notebooks are pointed at it with
BRANCHYNET_RUN_DIR, so that their code is always exercised.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
COMMITTED_RUN = ROOT / "results" / "b-lenet" / "run"

TINY_TRAIN = ["experiments/train.py", "--network", "b-lenet", "--main-epochs", "1",
              "--joint-epochs", "1", "--batchsize", "256", "--train-subset", "5000", "--no-progress"]
TINY_RESULTS = ["experiments/lenet_mnist.py", "--test-subset", "500", "--timing-samples", "20",
                "--repeats", "1", "--warmup", "2", "--throughput-batch", "100", "--no-progress"]

# Runs in the subprocess: argv[1] is the notebook; argv[2], if given, the number of code cells to run.
RUNNER = r"""
import json, re, sys
MAGIC = re.compile(r"\s*(%{1,2}[A-Za-z_]\w*|![A-Za-z./~])")  # %time, %%capture, !pip; not "% (a, b)"
path = sys.argv[1]
limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
with open(path, encoding="utf-8") as f:
    notebook = json.load(f)
cells = [c for c in notebook["cells"] if c["cell_type"] == "code"][:limit]
namespace = {"__name__": "__main__"}
for number, cell in enumerate(cells, 1):
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    lines = [line for line in source.splitlines() if not MAGIC.match(line)]
    exec(compile("\n".join(lines) + "\n", "<%s, code cell %d>" % (path, number), "exec"), namespace)
    if "matplotlib.pyplot" in sys.modules:  # as the inline backend does after each cell
        sys.modules["matplotlib.pyplot"].close("all")
    print("--- code cell %d of %d done" % (number, len(cells)), flush=True)
"""


def _run(args, cwd, env, timeout=300):
    proc = subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, "%s failed:\n%s\n%s" % (
        " ".join(str(a) for a in args), proc.stdout[-4000:], proc.stderr[-6000:])
    return proc.stdout


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory):
    """The environment the notebooks run in: the committed run if its weights are there, else a
    tiny run trained now (with its results.json beside it, as results/b-lenet/ has)."""
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1")
    env.pop("BRANCHYNET_RUN_DIR", None)
    if (COMMITTED_RUN / "branchy.npz").exists():
        return env
    results = tmp_path_factory.mktemp("notebook_results") / "b-lenet"
    run = results / "run"
    _run(TINY_TRAIN + ["--out", run], ROOT, env)
    _run(TINY_RESULTS + ["--run-dir", run, "--results", results], ROOT, env)
    assert (run / "branchy.npz").exists() and (results / "results.json").exists()
    env["BRANCHYNET_RUN_DIR"] = str(run)
    return env


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks in %s" % NOTEBOOK_DIR


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_well_formed(path):
    with open(path, encoding="utf-8") as f:
        notebook = json.load(f)
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["language"] == "python"
    ids = []
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("markdown", "code", "raw")
        assert isinstance(cell["source"], (str, list)) and isinstance(cell["metadata"], dict)
        if cell["cell_type"] == "code":
            assert isinstance(cell["outputs"], list) and "execution_count" in cell
        if notebook["nbformat_minor"] >= 5:
            ids.append(cell["id"])
    assert len(ids) == len(set(ids)), "cell ids must be unique"
    assert any(c["cell_type"] == "code" for c in notebook["cells"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, notebook_env):
    stdout = _run(["-c", RUNNER, path], NOTEBOOK_DIR, notebook_env)
    with open(path, encoding="utf-8") as f:
        n_code = sum(c["cell_type"] == "code" for c in json.load(f)["cells"])
    assert "--- code cell %d of %d done" % (n_code, n_code) in stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_finds_the_repository_from_the_root_too(path, notebook_env):
    """Jupyter started in the repository root: the set-up cell finds the checkout from there."""
    _run(["-c", RUNNER, path, "1"], ROOT, notebook_env)
