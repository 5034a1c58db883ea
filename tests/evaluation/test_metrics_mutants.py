"""Evaluations against plain-loop computations on 3-exit caches with unequal bins, written to kill
the mutants of ``metrics`` that the older tests let through (see docs/mutation.md): ECE as an
unweighted mean over bins, overthinking that counts only exit 1 as earlier, calibration that scores
every exit with the last exit's confidence."""
import warnings

import numpy
import pytest

import branchynet  # noqa: F401
from branchynet.evaluation import metrics
from tests.evaluation.synthetic import outputs_of_probs


def _one_hot_cache(preds, labels, classes=3):
    preds = numpy.asarray(preds)
    probs = numpy.zeros(preds.shape + (classes,), numpy.float32)
    for k in range(preds.shape[0]):
        probs[k, numpy.arange(preds.shape[1]), preds[k]] = 1
    return outputs_of_probs(probs, numpy.asarray(labels))


def _random_probs(k, n, c, seed):
    rng = numpy.random.RandomState(seed)
    probs = rng.dirichlet(numpy.full(c, 0.7), size=(k, n))
    return probs, rng.randint(0, c, size=n)


def _brute_force_ece(conf, right, bins):
    """ECE by plain loops: bin b holds confidences in (b/B, (b+1)/B] (the first also 0)."""
    members = [[] for _ in range(bins)]
    for p, r in zip(conf, right):
        b = 0
        while b < bins - 1 and p > (b + 1) / bins:
            b += 1
        members[b].append((p, r))
    ece = 0.0
    for group in members:
        if group:
            acc = sum(r for _, r in group) / len(group)
            mean = sum(p for p, _ in group) / len(group)
            ece += len(group) / len(conf) * abs(acc - mean)
    return ece, [len(g) for g in members]


def test_ece_weights_each_bin_by_its_share_of_samples():
    # one exit: three samples at 0.95 all right, one at 0.55 wrong. Bins of width 0.25: weighted
    # 3/4 * 0.05 + 1/4 * 0.55 = 0.175; an unweighted mean over the two non-empty bins gives 0.3
    probs = numpy.array([[[0.95, 0.05]] * 3 + [[0.55, 0.45]]], numpy.float64)
    (row,) = metrics.calibration(outputs_of_probs(probs, numpy.array([0, 0, 0, 1])), bins=4)
    assert row["ece"] == pytest.approx(0.175, abs=1e-6)
    assert [b["count"] for b in row["bins"]] == [0, 0, 1, 3]
    (row,) = metrics.calibration(outputs_of_probs(probs, numpy.array([0, 0, 0, 1])), bins=2)
    assert row["ece"] == pytest.approx(abs(0.75 - 0.85), abs=1e-6)  # one bin: |3/4 - mean 0.85|


@pytest.mark.parametrize("seed", range(3))
def test_calibration_of_every_exit_against_brute_force(seed):
    # each exit has its own confidences: scoring an exit with another's would change its ECE
    probs, labels = _random_probs(k=3, n=60, c=4, seed=seed)
    probs[0] = probs[0] ** 0.3 / (probs[0] ** 0.3).sum(axis=-1, keepdims=True)  # a flat first exit
    cache = outputs_of_probs(probs, labels)
    bins = 7
    rows = metrics.calibration(cache, bins=bins)
    assert [r["exit"] for r in rows] == [1, 2, 3]
    for k, row in enumerate(rows):
        conf = cache.probs(k).max(axis=1).astype(numpy.float64)
        right = cache.probs(k).argmax(axis=1) == labels
        ece, counts = _brute_force_ece(conf, right, bins)
        assert row["ece"] == pytest.approx(ece, abs=1e-6)
        assert row["accuracy"] == pytest.approx(right.mean())
        assert row["mean_confidence"] == pytest.approx(conf.mean(), abs=1e-6)
        assert [b["count"] for b in row["bins"]] == counts
        for b, cell in enumerate(row["bins"]):
            assert cell["low"] == pytest.approx(b / bins) and cell["high"] == pytest.approx((b + 1) / bins)
            inside = [(p, r) for p, r in zip(conf, right)
                      if cell["low"] < p <= cell["high"] or (b == 0 and p == 0)]
            if inside:
                assert cell["confidence"] == pytest.approx(numpy.mean([p for p, _ in inside]), abs=1e-6)
                assert cell["accuracy"] == pytest.approx(numpy.mean([r for _, r in inside]))
            else:
                assert cell["confidence"] is None and cell["accuracy"] is None
    assert len({round(r["ece"], 6) for r in rows}) == 3  # the exits differ: a shared confidence shows


def test_overthinking_counts_every_earlier_exit():
    # 3 exits, labels 0: sample 0 right only at exit 2 and the last (wasteful); 1 right only at
    # exit 2 (destructive); 2 right only at exit 1 (destructive); 3 only at the last; 4 nowhere;
    # 5 everywhere (wasteful)
    preds = [[1, 1, 0, 1, 1, 0],
             [0, 0, 1, 1, 1, 0],
             [0, 1, 1, 0, 2, 0]]
    o = metrics.overthinking(_one_hot_cache(preds, [0] * 6))
    assert o["wasteful"] == pytest.approx(2 / 6)
    assert o["destructive"] == pytest.approx(2 / 6)
    assert o["destructive_of_last_errors"] == pytest.approx(2 / 3)
    assert o["right_somewhere"] == pytest.approx(5 / 6)
    assert o["last_exit"] == pytest.approx(3 / 6)


