"""The registered networks against the layer tables of the reference (sections 2.4-2.6), the residual
block, and a few real training steps (a Chainer-7 port of the original left B-AlexNet at chance)."""
import math

import numpy as np
import pytest

import chainer
import chainer.links as L

import branchynet  # noqa: F401  (compatibility shims before chainer)
import networks
from branchynet.fast import switch
from branchynet.model.links import ResBlock
from branchynet.training.optimizers import adam
from networks import alex_cifar10, resnet_cifar10
from tests.helpers import build

LN10 = math.log(10)


# ---------------------------------------------------------------- expected sizes, by hand
def conv(i, o, k):
    return i * o * k * k + o


def lin(i, o):
    return i * o + o


def bn(c):
    return 2 * c  # gamma, beta (the running statistics are not parameters)


def resblock(i, o):
    return conv(i, o, 3) + bn(o) + conv(o, o, 3) + bn(o)


def alexnet_params(variant):
    trunk = (conv(3, 32, 5) + conv(32, 64, 5) + conv(64, 96, 3) + conv(96, 96, 3) + conv(96, 64, 3)
             + lin(1024, 256) + lin(256, 128) + lin(128, 10))
    if variant == "faithful":
        heads = conv(64, 32, 3) + conv(32, 32, 3) + lin(512, 10) + conv(96, 32, 3) + lin(128, 10)
    else:
        heads = conv(32, 32, 3) + conv(32, 32, 3) + lin(2048, 10) + conv(64, 32, 3) + lin(512, 10)
    return trunk + heads


def resnet_params(n):
    trunk = (conv(3, 16, 3) + bn(16) + n * resblock(16, 16)
             + resblock(16, 32) + (n - 1) * resblock(32, 32)
             + resblock(32, 64) + (n - 1) * resblock(64, 64) + lin(576, 10))
    heads = (conv(16, 64, 5) + conv(64, 32, 3) + conv(32, 32, 3) + lin(28800, 10)
             + resblock(16, 16) + lin(14400, 10))
    return trunk + heads


# For each network: input shape; in_size of every Linear in each trunk segment and each head;
# the parameter count; the number of trunk convolutions before each exit.
SPECS = {
    "b-lenet": dict(
        input=(1, 28, 28), segment_fc=[[], [720]], head_fc=[[640], [84]],
        params=conv(1, 5, 5) + conv(5, 10, 3) + lin(640, 10) + conv(5, 10, 5) + conv(10, 20, 5)
        + lin(720, 84) + lin(84, 10),
        convs_before_exit=[1, 3]),
    "b-alexnet": dict(
        input=(3, 32, 32), segment_fc=[[], [], [1024, 256]], head_fc=[[512], [128], [128]],
        params=alexnet_params("faithful"), convs_before_exit=[2, 3, 5]),
    "b-alexnet-paper": dict(
        input=(3, 32, 32), segment_fc=[[], [], [1024, 256]], head_fc=[[2048], [512], [128]],
        params=alexnet_params("paper"), convs_before_exit=[1, 2, 5]),
    "b-resnet110": dict(
        input=(3, 32, 32), segment_fc=[[], [], []], head_fc=[[28800], [14400], [576]],
        params=resnet_params(18), convs_before_exit=[1, 37, 109]),
    "b-resnet110-paper": dict(
        input=(3, 32, 32), segment_fc=[[], [], []], head_fc=[[28800], [14400], [576]],
        params=resnet_params(18), convs_before_exit=[3, 37, 109]),
}


def linear_in_sizes(sequence):
    return [link.W.shape[1] for layer in sequence.layers if isinstance(layer, chainer.Link)
            for link in layer.links() if isinstance(link, L.Linear)]


def num_convs(sequence):
    return sum(isinstance(link, L.Convolution2D) for layer in sequence.layers
               if isinstance(layer, chainer.Link) for link in layer.links())


def test_registry_holds_the_five_networks():
    assert networks.names() == sorted(SPECS)


