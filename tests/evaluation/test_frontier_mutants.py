"""Frontiers against independent computations: the Frontier type's derived arrays, Pareto sets by
brute force, leave sets by loops, exact frontiers of 1-, 3- and 4-exit caches (with enough
candidates to prune on the way) against sweeps of every candidate setting, written to kill the
mutants of ``frontier`` that the older tests let through (docs/mutation.md)."""
import itertools
import re
from pathlib import Path

import numpy
import pytest

import branchynet  # noqa: F401
from branchynet.evaluation import frontier
from branchynet.evaluation.outputs import ExitOutputs
from branchynet.model import measures


def _cache(k, n, c=3, seed=0):
    rng = numpy.random.RandomState(seed)
    logits = (rng.randn(k, n, c) * rng.uniform(0.2, 4, size=(k, n, 1))).astype(numpy.float32)
    labels = rng.randint(0, c, size=n)
    labels[: n // 2] = logits[-1, : n // 2].argmax(axis=1)
    return ExitOutputs(logits, labels)


def _pareto_brute(costs, correct):
    keep = []
    for i in range(len(costs)):
        beaten = any((costs[j] <= costs[i] and correct[j] >= correct[i]
                      and (costs[j] < costs[i] or correct[j] > correct[i])) for j in range(len(costs)))
        first_copy = all(not (costs[j] == costs[i] and correct[j] == correct[i]) for j in range(i))
        if not beaten and first_copy:
            keep.append(i)
    return sorted(keep, key=lambda i: costs[i])


@pytest.mark.parametrize("seed", range(4))
def test_pareto_against_brute_force(seed):
    rng = numpy.random.RandomState(seed)
    costs = rng.randint(0, 5, size=15).astype(float)
    correct = rng.randint(0, 5, size=15)
    assert frontier.pareto(costs, correct).tolist() == _pareto_brute(costs, correct)


def test_frontier_type_derives_costs_and_takes_settings():
    f = frontier.Frontier([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], [[2, 1, 1], [0, 4, 0], [1, 1, 2]],
                          [3, 2, 4], [1.0, 2.0, 4.0], 4, "max_prob")
    numpy.testing.assert_allclose(f.costs, [(2 + 2 + 4) / 4, 8 / 4, (1 + 2 + 8) / 4])
    numpy.testing.assert_allclose(f.accuracies, [0.75, 0.5, 1.0])
    assert len(f) == 3 and f.measure == "max_prob" and f.index.tolist() == [0, 1, 2]
    part = f.take([2, 0])
    assert part.index.tolist() == [2, 0] and part.correct.tolist() == [4, 3] and part.n == 4
    assert part.take([1]).index.tolist() == [0]
    assert part.thresholds.tolist() == [[0.5, 0.6], [0.1, 0.2]] and part.measure == "max_prob"
    priced = part.with_costs([0.0, 0.0, 1.0])
    numpy.testing.assert_allclose(priced.costs, [0.5, 0.25])
    assert priced.index.tolist() == [2, 0] and priced.exit_costs.tolist() == [0.0, 0.0, 1.0]
    assert f.rows()[2] == {"thresholds": [0.5, 0.6], "cost": 2.75, "accuracy": 1.0,
                           "exit_fractions": [0.25, 0.25, 0.5]}
    assert f.pareto().index.tolist() == [0, 2]  # setting 1 costs as much as 0 and is less accurate
    with pytest.raises(ValueError, match="expected 3 exit costs, got \\(2,\\)"):
        frontier.Frontier([[0.1, 0.2]], [[1, 1, 1]], [1], [1.0, 2.0], 3)
    empty = frontier.Frontier(numpy.zeros((1, 1)), [[0, 0]], [0], [1.0, 2.0], 0)
    assert empty.costs.tolist() == [0.0] and empty.accuracies.tolist() == [0.0]


@pytest.mark.parametrize("low_leaves", [True, False])
def test_leave_sets_against_loops(low_leaves):
    values = numpy.array([0.4, numpy.nan, 0.1, 0.4, 0.9, 0.2])
    first = numpy.array([1, 0, 1, 0, 1, 1])
    last = numpy.array([0, 1, 1, 1, 0, 1])
    t, leavers, correct = frontier.leave_sets(values, first, last, low_leaves)
    assert len(t) == 5  # the two 0.4 leave together; NaN never
    for p in range(len(t)):
        leave = [bool(numpy.isfinite(v) and (v < t[p] if low_leaves else v >= t[p])) for v in values]
        assert sum(leave) == leavers[p]
        assert correct[p] == sum(f if out else r for f, r, out in zip(first, last, leave))
    assert leavers.tolist() == ([0, 1, 2, 4, 5] if low_leaves else [0, 1, 3, 4, 5])
    nan = numpy.array([numpy.nan, numpy.nan])
    t, leavers, correct = frontier.leave_sets(nan, first[:2], last[:2], low_leaves)
    assert t.tolist() == [0.0] and leavers.tolist() == [0] and correct.tolist() == [1]


def _candidate_sweep(cache, name, costs, outer=None):
    """(cost, correct) of the Pareto set over every setting of candidate thresholds, from sweeps;
    ``outer``: the positions of the candidates kept at the exits before the last non-final one."""
    m = measures.get(name)
    values = cache.values(m)
    lists = [m.candidates(values[j]) for j in range(cache.num_exits - 1)]
    if outer is not None:
        lists = [c[outer] for c in lists[:-1]] + lists[-1:]
    settings = list(itertools.product(*lists))
    rows = cache.sweep(settings, name, costs, chunk=4096)
    c = numpy.array([r["cost"] for r in rows])
    right = numpy.array([r["correct"] for r in rows])
    keep = frontier.pareto(c, right)
    return [(round(float(c[i]), 9), int(right[i])) for i in keep]


@pytest.mark.parametrize("name", ["entropy", "margin"])
def test_exact_frontier_of_three_exits_with_pruning_on_the_way(name):
    cache = _cache(3, 80, seed=3)  # 81 outer candidates: the collected points are pruned en route
    costs = [1.0, 3.0, 7.0]
    front = frontier.exact_frontier(cache, name, costs)
    assert [(round(float(c), 9), int(r)) for c, r in zip(front.costs, front.correct)] == \
        _candidate_sweep(cache, name, costs)
    for t, counts, right in zip(front.thresholds, front.exit_counts, front.correct):  # each point is real
        row = cache.evaluate(t, name, costs)
        assert row["exit_counts"] == counts.tolist() and row["correct"] == right


def test_exact_frontier_of_four_exits_and_with_few_outer_candidates():
    cache = _cache(4, 14, seed=4)
    costs = [1.0, 2.0, 4.0, 9.0]
    front = frontier.exact_frontier(cache, "max_prob", costs)
    assert [(round(float(c), 9), int(r)) for c, r in zip(front.costs, front.correct)] == \
        _candidate_sweep(cache, "max_prob", costs)
    rough = frontier.exact_frontier(cache, "max_prob", costs, outer_candidates=3)
    assert len(measures.get("max_prob").candidates(cache.values("max_prob")[0])) == 15  # 14 distinct values
    assert [(round(float(c), 9), int(r)) for c, r in zip(rough.costs, rough.correct)] == \
        _candidate_sweep(cache, "max_prob", costs, outer=[0, 7, 14])  # first, middle, last kept
    for t, right in zip(rough.thresholds, rough.correct):
        assert cache.evaluate(t, "max_prob", costs)["correct"] == right


def test_exact_frontier_of_one_exit_and_grids():
    cache = _cache(1, 9, seed=5)
    front = frontier.exact_frontier(cache, "entropy", [5.0])
    assert front.thresholds.shape == (1, 0) and front.exit_counts.tolist() == [[9]]
    assert front.correct.tolist() == [int(cache.correct()[0].sum())] and front.costs.tolist() == [5.0]
    cache = _cache(3, 12, seed=6)
    grid = frontier.threshold_grid([(0.2, 0.9), (0.5, 5.0)])
    points = frontier.grid(cache, grid, [1.0, 2.0, 3.0])
    for t, counts, right in zip(points.thresholds, points.exit_counts, points.correct):
        row = cache.evaluate(t, "entropy", [1.0, 2.0, 3.0])
        assert row["exit_counts"] == counts.tolist() and row["correct"] == right
    assert frontier.paper_grid("alexnet", 3)[:2] == [(0.0001, 0.0001), (0.0001, 0.001)]
    assert len(frontier.paper_grid("lenet", 2)) == 17 and frontier.paper_thresholds("resnet110") == (0.3, 0.2)


def test_threshold_lists_and_paper_thresholds_are_the_documented_ones():
    text = (Path(__file__).resolve().parents[2] / "docs" / "original.md").read_text()
    section = text[text.index("### Threshold lists"):]

    def listed(label):
        line = re.search(r"\* %s: ([0-9., \n]+)\(" % re.escape(label), section).group(1)
        return tuple(float(v) for v in line.replace("\n", " ").split(",") if v.strip())
    assert frontier.LENET_THRESHOLDS == frontier.RESNET_THRESHOLDS == listed("B-LeNet and B-ResNet-110")
    assert frontier.ALEXNET_THRESHOLDS == listed("B-AlexNet")
    for family, name in (("lenet", "B-LeNet"), ("alexnet", "B-AlexNet"), ("resnet110", "B-ResNet")):
        row = re.search(r"\| CPU \| %s \| [^|]+\| [^|]+\| [^|]+\| ([0-9., ]+) \|" % name, text).group(1)
        assert frontier.paper_thresholds(family) == tuple(float(v) for v in row.split(","))


def test_pareto_of_float_and_integer_inputs_and_rows():
    # correct counts as plain ints, costs as ints: the result is the same as for floats
    assert frontier.pareto([3, 1, 2], [5, 1, 5]).tolist() == [1, 2]
    assert frontier.pareto([1.0, 1.0, 2.0], [2, 3, 4]).tolist() == [1, 2]  # at one cost the more accurate
    f = frontier.Frontier([[0.1]], [[3, 1]], [2], [1.0, 2.0], 4)
    assert f.rows()[0]["exit_fractions"] == [0.75, 0.25]
    assert f.take(numpy.array([0.0])).index.tolist() == [0]  # positions as floats are taken as ints


def test_incremental_refuses_lists_of_different_lengths():
    with pytest.raises(ValueError, match="times and accuracies must have the same length"):
        frontier.incremental([1.0, 2.0], [0.5])
