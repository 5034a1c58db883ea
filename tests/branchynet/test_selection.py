"""Threshold search and selection rules against brute force and hand-made optima; their
constraints hold on the data they were fitted on; bad input gives clear errors."""
import itertools

import numpy
import pytest

import branchynet  # noqa: F401
from branchynet.evaluation import selection, sweep
from branchynet.model import exit_rule, measures


def random_cache(k=3, n=12, c=4, seed=0, ties=False):
    rng = numpy.random.RandomState(seed)
    logits = rng.randn(k, n, c).astype(numpy.float32) * rng.uniform(0.2, 4, size=(k, n, 1)).astype(numpy.float32)
    if ties:
        logits = numpy.round(logits)  # repeated values at an exit
    probs = numpy.stack([exit_rule.softmax(l) for l in logits])
    labels = rng.randint(0, c, size=n)
    labels[: n // 2] = probs[-1, : n // 2].argmax(axis=1)  # the last exit mostly right
    return measures.ExitCache(probs, labels)


def brute_force_points(cache, name, costs):
    """(mean cost, correct) of every setting whose thresholds are candidates, by plain loops."""
    m = measures.get(name)
    values = cache.values(m)
    right = cache.correct()
    k = cache.num_exits
    points = set()
    for setting in itertools.product(*[m.candidates(values[j]) for j in range(k - 1)]):
        total, correct = 0.0, 0
        counts = [0] * k
        for n in range(cache.num_samples):
            e = next((j for j in range(k - 1) if bool(m.leaves(values[j, n], setting[j]))), k - 1)
            counts[e] += 1
            correct += int(right[e, n])
        total = float(numpy.asarray(counts) @ costs) / cache.num_samples
        points.add((round(total, 9), correct))
    return points


def pareto_of(points):
    front = []
    for cost, correct in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or correct > front[-1][1]:
            front.append((cost, correct))
    return front


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("name", measures.NAMES)
def test_exact_frontier_equals_brute_force(name, k, ties):
    costs = numpy.array([1.0, 2.5, 6.0][:k])
    cache = random_cache(k=k, n=10, seed=k, ties=ties)
    front = selection.exact_frontier(cache, name, costs)
    expected = pareto_of(brute_force_points(cache, name, costs))
    got = [(round(float(c), 9), int(r)) for c, r in zip(front.costs, front.correct)]
    assert got == expected
    for t, cost, correct in zip(front.thresholds, front.costs, front.correct):  # thresholds realise them
        row = cache.evaluate(t, name, costs)
        assert row["correct"] == correct and row["cost"] == pytest.approx(cost)


def test_exact_frontier_hand_made_two_exits():
    """4 samples; exit 1 says class 0 for all (right on the two most confident), the last exit is
    right on three. The optimum by hand: all out at exit 1 (2 right, cost 1); the two confident
    ones out at exit 1, the others at the last (3 right, cost 2)."""
    probs = numpy.array([
        [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]],   # exit 1 says 0 for all
        [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]],     # last exit
    ], numpy.float32)
    labels = numpy.array([0, 0, 1, 1])
    cache = measures.ExitCache(probs, labels)
    front = selection.exact_frontier(cache, "max_prob", [1.0, 3.0])
    # all out at exit 1: 2 right, cost 1; samples 0, 1 out then 2, 3 go on: 3 right, cost 2
    # (all at the last: 3 right, cost 3, dominated)
    assert front.correct.tolist() == [2, 3]
    assert front.costs.tolist() == [1.0, 2.0]
    assert cache.evaluate(front.thresholds[1], "max_prob")["exit_counts"] == [2, 2]
    i = selection.fastest_within(front, 0.75, eps=0.0)
    assert front.costs[i] == 2.0
    assert selection.most_accurate_within(front, 1.5) == 0
    assert selection.most_accurate_within(front, 2.0) == 1


def test_exact_frontier_covers_every_grid_setting():
    """No setting of a grid lies beyond the exact frontier."""
    cache = random_cache(k=3, n=60, c=5, seed=3)
    costs = numpy.array([1.0, 2.0, 4.0])
    front = selection.exact_frontier(cache, "entropy", costs)
    for t in sweep.threshold_grid([numpy.linspace(0, 1.7, 9)] * 2):
        row = cache.evaluate(t, "entropy", costs)
        best = front.correct[front.costs <= row["cost"] + 1e-12].max()
        assert row["correct"] <= best


@pytest.mark.parametrize("seed", range(5))
def test_rules_never_break_their_constraint_on_the_fitted_data(seed):
    cache = random_cache(k=3, n=80, c=5, seed=seed)
    costs = numpy.array([1.0, 2.0, 4.0])
    front = selection.exact_frontier(cache, "max_prob", costs)
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
    front = selection.exact_frontier(cache, "entropy", costs)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        selection.fastest_within(front, 0.5, eps=-0.01)
    with pytest.raises(selection.Infeasible, match="below the cheapest"):
        selection.most_accurate_within(front, 0.5)
    with pytest.raises(selection.Infeasible, match="no setting reaches"):
        selection.fastest_within(front, 1.01)
    with pytest.raises(ValueError, match="unknown confidence measure"):
        selection.exact_frontier(cache, "certainty", costs)
    with pytest.raises(ValueError, match="expected 2 exit costs"):
        selection.exact_frontier(cache, "entropy", [1.0])
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


def test_paper_knee_on_the_cache_equals_sweep_knee_on_exit_outputs():
    cache = random_cache(k=3, n=200, c=5, seed=11)
    costs = numpy.array([1.0, 2.0, 4.0])
    grid = sweep.threshold_grid([[0.05, 0.3, 0.8, 1.2]] * 2)
    base = cache.correct()[-1].mean()
    knee = selection.paper_knee(cache, grid, costs, base)
    outputs = sweep.ExitOutputs(cache.values("entropy"), cache.predictions, cache.labels)
    rows = outputs.sweep(grid)
    for row in rows:
        row["cost"] = float(numpy.asarray(row["exit_fractions"]) @ costs)
    chosen = sweep.choose(rows, "cost", base)
    assert knee["knee"] == chosen["knee"] and knee["frontier"] == chosen["frontier"]


def test_grid_frontier_is_the_pareto_set_of_the_grid_and_never_beats_the_exact_one():
    cache = random_cache(k=3, n=40, c=4, seed=4)
    costs = numpy.array([1.0, 2.0, 4.0])
    grid = sweep.threshold_grid([[0.1, 0.5, 0.9, 1.3]] * 2)
    front = selection.grid_frontier(cache, "entropy", grid, costs)
    rows = [cache.evaluate(t, "entropy", costs) for t in grid]
    expected = pareto_of({(round(r["cost"], 9), r["correct"]) for r in rows})
    assert [(round(float(c), 9), int(r)) for c, r in zip(front.costs, front.correct)] == expected
    exact = selection.exact_frontier(cache, "entropy", costs)
    for cost, correct in zip(front.costs, front.correct):
        assert correct <= exact.correct[exact.costs <= cost + 1e-12].max()
