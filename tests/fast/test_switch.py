"""Training with the fast CPU kernels follows stock Chainer's training: two nets built from the same
seed, one stepped with ``branchynet_fast_cpu`` on and one with it off, on the same batches of real
data, have the same per-exit losses at every step and close parameters at the end."""
import numpy
import pytest

import chainer

import branchynet  # noqa: F401  (before chainer)
import networks
from branchynet.training.optimizers import adam

RTOL = 1e-3


class _Modules(chainer.FunctionHook):
    """Records the modules of the function nodes that run, to tell the two paths apart."""

    name = "Modules"

    def __init__(self):
        self.modules = set()

    def forward_preprocess(self, function, in_data):
        self.modules.add(type(function).__module__)


def _pair(name, seed=0):
    nets = {}
    for mode in ("fast", "stock"):
        numpy.random.seed(seed)
        nets[mode] = networks.build(name)
    for (key, a), (_, b) in zip(sorted(nets["fast"].namedparams()), sorted(nets["stock"].namedparams())):
        numpy.testing.assert_array_equal(a.array, b.array, err_msg=key)
    return nets


def _step(nets, optimizers, method, x, t, seed):
    """One step of both nets (each with its optimizer) on the same batch; dropout draws the same
    masks (numpy.random)."""
    out = {}
    for mode, net in nets.items():
        numpy.random.seed(seed)
        hook = _Modules()
        with chainer.using_config("branchynet_fast_cpu", mode == "fast"), hook:
            out[mode] = getattr(net, method)(x, t, optimizers[mode])
        uses_fast = any(m.startswith("branchynet.fast") for m in hook.modules)
        assert uses_fast == (mode == "fast"), (mode, sorted(hook.modules))
    return out["fast"], out["stock"]


def _follow(nets, x, t, batch, main_steps, joint_steps):
    """``main_steps`` pretraining steps, a fresh optimizer, then ``joint_steps`` joint steps, the
    batches taken in order from (x, t); every loss compared. Returns the loss curves."""
    curve = []
    batches = iter(range(0, len(x), batch))
    optimizers = {mode: adam()(net) for mode, net in nets.items()}
    for i in range(main_steps):
        s = next(batches)
        (lf, af), (ls, as_) = _step(nets, optimizers, "train_main", x[s:s + batch], t[s:s + batch], 1000 + i)
        assert numpy.isfinite(lf)
        assert lf == pytest.approx(ls, rel=RTOL), ("main step", i)
        assert af == pytest.approx(as_, abs=1.5 / batch), ("main step", i)
        curve.append(("main", lf, ls))
    optimizers = {mode: adam()(net) for mode, net in nets.items()}
    for i in range(joint_steps):
        s = next(batches)
        (lf, af), (ls, as_) = _step(nets, optimizers, "train", x[s:s + batch], t[s:s + batch], 2000 + i)
        assert all(numpy.isfinite(lf))
        numpy.testing.assert_allclose(lf, ls, rtol=RTOL, err_msg="joint step %d" % i)
        numpy.testing.assert_allclose(af, as_, atol=1.5 / batch, err_msg="joint step %d" % i)
        curve.append(("joint", lf, ls))
    return curve


def _assert_params_close(nets, rtol, atol):
    fast = dict(nets["fast"].namedparams())
    for key, p in nets["stock"].namedparams():
        numpy.testing.assert_allclose(fast[key].array, p.array, rtol=rtol, atol=atol, err_msg=key)


def test_b_lenet_fast_training_follows_stock_chainer(mnist_subset):
    x, t = mnist_subset
    nets = _pair("b-lenet")
    curve = _follow(nets, x, t, batch=64, main_steps=4, joint_steps=8)
    # it trained: the first exit's loss came down from its start
    joint = [c[1] for c in curve if c[0] == "joint"]
    assert joint[-1][0] < joint[0][0]
    # Adam's steps are alpha * m / sqrt(v): 12 steps move a weight by at most ~1.2e-2, so a
    # difference of 1e-4 is a thousandth of the path, not a diverging run
    _assert_params_close(nets, rtol=1e-3, atol=1e-4)


def test_b_alexnet_fast_training_follows_stock_chainer(cifar_subset):
    x, t = cifar_subset[0][:80], cifar_subset[1][:80]
    nets = _pair("b-alexnet")
    _follow(nets, x, t, batch=16, main_steps=2, joint_steps=3)
    _assert_params_close(nets, rtol=1e-3, atol=1e-4)


class _ReluInputs(chainer.FunctionHook):
    """Records the input shapes of the ReLUs that run forward."""

    name = "ReluInputs"

    def __init__(self):
        self.shapes = []

    def forward_preprocess(self, function, in_data):
        if function.label == "ReLU":
            self.shapes.append(in_data[0].shape)


def test_relu_before_max_pool_runs_inside_it_with_equal_values_and_gradients():
    """Sequence swaps ReLU -> max pool on the fast path and runs the pair as one compiled kernel
    (no ReLU function left), and the output and every gradient equal running the layers in their
    declared order, bit for bit, with negative windows, ties and zeros in the input."""
    import chainer.functions as F
    import chainer.links as L

    from branchynet.fast import switch
    from branchynet.model.layers import LRN, MaxPool
    from branchynet.model.net import Sequence

    rng = numpy.random.RandomState(3)
    numpy.random.seed(3)
    seq = Sequence([L.Convolution2D(3, 4, 3, pad=1), F.relu, MaxPool(3, 2), LRN(3), F.relu,
                    MaxPool(2, 2)])
    x = numpy.round(rng.standard_normal((4, 3, 9, 9)) * 2).astype(numpy.float32)  # ties, zeros
    gy = rng.standard_normal((4, 4, 2, 2)).astype(numpy.float32)
    results = []
    for swap in (True, False):
        xv = chainer.Variable(x.copy())
        seq.cleargrads()
        hook = _ReluInputs()
        with hook:
            if swap:
                y = seq(xv)
            else:  # the declared order, through the same fast kernels
                y = xv
                for layer in seq.layers:
                    y = switch.apply(layer, y)
        y.grad = gy.copy()
        y.backward()
        results.append((y.array, xv.grad, seq.layers[0].W.grad.copy(), hook.shapes))
    (ys, gxs, gWs, shapes_swapped), (yp, gxp, gWp, shapes_plain) = results
    assert shapes_plain == [(4, 4, 9, 9), (4, 4, 4, 4)]
    assert shapes_swapped == []
    numpy.testing.assert_array_equal(ys, yp)
    numpy.testing.assert_array_equal(gxs, gxp)
    numpy.testing.assert_array_equal(gWs, gWp)
