"""Confidence measures against independent formulas; real early exit (BranchyNet.predict with a
measure) against the cached-output simulation (outputs.ExitOutputs), at batch 1 and in batches."""
import math
from pathlib import Path

import numpy
import pytest

import branchynet  # noqa: F401
import networks
from branchynet.evaluation.outputs import ExitOutputs
from branchynet.model import exit_rule, measures

ROOT = Path(__file__).resolve().parents[2]


def _random_logits(n=50, c=10, seed=0):
    rng = numpy.random.RandomState(seed)
    z = rng.randn(n, c).astype(numpy.float32) * rng.uniform(0.1, 8, size=(n, 1)).astype(numpy.float32)
    z[0] = 0
    z[0, 3] = 200  # one-hot in float32 and float64
    z[1] = 0
    z[1, [2, 5]] = 4  # a tie for the top
    return z


def test_measures_against_independent_formulas():
    z = _random_logits()
    c = z.shape[1]
    for row, logits in enumerate(z.astype(float).tolist()):
        e = [math.exp(v - max(logits)) for v in logits]
        probs = [v / sum(e) for v in e]
        h = -sum(q * math.log(q) for q in probs if q > 0)
        top = sorted(probs, reverse=True)
        expected = {"entropy": h, "normalized_entropy": h / math.log(c), "max_prob": top[0],
                    "margin": top[0] - top[1]}
        for name, value in expected.items():
            got = measures.get(name).values(z[row:row + 1])[0][0]
            assert got == pytest.approx(value, abs=1e-5), (name, row)
            if name in ("max_prob", "margin"):  # float64 from the logits
                assert got == pytest.approx(value, rel=1e-12, abs=1e-300), (name, row)
    assert measures.get("margin").values(z[1:2])[0][0] == 0.0
    assert measures.get("max_prob").values(z[0:1])[0][0] == 1.0


def test_patience_counts_consecutive_agreeing_exits():
    labels = numpy.array([[1, 1, 1, 2], [1, 2, 1, 2], [1, 1, 1, 3], [1, 2, 3, 3]])  # (exits, samples)
    logits = numpy.zeros((4, 4, 5), numpy.float32)
    for k in range(4):
        logits[k, numpy.arange(4), labels[k]] = 10
    runs = ExitOutputs(logits).values("patience")
    # labels over the exits: sample 0: 1,1,1,1; sample 1: 1,2,1,2; sample 2: 1,1,1,3; sample 3: 2,2,3,3
    numpy.testing.assert_array_equal(runs.T, [[1, 2, 3, 4], [1, 1, 1, 1], [1, 2, 3, 1], [1, 2, 1, 2]])


def test_directions_and_threshold_meaning():
    p = _random_logits()
    for name in ("entropy", "normalized_entropy"):
        m = measures.get(name)
        v = m.values(p)[0]
        assert m.leaves(v, 0.0).sum() == 0  # an entropy is never below 0
        assert m.leaves(v, 10.0).all()
        assert m.leaves(v, 0.2).sum() <= m.leaves(v, 0.5).sum()  # higher T: more leave
    for name in ("max_prob", "margin"):
        m = measures.get(name)
        v = m.values(p)[0]
        assert m.leaves(v, 0.0).all()
        assert not m.leaves(v, 1.01).any()
        assert m.leaves(v, 0.9).sum() <= m.leaves(v, 0.5).sum()  # higher T: fewer leave
        assert m.leaves(v, 1.0).sum() == (v == 1.0).sum()  # ">=": one-hot rows leave at T = 1


def test_nan_never_leaves():
    p = numpy.full((1, 4), numpy.nan, numpy.float32)  # logits
    for name in ("entropy", "normalized_entropy", "max_prob", "margin"):
        m = measures.get(name)
        v = m.values(p)[0]
        assert not m.leaves(v, -1e9 if not m.low_leaves else 1e9).any(), name


def test_unknown_measure_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown confidence measure 'entropie'.*max_prob"):
        measures.get("entropie")
    net = networks.build("b-lenet")
    with pytest.raises(ValueError, match="unknown confidence measure"):
        net.predict(numpy.zeros((2, 1, 28, 28), numpy.float32), 0.1, measure="confidence")
    cache = ExitOutputs(numpy.zeros((2, 3, 4), numpy.float32))
    with pytest.raises(ValueError, match="unknown confidence measure"):
        cache.exit_index([0.5], "nope")


# ---------------------------------------------------------------- real == cached
@pytest.fixture(scope="module")
def lenet():
    """The committed B-LeNet (99% on MNIST: confident, but its values still spread)."""
    path = ROOT / "results" / "b-lenet" / "run"
    if not (path / "branchy.npz").exists():
        pytest.skip("committed B-LeNet weights not present")
    return networks.load_run(str(path))[0]


