"""The exit rule's pieces against plain-loop computations (entropy, softmax, thresholds, the
training mask, one-sample and batched early exit on scripted 3- and 4-exit heads), written to kill
the mutants of ``exit_rule`` that the older tests let through (docs/mutation.md)."""
import math

import numpy
import pytest

import branchynet  # noqa: F401  (compatibility shims before chainer)
from branchynet.model import exit_rule, measures


def _entropy_loops(row):
    """-sum p ln p of one row of logits, in float64 by plain loops."""
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    total = sum(exps)
    return -sum(e / total * math.log(e / total) for e in exps if e > 0)


def test_entropy_and_softmax_against_loops():
    rng = numpy.random.RandomState(0)
    logits = (rng.randn(20, 5) * 3).astype(numpy.float32)
    p = exit_rule.softmax(logits)
    for i, row in enumerate(logits.tolist()):
        top = max(row)
        total = sum(math.exp(v - top) for v in row)
        numpy.testing.assert_allclose(p[i], [math.exp(v - top) / total for v in row], rtol=1e-5)
    h = exit_rule.entropy(p)
    assert h.dtype == numpy.float32 and h.shape == (20,)
    numpy.testing.assert_allclose(h, [_entropy_loops(r) for r in logits.tolist()], rtol=1e-4, atol=1e-6)
    big = numpy.array([[1000.0, 999.0, 0.0]], numpy.float32)  # no overflow: shifted by the row max
    numpy.testing.assert_allclose(exit_rule.softmax(big)[0, :2], [1 / (1 + math.e ** -1), 1 / (1 + math.e)],
                                  rtol=1e-5)


def test_entropy_of_one_hot_uniform_and_nan_rows():
    p = numpy.array([[1.0, 0.0, 0.0, 0.0], [0.25] * 4, [0.5, 0.5, 0.0, 0.0], [numpy.nan, 0.0, 0.0, 1.0]],
                    numpy.float32)
    h = exit_rule.entropy(p)
    assert h[0] == 0.0
    assert h[1] == pytest.approx(math.log(4), rel=1e-6)
    assert h[2] == pytest.approx(math.log(2), rel=1e-6)
    assert math.isnan(h[3])


def test_entropy_one_in_plain_python_against_loops():
    rng = numpy.random.RandomState(1)
    for scale in (0.1, 2.0, 40.0):
        row = (rng.randn(1, 7) * scale).astype(numpy.float32)
        expected = _entropy_loops(row[0].tolist())
        assert exit_rule._entropy_one(row) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_as_thresholds_broadcasts_checks_and_refuses():
    numpy.testing.assert_array_equal(exit_rule.as_thresholds(0.5, 4), [0.5, 0.5, 0.5])
    assert exit_rule.as_thresholds(2, 3).dtype == numpy.float64
    out = exit_rule.as_thresholds([0.1, 0.2], 3)
    assert out.tolist() == [0.1, 0.2] and out.dtype == numpy.float64
    with pytest.raises(ValueError, match="expected 2 thresholds .* 3-exit network.*got 3"):
        exit_rule.as_thresholds([0.1, 0.2, 0.3], 3)
    with pytest.raises(ValueError, match="expected 3 thresholds"):
        exit_rule.as_thresholds([0.1, 0.2], 4)
    with pytest.raises(ValueError, match="no exit thresholds"):
        exit_rule.as_thresholds(None, 3)
    for bad in ("0.1", True, [True, False]):
        with pytest.raises(TypeError, match="must be numbers"):
            exit_rule.as_thresholds(bad, 3)
    with pytest.raises(ValueError, match="NaN"):
        exit_rule.as_thresholds([0.1, float("nan")], 3)


def test_exits_here_is_strict_and_leaves_one_refuses_non_positive_thresholds():
    e = numpy.array([0.0, 0.5, 0.7], numpy.float32)
    assert exit_rule.exits_here(e, 0.5).tolist() == [True, False, False]
    one_hot = numpy.array([[0.0, 200.0, 0.0]], numpy.float32)  # entropy exactly 0
    assert exit_rule.leaves_one(one_hot, 1e-3) is True
    assert not exit_rule.leaves_one(one_hot, 0.0) and not exit_rule.leaves_one(one_hot, -1.0)
    flat = numpy.zeros((1, 3), numpy.float32)  # entropy ln 3
    assert exit_rule.leaves_one(flat, 1.2) is True and exit_rule.leaves_one(flat, 1.0) is False
    assert exit_rule.leaves_one(flat.astype(numpy.float64), 1.2) is True


def test_training_keep_by_threshold_and_by_fraction():
    rng = numpy.random.RandomState(2)
    logits = (rng.randn(10, 4) * 2).astype(numpy.float32)
    h = exit_rule.entropy(exit_rule.softmax(logits))
    assert exit_rule.training_keep(logits, 0, 3) is None  # default: everyone goes on
    assert exit_rule.training_keep(logits, 0, 3, keep_fraction=1.0) is None
    order = sorted(range(10), key=lambda i: h[i])
    for fraction, n_keep in ((0.5, 5), (0.3, 3), (0.0, 0)):
        keep = exit_rule.training_keep(logits, 0, 3, keep_fraction=fraction)
        assert keep.dtype == bool and keep.tolist() == [i in order[10 - n_keep:] for i in range(10)]
    t = [float(numpy.median(h)), 10.0]
    numpy.testing.assert_array_equal(exit_rule.training_keep(logits, 0, 3, thresholds=t), ~(h < t[0]))
    assert not exit_rule.training_keep(logits, 1, 3, thresholds=t).any()  # exit 2's threshold: all leave
    keep = exit_rule.training_keep(logits, 0, 3, keep_fraction=0.5, thresholds=[0.0, 0.0])
    assert keep.all()  # a threshold wins over the fraction: nobody is below 0


