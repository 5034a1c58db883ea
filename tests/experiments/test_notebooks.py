"""Every notebook in notebooks/ runs top to bottom, as a fresh kernel would run it.

Jupyter is not a dependency: notebooks/run_notebooks.py (the runner that writes the committed
outputs) reads the code cells from the notebook's JSON and executes them in order, in one namespace,
in a fresh Python process started in notebooks/ (where Jupyter starts a kernel), with matplotlib's
Agg backend. IPython magics (lines such as %matplotlib inline or !pip ...) are dropped. The committed
notebooks carry the outputs that runner wrote (figures as image/png).

The notebooks explore the committed B-LeNet run (results/b-lenet/run). Until its weights are
committed, a tiny run is trained for them in a temporary folder (one epoch per stage on 5,000
images) together with a tiny results.json, and the notebooks are pointed at it with
BRANCHYNET_RUN_DIR, so that their code is always exercised.
"""
import base64
import json
import os
import subprocess
import sys
import time
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

RUNNER = NOTEBOOK_DIR / "run_notebooks.py"
FAST_NOTEBOOKS = {"declare_your_own.ipynb": 60}  # seconds it must run in (it trains, on CPU)


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
    start = time.perf_counter()
    stdout = _run([RUNNER, "--check", path], NOTEBOOK_DIR, notebook_env)
    seconds = time.perf_counter() - start
    with open(path, encoding="utf-8") as f:
        n_code = sum(c["cell_type"] == "code" for c in json.load(f)["cells"])
    assert "--- code cell %d of %d done" % (n_code, n_code) in stdout
    if path.name in FAST_NOTEBOOKS:
        assert seconds < FAST_NOTEBOOKS[path.name], "%s took %.0f s" % (path.name, seconds)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_finds_the_repository_from_the_root_too(path, notebook_env):
    """Jupyter started in the repository root: the set-up cell finds the checkout from there."""
    _run([RUNNER, "--cells", "1", "--cwd", ROOT, path], ROOT, notebook_env)


def test_the_declaration_notebook_is_run_by_ci():
    assert "declare_your_own.ipynb" in [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebooks_carry_the_runners_outputs(path):
    """Run top to bottom by notebooks/run_notebooks.py: counts 1..n, text, and at least one figure."""
    with open(path, encoding="utf-8") as f:
        cells = [c for c in json.load(f)["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))
    outputs = [o for c in cells for o in c["outputs"]]
    assert any(o["output_type"] == "stream" for o in outputs)
    images = [o["data"]["image/png"] for o in outputs if o["output_type"] == "display_data"]
    assert images and all(base64.b64decode(png).startswith(b"\x89PNG") for png in images)
    assert not any(o["output_type"] == "error" for o in outputs)


def test_the_runner_writes_text_and_figures_in_order(tmp_path):
    notebook = {"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# title"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": [
            "%matplotlib inline\n", "import matplotlib.pyplot as plt\n", "print('before')\n",
            "plt.plot([1, 2])\n", "plt.show()\n", "print('after')\n", "plt.figure(); plt.plot([2, 1])"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "import sys; print('warned', file=sys.stderr)"},
    ]}
    path = tmp_path / "small.ipynb"
    path.write_text(json.dumps(notebook))
    _run([RUNNER, path], tmp_path, dict(os.environ))
    written = json.loads(path.read_text())
    first, second = [c for c in written["cells"] if c["cell_type"] == "code"]
    kinds = [(o["output_type"], o.get("name")) for o in first["outputs"]]
    assert kinds == [("stream", "stdout"), ("display_data", None), ("stream", "stdout"), ("display_data", None)]
    assert first["outputs"][0]["text"] == ["before\n"] and first["outputs"][2]["text"] == ["after\n"]
    assert base64.b64decode(first["outputs"][1]["data"]["image/png"]).startswith(b"\x89PNG")
    assert second["outputs"] == [{"output_type": "stream", "name": "stderr", "text": ["warned\n"]}]
    assert [first["execution_count"], second["execution_count"]] == [1, 2]
    assert written["cells"][0] == notebook["cells"][0]


def test_a_failing_notebook_is_reported_and_left_untouched(tmp_path):
    notebook = {"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "raise RuntimeError('broken cell')"}]}
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(notebook))
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, str(RUNNER), str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "broken cell" in proc.stderr
    assert path.read_bytes() == before
