"""Evaluations (anytime, budgeted, oracle, overthinking, calibration) against brute force and hand
computations."""
import itertools

import numpy
import pytest

import branchynet  # noqa: F401
from branchynet.evaluation import costs, frontier, metrics
from branchynet.model import measures
from tests.evaluation.synthetic import outputs_of_probs
from tests.evaluation.test_frontier import brute_force_points, pareto_of, random_cache

MACS = {"segments": [100, 300, 500], "heads": [40, 20, 10]}



def test_anytime_against_brute_force():
    cache = random_cache(k=3, n=30, seed=2)
    c = costs.exit_costs(MACS)
    rows = metrics.anytime(cache, c)
    for k, row in enumerate(rows):
        forced = [cache.logits[k, n].argmax() == cache.labels[n] for n in range(30)]
        assert row["accuracy"] == pytest.approx(numpy.mean(forced))
        assert row["cost"] == c[k]


@pytest.mark.parametrize("name", ["entropy", "margin", "patience"])
def test_budgeted_curve_against_brute_force(name):
    cache = random_cache(k=3, n=10, seed=5)
    c = costs.exit_costs(MACS)
    front = frontier.exact_frontier(cache, name, c)
    rows = metrics.budgeted(front)
    expected = pareto_of(brute_force_points(cache, name, c))
    assert [(round(r["cost"], 9), round(r["accuracy"] * 10)) for r in rows] == expected
    again = metrics.budgeted(front, cache)  # applied to a cache: the same rows
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]


def test_oracle_hand_made():
    # predictions per exit (rows) and labels 0, 1, 2, 1: exit 1 is right on sample 0, exit 2 on
    # samples 0 and 1, the last on sample 2; sample 3 (predicted 2, 0, 0) never
    probs = numpy.zeros((3, 4, 3), numpy.float32)
    preds = numpy.array([[0, 2, 0, 2], [0, 1, 0, 0], [1, 0, 2, 0]])
    for k in range(3):
        probs[k, numpy.arange(4), preds[k]] = 1
    cache = outputs_of_probs(probs, numpy.array([0, 1, 2, 1]))  # sample 3 is never right
    c = numpy.array([1.0, 2.0, 5.0])
    o = metrics.oracle(cache, c)
    assert o["accuracy"] == 0.75
    assert o["cost"] == pytest.approx((1 + 2 + 5 + 1) / 4)  # never right: out at the first exit
    assert o["exit_fractions"] == [0.5, 0.25, 0.25]
    curve_costs, curve_acc = metrics.oracle_curve(cache, c)
    numpy.testing.assert_allclose(curve_costs, [1.0, 1.0, 1.25, 2.25])  # 4 x 1 + 0, 1, 4
    numpy.testing.assert_allclose(curve_acc, [0, 0.25, 0.5, 0.75])


@pytest.mark.parametrize("seed", range(4))
def test_no_setting_beats_the_oracle(seed):
    cache = random_cache(k=3, n=40, c=4, seed=seed)
    c = costs.exit_costs(MACS)
    curve_costs, _ = metrics.oracle_curve(cache, c)
    oracle = metrics.oracle(cache, c)
    for name in measures.NAMES:
        front = frontier.exact_frontier(cache, name, c)
        for cost, correct in zip(front.costs, front.correct):
            assert correct / cache.num_samples <= oracle["accuracy"]
            assert cost >= curve_costs[correct] - 1e-9
    # and on any setting at all, not just frontier points
    for t in itertools.product(numpy.linspace(0, 1.4, 6), repeat=2):
        row = cache.evaluate(t, "entropy", c)
        assert row["cost"] >= curve_costs[row["correct"]] - 1e-9


def test_overthinking_hand_made():
    probs = numpy.zeros((2, 5, 2), numpy.float32)
    preds = numpy.array([[0, 0, 1, 1, 0], [0, 1, 0, 1, 1]])
    for k in range(2):
        probs[k, numpy.arange(5), preds[k]] = 1
    labels = numpy.array([0, 0, 0, 0, 1])
    # sample 0: right early and last (wasteful); 1: right early, wrong last (destructive);
    # 2: wrong early, right last; 3: wrong everywhere; 4: wrong early, right last
    o = metrics.overthinking(outputs_of_probs(probs, labels))
    assert o["wasteful"] == 0.2 and o["destructive"] == 0.2
    assert o["destructive_of_last_errors"] == 0.5
    assert o["right_somewhere"] == 0.8 and o["last_exit"] == 0.6


def test_calibration_by_hand():
    # 4 samples at one exit; top probabilities 0.95, 0.95, 0.6, 0.3 (bins of width 0.5)
    probs = numpy.array([[[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.3, 0.7]]], numpy.float32)
    labels = numpy.array([0, 1, 0, 1])
    (row,) = metrics.calibration(outputs_of_probs(probs, labels), bins=2)
    # bin (0.5, 1]: all four (0.7 too): conf mean (0.95+0.95+0.6+0.7)/4 = 0.8, acc 3/4
    assert row["bins"][0]["count"] == 0 and row["bins"][1]["count"] == 4
    assert row["ece"] == pytest.approx(abs(0.75 - 0.8), abs=1e-6)
    perfect = numpy.array([[[1.0, 0.0], [0.0, 1.0]]], numpy.float32)
    (row,) = metrics.calibration(outputs_of_probs(perfect, numpy.array([0, 1])), bins=15)
    assert row["ece"] == 0.0


def test_at_budgets_and_mean_spread():
    cache = random_cache(k=3, n=50, seed=9)
    c = costs.exit_costs(MACS)
    front = frontier.exact_frontier(cache, "max_prob", c)
    base = costs.baseline_cost(MACS)
    rows = metrics.at_budgets(front, cache, base, fractions=(0.1, 0.5, 1.0))
    assert rows[0]["row"] is None  # 10 % of 910 is below the first exit's 140
    for r in rows[1:]:
        assert r["row"]["cost"] <= r["fraction"] * base + 1e-9
    s = metrics.mean_spread([0.9, 0.8, None, 1.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.9) and s["std"] == pytest.approx(0.1)
