"""Cached exit outputs: the analytic sweep against real early-exit runs, brute force, float64 measures."""
import math

import numpy
import pytest

import chainer

import branchynet  # noqa: F401
from branchynet.evaluation import frontier
from branchynet.evaluation.outputs import ExitOutputs
from branchynet.model import exit_rule
from tests.evaluation.synthetic import outputs_with


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
    outputs = ExitOutputs.from_net(trained_lenet, x, t)
    grid = frontier.paper_grid("lenet", 2)
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
    outputs = ExitOutputs.from_net(trained_lenet, x, t)
    _assert_same_as_real_run(trained_lenet, outputs, x, t, thresholds, batch=1)


def test_three_exit_sweep_equals_real_runs(three_exit, mnist_subset):
    x, t = _held_out(mnist_subset, 300)
    outputs = ExitOutputs.from_net(three_exit, x, t, batchsize=128)
    assert outputs.num_exits == 3
    values = (0.0001, 0.01, 0.1, 0.5, 1.0, 10.0)
    grid = frontier.threshold_grid([values, values])
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
    outputs = outputs_with(ent, pred, labels)
    ent = outputs.entropies  # float32 softmax entropies, within 1e-6 of the targets
    values = (0.0, 0.05, 0.2, 1.0)
    grid = frontier.threshold_grid([values] * 3)
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
    outputs = outputs_with([[0.5, 0.2], [0.1, 0.1]], [[1, 1], [2, 2]], [2, 1])
    row = outputs.evaluate(outputs.entropies[0, 0])
    assert row["exit_counts"] == [1, 1]  # 0.5 < 0.5 is false: strict, like exit_rule
    assert row["correct"] == 2  # sample 0 at exit 2 (label 2), sample 1 at exit 1 (label 1)


def test_wrong_threshold_count_is_a_clear_error():
    outputs = ExitOutputs(numpy.zeros((3, 5, 4), numpy.float32), numpy.zeros(5, int))
    with pytest.raises(ValueError, match="expected 2 thresholds"):
        outputs.evaluate((0.1, 0.2, 0.3))


def test_sweep_without_labels_has_counts_only():
    outputs = outputs_with([[0.1, 0.3]], [[0, 1]])
    row = outputs.evaluate(())
    assert row["exit_counts"] == [2] and "accuracy" not in row


def test_outputs_are_host_arrays(trained_lenet, mnist_subset):
    outputs = ExitOutputs.from_net(trained_lenet, mnist_subset[0][:10], mnist_subset[1][:10],
                                         batchsize=4)
    assert isinstance(outputs.entropies, numpy.ndarray) and outputs.entropies.shape == (2, 10)
    with chainer.using_config("branchynet_fast_cpu", False):
        stock = ExitOutputs.from_net(trained_lenet, mnist_subset[0][:10], mnist_subset[1][:10])
    numpy.testing.assert_array_equal(stock.predictions, outputs.predictions)


def test_logits_are_kept_as_the_net_gives_them_and_probs_match_exit_probs(trained_lenet, mnist_subset):
    x = mnist_subset[0][:40]
    outputs = ExitOutputs.from_net(trained_lenet, x, batchsize=16)
    assert outputs.logits.dtype == numpy.float32 and outputs.logits.shape == (2, 40, 10)
    for k, p in enumerate(trained_lenet.exit_probs(x)):
        numpy.testing.assert_allclose(outputs.probs(k), p, rtol=1e-5, atol=1e-7)
    numpy.testing.assert_array_equal(outputs.entropies[0], exit_rule.entropy(outputs.probs(0)))


def test_max_prob_and_margin_rank_apart_where_float32_probabilities_saturate():
    """Two confident samples (top logit 20 and 30 above the rest): their float32 softmax both
    round to exactly 1.0 (ties), their float64 values from the logits do not."""
    logits = numpy.zeros((2, 2, 10), numpy.float32)
    logits[:, 0, 3], logits[:, 1, 3] = 20.0, 30.0
    assert (exit_rule.softmax(logits[0]).max(axis=1) == 1.0).all()  # float32: tied at 1
    outputs = ExitOutputs(logits, numpy.array([3, 3]))
    for name in ("max_prob", "margin"):
        v = outputs.values(name)[0]
        assert v[0] < v[1] < 1.0, name
        expected = 1.0 / (1.0 + 9.0 * numpy.exp(-20.0))  # by hand, float64
        if name == "margin":
            expected = (1.0 - numpy.exp(-20.0)) * expected
        assert v[0] == pytest.approx(expected, rel=1e-15, abs=0)
    # a threshold between them lets only the more confident one out
    t = float(outputs.values("max_prob")[0].mean())
    assert outputs.evaluate(t, "max_prob")["exit_counts"] == [1, 1]


def test_bad_logits_are_a_clear_error():
    with pytest.raises(ValueError, match="one \\(samples, classes\\) array per exit"):
        ExitOutputs([numpy.zeros((3, 4)), numpy.zeros((2, 4))])
    with pytest.raises(ValueError, match="expected 3 labels"):
        ExitOutputs(numpy.zeros((2, 3, 4), numpy.float32), numpy.zeros(2))
    with pytest.raises(ValueError, match="expected 2 exit costs"):
        ExitOutputs(numpy.zeros((2, 3, 4), numpy.float32)).evaluate(0.5, exit_costs=[1.0])


@pytest.mark.parametrize("bad", [10, 12, -1])
def test_labels_outside_the_classes_are_refused_not_counted_wrong(bad):
    logits = numpy.zeros((2, 3, 10), numpy.float32)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\] for 10 classes; got %d" % bad):
        ExitOutputs(logits, numpy.array([0, bad, 9]))
    assert ExitOutputs(logits, numpy.array([0, 5, 9])).num_samples == 3
