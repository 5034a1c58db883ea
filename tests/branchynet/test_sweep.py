"""The analytic sweep against real early-exit runs; the frontier, knee and selection rules."""
import itertools
import math

import numpy
import pytest

import branchynet  # noqa: F401
import chainer
import networks
from branchynet.evaluation import sweep, timing
from branchynet.reporting import paper
from tests.helpers import TINY_ALPHA, tiny_three_exit_net, train_steps


@pytest.fixture(scope="module")
def three_exit(mnist_subset):
    numpy.random.seed(1)
    x, t = mnist_subset
    return train_steps(tiny_three_exit_net(), x[:1500], t[:1500], steps=60, batch=32, seed=1,
                       alpha=TINY_ALPHA)


def _held_out(mnist_subset, n=500):
    x, t = mnist_subset
    return x[1500:1500 + n], t[1500:1500 + n]


def _assert_same_as_real_run(net, outputs, x, t, thresholds, batch):
    labels, exits = zip(*[net.predict(x[s:s + batch], thresholds) for s in range(0, len(x), batch)])
    labels, exits = numpy.concatenate(labels), numpy.concatenate(exits)
    row = outputs.evaluate(thresholds)
    assert row["exit_counts"] == numpy.bincount(exits, minlength=net.numexits()).tolist()
    assert row["correct"] == int((labels == t).sum())
    assert row["accuracy"] == float((labels == t).mean())
    index = outputs.exit_index(numpy.asarray(thresholds, dtype=float))[0]
    numpy.testing.assert_array_equal(index, exits)
    numpy.testing.assert_array_equal(outputs.predictions[index, numpy.arange(len(x))], labels)
    return row


# ---------------------------------------------------------------- analytic sweep == real run
def test_lenet_sweep_equals_real_early_exit_runs(trained_lenet, mnist_subset):
    x, t = _held_out(mnist_subset)
    outputs = sweep.ExitOutputs.from_net(trained_lenet, x, t)
    grid = sweep.paper_grid("lenet", 2)
    assert len(grid) == 17
    rows = outputs.sweep(grid)
    spread = set()
    for thresholds, row in zip(grid, rows):
        real = _assert_same_as_real_run(trained_lenet, outputs, x, t, thresholds, batch=len(x))
        assert real == row
        spread.add(row["exit_counts"][0])
    assert len(spread) >= 8, "the trained net should exit different numbers at different T"
    # fractions and reach are consistent
    for row in rows:
        assert math.isclose(sum(row["exit_fractions"]), 1.0)
        assert row["reach_fractions"][0] == 1.0
        assert math.isclose(row["reach_fractions"][1], row["exit_fractions"][1])


@pytest.mark.parametrize("thresholds", [(0.0001,), (0.025,), (0.25,), (10.0,)])
def test_lenet_sweep_equals_batch_one_runs(trained_lenet, mnist_subset, thresholds):
    x, t = _held_out(mnist_subset, 150)
    outputs = sweep.ExitOutputs.from_net(trained_lenet, x, t)
    _assert_same_as_real_run(trained_lenet, outputs, x, t, thresholds, batch=1)


def test_three_exit_sweep_equals_real_runs(three_exit, mnist_subset):
    x, t = _held_out(mnist_subset, 300)
    outputs = sweep.ExitOutputs.from_net(three_exit, x, t, batchsize=128)
    assert outputs.num_exits == 3
    values = (0.0001, 0.01, 0.1, 0.5, 1.0, 10.0)
    grid = sweep.threshold_grid([values, values])
    rows = outputs.sweep(grid, chunk=7)  # chunking must not change anything
    assert [tuple(r["thresholds"]) for r in rows] == grid
    patterns = set()
    for thresholds, row in zip(grid, rows):
        assert _assert_same_as_real_run(three_exit, outputs, x, t, thresholds, batch=len(x)) == row
        patterns.add(tuple(row["exit_counts"]))
    assert len(patterns) >= 10
    small = outputs.subset(slice(0, 60))
    for thresholds in [(0.1, 0.5), (0.0001, 10.0)]:
        _assert_same_as_real_run(three_exit, small, x[:60], t[:60], thresholds, batch=1)


