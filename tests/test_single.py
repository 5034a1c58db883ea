"""Batch-1 inference programs (branchynet.single) and the batch-1 exit decision
(exit_rule.leaves_one): same values and decisions as the per-layer paths, for every network."""
import threading

import numpy as np
import pytest

import branchynet  # noqa: F401  (compatibility shims before chainer)
import chainer
import chainer.links as L

import networks
from branchynet import exit_rule, lean, single

NETWORKS = [("b-lenet", {}), ("b-alexnet", {}), ("b-resnet110", {"n": 1}),
            ("b-resnet110-paper", {"n": 1})]


def _build(name, kwargs, seed=0):
    np.random.seed(seed)
    net = networks.build(name, **kwargs)
    rng = np.random.RandomState(seed)
    for link in net.links():  # non-trivial BN statistics, so that BN is not the identity
        if isinstance(link, L.BatchNormalization):
            c = link.avg_mean.shape[0]
            link.avg_mean[...] = 0.1 * rng.randn(c)
            link.avg_var[...] = rng.rand(c) + 0.5
    return net


def _input(name, seed=1):
    shape = (1, 1, 28, 28) if name == "b-lenet" else (1, 3, 32, 32)
    return np.random.RandomState(seed).rand(*shape).astype(np.float32)


@pytest.mark.parametrize("name, kwargs", NETWORKS)
def test_programs_equal_the_per_layer_path(name, kwargs):
    """Every segment and head compiled for batch 1 gives the per-layer lean path's values."""
    net = _build(name, kwargs)
    h = _input(name)
    for k in range(net.numexits()):
        seg, head = net.segments[k].layers, net.heads[k].layers
        expected = lean.run_sequence(lean.compile_sequence(seg), h)
        got = single.Program(seg, h.shape, h.dtype)(h)
        assert np.isfinite(expected).all()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        logits = single.Program(head, got.shape, got.dtype)(got)
        np.testing.assert_allclose(logits, lean.run_sequence(lean.compile_sequence(head), expected),
                                   rtol=1e-5, atol=1e-5)
        h = expected


@pytest.mark.parametrize("name, kwargs", NETWORKS[:2])
def test_batch_one_predictions_equal_batched_and_stock(name, kwargs):
    """predict one sample at a time (programs, leaves_one) = predict on the batch = stock Chainer,
    with T at the median entropy so that both branches of the decision are taken."""
    net = _build(name, kwargs)
    x = np.concatenate([_input(name, seed) for seed in range(12)])
    entropies = exit_rule.entropy(net.exit_probs(x)[0])
    T = float(np.median(entropies))
    one = [net.predict(x[i:i + 1], T) for i in range(len(x))]
    labels, exits = (np.concatenate(v) for v in zip(*one))
    batch_labels, batch_exits = net.predict(x, T)
    with chainer.using_config("branchynet_fast_cpu", False):
        stock_labels, stock_exits = net.predict(x, T)
    assert 0 < (exits == 0).sum() < len(x)
    np.testing.assert_array_equal(exits, batch_exits)
    np.testing.assert_array_equal(labels, batch_labels)
    np.testing.assert_array_equal(exits, stock_exits)
    np.testing.assert_array_equal(labels, stock_labels)


def test_program_reuses_its_buffers_and_run_segment_copies():
    net = _build("b-lenet", {})
    a, b = _input("b-lenet", 1), _input("b-lenet", 2)
    program = single.Program(net.segments[0].layers, a.shape, a.dtype)
    first = program(a)
    kept = first.copy()
    second = program(b)
    assert second is first and not np.array_equal(second, kept)  # documented: overwritten
    from_a = net.run_segment(0, a)
    net.run_segment(0, b)
    np.testing.assert_array_equal(from_a, kept)  # the public call hands out a copy


def test_program_sees_parameter_updates():
    net = _build("b-lenet", {})
    x = _input("b-lenet")
    layers = net.heads[0].layers
    h = net.run_segment(0, x)
    program = single.Program(layers, h.shape, h.dtype)
    before = program(h).copy()
    linear = layers[-1]
    linear.W.array[...] *= 2  # in place, as optimizers update
    linear.b.array = linear.b.array + 1  # a new array, as loading or device moves do
    np.testing.assert_allclose(program(h), lean.run_sequence(lean.compile_sequence(layers), h),
                               rtol=1e-5, atol=1e-5)
    assert not np.allclose(program(h), before)


def test_program_takes_one_sample_only():
    net = _build("b-lenet", {})
    with pytest.raises(ValueError, match="one sample"):
        single.Program(net.segments[0].layers, (2, 1, 28, 28), np.float32)


def test_threads_get_their_own_programs():
    net = _build("b-lenet", {})
    x = np.concatenate([_input("b-lenet", seed) for seed in range(40)])
    expected = [net.predict_main(x[i:i + 1])[0] for i in range(len(x))]
    results, errors = {}, []

    def work(tid):
        try:
            for _ in range(5):
                results[tid] = [net.predict_main(x[i:i + 1])[0] for i in range(len(x))]
        except Exception as err:  # reported below
            errors.append(err)
    workers = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    for got in results.values():
        assert got == expected


def _float32_entropy(logits):
    return exit_rule.entropy(exit_rule.softmax(logits))


def test_leaves_one_decides_as_leaves_at_and_around_the_threshold():
    """Thresholds at a sample's own float32 entropy and one ulp either side: where the float64
    screen cannot tell, the float32 rule decides, so the answers are identical."""
    rng = np.random.RandomState(0)
    checked = 0
    for scale in (0.01, 1.0, 5.0, 30.0, 200.0):
        logits = (scale * rng.randn(200, 10)).astype(np.float32)
        H = _float32_entropy(logits)
        for i in range(len(logits)):
            row = logits[i:i + 1]
            h = np.float64(H[i])
            for T in (h, np.nextafter(h, np.inf), np.nextafter(h, -np.inf), h + 1e-6, h - 1e-6,
                      h + 0.01, h - 0.01, 0.0, np.inf, -np.inf):
                assert exit_rule.leaves_one(row, T) == bool(exit_rule.leaves(row, T)[0])
                checked += 1
    assert checked == 5 * 200 * 10


def test_leaves_one_with_non_finite_logits():
    rows = [[0.0, -np.inf] + [0.0] * 8, [np.inf] + [0.0] * 9, [np.nan] * 10,
            [1e30, 0.0] + [0.0] * 8]
    for row in rows:
        logits = np.array([row], dtype=np.float32)
        for T in (0.0, 0.5, 3.0):
            with np.errstate(invalid="ignore", over="ignore"):
                assert exit_rule.leaves_one(logits, T) == bool(exit_rule.leaves(logits, T)[0])
