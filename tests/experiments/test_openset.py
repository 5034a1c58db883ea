"""experiments/openset.py end to end on a tiny schedule: trains B-LeNet on digits 0-5, fits and
saves OpenMax with the net, and writes results whose numbers the saved net reproduces."""
import json
import os
import subprocess
import sys

import numpy
import pytest

import networks
from branchynet.data import datasets
from branchynet.evaluation import openset
from branchynet.evaluation.outputs import ExitOutputs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytest.importorskip("scipy")


def test_openset_script_end_to_end(tmp_path):
    out = tmp_path / "openset"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments/openset.py"),
                           "--network", "b-lenet", "--known", "0-5", "--main-epochs", "1",
                           "--joint-epochs", "1", "--train-subset", "2500", "--budgets", "0.5,1.0",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "results.json").read_text())
    assert r["known"] == [0, 1, 2, 3, 4, 5] and r["real_equals_simulation"] is True
    assert set(r["measures"]) == {"entropy", "max_prob", "margin", "OpenMax"}
    assert r["schedule"]["train_images"] == 2500
    for name in ("report.md", "auroc.png", "leave.png"):
        assert (out / name).stat().st_size > 0
    net = networks.load_run(str(out / "run"))[0]
    assert net.openmax.columns == [0, 1, 2, 3, 4, 5] and net.openmax.alpharank == 6
    _, test = datasets.get_mnist(download=False)
    x, t = datasets.arrays(test)
    cache = ExitOutputs.from_net(net, x, t)
    known = numpy.isin(t, r["known"])
    assert r["test_images"] == {"known": int(known.sum()), "unknown": int((~known).sum())}
    numpy.testing.assert_allclose(r["measures"]["OpenMax"]["auroc"],
                                  openset.exit_aurocs(cache, net.openmax, known), rtol=1e-9)
    numpy.testing.assert_allclose(r["measures"]["entropy"]["auroc"],
                                  openset.exit_aurocs(cache, "entropy", known), rtol=1e-9)
