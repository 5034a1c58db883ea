"""experiments/beyond_train.py and experiments/beyond.py end to end in a tiny configuration: one
joint epoch on 2,000 images from the committed B-LeNet trunk, then the report of that run (the
real validation and test splits go once through every exit; few samples timed)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from branchynet.evaluation.beyond_report import BeyondReport

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "results" / "b-lenet" / "run" / "main.npz"


def _run(args, timeout=900):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable] + [str(a) for a in args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


@pytest.mark.skipif(not MAIN.exists(), reason="committed B-LeNet trunk not present")
def test_beyond_train_and_report(tmp_path):
    run = tmp_path / "runs" / "soft_exit"
    _run(["experiments/beyond_train.py", "--network", "b-lenet", "--main-from", MAIN,
          "--joint-epochs", "1", "--train-subset", "2000", "--sample-weighting", "soft_exit:0.5",
          "--out", run])
    assert json.loads((run / "sample_weighting.json").read_text()) == {"scheme": "soft_exit", "alpha": 0.5}
    assert json.loads((run / "run.json").read_text())["main_from"] == str(MAIN)
    out = tmp_path / "report"
    stdout = _run(["experiments/beyond.py", "--network", "b-lenet", "--run-dir", run,
                   "--seed-runs", "--weighting-runs", run, run, "--out", out,
                   "--timing-samples", "10", "--measured-samples", "10"])
    assert "fastest within 0.0 pp" in stdout and "bootstrap 95 % lower bound" in stdout
    report = BeyondReport.load(out / "report.json")
    assert set(report.measures) == {"entropy", "normalized_entropy", "max_prob", "margin", "patience"}
    assert report.split.val_images == 5000 and report.split.test_images == 10000
    base_val = report.baseline_accuracy.val
    for sec in report.measures.values():  # the rules hold their constraint on val
        for pick in sec.fastest_within:
            if pick.infeasible is None:
                assert pick.val_accuracy >= base_val - pick.eps - 1e-12
        cv, boot = sec.generalising
        assert cv.infeasible is not None or cv.val_accuracy >= base_val + cv.margin - 1e-12 \
            or cv.val_accuracy == max(r.accuracy for r in sec.frontier_val)
        assert boot.infeasible is not None or (boot.lower_bound >= 0 and boot.val_accuracy >= base_val)
        for b in sec.budgets:
            assert b.row is None or b.row.cost > 0
    assert len(report.sample_weighting.runs) == 2
    text = (out / "report.md").read_text()
    assert "Does the selection generalise?" in text and "val % of cost | test % of cost" in text
    for heading in ("## Costs per exit", "## Anytime prediction", "## At the baseline's accuracy",
                    "## Accuracy within a cost budget", "## Sample-dependent loss weights"):
        assert heading in text
    for figure in ("frontiers_by_measure.png", "selection_rules.png", "reliability.png",
                   "sample_weighting.png"):
        assert (out / figure).stat().st_size > 1000
    (out / "report.md").unlink()
    _run(["experiments/beyond.py", "--network", "b-lenet", "--out", out, "--rewrite"])
    assert (out / "report.md").read_text() == text


@pytest.mark.parametrize("network", ["b-lenet", "b-alexnet", "b-resnet110"])
def test_the_committed_reports_render_again_as_committed(tmp_path, network):
    """report.md from the committed report.json (--rewrite: no measuring) is the committed one."""
    committed = ROOT / "results" / network / "beyond"
    shutil.copy(committed / "report.json", tmp_path / "report.json")
    _run(["experiments/beyond.py", "--network", network, "--out", tmp_path, "--rewrite"])
    assert (tmp_path / "report.md").read_text() == (committed / "report.md").read_text()
    assert (tmp_path / "frontiers_by_measure.png").stat().st_size > 1000