@pytest.mark.parametrize("name", networks.names())
def test_network_shapes_sizes_params_and_gradients(name):
    spec = SPECS[name]
    net = build(name)
    assert net.numexits() == len(spec["head_fc"])
    x = np.random.rand(2, *spec["input"]).astype(np.float32)
    t = np.array([3, 7], dtype=np.int32)

    probs = net.exit_probs(x)
    assert [p.shape for p in probs] == [(2, 10)] * net.numexits()
    for p in probs:
        assert np.all(np.isfinite(p))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)

    assert [linear_in_sizes(s) for s in net.segments] == spec["segment_fc"]
    assert [linear_in_sizes(h) for h in net.heads] == spec["head_fc"]
    assert sum(p.size for p in net.params()) == spec["params"]
    convs = np.cumsum([num_convs(s) for s in net.segments]).tolist()
    assert convs == spec["convs_before_exit"]

    with chainer.using_config("train", True):
        total, losses, _ = net.loss(net, x, t)
    assert all(np.isfinite(float(loss.array)) for loss in losses)
    net.cleargrads()
    total.backward()
    for path, param in net.namedparams():
        assert param.grad is not None, path
        assert np.all(np.isfinite(param.grad)), path
        assert np.any(param.grad != 0), "%s gets no gradient from the joint loss" % path


# ---------------------------------------------------------------- faithful vs paper variants
def test_alexnet_variants_tap_pre_relu_convs_at_their_positions():
    for name, tapped in (("b-alexnet", [(32, 64), (64, 96)]), ("b-alexnet-paper", [(3, 32), (32, 64)])):
        net = networks.build(name)
        for k, (in_c, out_c) in enumerate(tapped):
            last = net.segments[k].layers[-1]
            assert isinstance(last, L.Convolution2D), (name, k)  # the branch taps the pre-ReLU output
            assert last.W.shape[:2] == (out_c, in_c), (name, k)
            assert net.heads[k].layers[0] is chainer.functions.relu, (name, k)  # its own ReLU
    with pytest.raises(ValueError):
        alex_cifar10.get_network(variant="other")


def test_resnet_variants_differ_only_in_where_exit_1_taps():
    faithful = networks.build("b-resnet110", n=2)
    paper = networks.build("b-resnet110-paper", n=2)
    # HEAD: conv, BN, ReLU, then exit 1 (post-ReLU tap); paper: one residual block first.
    assert [type(layer) for layer in faithful.segments[0].layers][:2] == [L.Convolution2D,
                                                                         L.BatchNormalization]
    assert faithful.segments[0].layers[2] is chainer.functions.relu
    assert len(faithful.segments[0]) == 3 and len(faithful.segments[1]) == 2
    assert isinstance(paper.segments[0].layers[-1], ResBlock)
    assert len(paper.segments[0]) == 4 and len(paper.segments[1]) == 1
    assert [num_convs(s) for s in faithful.segments] == [1, 4, 8]
    assert [num_convs(s) for s in paper.segments] == [3, 2, 8]
    for net in (faithful, paper):
        assert sum(p.size for p in net.params()) == resnet_params(2)
    # the wscale=sqrt(2) init of Chainer v1: std = 2**0.25 / sqrt(fan_in)
    w = networks.build("b-resnet110", n=1).segments[0].layers[0].W.array
    assert w.std() == pytest.approx(2 ** 0.25 / math.sqrt(3 * 3 * 3), rel=0.2)
    with pytest.raises(ValueError):
        resnet_cifar10.get_network(variant="other")


# ---------------------------------------------------------------- ResBlock
def _zero_convs(block):
    for link in (block.conv1, block.conv2):
        link.W.array[...] = 0
        link.b.array[...] = 0


@pytest.mark.parametrize("train", [False, True])
def test_resblock_shortcut_puts_zero_channels_in_front(train):
    x = np.arange(1, 33, dtype=np.float32).reshape(1, 2, 4, 4)
    # channels 2 -> 4 at stride 2: the residual branch is 0, so the output is ReLU(shortcut(x))
    block = ResBlock(2, 4, stride=2)
    _zero_convs(block)
    with chainer.using_config("train", train):
        y = block(x).array
    assert y.shape == (1, 4, 2, 2)
    np.testing.assert_array_equal(y[:, :2], 0)
    np.testing.assert_array_equal(y[:, 2:], x[:, :, ::2, ::2])  # 1x1 average pool, stride 2
    np.testing.assert_array_equal(y[0, 2], [[1, 3], [9, 11]])
    # channels 2 -> 4 at stride 1: zeros, then x unchanged
    block = ResBlock(2, 4, stride=1)
    _zero_convs(block)
    with chainer.using_config("train", train):
        y = block(x).array
    np.testing.assert_array_equal(y[:, :2], 0)
    np.testing.assert_array_equal(y[:, 2:], x)
    # same shape: the identity shortcut, then the output ReLU
    block = ResBlock(2, 2)
    _zero_convs(block)
    with chainer.using_config("train", train):
        y = block(x - 16).array
    np.testing.assert_array_equal(y, np.maximum(x - 16, 0))