def test_exit_index_matches_brute_force_on_random_entropies():
    rng = numpy.random.RandomState(0)
    ent = rng.exponential(0.3, size=(4, 200))
    ent[1, :20] = 0.0  # zero entropy leaves at any positive threshold
    pred = rng.randint(0, 10, size=(4, 200))
    labels = rng.randint(0, 10, size=200)
    outputs = sweep.ExitOutputs(ent, pred, labels)
    values = (0.0, 0.05, 0.2, 1.0)
    grid = sweep.threshold_grid([values] * 3)
    index = outputs.exit_index(grid)
    for g, thresholds in enumerate(grid):
        for n in range(200):
            expected = next((k for k in range(3) if ent[k, n] < thresholds[k]), 3)
            assert index[g, n] == expected
    rows = outputs.sweep(grid)
    for g, row in enumerate(rows):
        chosen = pred[index[g], numpy.arange(200)]
        assert row["correct"] == int((chosen == labels).sum())
        for k in range(4):
            mask = index[g] == k
            assert row["exit_counts"][k] == int(mask.sum())
            if mask.any():
                assert row["exit_accuracy"][k] == pytest.approx((chosen == labels)[mask].mean())
            else:
                assert row["exit_accuracy"][k] is None


def test_threshold_equal_to_entropy_does_not_exit():
    outputs = sweep.ExitOutputs([[0.5, 0.2], [0.1, 0.1]], [[1, 1], [2, 2]], [2, 1])
    row = outputs.evaluate(0.5)
    assert row["exit_counts"] == [1, 1]  # 0.5 < 0.5 is false: strict, like exit_rule
    assert row["correct"] == 2  # sample 0 at exit 2 (label 2), sample 1 at exit 1 (label 1)


def test_paper_grids_are_the_products_of_the_families_lists():
    for name, exits in (("b-lenet", 2), ("b-alexnet", 3), ("b-alexnet-paper", 3),
                        ("b-resnet110", 3), ("b-resnet110-paper", 3)):
        values = paper.THRESHOLD_LISTS[networks.family_of(name)]
        grid = sweep.paper_grid(networks.family_of(name), exits)
        assert grid == [tuple(c) for c in itertools.product(*[values] * (exits - 1))]
    assert len(sweep.paper_grid("lenet", 2)) == 17  # docs/original.md#threshold-lists
    assert len(sweep.paper_grid("alexnet", 3)) == 121 and len(sweep.paper_grid("resnet110", 3)) == 289
    assert paper.paper_thresholds("resnet110") == (0.3, 0.2)
    assert (0.3, 0.2) not in set(sweep.paper_grid("resnet110", 3))  # as the reference notes


def test_wrong_threshold_count_is_a_clear_error():
    outputs = sweep.ExitOutputs(numpy.zeros((3, 5)), numpy.zeros((3, 5), int), numpy.zeros(5, int))
    with pytest.raises(ValueError, match="expected 2 thresholds"):
        outputs.evaluate((0.1, 0.2, 0.3))


# ---------------------------------------------------------------- frontier and knee
def test_frontier_keeps_improvements_in_runtime_order():
    times = [3.0, 1.0, 2.0, 4.0, 2.5]
    accs = [0.90, 0.80, 0.85, 0.95, 0.84]
    assert sweep.frontier(times, accs) == [1, 2, 0, 3]


def test_frontier_tolerance_is_inc_amt():
    times = [1.0, 2.0, 3.0]
    accs = [0.9, 0.89995, 0.8998]
    # -0.0001 tolerates the 0.00005 drop, not the further 0.00015 one
    assert sweep.frontier(times, accs) == [0, 1]
    assert sweep.frontier(times, accs, inc_amt=0.0) == [0]
    assert sweep.frontier([1.0, 2.0, 3.0], [0.8, 0.8005, 0.8015], inc_amt=0.001) == [0, 2]


def test_frontier_ties():
    # equal runtimes: the more accurate comes first; a worse one at the same runtime is dropped
    assert sweep.frontier([1.0, 1.0, 2.0], [0.8, 0.9, 0.85]) == [1]
    # identical (runtime, accuracy) points count once, represented by the first in grid order
    assert sweep.frontier([1.0, 1.0, 2.0], [0.9, 0.9, 0.95]) == [0, 2]
    # equal accuracy later is not an improvement... unless within the tolerance
    assert sweep.frontier([1.0, 2.0], [0.9, 0.9]) == [0, 1]
    assert sweep.frontier([1.0, 2.0], [0.9, 0.9], inc_amt=0.0) == [0]


def test_knee_rule():
    times = [3.0, 1.0, 2.0, 4.0]
    accs = [0.90, 0.80, 0.85, 0.95]
    front = sweep.frontier(times, accs)
    assert sweep.knee(times, accs, front, baseline_accuracy=0.5) == 1  # fastest point
    assert sweep.knee(times, accs, front, baseline_accuracy=0.85) == 2  # ties with baseline count
    assert sweep.knee(times, accs, front, baseline_accuracy=0.88) == 0
    assert sweep.knee(times, accs, front, baseline_accuracy=0.99) == 3  # none: most accurate