@pytest.mark.parametrize("seed", range(3))
def test_overthinking_against_brute_force(seed):
    probs, labels = _random_probs(k=4, n=50, c=3, seed=seed)
    cache = outputs_of_probs(probs, labels)
    right = [[cache.probs(k)[i].argmax() == labels[i] for i in range(50)] for k in range(4)]
    early = [any(right[k][i] for k in range(3)) for i in range(50)]
    last = right[3]
    o = metrics.overthinking(cache)
    assert o["wasteful"] == pytest.approx(sum(e and r for e, r in zip(early, last)) / 50)
    destructive = sum(e and not r for e, r in zip(early, last))
    assert o["destructive"] == pytest.approx(destructive / 50)
    assert o["destructive_of_last_errors"] == pytest.approx(destructive / sum(not r for r in last))


def test_overthinking_without_last_errors_and_one_exit():
    o = metrics.overthinking(_one_hot_cache([[1, 0], [0, 0]], [0, 0]))
    assert o["destructive_of_last_errors"] == 0.0 and o["wasteful"] == 0.5 and o["last_exit"] == 1.0


def test_mean_spread_by_hand():
    s = metrics.mean_spread([2.0, None, 4.0, 9.0])
    assert s == {"n": 3, "mean": 5.0, "std": pytest.approx(numpy.sqrt(13.0)), "min": 2.0, "max": 9.0}
    assert metrics.mean_spread([3.0]) == {"n": 1, "mean": 3.0, "std": 0.0, "min": 3.0, "max": 3.0}
    assert metrics.mean_spread([None]) == {"n": 0, "mean": None, "std": None, "min": None, "max": None}


def test_earliest_correct_and_oracle_on_three_exits():
    preds = [[1, 0, 1, 1], [0, 2, 1, 1], [0, 0, 0, 1]]
    cache = _one_hot_cache(preds, [0, 0, 0, 0])
    assert metrics.earliest_correct(cache).tolist() == [1, 0, 2, -1]
    o = metrics.oracle(cache, [2.0, 3.0, 10.0])
    assert o["accuracy"] == 0.75
    assert o["cost"] == pytest.approx((3 + 2 + 10 + 2) / 4)
    assert o["exit_fractions"] == [0.5, 0.25, 0.25]
    curve_costs, curve_acc = metrics.oracle_curve(cache, [2.0, 3.0, 10.0])
    numpy.testing.assert_allclose(curve_costs, [2.0, 2.0, 2.25, 4.25])  # (4 x 2 + 0, 1, 8) / 4
    numpy.testing.assert_allclose(curve_acc, [0, 0.25, 0.5, 0.75])


def test_anytime_rows_are_numbered_from_one():
    cache = _one_hot_cache([[0, 1], [0, 0], [1, 1]], [0, 0])
    rows = metrics.anytime(cache, [1.0, 2.0, 5.0])
    assert rows == [{"exit": 1, "accuracy": 0.5, "cost": 1.0}, {"exit": 2, "accuracy": 1.0, "cost": 2.0},
                    {"exit": 3, "accuracy": 0.0, "cost": 5.0}]


def test_at_budgets_default_fractions():
    from branchynet.evaluation import frontier
    cache = _one_hot_cache([[0, 1, 1, 0], [0, 0, 1, 0]], [0, 0, 0, 0])
    front = frontier.exact_frontier(cache, "entropy", [1.0, 4.0])
    rows = metrics.at_budgets(front, cache, baseline_cost=4.0)
    assert [r["fraction"] for r in rows] == [0.25, 0.5, 0.75, 1.0]
    assert rows[0]["row"]["cost"] == 1.0 and rows[-1]["fitted_accuracy"] == 0.75


def test_calibration_edge_bins_and_an_empty_cache():
    # top probability exactly 0.5 belongs to the first bin [0, 0.5], 1.0 to the last (0.5, 1]
    probs = numpy.array([[[0.5, 0.5], [1.0, 0.0], [0.5, 0.5]]])
    (row,) = metrics.calibration(outputs_of_probs(probs, numpy.array([0, 0, 1])), bins=2)
    assert [b["count"] for b in row["bins"]] == [2, 1]
    assert row["bins"][0]["accuracy"] == 0.5 and row["bins"][1]["accuracy"] == 1.0
    assert row["ece"] == pytest.approx(0.0, abs=1e-6)
    empty = outputs_of_probs(numpy.zeros((1, 0, 3)), numpy.zeros(0, int))
    with numpy.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of no sample
        (row,) = metrics.calibration(empty, bins=3)
    assert row["ece"] == 0.0 and [b["count"] for b in row["bins"]] == [0, 0, 0]
