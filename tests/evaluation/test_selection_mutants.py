"""Selection rules against brute force over hand-made frontiers (ties in cost and accuracy, limits
exactly met) and exit distributions on 3-exit caches, written to kill the mutants of ``selection``
that the older tests let through (docs/mutation.md)."""
from types import SimpleNamespace

import numpy
import pytest

import branchynet  # noqa: F401
from branchynet.evaluation import frontier, selection
from tests.evaluation.synthetic import outputs_with


def _frontier(costs, correct, n=10, exit_costs=(1.0, 2.0, 4.0)):
    correct = numpy.asarray(correct)
    return SimpleNamespace(costs=numpy.asarray(costs, dtype=numpy.float64), correct=correct, n=n,
                           accuracies=correct / n, exit_costs=numpy.asarray(exit_costs))


# settings (cost, correct) in no particular order, with ties in both
FRONT = _frontier([3.0, 1.0, 2.0, 2.0, 4.0, 1.5, 3.5], [8, 5, 7, 6, 9, 5, 9])


def _fastest_brute(front, accuracy, eps):
    ok = [i for i in range(len(front.costs)) if front.correct[i] >= (accuracy - eps) * front.n - 1e-9]
    return min(ok, key=lambda i: (front.costs[i], i)) if ok else None


def _most_accurate_brute(front, budget):
    ok = [i for i in range(len(front.costs)) if front.costs[i] <= budget]
    return max(ok, key=lambda i: (front.correct[i], -front.costs[i], -i)) if ok else None


@pytest.mark.parametrize("accuracy, eps", [(0.5, 0.0), (0.6, 0.0), (0.7, 0.0), (0.8, 0.0), (0.9, 0.0),
                                           (0.9, 0.1), (0.95, 0.05), (0.8, 0.15), (1.0, 0.1)])
def test_fastest_within_against_brute_force(accuracy, eps):
    assert selection.fastest_within(FRONT, accuracy, eps) == _fastest_brute(FRONT, accuracy, eps)


def test_fastest_within_refuses_what_no_setting_reaches():
    with pytest.raises(selection.Infeasible, match=r"no setting reaches 1.0000 - 0.0500 \(best: 0.9000\)"):
        selection.fastest_within(FRONT, 1.0, 0.05)
    for bad in (-0.01, float("nan")):
        with pytest.raises(ValueError, match="eps must be >= 0"):
            selection.fastest_within(FRONT, 0.5, bad)


@pytest.mark.parametrize("budget", [1.0, 1.4, 1.5, 2.0, 2.9, 3.0, 3.5, 4.0, 10.0])
def test_most_accurate_within_against_brute_force(budget):
    assert selection.most_accurate_within(FRONT, budget) == _most_accurate_brute(FRONT, budget)


def test_budgets_within_rounding_of_a_cost_meet_it():
    # a relative 1e-12 of slack either way: costs summed in another order still meet the budget
    assert selection.most_accurate_within(FRONT, 1.0 * (1 - 1e-12)) == 1
    assert selection.most_accurate_within(FRONT, 2.0 / (1 + 1e-12)) == 2


def test_most_accurate_within_refuses_a_budget_below_every_setting():
    with pytest.raises(selection.Infeasible, match="budget 0.9 is below the cheapest setting's cost 1 "
                                                   r"\(every sample leaving at the first exit costs 1\)"):
        selection.most_accurate_within(FRONT, 0.9)


def test_geometric_fractions_by_hand():
    numpy.testing.assert_allclose(selection.geometric_fractions(0.5, 3), [4 / 7, 2 / 7, 1 / 7])
    numpy.testing.assert_allclose(selection.geometric_fractions(2, 2), [1 / 3, 2 / 3])
    numpy.testing.assert_allclose(selection.geometric_fractions(1.0, 4), [0.25] * 4)
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="q must be > 0"):
            selection.geometric_fractions(bad, 3)


def _three_exit_cache(n=20, seed=0):
    rng = numpy.random.RandomState(seed)
    entropies = rng.permutation(numpy.linspace(0.05, 2.0, 3 * n)).reshape(3, n)  # all distinct
    return outputs_with(entropies, rng.randint(0, 10, size=(3, n)), rng.randint(0, 10, size=n))


@pytest.mark.parametrize("fractions", [[0.25, 0.25, 0.5], [0.5, 0.3, 0.2], [0.0, 0.6, 0.4], [0.1, 0.0, 0.9]])
def test_distribution_thresholds_send_the_asked_fractions(fractions):
    cache = _three_exit_cache()
    t = selection.distribution_thresholds(cache, "entropy", fractions)
    assert t.shape == (2,)
    exits = cache.exit_index(t, "entropy")[0]
    counts = numpy.bincount(exits, minlength=3)
    assert counts.tolist() == [round(20 * fractions[0]), round(20 * fractions[1]),
                               20 - round(20 * fractions[0]) - round(20 * fractions[1])]
    # the most confident of those in flight leave: by plain loops over the entropies
    h = cache.values("entropy")
    in_flight = list(range(20))
    for k in range(2):
        leaving = sorted(in_flight, key=lambda i: h[k][i])[:counts[k]]
        assert sorted(numpy.flatnonzero(exits == k).tolist()) == sorted(leaving)
        in_flight = [i for i in in_flight if i not in leaving]


def test_distribution_thresholds_with_a_confidence_measure_and_bad_fractions():
    cache = _three_exit_cache(seed=1)
    t = selection.distribution_thresholds(cache, "max_prob", [0.5, 0.25, 0.25])
    assert numpy.bincount(cache.exit_index(t, "max_prob")[0], minlength=3).tolist() == [10, 5, 5]
    for bad in ([0.5, 0.5], [0.5, 0.6, -0.1], [0.5, 0.2, 0.2]):
        with pytest.raises(ValueError, match="fractions must be 3 non-negative numbers summing to 1"):
            selection.distribution_thresholds(cache, "entropy", bad)


def test_paper_knee_is_the_fastest_grid_setting_reaching_the_baseline():
    cache = _three_exit_cache(n=30, seed=2)
    grid = frontier.threshold_grid([(0.1, 0.5, 1.0, 1.5, 2.1), (0.1, 0.5, 1.0, 1.5, 2.1)])
    costs = [1.0, 2.0, 3.0]
    rows = [cache.evaluate(t, "entropy", costs) for t in grid]
    target = sorted(r["accuracy"] for r in rows)[len(rows) // 2]
    front, at = selection.paper_knee(cache, grid, costs, target)
    reaching = [r for r in rows if r["accuracy"] >= target]
    fastest = min(r["cost"] for r in reaching)
    assert front.costs[at] == pytest.approx(fastest) and front.accuracies[at] >= target
    assert list(front.thresholds[at]) in [r["thresholds"] for r in reaching if r["cost"] == fastest]