def test_resblock_runs_its_parts_through_the_fast_switch(monkeypatch):
    """In a graph on the fast path the block's convolutions and pooling are the fast kernels."""
    calls = []
    conv2d, avg_pool = switch.convolution_2d, switch.average_pooling_2d
    monkeypatch.setattr(switch, "convolution_2d", lambda *a: calls.append("conv") or conv2d(*a))
    monkeypatch.setattr(switch, "average_pooling_2d",
                        lambda *a: calls.append("pool") or avg_pool(*a))
    switch.apply(ResBlock(3, 6, stride=2), np.random.rand(2, 3, 7, 7).astype(np.float32))
    assert sorted(calls) == ["conv", "conv", "pool"]
    with pytest.raises(ValueError):
        ResBlock(4, 2)


@pytest.mark.parametrize("name, kwargs", [("b-alexnet", {}), ("b-resnet110", {"n": 1}),
                                          ("b-resnet110-paper", {"n": 2})])
def test_numpy_inference_equals_chainer(name, kwargs):
    """exit_probs through the compiled numpy programs (branchynet.fast) against stock Chainer in
    test mode, with non-trivial BN running statistics."""
    rng = np.random.RandomState(2)
    net = networks.build(name, **kwargs)
    for link in net.links():
        if isinstance(link, L.BatchNormalization):
            c = link.avg_mean.shape[0]
            link.avg_mean[...] = 0.1 * rng.randn(c)
            link.avg_var[...] = rng.rand(c) + 0.5
            link.beta.array[...] = 0.1 * rng.randn(c)
    x = rng.rand(3, 3, 32, 32).astype(np.float32)
    with chainer.using_config("branchynet_fast_cpu", False):
        expected = net.exit_probs(x)
    with chainer.using_config("branchynet_fast_cpu", True):
        got = net.exit_probs(x)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- real training steps
def _losses(net, x, t, train_mode):
    with chainer.using_config("train", train_mode), chainer.no_backprop_mode():
        losses, _ = net.loss.exit_losses(net, x, t)
    return np.array([float(loss.array) for loss in losses])


def _check_training_lowers_every_exit(net, x, t, steps, batch, eval_train_mode, margin=0.1):
    rng = np.random.RandomState(0)
    before = _losses(net, x, t, eval_train_mode)
    optimizer = adam()(net)
    for _ in range(steps):
        index = rng.permutation(len(x))[:batch]
        net.train(x[index], t[index], optimizer)
    after = _losses(net, x, t, eval_train_mode)
    assert np.all(np.isfinite(after))
    assert np.all(after < before - margin), (before, after)
    assert np.all(after < LN10 - margin), (before, after)


def test_alexnet_training_steps_lower_every_exit_loss(cifar_subset):
    x, t = cifar_subset
    net = build("b-alexnet")  # the seed fixes the dropout masks too
    # 32 real images, whole-batch Adam steps (Chainer's defaults); losses in test mode (no dropout)
    _check_training_lowers_every_exit(net, x[:32], t[:32], steps=16, batch=32, eval_train_mode=False)


@pytest.mark.slow
def test_alexnet_training_on_512_images_lowers_every_exit_loss(cifar_subset):
    x, t = cifar_subset
    net = build("b-alexnet")
    _check_training_lowers_every_exit(net, x, t, steps=48, batch=64, eval_train_mode=False)


def test_resnet_training_steps_lower_every_exit_loss(cifar_subset):
    x, t = cifar_subset
    net = build("b-resnet110", n=1)
    # BN's running statistics lag after a few steps: compare losses with batch statistics
    _check_training_lowers_every_exit(net, x[:16], t[:16], steps=8, batch=16, eval_train_mode=True)
