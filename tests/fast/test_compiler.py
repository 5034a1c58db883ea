"""The inference compiler (branchynet.fast.compiler): batch and batch-1 programs give stock
Chainer's test-mode values for every registered network; buffers, parameters, threads."""
import threading

import numpy as np
import pytest

import chainer
import chainer.functions as F
import chainer.links as L

import branchynet  # noqa: F401  (compatibility shims before chainer)
import networks
from branchynet.fast import batch, compiler, conv_pool, switch
from branchynet.fast import conv as conv_module
from branchynet.model import exit_rule
from branchynet.model.layers import MaxPool
from branchynet.model.links import ResBlock

NETWORKS = [("b-lenet", {}), ("b-alexnet", {}), ("b-alexnet-paper", {}), ("b-resnet110", {"n": 1}),
            ("b-resnet110-paper", {"n": 1})]


def _build(name, kwargs, seed=0):
    """The network with non-zero biases and non-trivial BN statistics and affine parameters (BN
    not the identity)."""
    np.random.seed(seed)
    net = networks.build(name, **kwargs)
    rng = np.random.RandomState(seed)
    for link in net.links():
        if isinstance(link, (L.Convolution2D, L.Linear)) and link.b is not None:
            link.b.array[...] = 0.1 * rng.randn(*link.b.shape)
        if isinstance(link, L.BatchNormalization):
            c = link.avg_mean.shape[0]
            link.avg_mean[...] = 0.1 * rng.randn(c)
            link.avg_var[...] = rng.rand(c) + 0.5
            link.beta.array[...] = 0.1 * rng.randn(c)
    return net


def _input(name, n=1, seed=1):
    shape = (n, 1, 28, 28) if name == "b-lenet" else (n, 3, 32, 32)
    return np.random.RandomState(seed).rand(*shape).astype(np.float32)


def _stock(sequence, h):
    """A segment or head run by stock Chainer in test mode: the reference the programs must meet."""
    with chainer.using_config("train", False), chainer.using_config("branchynet_fast_cpu", False), \
            chainer.no_backprop_mode():
        return chainer.as_array(sequence(h))


@pytest.mark.parametrize("name, kwargs", NETWORKS)
@pytest.mark.parametrize("n", [1, 3, 12])
def test_programs_equal_stock_chainer(name, kwargs, n):
    """Every segment and head, compiled for one sample (n = 1) or for a batch (n = 3, 12), gives
    stock Chainer's values, fed with stock Chainer's output of the layers before it."""
    net = _build(name, kwargs)
    h = _input(name, n)
    for k in range(net.numexits()):
        seg, head = net.segments[k], net.heads[k]
        expected = _stock(seg, h)
        program = (compiler.SampleProgram(seg.layers, h.shape, h.dtype) if n == 1
                   else compiler.BatchProgram(seg.layers))
        got = program(h)
        assert np.isfinite(expected).all() and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        head_program = (compiler.SampleProgram(head.layers, got.shape, got.dtype) if n == 1
                        else compiler.BatchProgram(head.layers))
        np.testing.assert_allclose(head_program(expected), _stock(head, expected),
                                   rtol=1e-4, atol=1e-5)
        h = expected


@pytest.mark.parametrize("name, kwargs", NETWORKS)
def test_batch_one_predictions_equal_batched_and_stock(name, kwargs):
    """predict one sample at a time (chained programs, leaves_one) = predict on the batch = stock
    Chainer, with T at the median entropy so that both branches of the decision are taken."""
    net = _build(name, kwargs)
    x = np.concatenate([_input(name, 1, seed) for seed in range(12)])
    with chainer.using_config("branchynet_fast_cpu", False):
        entropies = exit_rule.entropy(net.exit_probs(x)[0])
        T = float(np.median(entropies))
        stock_labels, stock_exits = net.predict(x, T)
    one = [net.predict(x[i:i + 1], T) for i in range(len(x))]
    labels, exits = (np.concatenate(v) for v in zip(*one))
    batch_labels, batch_exits = net.predict(x, T)
    assert 0 < (exits == 0).sum() < len(x)
    np.testing.assert_array_equal(exits, stock_exits)
    np.testing.assert_array_equal(labels, stock_labels)
    np.testing.assert_array_equal(batch_exits, stock_exits)
    np.testing.assert_array_equal(batch_labels, stock_labels)


