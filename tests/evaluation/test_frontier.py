"""Frontiers: the exact search and the grid's against brute force and hand-made optima; the paper's
incremental frontier and knee; the committed results' selections reproduced from their rows."""
import itertools
import json
from pathlib import Path

import numpy
import pytest

import branchynet  # noqa: F401
import networks
from branchynet.evaluation import costs, frontier, selection
from branchynet.evaluation.outputs import ExitOutputs
from branchynet.model import measures
from tests.evaluation.synthetic import outputs_of_probs, outputs_with

ROOT = Path(__file__).resolve().parents[2]


def random_cache(k=3, n=12, c=4, seed=0, ties=False):
    rng = numpy.random.RandomState(seed)
    scale = rng.uniform(0.2, 4, size=(k, n, 1)).astype(numpy.float32)
    logits = rng.randn(k, n, c).astype(numpy.float32) * scale
    if ties:
        logits = numpy.round(logits)  # repeated values at an exit
    labels = rng.randint(0, c, size=n)
    labels[: n // 2] = logits[-1, : n // 2].argmax(axis=1)  # the last exit mostly right
    return ExitOutputs(logits, labels)


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
    front = frontier.exact_frontier(cache, name, costs)
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
    cache = outputs_of_probs(probs, labels)
    front = frontier.exact_frontier(cache, "max_prob", [1.0, 3.0])
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
    front = frontier.exact_frontier(cache, "entropy", costs)
    for t in frontier.threshold_grid([numpy.linspace(0, 1.7, 9)] * 2):
        row = cache.evaluate(t, "entropy", costs)
        best = front.correct[front.costs <= row["cost"] + 1e-12].max()
        assert row["correct"] <= best


def test_paper_knee_is_the_incremental_rule_on_the_grid_rows():
    """selection.paper_knee (a Frontier of the grid's settings) against the incremental rule and
    the knee applied by hand to the grid's rows, priced by the reach accounting."""
    cache = random_cache(k=3, n=200, c=5, seed=11)
    exit_costs = numpy.array([1.0, 2.0, 4.0])
    seg, head = [1.0, 1.0, 2.0], [0.0, 0.0, 0.0]
    grid = frontier.threshold_grid([[0.05, 0.3, 0.8, 1.2]] * 2)
    base = cache.correct()[-1].mean()
    front, at = selection.paper_knee(cache, grid, exit_costs, base)
    rows = cache.sweep(grid)
    times = [costs.predicted_ms(r["reach_fractions"], seg, head)[0] for r in rows]
    accs = [r["accuracy"] for r in rows]
    expected = frontier.incremental(times, accs)
    assert front.index.tolist() == expected
    assert front.index[at] == frontier.knee(times, accs, expected, base)
    numpy.testing.assert_allclose(front.costs, [times[i] for i in expected])


def test_grid_frontier_is_the_pareto_set_of_the_grid_and_never_beats_the_exact_one():
    cache = random_cache(k=3, n=40, c=4, seed=4)
    costs = numpy.array([1.0, 2.0, 4.0])
    grid = frontier.threshold_grid([[0.1, 0.5, 0.9, 1.3]] * 2)
    front = frontier.grid_frontier(cache, "entropy", grid, costs)
    rows = [cache.evaluate(t, "entropy", costs) for t in grid]
    expected = pareto_of({(round(r["cost"], 9), r["correct"]) for r in rows})
    assert [(round(float(c), 9), int(r)) for c, r in zip(front.costs, front.correct)] == expected
    exact = frontier.exact_frontier(cache, "entropy", costs)
    for cost, correct in zip(front.costs, front.correct):
        assert correct <= exact.correct[exact.costs <= cost + 1e-12].max()


def test_paper_grids_are_the_products_of_the_families_lists():
    for name, exits in (("b-lenet", 2), ("b-alexnet", 3), ("b-alexnet-paper", 3),
                        ("b-resnet110", 3), ("b-resnet110-paper", 3)):
        values = frontier.THRESHOLD_LISTS[networks.family_of(name)]
        grid = frontier.paper_grid(networks.family_of(name), exits)
        assert grid == [tuple(c) for c in itertools.product(*[values] * (exits - 1))]
    assert len(frontier.paper_grid("lenet", 2)) == 17  # docs/original.md#threshold-lists
    assert len(frontier.paper_grid("alexnet", 3)) == 121 and len(frontier.paper_grid("resnet110", 3)) == 289
    assert frontier.paper_thresholds("resnet110") == (0.3, 0.2)
    assert (0.3, 0.2) not in set(frontier.paper_grid("resnet110", 3))  # as the reference notes


def test_grid_order_first_exit_slowest():
    assert frontier.threshold_grid([(1, 2), (3, 4)]) == list(itertools.product((1.0, 2.0), (3.0, 4.0)))


# ---------------------------------------------------------------- frontier and knee
def test_frontier_keeps_improvements_in_runtime_order():
    times = [3.0, 1.0, 2.0, 4.0, 2.5]
    accs = [0.90, 0.80, 0.85, 0.95, 0.84]
    assert frontier.incremental(times, accs) == [1, 2, 0, 3]


def test_frontier_tolerance_is_inc_amt():
    times = [1.0, 2.0, 3.0]
    accs = [0.9, 0.89995, 0.8998]
    # -0.0001 tolerates the 0.00005 drop, not the further 0.00015 one
    assert frontier.incremental(times, accs) == [0, 1]
    assert frontier.incremental(times, accs, inc_amt=0.0) == [0]
    assert frontier.incremental([1.0, 2.0, 3.0], [0.8, 0.8005, 0.8015], inc_amt=0.001) == [0, 2]


def test_frontier_ties():
    # equal runtimes: the more accurate comes first; a worse one at the same runtime is dropped
    assert frontier.incremental([1.0, 1.0, 2.0], [0.8, 0.9, 0.85]) == [1]
    # identical (runtime, accuracy) points count once, represented by the first in grid order
    assert frontier.incremental([1.0, 1.0, 2.0], [0.9, 0.9, 0.95]) == [0, 2]
    # equal accuracy later is not an improvement... unless within the tolerance
    assert frontier.incremental([1.0, 2.0], [0.9, 0.9]) == [0, 1]
    assert frontier.incremental([1.0, 2.0], [0.9, 0.9], inc_amt=0.0) == [0]


def test_knee_rule():
    times = [3.0, 1.0, 2.0, 4.0]
    accs = [0.90, 0.80, 0.85, 0.95]
    front = frontier.incremental(times, accs)
    assert frontier.knee(times, accs, front, baseline_accuracy=0.5) == 1  # fastest point
    assert frontier.knee(times, accs, front, baseline_accuracy=0.85) == 2  # ties with baseline count
    assert frontier.knee(times, accs, front, baseline_accuracy=0.88) == 0
    assert frontier.knee(times, accs, front, baseline_accuracy=0.99) == 3  # none: most accurate


def test_knee_without_reaching_baseline_takes_fastest_of_the_most_accurate():
    times = [1.0, 2.0, 3.0]
    accs = [0.9, 0.95, 0.95]
    front = frontier.incremental(times, accs)
    assert front == [0, 1, 2]  # 0.95 is within the tolerance of 0.95
    assert frontier.knee(times, accs, front, baseline_accuracy=0.99) == 1


def test_paper_frontier_on_a_frontier_of_settings():
    points = frontier.Frontier([[0.1], [0.2], [0.3]], [[3, 7], [2, 8], [1, 9]], [70, 80, 75],
                               [1.0, 2.0], 100)  # mean costs 1.7, 1.8, 1.9
    front, at = frontier.paper_frontier(points, baseline_accuracy=0.78)
    assert front.index.tolist() == [0, 1] and at == 1
    assert front.thresholds.tolist() == [[0.1], [0.2]]


# ---------------------------------------------------------------- selection on validation
def _synthetic_outputs(groups, seed):
    """Two exits; ``groups``: (count, exit-1 entropy, exit 1 right?); exit 2 is always right."""
    ent1, right1 = [], []
    for count, entropy, right in groups:
        ent1 += [entropy] * count
        right1 += [right] * count
    labels = numpy.random.RandomState(seed).randint(0, 10, size=len(ent1))
    pred1 = numpy.where(right1, labels, (labels + 1) % 10)
    return outputs_with([ent1, [0.0] * len(ent1)], [pred1, labels], labels)


def test_threshold_selection_on_validation_is_applied_unchanged_to_test():
    grid = [(0.0001,), (0.005,), (0.05,), (5.0,)]
    exit_costs = costs.exit_costs({"segment_ms": [0.1, 1.0], "head_ms": [0.2, 0.05]})
    # validation: the samples at entropy 0.01 are wrong at exit 1, so T = 0.005 is the fastest
    # threshold that keeps the baseline's accuracy; on test they are right, and T = 0.05 is
    val = _synthetic_outputs([(60, 0.001, True), (10, 0.01, False), (30, 1.0, False)], seed=0)
    test = _synthetic_outputs([(60, 0.001, True), (10, 0.01, True), (30, 1.0, False)], seed=1)
    front, at = frontier.paper_frontier(frontier.grid(val, grid, exit_costs), 1.0)
    assert front.thresholds[at].tolist() == [0.005] and front.accuracies[at] == 1.0
    assert test.evaluate(front.thresholds[at])["exit_counts"] == [60, 40]
    # chosen on the test set instead (as the authors did): T = 0.05
    front, at = frontier.paper_frontier(frontier.grid(test, grid, exit_costs), 1.0)
    assert front.thresholds[at].tolist() == [0.05]


@pytest.mark.parametrize("path", sorted(ROOT.glob("results/*/results.json")), ids=lambda p: p.parent.name)
def test_committed_selections_are_the_paper_frontier_of_their_rows(path):
    """Every committed Table I frontier and knee (test, trunk-only, validation) comes back from the
    committed rows' exit counts and per-exit times through this module."""
    result = json.loads(path.read_text())
    rows = result["rows"]
    k = len(rows[0]["exit_counts"])
    base = result["accuracy"]["main" if result["accuracy"]["main"] is not None else "branchy_final"]

    def points(rows):
        return frontier.Frontier([r["thresholds"] for r in rows], [r["exit_counts"] for r in rows],
                                 [r["correct"] for r in rows], [1.0] * k, rows[0]["n"])

    for dev, chosen in result["selection"].items():
        exits = result["devices"][dev]["exits"]
        e2e = costs.exit_costs(exits)
        trunk = costs.exit_costs({"segment_ms": exits["segment_ms"], "head_ms": [0.0] * k})
        cases = [("test", points(rows).with_costs(e2e), base),
                 ("test_trunk", points(rows).with_costs(trunk), base)]
        if chosen["val"] is not None:
            cases.append(("val", points(result["val_rows"]).with_costs(e2e),
                          result["val_baseline_accuracy"]))
        for key, candidates, baseline in cases:
            front, at = frontier.paper_frontier(candidates, baseline)
            assert front.index.tolist() == chosen[key]["frontier"], (dev, key)
            assert front.index[at] == chosen[key]["knee"], (dev, key)