def test_knee_without_reaching_baseline_takes_fastest_of_the_most_accurate():
    times = [1.0, 2.0, 3.0]
    accs = [0.9, 0.95, 0.95]
    front = sweep.frontier(times, accs)
    assert front == [0, 1, 2]  # 0.95 is within the tolerance of 0.95
    assert sweep.knee(times, accs, front, baseline_accuracy=0.99) == 1


def test_choose_on_rows():
    rows = [{"thresholds": [t], "accuracy": a, "ms": ms}
            for t, a, ms in [(0.1, 0.7, 1.0), (0.2, 0.8, 2.0), (0.3, 0.75, 3.0)]]
    chosen = sweep.choose(rows, "ms", baseline_accuracy=0.78)
    assert chosen["frontier"] == [0, 1] and chosen["knee"] == 1


# ---------------------------------------------------------------- selection on validation
def _synthetic_outputs(groups, seed):
    """Two exits; ``groups``: (count, exit-1 entropy, exit 1 right?); exit 2 is always right."""
    ent1, right1 = [], []
    for count, entropy, right in groups:
        ent1 += [entropy] * count
        right1 += [right] * count
    labels = numpy.random.RandomState(seed).randint(0, 10, size=len(ent1))
    pred1 = numpy.where(right1, labels, (labels + 1) % 10)
    return sweep.ExitOutputs([ent1, [0.0] * len(ent1)], [pred1, labels], labels)


def test_threshold_selection_on_validation_is_applied_unchanged_to_test():
    grid = [(0.0001,), (0.005,), (0.05,), (5.0,)]
    seg, head = [0.1, 1.0], [0.2, 0.05]
    # validation: the samples at entropy 0.01 are wrong at exit 1, so T = 0.005 is the fastest
    # threshold that keeps the baseline's accuracy; on test they are right, and T = 0.05 is
    val = _synthetic_outputs([(60, 0.001, True), (10, 0.01, False), (30, 1.0, False)], seed=0)
    test = _synthetic_outputs([(60, 0.001, True), (10, 0.01, True), (30, 1.0, False)], seed=1)
    tables = []
    for outputs in (val, test):
        rows = outputs.sweep(grid)
        for row in rows:
            row["ms"] = timing.predicted_ms(row["reach_fractions"], seg, head)[0]
        tables.append(rows)
    val_rows, test_rows = tables
    chosen = sweep.select_on_validation(val_rows, test_rows, "ms", val_baseline_accuracy=1.0)
    assert chosen["thresholds"] == [0.005]
    assert chosen["val_row"]["accuracy"] == 1.0
    assert {k: v for k, v in chosen["test_row"].items() if k != "ms"} == test.evaluate(0.005)
    assert chosen["test_row"]["exit_counts"] == [60, 40]
    # chosen on the test set instead (as the authors did): T = 0.05
    assert test_rows[sweep.choose(test_rows, "ms", 1.0)["knee"]]["thresholds"] == [0.05]
    with pytest.raises(ValueError, match="same grid"):
        sweep.select_on_validation(val_rows, test_rows[::-1], "ms", 1.0)


def test_exit_outputs_from_probs_uses_the_exit_rule_entropy():
    probs = [numpy.array([[1.0, 0.0], [0.5, 0.5]], numpy.float32),
             numpy.array([[0.2, 0.8], [0.9, 0.1]], numpy.float32)]
    outputs = sweep.ExitOutputs.from_probs(probs, numpy.array([0, 0]))
    numpy.testing.assert_allclose(outputs.entropies[0], [0.0, math.log(2)], rtol=1e-6)
    numpy.testing.assert_array_equal(outputs.predictions, [[0, 0], [1, 0]])
    assert outputs.exit_accuracy() == [1.0, 0.5]


def test_sweep_without_labels_has_counts_only():
    outputs = sweep.ExitOutputs([[0.1, 0.3]], [[0, 1]])
    row = outputs.evaluate(())
    assert row["exit_counts"] == [2] and "accuracy" not in row


def test_grid_order_first_exit_slowest():
    assert sweep.threshold_grid([(1, 2), (3, 4)]) == list(itertools.product((1.0, 2.0), (3.0, 4.0)))


def test_outputs_are_host_arrays(trained_lenet, mnist_subset):
    outputs = sweep.ExitOutputs.from_net(trained_lenet, mnist_subset[0][:10], mnist_subset[1][:10],
                                         batchsize=4)
    assert isinstance(outputs.entropies, numpy.ndarray) and outputs.entropies.shape == (2, 10)
    with chainer.using_config("branchynet_fast_cpu", False):
        stock = sweep.ExitOutputs.from_net(trained_lenet, mnist_subset[0][:10], mnist_subset[1][:10])
    numpy.testing.assert_array_equal(stock.predictions, outputs.predictions)