def _scripted(z):
    """segment and head over stacked logits z (N, K, C). The 'activation' of a sample is its
    index and how many segments it went through: each head checks that all of its own ran, and
    returns those samples' logits at exit k. Calls are counted."""
    calls = {"segment": [], "head": []}

    def segment(k, h):
        calls["segment"].append((k, len(h)))
        return h + numpy.array([0, 1])

    def head(k, h):
        calls["head"].append((k, len(h)))
        assert (h[:, 1] == k + 1).all(), "head %d got activations of %s segments" % (k, h[:, 1])
        return z[h[:, 0], k]

    return segment, head, calls


def _inputs(n):
    return numpy.stack([numpy.arange(n), numpy.zeros(n, int)], axis=1)


def _brute_force(z, thresholds, measure=None):
    """(label, exit) per sample by plain loops over the exits."""
    out = []
    for row in z:
        run, previous = 0, None
        for k in range(len(row)):
            label = int(numpy.argmax(row[k]))
            if k == len(row) - 1:
                break
            if measure is None:
                if _entropy_loops(row[k].tolist()) < thresholds[k]:
                    break
            else:  # patience
                run = run + 1 if label == previous else 1
                previous = label
                if run >= thresholds[k]:
                    break
        out.append((label, k))
    return out


def _agreeing_logits(n, k, c, seed):
    rng = numpy.random.RandomState(seed)
    z = (rng.randn(n, k, c) * rng.uniform(0.3, 6, size=(n, k, 1))).astype(numpy.float32)
    z[::3, :, 0] += 8.0  # every third sample agrees on class 0 at every exit
    return z


@pytest.mark.parametrize("num_exits", [3, 4])
def test_predict_batch_and_one_against_brute_force(num_exits):
    z = _agreeing_logits(40, num_exits, 5, seed=num_exits)
    thresholds = numpy.linspace(0.4, 1.0, num_exits - 1)
    expected = _brute_force(z, thresholds)
    assert len({k for _, k in expected}) == num_exits  # every exit takes someone
    segment, head, calls = _scripted(z)
    labels, exits = exit_rule.predict_batch(_inputs(40), thresholds, segment, head)
    assert labels.dtype == numpy.int32 and exits.dtype == numpy.int32
    assert list(zip(labels.tolist(), exits.tolist())) == expected
    reaching = [sum(k >= j for _, k in expected) for j in range(num_exits)]
    assert calls["head"] == list(enumerate(reaching))  # each head once per sample reaching it
    for i in range(40):
        label, exit_ = exit_rule.predict_one(_inputs(40)[i:i + 1], thresholds, *_scripted(z)[:2])
        assert (label.tolist(), exit_.tolist()) == ([expected[i][0]], [expected[i][1]])
        assert label.dtype == numpy.int32


def test_predict_batch_stops_when_nobody_is_left():
    z = numpy.zeros((4, 3, 3), numpy.float32)
    z[:, :, 1] = 50.0  # certain at exit 1: all leave there
    segment, head, calls = _scripted(z)
    labels, exits = exit_rule.predict_batch(_inputs(4), [0.5, 0.5], segment, head)
    assert labels.tolist() == [1] * 4 and exits.tolist() == [0] * 4
    assert calls["segment"] == [(0, 4)]
    z[0, 0, 1] = 0.0  # one sample stays: exit 2 sees it alone, then nobody is left
    segment, head, calls = _scripted(z)
    labels, exits = exit_rule.predict_batch(_inputs(4), [0.5, 0.5], segment, head)
    assert exits.tolist() == [1, 0, 0, 0] and calls["segment"] == [(0, 4), (1, 1)]


@pytest.mark.parametrize("num_exits", [3, 4])
def test_patience_early_exit_against_brute_force(num_exits):
    z = _agreeing_logits(30, num_exits, 3, seed=10 + num_exits)
    thresholds = [2.0] * (num_exits - 1)
    expected = _brute_force(z, thresholds, measure="patience")
    assert {k for _, k in expected} >= {1, num_exits - 1}
    patience = measures.get("patience")
    segment, head, _ = _scripted(z)
    labels, exits = exit_rule.predict_batch(_inputs(30), thresholds, segment, head, measure=patience)
    assert list(zip(labels.tolist(), exits.tolist())) == expected
    for i in range(30):
        segment, head, _ = _scripted(z)
        one = _inputs(30)[i:i + 1]
        label, exit_ = exit_rule.predict_one(one, thresholds, segment, head, measure=patience)
        assert (int(label[0]), int(exit_[0])) == expected[i]
