"""A convolution run with the ReLU after it, and the convolution's forward on either path (im2col
and GEMM, or the compiled direct convolution): values and gradients against stock Chainer."""
import numpy
import pytest

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import gradient_check

import branchynet  # noqa: F401  (before chainer)
from branchynet.fast import conv, conv_nodes, jit, microkernel, switch


def _grads(fn, x, W, b, gy):
    xv, Wv, bv = (chainer.Variable(a.copy()) for a in (x, W, b))
    y = fn(xv, Wv, bv)
    y.grad = gy.copy()
    y.backward()
    return y.array, xv.grad, Wv.grad, bv.grad


def _case(seed, N=3, C=4, H=9, W=7, out=5, k=3):
    rng = numpy.random.RandomState(seed)
    x = rng.standard_normal((N, C, H, W)).astype(numpy.float32)
    Wt = rng.standard_normal((out, C, k, k)).astype(numpy.float32)
    b = rng.standard_normal(out).astype(numpy.float32)
    return rng, x, Wt, b


@pytest.mark.parametrize("pad", [0, 1, 2])
def test_conv_with_relu_equals_relu_of_chainers_conv(pad):
    rng, x, W, b = _case(pad)
    y_ref = F.relu(F.convolution_2d(x, W, b, pad=pad)).array
    assert (y_ref == 0).mean() > 0.2  # the ReLU cuts
    gy = rng.standard_normal(y_ref.shape).astype(numpy.float32)
    ours = _grads(lambda *v: conv_nodes.convolution_2d(*v, pad=pad, relu=True), x, W, b, gy)
    ref = _grads(lambda *v: F.relu(F.convolution_2d(*v, pad=pad)), x, W, b, gy)
    for a, r in zip(ours, ref):
        numpy.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5)


def test_conv_with_relu_double_backward():
    rng = numpy.random.RandomState(2)
    x = rng.standard_normal((2, 2, 5, 5))
    W = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3) + 3.0  # outputs far from 0: eps never crosses the ReLU's kink
    gy = rng.standard_normal((2, 3, 5, 5))
    ggs = [rng.standard_normal(a.shape) for a in (x, W, b)]

    def f(x, W, b):
        y = conv_nodes.convolution_2d(x, W, b, pad=1, relu=True)
        return y * y
    gradient_check.check_double_backward(f, (x, W, b), gy, ggs, dtype=numpy.float64,
                                         atol=1e-4, rtol=1e-4)


def test_the_switch_fuses_a_convolution_and_its_relu(monkeypatch):
    link = L.Convolution2D(3, 4, 3, pad=1)
    x = numpy.random.RandomState(0).standard_normal((2, 3, 6, 6)).astype(numpy.float32)
    calls = []
    real = switch.convolution_2d
    monkeypatch.setattr(switch, "convolution_2d",
                        lambda *a, **kw: calls.append(kw.get("relu", False)) or real(*a, **kw))
    y = switch.run_layers([link, F.relu], x)
    assert calls == [True]
    numpy.testing.assert_allclose(y.array, F.relu(link(x)).array, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not jit.available(), reason="Numba is off")
@pytest.mark.parametrize("path", ["gemm", "direct", "packed", "unpacked"])
@pytest.mark.parametrize("k,pad", [(5, 3), (3, 1), (5, 2)])
def test_every_forward_path_matches_chainer(path, k, pad, monkeypatch):
    """The forward path a machine chooses, in training: values and all three gradients (the input
    gradient's correlation runs the same forward path)."""
    if path in ("packed", "unpacked") and not microkernel.available():
        pytest.skip("packed path unavailable: %s" % microkernel.why_not())
    monkeypatch.setattr(conv.calibration, "choose",
                        lambda key, candidates, default: path if path in candidates else default)
    rng, x, W, b = _case(k + pad, N=5, C=3, H=12, W=11, out=4, k=k)
    y_ref = F.convolution_2d(x, W, b, pad=pad).array
    gy = rng.standard_normal(y_ref.shape).astype(numpy.float32)
    ours = _grads(lambda *v: conv_nodes.convolution_2d(*v, pad=pad), x, W, b, gy)
    ref = _grads(lambda *v: F.convolution_2d(*v, pad=pad), x, W, b, gy)
    for a, r in zip(ours, ref):
        numpy.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4)
