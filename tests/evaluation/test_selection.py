"""Selection rules on a frontier: their constraints hold on the data they were fitted on; bad input
gives clear errors; MSDNet's distribution thresholds hit their targets."""
import numpy
import pytest

import branchynet  # noqa: F401
from branchynet.evaluation import frontier, selection
from branchynet.model import measures
from tests.evaluation.test_frontier import random_cache


@pytest.mark.parametrize("seed", range(5))
def test_rules_never_break_their_constraint_on_the_fitted_data(seed):
    cache = random_cache(k=3, n=80, c=5, seed=seed)
    costs = numpy.array([1.0, 2.0, 4.0])
    front = frontier.exact_frontier(cache, "max_prob", costs)
    base = cache.correct()[-1].mean()
    for eps in (0.0, 0.01, 0.05):
        try:
            i = selection.fastest_within(front, base, eps)
        except selection.Infeasible:
            assert front.accuracies.max() < base - eps
            continue
        row = cache.evaluate(front.thresholds[i], "max_prob", costs)
        assert row["accuracy"] >= base - eps - 1e-12
        # nothing cheaper meets it, on the frontier or off it
        assert not ((front.costs < row["cost"] - 1e-12) & (front.accuracies >= base - eps)).any()
    for budget in (1.0, 1.5, 2.2, 3.0, 4.0):
        i = selection.most_accurate_within(front, budget)
        row = cache.evaluate(front.thresholds[i], "max_prob", costs)
        assert row["cost"] <= budget + 1e-12
        assert row["correct"] == front.correct[front.costs <= budget + 1e-12].max()


def test_bad_input_is_a_clear_error():
    cache = random_cache(k=2, n=20)
    costs = numpy.array([1.0, 3.0])
    front = frontier.exact_frontier(cache, "entropy", costs)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        selection.fastest_within(front, 0.5, eps=-0.01)
    with pytest.raises(selection.Infeasible, match="below the cheapest"):
        selection.most_accurate_within(front, 0.5)
    with pytest.raises(selection.Infeasible, match="no setting reaches"):
        selection.fastest_within(front, 1.01)
    with pytest.raises(ValueError, match="unknown confidence measure"):
        frontier.exact_frontier(cache, "certainty", costs)
    with pytest.raises(ValueError, match="expected 2 exit costs"):
        frontier.exact_frontier(cache, "entropy", [1.0])
    with pytest.raises(ValueError, match="fractions"):
        selection.distribution_thresholds(cache, "entropy", [0.5, 0.6])
    with pytest.raises(ValueError, match="q must be > 0"):
        selection.geometric_fractions(0, 3)


@pytest.mark.parametrize("name", ["entropy", "max_prob", "margin"])
def test_distribution_thresholds_hit_the_target_fractions(name):
    cache = random_cache(k=3, n=100, c=5, seed=7)  # distinct values: exact counts possible
    for q in (0.3, 1.0, 2.0):
        f = selection.geometric_fractions(q, 3)
        assert f.sum() == pytest.approx(1.0) and f[1] / f[0] == pytest.approx(q)
        t = selection.distribution_thresholds(cache, name, f)
        counts = cache.evaluate(t, name)["exit_counts"]
        assert counts[0] == round(100 * f[0])
        assert counts[1] == min(round(100 * f[1]), 100 - counts[0])
        # the samples out at exit 1 are the most confident ones there
        m = measures.get(name)
        v = cache.values(m)[0]
        _, exits = cache.simulate(t, name)
        out, stay = v[exits == 0], v[exits != 0]
        if len(out) and len(stay):
            assert (out.max() < stay.min()) if m.low_leaves else (out.min() > stay.max())
