"""A run folder without main.npz: its baseline row is kept and marked, the summary warns, and the
final exit is never set beside the paper's baseline."""
import pytest

import branchynet  # noqa: F401
import networks
from branchynet.evaluation import table1
from branchynet.reporting import network, rows, tables


@pytest.fixture(scope="module")
def measured(mnist_subset):
    x, t = mnist_subset
    net = networks.build("b-lenet")
    options = table1.Options(timing_samples=4, repeats=1, warmup=1, throughput_batch=20,
                                 throughput_samples=20, progress=False)
    results = {}
    for name, main in (("with", networks.build("b-lenet")), ("without", None)):
        result, _ = table1.evaluate("b-lenet", "lenet", "mnist", (net, main), (x[:0], t[:0]),
                                    (x[:40], t[:40]), options, settings={"run_dir": "runs/somewhere"},
                                    environment={"hardware": {"cpu": "test", "gpu": None}},
                                    echo=lambda _: None)
        result["table"] = rows.result_rows(result, "cpu")
        results[name] = result
    return results


def test_without_main_npz_the_summary_warns(measured):
    text = network.summary(measured["without"], "out")
    warning = next(line for line in text.splitlines() if line.startswith("warning"))
    assert "no main.npz" in warning and "runs/somewhere" in warning
    assert "warning" not in network.summary(measured["with"], "out")


def test_without_main_npz_the_baseline_row_is_marked_not_dropped(measured):
    table = measured["without"]["table"]
    base, final = table[0], table[1]
    assert base["row"] == rows.MISSING_BASELINE_ROW and "MISSING" in base["row"]
    assert base["accuracy"] is None and base["ms_measured"] is None
    assert base["paper"]["accuracy"] == 99.20  # the paper's number, beside an empty cell of ours
    assert final["accuracy"] is not None and final["paper"] is None  # not beside the paper's baseline
    assert final["row"] != "final exit (branchy.npz)"
    text = tables.text_table(table)
    line = next(line for line in text.splitlines() if "MISSING" in line)
    assert "99.20" in line
    assert sum("99.20" in line for line in text.splitlines()) == 1  # only on the marked row


def test_with_main_npz_the_rows_are_as_before(measured):
    table = measured["with"]["table"]
    assert [r["row"] for r in table[:2]] == ["baseline (main.npz)", "final exit (branchy.npz)"]
    assert table[0]["accuracy"] is not None and table[0]["paper"]["accuracy"] == 99.20
    assert table[1]["paper"] is None
