"""results.json and Table I as dataclasses: every committed file loads, converts back to the same
JSON, and round-trips; a file of another layout is refused with the field named."""
import copy
import json
import subprocess
from pathlib import Path

import pytest

from branchynet.evaluation import results
from branchynet.reporting import table1

ROOT = Path(__file__).resolve().parents[2]
# Table I pipeline results (the open-set reports write results.json of their own schema)
COMMITTED = sorted(p for p in ROOT.glob("results/**/results.json") if "openset" not in p.parts)


def test_every_results_file_is_found():
    assert len(COMMITTED) >= 16 and ROOT / "results" / "gpu" / "b-lenet" / "results.json" in COMMITTED


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT / "results")))
def test_a_committed_result_loads_and_round_trips(path):
    data = json.loads(path.read_text())
    result = results.Result.load(path)
    assert result.to_json() == data  # nothing dropped or added on the way
    assert results.Result.from_json(result.to_json()) == result
    again = results.Result.from_json(json.loads(json.dumps(result.to_json())))
    assert again == result
    for dev, measured in result.devices.items():
        assert measured.device == dev and len(measured.row_times) == len(result.rows)
        assert (measured.val_times is None) == (result.val_rows is None)
        assert (measured.paper_times is None) == (result.paper_row is None)
        assert measured.baseline_ms == measured.baselines.reference().ms


def test_the_committed_table1_json_is_what_the_result_files_give():
    committed = table1.Table1.from_json(json.loads((ROOT / "results" / "table1.json").read_text()))
    assert committed == table1.assemble(str(ROOT / "results"), list(table1.NETWORKS))
    assert table1.Table1.from_json(committed.to_json()) == committed


def test_a_change_to_a_number_is_seen():
    result = results.Result.load(COMMITTED[0])
    other = results.Result.from_json(copy.deepcopy(result.to_json()))
    other.devices[next(iter(other.devices))].row_times[0].ms_e2e += 1e-12
    assert other != result


def test_another_layout_is_refused_naming_the_field(tmp_path):
    data = json.loads((ROOT / "results" / "b-lenet" / "results.json").read_text())
    old = copy.deepcopy(data)
    old["rows"][2]["cpu_ms_e2e"] = 0.04  # the layout before the dataclasses
    with pytest.raises(ValueError, match=r"Result\.rows\[2\]: unknown field cpu_ms_e2e"):
        results.Result.from_json(old)
    gone = copy.deepcopy(data)
    del gone["devices"]["cpu"]["exits"]["head_ms"]
    with pytest.raises(ValueError, match=r"Result\.devices\['cpu'\]\.exits: missing field head_ms"):
        results.Result.from_json(gone)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="measure the run again") as info:
        results.Result.load(path)
    assert str(path) in str(info.value)


def test_readers_format_no_key_from_a_device_name():
    """The per-device columns are attributes now: no module builds a key such as "cpu_ms_e2e"."""
    code = subprocess.run(["git", "grep", "-n", "-E", r"\"%s_(ms|gain)", "--", "branchynet",
                           "experiments", "notebooks"], cwd=ROOT, capture_output=True, text=True)
    assert code.stdout == ""


def test_a_later_field_is_written_only_when_set():
    committed = results.Result.load(ROOT / "results" / "gpu" / "b-lenet" / "results.json")
    assert committed.settings.cuda_graphs is None  # measured before the graphs existed
    assert "cuda_graphs" not in committed.to_json()["settings"]
    assert committed.settings.batch1_text() == "on plain Chainer (no CUDA graphs)"
    graphs = copy.deepcopy(committed)
    graphs.settings.cuda_graphs = True
    data = json.loads(json.dumps(graphs.to_json()))
    assert data["settings"]["cuda_graphs"] is True
    assert results.Result.from_json(data) == graphs != committed
    assert graphs.settings.batch1_text() == "as CUDA graphs"
