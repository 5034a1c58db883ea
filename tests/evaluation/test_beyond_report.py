"""The beyond report as dataclasses: every committed report.json loads, round trips unchanged, and
a file of another layout is a clear error naming the field."""
import copy
import json
from pathlib import Path

import pytest

import branchynet  # noqa: F401
from branchynet.evaluation.beyond_report import BeyondReport, Pick, Row

ROOT = Path(__file__).resolve().parents[2]
REPORTS = sorted(ROOT.glob("results/*/beyond/report.json"))


def test_there_are_committed_reports():
    assert {p.parts[-3] for p in REPORTS} >= {"b-lenet", "b-alexnet", "b-resnet110"}


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.parts[-3])
def test_a_committed_report_loads_and_round_trips(path, tmp_path):
    data = json.loads(path.read_text())
    report = BeyondReport.from_json(data)
    assert report.to_json() == data  # the file is exactly what the dataclasses write
    report.save(tmp_path / "again.json")
    assert BeyondReport.load(tmp_path / "again.json") == report
    assert (tmp_path / "again.json").read_text() == path.read_text()
    for name, sec in report.measures.items():  # typed all the way down
        assert sec.measure == name and all(isinstance(r, Row) for r in sec.frontier_test)
        assert all(isinstance(p, Pick) for p in sec.fastest_within + sec.generalising)
        for p in sec.fastest_within + sec.generalising:  # a pick is fitted on val: both numbers
            assert p.infeasible is not None or (p.val_cost > 0 and p.cost > 0)


def test_another_layout_is_a_clear_error():
    data = json.loads(REPORTS[0].read_text())
    broken = copy.deepcopy(data)
    broken["measures"]["entropy"]["fastest_within"][0]["acuracy"] = 0.5
    where = r"measures\['entropy'\].fastest_within\[0\]: unknown fields \['acuracy'\]"
    with pytest.raises(ValueError, match=where):
        BeyondReport.from_json(broken)
    broken = copy.deepcopy(data)
    del broken["time"]["exit_ms"]
    with pytest.raises(ValueError, match="time: missing field 'exit_ms' of Times"):
        BeyondReport.from_json(broken)
    broken = copy.deepcopy(data)
    broken["base_cost"] = "many"
    with pytest.raises(ValueError, match="base_cost: expected float, got 'many'"):
        BeyondReport.from_json(broken)