def _settings(cache, name):
    """Threshold tuples spread over the measure's candidates at every non-final exit (and the
    all/none extremes); patience: every run length. Only midpoints between values at least 1e-4
    apart: a batch of one runs other BLAS blockings than the cache's batch, so logits, hence
    values, may differ in the last bits, and a threshold an ulp from a value could flip."""
    m = measures.get(name)
    values = cache.values(m)
    per_exit = []
    for k in range(cache.num_exits - 1):
        v = numpy.unique(values[k][numpy.isfinite(values[k])])
        c = m.candidates(v)
        gap = numpy.concatenate([[numpy.inf], numpy.diff(v), [numpy.inf]])
        c = c[gap > 1e-4]
        per_exit.append(sorted({c[0], c[len(c) // 4], c[len(c) // 2], c[(3 * len(c)) // 4], c[-1]}))
    if cache.num_exits == 2:
        return [(t,) for t in per_exit[0]]
    return [(a, b) for a in per_exit[0] for b in per_exit[1]][::2]


def _check(net, x, t, name, batch):
    cache = ExitOutputs.from_net(net, x, t)
    for thresholds in _settings(cache, name):
        outs = [net.predict(x[s:s + batch], thresholds, measure=name) for s in range(0, len(x), batch)]
        labels = numpy.concatenate([o[0] for o in outs])
        exits = numpy.concatenate([o[1] for o in outs])
        sim_labels, sim_exits = cache.simulate(thresholds, name)
        numpy.testing.assert_array_equal(exits, sim_exits, err_msg="%s %s" % (name, thresholds))
        numpy.testing.assert_array_equal(labels, sim_labels)
        row = cache.evaluate(thresholds, name)
        assert row["correct"] == int((labels == t).sum())
        assert row["exit_counts"] == numpy.bincount(exits, minlength=net.numexits()).tolist()
    return cache


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("name", measures.NAMES)
def test_lenet_real_and_cached_early_exit_agree(lenet, mnist_subset, name, batch):
    x, t = mnist_subset
    n = 120 if batch == 1 else 600
    _check(lenet, x[-n:], t[-n:], name, batch)


@pytest.mark.parametrize("batch", [1, 50])
@pytest.mark.parametrize("name", measures.NAMES)
def test_three_exit_real_and_cached_early_exit_agree(three_exit, mnist_subset, name, batch):
    x, t = mnist_subset
    n = 100 if batch == 1 else 400
    cache = _check(three_exit, x[-n:], t[-n:], name, batch)
    if name == "patience":  # the middle exit lets some samples out at T = 2, not all
        counts = cache.evaluate((5.0, 2.0), name)["exit_counts"]
        assert counts[0] == 0 and 0 < counts[1] < n


def test_entropy_generic_path_equals_the_fast_rule(three_exit, mnist_subset):
    """The generic measure path with entropy decides as the paper's leaves/leaves_one path."""
    x, _ = mnist_subset
    x = x[-200:]
    segment, head, context = three_exit.inference_steps(x)
    entropy = measures.get("entropy")
    with context:
        for thresholds in ([0.05, 0.3], [0.5, 1.0]):
            fast = exit_rule.predict_batch(x, numpy.array(thresholds), segment, head)
            generic = exit_rule.predict_batch(x, numpy.array(thresholds), segment, head,
                                              measure=entropy)
            numpy.testing.assert_array_equal(fast[1], generic[1])
            numpy.testing.assert_array_equal(fast[0], generic[0])


@pytest.mark.parametrize("name", measures.NAMES)
def test_engine_with_scripted_exits_equals_the_cache_for_five_exits(name):
    """exit_rule.predict_batch / predict_one with scripted heads (each sample's logits at each of 5
    exits from a table; the activation carries the sample's index) against ExitOutputs: patience's
    run of agreeing labels must follow the samples still in flight through several exits."""
    rng = numpy.random.RandomState(3)
    n, k, c = 40, 5, 3
    logits = (rng.randn(k, n, c) * 3).astype(numpy.float32)
    logits[:, :, 0] += rng.randint(0, 2, size=(k, n)) * 4  # labels often agree across exits
    x = numpy.arange(n, dtype=numpy.float32)[:, None]

    def segment(j, h):
        return h

    def head(j, h):
        return logits[j][h[:, 0].astype(int)]

    cache = ExitOutputs(logits)
    m = measures.get(name)
    settings = ([(1.5, 2.5, 2.5, 3.5), (2.5, 1.5, 3.5, 2.5), (0.5, 3.5, 1.5, 2.5)] if name == "patience"
                else [tuple(numpy.quantile(m.candidates(cache.values(m)[j]), q) for j in range(k - 1))
                      for q in (0.2, 0.5, 0.8)])
    seen = set()
    for thresholds in settings:
        labels, exits = exit_rule.predict_batch(x, numpy.array(thresholds), segment, head, measure=m)
        seen |= {(thresholds, e) for e in exits.tolist()}
        sim_labels, sim_exits = cache.simulate(thresholds, name)
        numpy.testing.assert_array_equal(exits, sim_exits)
        numpy.testing.assert_array_equal(labels, sim_labels)
        for i in range(0, n, 7):
            label, exit_ = exit_rule.predict_one(x[i:i + 1], numpy.array(thresholds), segment, head, m)
            assert (int(label[0]), int(exit_[0])) == (sim_labels[i], sim_exits[i])
    if name == "patience":  # samples leave at several exits, after some left earlier
        assert max(len({e for t, e in seen if t == s}) for s in settings) >= 3
