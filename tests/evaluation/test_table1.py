"""The Table I pipeline on a net of no paper family: the exact entropy frontier on the validation
split is the candidate set, there is no paper T row, and everything else is measured as for the
paper's networks."""
import numpy
import pytest

import branchynet  # noqa: F401
import networks
from branchynet.evaluation import costs, frontier, outputs, table1
from branchynet.reporting import rows


@pytest.fixture(scope="module")
def measured(mnist_subset):
    x, t = mnist_subset
    net, main = networks.build("b-lenet"), networks.build("b-lenet")
    options = table1.Options(timing_samples=4, repeats=1, warmup=1, throughput_batch=20,
                             throughput_samples=20, progress=False)
    val, test = (x[:60], t[:60]), (x[60:100], t[60:100])
    result, _ = table1.evaluate("mine", None, "mnist", (net, main), val, test, options,
                                settings={"run_dir": "runs/mine"}, echo=lambda _: None)
    return result, net, val


def test_the_candidates_are_the_exact_frontier_on_validation(measured):
    result, net, (x_val, t_val) = measured
    val_out = outputs.ExitOutputs.from_net(net, x_val, t_val)
    exact = frontier.exact_frontier(val_out, "entropy", costs.exit_costs(result["macs"]))
    assert len(exact) <= table1.MAX_CANDIDATES
    assert [r["thresholds"] for r in result["rows"]] == exact.thresholds.tolist()
    assert result["settings"]["candidates"].startswith("exact entropy frontier")
    assert "threshold_list" not in result["settings"]


def test_no_paper_row_and_no_paper_numbers(measured):
    result = measured[0]
    assert result["paper_row"] is None and result["paper_thresholds"] is None
    table = rows.result_rows(result, "cpu")
    assert [r["row"] for r in table] == ["baseline (main.npz)", "final exit (branchy.npz)",
                                         "knee (test)", "knee (val)"]
    assert {r["network"] for r in table} == {"mine main network", "mine"}
    assert all(r["paper"] is None and r["notebook"] is None for r in table)
    assert all(c["name"] != "paper T" for c in result["devices"]["cpu"]["checks"])


def test_exact_candidates_are_thinned_evenly_keeping_both_ends(measured):
    _, net, (x_val, t_val) = measured
    val_out = outputs.ExitOutputs.from_net(net, x_val, t_val)
    cost = numpy.array([1.0, 3.0])
    full = frontier.exact_frontier(val_out, "entropy", cost).thresholds.tolist()
    thin = table1.exact_candidates(val_out, cost, most=3)
    assert len(full) > 3 and len(thin) == 3
    assert [list(t) for t in thin] == [full[0], full[round((len(full) - 1) / 2)], full[-1]]
