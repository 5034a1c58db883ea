"""The comparison of groups of runs (``branchynet.evaluation.run_groups``): the verdict rule on
hand-made numbers, the sentence drawn from the verdicts, and the frontier bands against each run's
frontier read point by point."""
import math

import numpy
import pytest

from branchynet.evaluation import run_groups


@pytest.mark.parametrize("reference, other, direction, expected", [
    ([0.980, 0.981, 0.982], [0.985, 0.986, 0.987], 1, "helps"),
    ([0.980, 0.981, 0.982], [0.985, 0.986, 0.987], -1, "hurts"),
    ([0.980, 0.981, 0.982], [0.975, 0.976, 0.977], 1, "hurts"),
    ([0.980, 0.981, 0.982], [0.985, 0.986, 0.987], 0, "higher"),
    ([0.980, 0.981, 0.982], [0.975, 0.976, 0.977], 0, "lower"),
    ([0.980, 0.981, 0.990], [0.985, 0.986, 0.987], 1, run_groups.NO_DIFFERENCE),  # ranges overlap
    # apart, but within twice the standard error: 0.155 < 2 * sqrt(0.005 / 2 + 0.01805 / 2)
    ([0.0, 0.1], [0.11, 0.3], 1, run_groups.NO_DIFFERENCE),
    ([0.980], [0.985, 0.986], 1, "undetermined: a group of one run has no spread"),
    ([0.2, None, 0.3], [0.2, 0.3, 0.4], -1, "undetermined: 1 of 6 runs have no value"),
])
def test_verdict(reference, other, direction, expected):
    out = run_groups.verdict(reference, other, direction)
    assert out["verdict"] == expected
    if None not in reference:
        assert out["difference"] == pytest.approx(numpy.mean(other) - numpy.mean(reference))
    if len(reference) > 1 and len(other) > 1 and None not in reference:
        se = math.sqrt(numpy.var(reference, ddof=1) / len(reference)
                       + numpy.var(other, ddof=1) / len(other))
        assert out["se"] == pytest.approx(se)


@pytest.mark.parametrize("centre, expected", [(0.0385, "helps"), (0.038, run_groups.NO_DIFFERENCE)])
def test_the_edge_of_twice_the_standard_error(centre, expected):
    """Two runs a side, each group's sd 0.01 * sqrt(2): 2 SE = 0.028284; the ranges are apart
    from a difference of 0.02 on."""
    a, b = [0.0, 0.02], [centre - 0.01, centre + 0.01]
    out = run_groups.verdict(a, b, 1)
    assert out["overlap"] is False and out["se"] == pytest.approx(0.02 / math.sqrt(2))
    assert out["verdict"] == expected


def _rows(*verdicts):
    return [{"label": "m%d" % i, "direction": d, "verdict": v} for i, (d, v) in enumerate(verdicts)]


def test_conclusion_counts_only_metrics_with_a_direction():
    nd = run_groups.NO_DIFFERENCE
    text = run_groups.conclusion(_rows((1, "helps"), (0, "higher"), (-1, nd), (1, nd)), "b", "a")
    assert text == "b against a: helps (m0); %s on the other 2 of 3 metrics with a direction." % nd
    text = run_groups.conclusion(_rows((1, "helps"), (-1, "hurts"), (1, nd)), "b", "a")
    assert text.startswith("b against a: mixed: helps (m0), hurts (m1); ")
    text = run_groups.conclusion(_rows((1, nd), (0, "lower"), (1, "undetermined: x")), "b", "a")
    assert text == "b against a: %s on any of the 1 metrics with a direction (1 undetermined)." % nd
    text = run_groups.conclusion(_rows((1, "undetermined: x")), "b", "a")
    assert text.startswith("b against a: undetermined on every metric")


def test_curves_read_each_frontier_at_every_step():
    def run(cost, accuracy):
        return {"exit_cost": [0.2, 1.1], "test_frontier": {"cost": cost, "accuracy": accuracy}}
    groups = {"a": [run([0.2, 0.3], [0.90, 0.95]), run([0.2, 0.25], [0.92, 0.96])],
              "b": [run([0.21, 0.4], [0.91, 0.97])]}
    cv = run_groups.curves(groups)
    assert cv["cost"] == [0.2, 0.21, 0.25, 0.3, 0.4, 1.1]
    a = numpy.array([[0.90, 0.90, 0.90, 0.95, 0.95, 0.95], [0.92, 0.92, 0.96, 0.96, 0.96, 0.96]])
    assert cv["groups"]["a"]["mean"] == pytest.approx(a.mean(axis=0).tolist())
    assert cv["groups"]["a"]["std"] == pytest.approx(a.std(axis=0, ddof=1).tolist())
    b = cv["groups"]["b"]
    assert math.isnan(b["mean"][0]) and b["mean"][1:] == pytest.approx([0.91, 0.91, 0.91, 0.97, 0.97])
    assert b["std"] == [0.0] * 6
