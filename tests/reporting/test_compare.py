"""The verdict of `make reproduce`: a fresh results.json against the committed one and the paper."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from branchynet.evaluation.results import Result
from branchynet.reporting import compare

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "results" / "b-lenet" / "results.json"


@pytest.fixture
def committed():
    return Result.load(COMMITTED)


def test_the_committed_results_reproduce_themselves(committed):
    result = compare.compare(copy.deepcopy(committed), committed)
    assert result.verdict == compare.REPRODUCED and result.ok and not result.reasons
    text = compare.text(result)
    assert "VERDICT: REPRODUCED" in text and "99.11" in text and "99.20" in text  # ours and the paper's


@pytest.mark.parametrize("change, named", [
    (lambda r: setattr(r.accuracy, "main", r.accuracy.main - 1e-4), "baseline accuracy"),
    (lambda r: setattr(r.accuracy, "branchy_final", r.accuracy.branchy_final + 1e-4),
     "final exit accuracy"),
    (lambda r: r.accuracy.per_exit.__setitem__(0, 0.5), "exit 1 alone"),
    (lambda r: setattr(r.paper_row, "accuracy", r.paper_row.accuracy + 1e-4), "paper T (0.025), accuracy"),
    (lambda r: r.paper_row.exit_fractions.__setitem__(0, 0.9357), "paper T (0.025), exit %"),
    (lambda r: r.rows[3].exit_fractions.__setitem__(1, 0.5), "sweep"),
    (lambda r: r.rows.pop(), "sweep"),
])
def test_one_sample_of_difference_is_a_differing_verdict(committed, change, named):
    new = copy.deepcopy(committed)
    change(new)
    result = compare.compare(new, committed)
    assert result.verdict == compare.DIFFERS and not result.ok
    assert any(reason.startswith(named) for reason in result.reasons), result.reasons
    assert len(result.reasons) == 1
    assert "VERDICT: DIFFERS" in compare.text(result) and named in compare.text(result)


def test_timings_and_knees_are_shown_but_never_judged(committed):
    new = copy.deepcopy(committed)
    for row in new.table:
        if row.ms_measured:
            row.ms_measured *= 3
    new.devices["cpu"].selection.val.knee = 0
    result = compare.compare(new, committed)
    assert result.ok
    timed = [line for line in result.lines if not line.judged]
    assert any(line.unit == "ms" for line in timed) and any("knee" in line.what for line in timed)
    assert "x3.00" in compare.text(result) and "not judged" in compare.text(result)


def test_a_test_subset_is_not_comparable(committed):
    new = copy.deepcopy(committed)
    new.settings.test_samples = 500
    result = compare.compare(new, committed)
    assert result.verdict == compare.NOT_COMPARABLE and "test_samples: 500" in result.reasons[0]
    assert "NOT COMPARABLE" in compare.text(result)


def test_the_script_exit_status_follows_the_verdict(committed, tmp_path):
    new = copy.deepcopy(committed)
    path = tmp_path / "results.json"
    for value, status in ((committed.accuracy.main, 0), (0.5, 1)):
        new.accuracy.main = value
        path.write_text(json.dumps(new.to_json()))
        proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "compare.py"), str(path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == status, proc.stderr
        assert ("REPRODUCED" if status == 0 else "DIFFERS") in proc.stdout


def test_make_reproduce_writes_outside_results_and_ends_with_the_comparison():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nreproduce:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:]]
    assert "--results $(REPRODUCE_OUT)" in lines[0] and "experiments/compare.py" in lines[-1]
    line = next(line for line in makefile.splitlines() if line.startswith("REPRODUCE_OUT"))
    out = line.split(":=")[1].strip()
    assert not out.startswith("results")
    if (ROOT / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", out + "/results.json"], cwd=ROOT)
        assert ignored.returncode == 0, "%s is not git-ignored" % out
    assert "--results results/b-lenet" in makefile.split("\nresults:", 1)[1].split("\n\n", 1)[0]