@pytest.mark.parametrize("in_c, out_c, stride, size", [(4, 4, 1, 9), (3, 6, 2, 9), (4, 8, 2, 8)])
def test_resblock_function_equals_chainer_test_mode(in_c, out_c, stride, size):
    rng = np.random.RandomState(1)
    block = ResBlock(in_c, out_c, stride)
    for link in (block.conv1, block.conv2):
        link.b.array[...] = rng.randn(*link.b.shape)
    for norm in (block.bn1, block.bn2):
        c = norm.avg_mean.shape[0]
        norm.avg_mean[...] = rng.randn(c)
        norm.avg_var[...] = rng.rand(c) + 0.5
        norm.gamma.array[...] = rng.rand(c) + 0.5
        norm.beta.array[...] = rng.randn(c)
    x = rng.randn(2, in_c, size, size).astype(np.float32)
    expected = _stock(block, x)
    got = batch.numpy_function(block)(x)
    assert got.shape == expected.shape == (2, out_c, -(-size // stride), -(-size // stride))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_sample_program_reuses_its_buffers_and_predict_does_not_leak_them():
    net = _build("b-lenet", {})
    a, b = _input("b-lenet", 1, 1), _input("b-lenet", 1, 2)
    program = compiler.SampleProgram(net.segments[0].layers, a.shape, a.dtype)
    first = program(a)
    kept = first.copy()
    second = program(b)
    assert second is first and not np.array_equal(second, kept)  # documented: overwritten
    probs_a = net.exit_probs(a)
    net.exit_probs(b)
    np.testing.assert_allclose(probs_a[1], _stock_probs(net, a)[1], rtol=1e-5, atol=1e-6)


def _stock_probs(net, x):
    with chainer.using_config("branchynet_fast_cpu", False):
        return net.exit_probs(x)


def test_sample_program_sees_parameter_updates():
    net = _build("b-lenet", {})
    x = _input("b-lenet")
    h = _stock(net.segments[0], x)
    head = net.heads[0]
    program = compiler.SampleProgram(head.layers, h.shape, h.dtype)
    before = program(h).copy()
    linear = head.layers[-1]
    linear.W.array[...] *= 2  # in place, as optimizers update
    linear.b.array = linear.b.array + 1  # a new array, as loading or device moves do
    np.testing.assert_allclose(program(h), _stock(head, h), rtol=1e-5, atol=1e-5)
    assert not np.allclose(program(h), before)


def test_sample_program_takes_one_sample_only():
    net = _build("b-lenet", {})
    with pytest.raises(ValueError, match="one sample"):
        compiler.SampleProgram(net.segments[0].layers, (2, 1, 28, 28), np.float32)


def test_threads_get_their_own_programs():
    net = _build("b-lenet", {})
    x = _input("b-lenet", 40)
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
    assert not errors and len(results) == 3
    for got in results.values():
        assert got == expected


def test_a_copied_net_runs_its_own_parameters():
    """copy.deepcopy of a net that has run inference: the copy's programs read the copy's links."""
    import copy
    net = _build("b-lenet", {})
    x = _input("b-lenet", 1)
    net.exit_probs(x), net.exit_probs(_input("b-lenet", 4))  # batch-1 and batch programs cached
    twin = copy.deepcopy(net)
    for link in twin.heads[0].layers:
        if isinstance(link, L.Linear):
            link.W.array[...] *= 3
    for xb in (x, _input("b-lenet", 4)):
        np.testing.assert_allclose(twin.exit_probs(xb)[0], _stock_probs(twin, xb)[0],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(net.exit_probs(xb)[0], _stock_probs(net, xb)[0],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, kwargs", NETWORKS)
def test_shared_prefixes_move_to_the_segment_and_nothing_else_changes(name, kwargs):
    """Hoisting moves only parameter-free layers that head k and segment k + 1 both start with;
    each exit still runs the same layers in the same order."""
    net = _build(name, kwargs)
    segments = [switch.relu_after_pool(s.layers) for s in net.segments]
    heads = [switch.relu_after_pool(h.layers) for h in net.heads]
    new_segments, new_heads = compiler.shared_prefixes_hoisted(segments, heads)
    removed = 0  # layers the previous hoisting took off the front of this segment
    for k in range(net.numexits()):
        kept = len(segments[k]) - removed
        assert new_segments[k][:kept] == segments[k][removed:]
        moved = new_segments[k][kept:]
        assert moved + new_heads[k] == heads[k] and new_heads[k]
        assert all(not hasattr(layer, "params") for layer in moved)
        if k + 1 < net.numexits():
            assert moved == segments[k + 1][:len(moved)]
        removed = len(moved)
    if name == "b-lenet":  # its exit 1 and its trunk both go on with pooling and ReLU
        assert [type(x).__name__ for x in new_segments[0]] == ["Convolution2D", "MaxPool", "function"]
        assert len(new_heads[0]) == 4


def test_poolings_with_other_settings_or_parameters_are_not_hoisted():
    conv = L.Convolution2D(1, 2, 3)
    for head, seg in [([MaxPool(2, 2), F.relu, L.Linear(4, 2)], [MaxPool(3, 2), F.relu, conv]),
                      ([MaxPool(2, 2, cover_all=False), L.Linear(4, 2)], [MaxPool(2, 2), conv]),
                      ([conv, L.Linear(4, 2)], [conv, MaxPool(2)])]:
        segments, heads = compiler.shared_prefixes_hoisted([[conv], seg], [head, [L.Linear(4, 2)]])
        assert segments[0] == [conv] and heads[0] == head and segments[1] == seg
    same = [MaxPool(2, 2), F.relu, L.Linear(4, 2)]
    segments, heads = compiler.shared_prefixes_hoisted(
        [[conv], [MaxPool(2, 2), F.relu, conv]], [same, [L.Linear(4, 2)]])
    assert segments[0][1:] == same[:2] and heads[0] == same[2:] and segments[1] == [conv]


@pytest.mark.parametrize("path", ["unpacked", "gemm"])
def test_fused_and_unfused_batch_programs_equal_stock_chainer(path, monkeypatch):
    """In a batch, B-LeNet's convolutions run fused with their pooling where the unpacked kernel
    is the chosen path (forced here), each pooling laid out for the convolution that reads it, the
    exit head's with its classifier: every exit's logits and the predictions are stock Chainer's
    either way."""
    monkeypatch.setattr(conv_module, "forward_path", lambda *args: path)
    fused = []
    real = conv_pool.conv_pool
    monkeypatch.setattr(conv_pool, "conv_pool", lambda *a, **k: fused.append(k) or real(*a, **k))
    net = _build("b-lenet", {})
    x = np.concatenate([_input("b-lenet", 16, seed) for seed in range(2)])
    stock = _stock_probs(net, x)
    for got, want in zip(net.exit_probs(x), stock):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    T = float(np.median(exit_rule.entropy(stock[0])))
    with chainer.using_config("branchynet_fast_cpu", False):
        want_labels, want_exits = net.predict(x, T)
    labels, exits = net.predict(x, T)
    assert 0 < (exits == 0).sum() < len(x)
    np.testing.assert_array_equal(exits, want_exits)
    np.testing.assert_array_equal(labels, want_labels)
    assert bool(fused) == (path == "unpacked" and conv_pool.applies(
        x, net.segments[0].layers[0].W.array, 1, (2, None, 0)))
    assert (path == "unpacked") == any(kwargs.get("classifier") is not None for kwargs in fused)
    # the samples in flight went on read in place, not gathered first
    assert (path == "unpacked") == any(kwargs.get("rows") is not None for kwargs in fused)
