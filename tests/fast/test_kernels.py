"""branchynet.fast: the numpy CPU kernels agree with Chainer's own functions (values, gradients,
max-pooling argmax and ties), pass gradient checks, keep float32, and defer to Chainer on GPU."""
import numpy
import pytest

import chainer
import chainer.functions as F
from chainer import gradient_check

import branchynet  # noqa: F401  (before chainer)
from branchynet import fast
from branchynet.fast import conv as fast_conv
from branchynet.fast import layout
from branchynet.fast import pooling as fast_pool
from branchynet.fast import threads as fast_threads

# (C, H, W, O, k, stride, pad, x needs grad) of every convolution in the three networks.
CONV_LAYERS = {
    "lenet-conv1": (1, 28, 28, 5, 5, 1, 3, False),
    "lenet-conv2": (5, 15, 15, 10, 5, 1, 3, True),
    "lenet-conv3": (10, 9, 9, 20, 5, 1, 3, True),
    "lenet-branch-conv": (5, 15, 15, 10, 3, 1, 1, True),
    "alexnet-conv1": (3, 32, 32, 32, 5, 1, 2, False),
    "alexnet-conv2": (32, 16, 16, 64, 5, 1, 2, True),
    "alexnet-conv3": (64, 8, 8, 96, 3, 1, 1, True),
    "alexnet-conv4": (96, 8, 8, 96, 3, 1, 1, True),
    "alexnet-conv5": (96, 8, 8, 64, 3, 1, 1, True),
    "alexnet-head1-conv1": (64, 8, 8, 32, 3, 1, 1, True),
    "alexnet-head1-conv2": (32, 8, 8, 32, 3, 1, 1, True),
    "alexnet-head2-conv": (96, 4, 4, 32, 3, 1, 1, True),
    "resnet-conv1": (3, 32, 32, 16, 3, 1, 0, False),
    "resnet-16": (16, 30, 30, 16, 3, 1, 1, True),
    "resnet-16to32-s2": (16, 30, 30, 32, 3, 2, 1, True),
    "resnet-32": (32, 15, 15, 32, 3, 1, 1, True),
    "resnet-32to64-s2": (32, 15, 15, 64, 3, 2, 1, True),
    "resnet-64": (64, 8, 8, 64, 3, 1, 1, True),
    "resnet-head-conv1": (16, 30, 30, 64, 5, 1, 2, True),
    "resnet-head-conv2": (64, 30, 30, 32, 3, 1, 1, True),
    "resnet-head-conv3": (32, 30, 30, 32, 3, 1, 1, True),
}

# (C, H, W, k, stride, pad) of every max pooling (cover_all=True, as the networks use it).
POOL_LAYERS = {
    "lenet-pool1": (5, 30, 30, 2, 2, 0),
    "lenet-pool2": (10, 17, 17, 2, 2, 0),
    "lenet-pool3": (20, 11, 11, 2, 2, 0),
    "lenet-branch-pool": (10, 15, 15, 2, 2, 0),
    "alexnet-pool1": (32, 32, 32, 3, 2, 0),
    "alexnet-pool2": (64, 16, 16, 3, 2, 0),
    "alexnet-pool3": (64, 8, 8, 3, 2, 0),
    "alexnet-head1-pool2": (32, 8, 8, 3, 2, 0),
    "alexnet-head2-pool1": (96, 8, 8, 3, 2, 0),
    "alexnet-head2-pool2": (32, 4, 4, 3, 2, 0),
}

# (C, H, W, k, stride, pad) of the average poolings.
AVG_LAYERS = {
    "resnet-avgpool": (64, 8, 8, 6, 1, 0),
    "resnet-subsample-16": (16, 30, 30, 1, 2, 0),
    "resnet-subsample-32": (32, 15, 15, 1, 2, 0),
}


def _random_conv_cases(n, seed):
    rng = numpy.random.RandomState(seed)
    cases = []
    while len(cases) < n:
        kh, kw = rng.randint(1, 6, size=2)
        sy, sx = rng.randint(1, 4, size=2)
        ph, pw = rng.randint(0, 3, size=2)
        H, W = rng.randint(1, 14, size=2)
        if H + 2 * ph < kh or W + 2 * pw < kw:
            continue
        C, n_out = rng.randint(1, 6, size=2)
        cases.append((int(rng.randint(1, 4)), int(C), int(H), int(W), int(n_out), (int(kh), int(kw)),
                      (int(sy), int(sx)), (int(ph), int(pw)), bool(rng.randint(0, 2))))
    return cases


def _random_pool_cases(n, seed, cover_all_choices=(True, False)):
    rng = numpy.random.RandomState(seed)
    cases = []
    while len(cases) < n:
        kh, kw = rng.randint(1, 5, size=2)
        sy, sx = rng.randint(1, 4, size=2)
        ph, pw = rng.randint(0, 3, size=2)
        if ph >= kh or pw >= kw:  # Chainer's own pooling misbehaves there; not used by any net
            continue
        H, W = rng.randint(1, 14, size=2)
        cover_all = bool(cover_all_choices[rng.randint(len(cover_all_choices))])
        if not cover_all and (H + 2 * ph < kh or W + 2 * pw < kw):
            continue
        if cover_all and (H + 2 * ph + sy - 1 < kh or W + 2 * pw + sx - 1 < kw):
            continue
        cases.append((int(rng.randint(1, 4)), int(rng.randint(1, 4)), int(H), int(W),
                      (int(kh), int(kw)), (int(sy), int(sx)), (int(ph), int(pw)), cover_all))
    return cases


def _close(actual, expected, rtol=1e-5, atol=None):
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    if atol is None:
        atol = 1e-5 * max(1.0, float(numpy.abs(expected).max()) if expected.size else 1.0)
    numpy.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def _conv_both(x, W, b, stride, pad, x_grad=True, seed=0):
    """Forward and backward through stock and fast convolution with the same upstream gradient."""
    rng = numpy.random.RandomState(seed)
    out = []
    gy = None
    for fn in (F.convolution_2d, fast.convolution_2d):
        xv = chainer.Variable(x.copy(), requires_grad=x_grad)
        Wv = chainer.Variable(W.copy())
        bv = None if b is None else chainer.Variable(b.copy())
        y = fn(xv, Wv, bv, stride=stride, pad=pad)
        if gy is None:
            gy = rng.standard_normal(y.shape).astype(x.dtype)
        y.grad = gy.copy()
        y.backward()
        out.append((y.array, xv.grad, Wv.grad, None if bv is None else bv.grad))
    return out


def _check_conv(N, C, H, W, n_out, k, stride, pad, x_grad, bias=True, seed=0):
    rng = numpy.random.RandomState(seed)
    kh, kw = k if isinstance(k, tuple) else (k, k)
    x = rng.standard_normal((N, C, H, W)).astype(numpy.float32)
    Wt = (rng.standard_normal((n_out, C, kh, kw)) / numpy.sqrt(C * kh * kw)).astype(numpy.float32)
    b = rng.standard_normal(n_out).astype(numpy.float32) if bias else None
    (ys, gxs, gWs, gbs), (yf, gxf, gWf, gbf) = _conv_both(x, Wt, b, stride, pad, x_grad, seed)
    _close(yf, ys)
    if x_grad:
        _close(gxf, gxs)
    else:
        assert gxf is None and gxs is None
    _close(gWf, gWs)
    if bias:
        _close(gbf, gbs)


@pytest.mark.parametrize("name", sorted(CONV_LAYERS))
def test_conv_layer_shapes_match_chainer(name):
    C, H, W, n_out, k, s, p, x_grad = CONV_LAYERS[name]
    _check_conv(2, C, H, W, n_out, k, s, p, x_grad)


@pytest.mark.parametrize("name", sorted(CONV_LAYERS))
def test_conv_one_sample_matches_chainer(name):
    """Batch 1 (one chunk of one sample; the shape batch-1 training steps give) matches too."""
    C, H, W, n_out, k, s, p, x_grad = CONV_LAYERS[name]
    _check_conv(1, C, H, W, n_out, k, s, p, x_grad)


@pytest.mark.parametrize("stride,pad,bias", [(1, 1, True), (2, 1, True), (1, 0, False), (3, 2, True)])
def test_conv_one_sample_equals_its_row_of_a_batch(stride, pad, bias):
    rng = numpy.random.RandomState(4)
    x = rng.standard_normal((4, 3, 9, 8)).astype(numpy.float32)
    W = rng.standard_normal((5, 3, 3, 2)).astype(numpy.float32)
    b = rng.standard_normal(5).astype(numpy.float32) if bias else None
    batched = fast.conv2d_numpy(x, W, b, stride, pad)
    for i in range(len(x)):
        one = fast.conv2d_numpy(x[i:i + 1], W, b, stride, pad)
        assert one.shape == batched[i:i + 1].shape
        numpy.testing.assert_allclose(one, batched[i:i + 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", _random_conv_cases(40, seed=1))
def test_conv_random_shapes_match_chainer(case):
    N, C, H, W, n_out, k, s, p, bias = case
    _check_conv(N, C, H, W, n_out, k, s, p, True, bias=bias)


def test_conv_many_chunks(monkeypatch):
    """Batches split into several chunks (and a short last one) give the same result."""
    monkeypatch.setattr(fast_conv, "_CHUNK_BYTES", 1)  # one sample per chunk
    _check_conv(3, 4, 7, 6, 5, 3, 1, 1, True)
    _check_conv(3, 4, 7, 6, 5, 3, 2, 1, True)
    monkeypatch.setattr(fast_conv, "_CHUNK_BYTES", 2 * 4 * 9 * 8 * 7 * 4)  # two samples a chunk
    _check_conv(5, 4, 7, 6, 5, 3, 1, 1, True)
    _check_conv(5, 4, 7, 6, 5, 3, 1, 0, True)
    _check_conv(5, 4, 7, 6, 5, (2, 3), 2, 1, True)


def test_conv_input_gradient_paths_agree():
    """gx by correlation with the flipped kernel (O <= 2 C) and by col2im give the same values."""
    rng = numpy.random.RandomState(3)
    for n_out, C in ((4, 8), (8, 4)):
        W = rng.standard_normal((n_out, C, 3, 5)).astype(numpy.float32)
        g = layout.Geom((3, C, 9, 7), W.shape, (1, 1), (1, 2))
        gy = rng.standard_normal((3, n_out, g.OH, g.OW)).astype(numpy.float32)
        _close(fast_conv.grad_x(W, gy, g, numpy.float32),
               fast_conv._col2im_grad_x(W, gy, g, numpy.float32))


def test_conv_keeps_float32():
    rng = numpy.random.RandomState(0)
    x = chainer.Variable(rng.standard_normal((2, 3, 9, 9)).astype(numpy.float32))
    W = chainer.Variable(rng.standard_normal((4, 3, 3, 3)).astype(numpy.float32))
    b = chainer.Variable(rng.standard_normal(4).astype(numpy.float32))
    for stride in (1, 2):
        y = fast.convolution_2d(x, W, b, stride=stride, pad=1)
        y.grad = numpy.ones_like(y.array)
        y.backward()
        assert y.dtype == numpy.float32
        assert x.grad.dtype == W.grad.dtype == b.grad.dtype == numpy.float32
        x.cleargrad(), W.cleargrad(), b.cleargrad()
    assert fast.conv2d_numpy(x.array, W.array, b.array, 1, 1).dtype == numpy.float32


@pytest.mark.parametrize("stride,pad,bias", [(1, 1, True), (2, 1, True), (1, 0, False),
                                             ((2, 1), (0, 2), True)])
def test_conv_gradient_check(stride, pad, bias):
    rng = numpy.random.RandomState(0)
    x = rng.standard_normal((2, 3, 6, 5))
    W = rng.standard_normal((4, 3, 3, 2))
    args = [x, W] + ([rng.standard_normal(4)] if bias else [])
    y_shape = F.convolution_2d(*args, stride=stride, pad=pad).shape
    gy = rng.standard_normal(y_shape)

    def f(*a):
        return fast.convolution_2d(*a, stride=stride, pad=pad)
    gradient_check.check_backward(f, tuple(args), gy, dtype=numpy.float64, atol=1e-6, rtol=1e-5)


def test_conv_double_backward():
    rng = numpy.random.RandomState(1)
    x, W, b = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), \
        rng.standard_normal(3)
    gy = rng.standard_normal((2, 3, 5, 5))
    ggx, ggW, ggb = (rng.standard_normal(a.shape) for a in (x, W, b))

    def f(x, W, b):
        return fast.convolution_2d(x, W, b, stride=1, pad=1)
    gradient_check.check_double_backward(f, (x, W, b), gy, (ggx, ggW, ggb), dtype=numpy.float64,
                                         atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("stride,pad", [(1, 2), (2, 1), (3, 0)])
def test_conv_numpy_kernel_equals_node(stride, pad):
    rng = numpy.random.RandomState(2)
    for n in (1, 3):
        x = rng.standard_normal((n, 3, 11, 10)).astype(numpy.float32)
        W = rng.standard_normal((5, 3, 3, 4)).astype(numpy.float32)
        b = rng.standard_normal(5).astype(numpy.float32)
        y_node = fast.convolution_2d(x, W, b, stride=stride, pad=pad).array
        numpy.testing.assert_array_equal(fast.conv2d_numpy(x, W, b, stride, pad), y_node)
        numpy.testing.assert_array_equal(fast.conv2d_numpy(x, W, None, stride, pad),
                                         fast.convolution_2d(x, W, stride=stride, pad=pad).array)


def test_conv_rejects_empty_output():
    x = numpy.zeros((1, 1, 2, 2), numpy.float32)
    with pytest.raises(ValueError):
        fast.conv2d_numpy(x, numpy.zeros((1, 1, 5, 5), numpy.float32))


# ---------------------------------------------------------------------------------------------
# Max pooling


def _relu_ints(rng, shape, low=-3, high=4):
    """Small integers after a ReLU: most windows have ties (many zeros, repeated values)."""
    return numpy.maximum(rng.randint(low, high, size=shape), 0).astype(numpy.float32)


def _expected_gx_from_indexes(x_shape, gy, indexes, ksize, stride, pad):
    """Scatter gy to the positions Chainer's argmax picked (padding positions dropped)."""
    N, C, H, W = x_shape
    kh, kw = ksize
    sy, sx = stride
    ph, pw = pad
    gx = numpy.zeros(x_shape, gy.dtype)
    n, c, oh, ow = numpy.indices(gy.shape)
    h = oh * sy + indexes // kw - ph
    w = ow * sx + indexes % kw - pw
    inside = (h >= 0) & (h < H) & (w >= 0) & (w < W)
    numpy.add.at(gx, (n[inside], c[inside], h[inside], w[inside]), gy[inside])
    return gx


def _pool_both(stock, fast_fn, x, rng, *args):
    """(y stock, y fast, gx stock, gx fast): both poolings on x, backward from one random gy."""
    xs, xf = chainer.Variable(x.copy()), chainer.Variable(x.copy())
    ys, yf = stock(xs, *args), fast_fn(xf, *args)
    gy = rng.standard_normal(ys.shape).astype(x.dtype)
    ys.grad, yf.grad = gy, gy.copy()
    ys.backward()
    yf.backward()
    return ys.array, yf.array, xs.grad, xf.grad


def _check_max_pool(x, ksize, stride, pad, cover_all, seed=0):
    rng = numpy.random.RandomState(seed)
    y_ref, idx = F.max_pooling_2d(x, ksize, stride, pad, cover_all, return_indices=True)
    xv = chainer.Variable(x.copy())
    y = fast.max_pooling_2d(xv, ksize, stride, pad, cover_all)
    numpy.testing.assert_array_equal(y.array, y_ref.array)  # bit-exact
    assert y.dtype == x.dtype
    numpy.testing.assert_array_equal(fast.max_pool_numpy(x, ksize, stride, pad, cover_all),
                                     y.array)
    # Integer upstream gradients: every sum is exact, so gx is bit-exact in any summation order and
    # equals gy scattered through Chainer's own argmax indexes.
    gy = rng.randint(1, 1 << 12, size=y.shape).astype(x.dtype)
    y.grad = gy
    y.backward()
    kh, kw = layout.pair(ksize)
    st = layout.pair(ksize if stride is None else stride)
    numpy.testing.assert_array_equal(
        xv.grad, _expected_gx_from_indexes(x.shape, gy, idx, (kh, kw), st, layout.pair(pad)))
    # And a float upstream gradient against Chainer's backward.
    _, _, gxs, gxf = _pool_both(F.max_pooling_2d, fast.max_pooling_2d, x, rng,
                                ksize, stride, pad, cover_all)
    _close(gxf, gxs, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(POOL_LAYERS))
def test_max_pool_layer_shapes_match_chainer(name):
    C, H, W, k, s, p = POOL_LAYERS[name]
    rng = numpy.random.RandomState(0)
    _check_max_pool(rng.standard_normal((2, C, H, W)).astype(numpy.float32), k, s, p, True)
    _check_max_pool(_relu_ints(rng, (2, C, H, W)), k, s, p, True)


@pytest.mark.parametrize("case", _random_pool_cases(40, seed=5))
def test_max_pool_random_shapes_match_chainer(case):
    N, C, H, W, k, s, p, cover_all = case
    rng = numpy.random.RandomState(1)
    _check_max_pool(rng.standard_normal((N, C, H, W)).astype(numpy.float32), k, s, p, cover_all)
    _check_max_pool(_relu_ints(rng, (N, C, H, W)), k, s, p, cover_all)


def test_max_pool_ties_everywhere():
    """All-equal inputs (all zeros after a ReLU, or constant): Chainer's first-index tie rule."""
    for value in (0.0, 1.5, -2.0):
        x = numpy.full((2, 3, 9, 8), value, numpy.float32)
        for k, s, p in ((3, 2, 1), (2, 2, 0), (3, 1, 1), (2, 3, 1)):
            _check_max_pool(x, k, s, p, True)
            _check_max_pool(x, k, s, p, False)


def test_max_pool_default_stride_and_float64():
    rng = numpy.random.RandomState(4)
    _check_max_pool(rng.standard_normal((2, 2, 7, 9)), 3, None, 1, True)
    _check_max_pool(_relu_ints(rng, (2, 2, 7, 9)).astype(numpy.float64), (2, 3), None, 0, False)


def test_max_pool_many_chunks(monkeypatch):
    monkeypatch.setattr(fast_pool, "_CHUNK_BYTES", 2 * 3 * 9 * 9 * 4)  # two samples a chunk
    monkeypatch.setattr(fast_pool, "_plan_cache", {})
    rng = numpy.random.RandomState(5)
    for k, s, p in ((3, 2, 0), (2, 2, 0), (3, 2, 1)):
        _check_max_pool(_relu_ints(rng, (5, 3, 9, 9)), k, s, p, True)
        _check_max_pool(rng.standard_normal((5, 3, 9, 9)).astype(numpy.float32), k, s, p, True)


@pytest.mark.parametrize("ksize,stride,pad,cover_all", [
    (3, 2, 0, True), (2, 2, 0, True), (3, 2, 1, False), ((2, 3), (1, 2), 1, True)])
def test_max_pool_gradient_check(ksize, stride, pad, cover_all):
    rng = numpy.random.RandomState(0)
    shape = (2, 2, 7, 6)
    x = (rng.permutation(numpy.prod(shape)).reshape(shape) * 0.1).astype(numpy.float64)
    y_shape = F.max_pooling_2d(x, ksize, stride, pad, cover_all).shape
    gy = rng.standard_normal(y_shape)

    def f(x):
        return fast.max_pooling_2d(x, ksize, stride, pad, cover_all)
    # Distinct values 0.1 apart: eps=1e-3 never changes an argmax.
    gradient_check.check_backward(f, x, gy, eps=1e-3, dtype=numpy.float64, atol=1e-6, rtol=1e-5)


def test_max_pool_double_backward():
    rng = numpy.random.RandomState(1)
    shape = (2, 2, 7, 6)
    x = (rng.permutation(numpy.prod(shape)).reshape(shape) * 0.1).astype(numpy.float64)
    gy = rng.standard_normal(F.max_pooling_2d(x, 3, 2).shape)
    ggx = rng.standard_normal(shape)

    def f(x):
        y = fast.max_pooling_2d(x, 3, 2)
        return y * y  # make the second derivative non-trivial
    gradient_check.check_double_backward(f, x, gy, ggx, eps=1e-3, dtype=numpy.float64,
                                         atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Average pooling


def _check_avg_pool(x, ksize, stride, pad, seed=0):
    rng = numpy.random.RandomState(seed)
    ys, yf, gxs, gxf = _pool_both(F.average_pooling_2d, fast.average_pooling_2d, x, rng,
                                  ksize, stride, pad)
    _close(yf, ys, rtol=1e-6)
    numpy.testing.assert_array_equal(fast.avg_pool_numpy(x, ksize, stride, pad), yf)
    _close(gxf, gxs, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(AVG_LAYERS))
def test_avg_pool_layer_shapes_match_chainer(name):
    C, H, W, k, s, p = AVG_LAYERS[name]
    _check_avg_pool(numpy.random.RandomState(0).standard_normal((2, C, H, W)).astype(
        numpy.float32), k, s, p)


@pytest.mark.parametrize("case", _random_pool_cases(30, seed=7, cover_all_choices=(False,)))
def test_avg_pool_random_shapes_match_chainer(case):
    N, C, H, W, k, s, p, _ = case
    _check_avg_pool(numpy.random.RandomState(2).standard_normal((N, C, H, W)).astype(
        numpy.float32), k, s, p)


@pytest.mark.parametrize("ksize,stride,pad", [(6, 1, 0), (1, 2, 0), (3, 2, 1), ((2, 3), (2, 1), 1)])
def test_avg_pool_gradient_check(ksize, stride, pad):
    rng = numpy.random.RandomState(0)
    x = rng.standard_normal((2, 2, 8, 7))
    gy = rng.standard_normal(F.average_pooling_2d(x, ksize, stride, pad).shape)

    def f(x):
        return fast.average_pooling_2d(x, ksize, stride, pad)
    gradient_check.check_backward(f, x, gy, dtype=numpy.float64, atol=1e-6, rtol=1e-5)


def test_avg_pool_many_chunks(monkeypatch):
    monkeypatch.setattr(fast_pool, "_CHUNK_BYTES", 2 * 3 * 9 * 9 * 4)
    monkeypatch.setattr(fast_pool, "_plan_cache", {})
    rng = numpy.random.RandomState(6)
    for k, s, p in ((6, 1, 0), (3, 2, 1), (1, 2, 0)):
        _check_avg_pool(rng.standard_normal((5, 3, 9, 9)).astype(numpy.float32), k, s, p)


def test_pool_keeps_float32():
    x = chainer.Variable(numpy.random.RandomState(0).standard_normal((2, 3, 8, 8)).astype(
        numpy.float32))
    for y in (fast.max_pooling_2d(x, 3, 2), fast.average_pooling_2d(x, 3, 2, 1)):
        y.grad = numpy.ones_like(y.array)
        x.cleargrad()
        y.backward()
        assert y.dtype == numpy.float32 and x.grad.dtype == numpy.float32


# ---------------------------------------------------------------------------------------------
# The switch: CuPy arrays, or the flag off, run stock Chainer.


def _switch_cases():
    import chainer.links as L

    from branchynet.model.layers import AvgPool, MaxPool
    numpy.random.seed(0)
    return [L.Convolution2D(3, 4, 3, pad=1), MaxPool(3, 2), AvgPool(3, 2, 1)]


def test_switch_off_runs_stock_chainer(monkeypatch):
    from branchynet.fast import switch
    x = numpy.random.RandomState(0).standard_normal((2, 3, 9, 9)).astype(numpy.float32)
    for layer in _switch_cases():
        called = []
        for name in ("convolution_2d", "max_pooling_2d", "average_pooling_2d"):
            monkeypatch.setattr(switch, name, lambda *a, name=name: called.append(name))
        with chainer.using_config("branchynet_fast_cpu", False):
            y = switch.apply(layer, x)
        assert not called and isinstance(y, chainer.Variable)
        switch.apply(layer, x)
        assert len(called) == 1
        monkeypatch.undo()


def test_gpu_inputs_defer_to_chainer():
    cupy = pytest.importorskip("cupy")
    if not chainer.backends.cuda.available:
        pytest.skip("no CUDA device available to Chainer")
    from branchynet.fast import switch
    x = numpy.random.RandomState(0).standard_normal((2, 3, 9, 9)).astype(numpy.float32)
    for layer in _switch_cases():
        expected = layer(x).array
        if isinstance(layer, chainer.Link):
            layer.to_device("@cupy:0")
        xv = chainer.Variable(cupy.asarray(x))
        y = switch.apply(layer, xv)
        assert isinstance(y.array, cupy.ndarray)
        numpy.testing.assert_allclose(cupy.asnumpy(y.array), expected, rtol=1e-4, atol=1e-4)
        y.grad = cupy.ones_like(y.array)
        y.backward()  # gradients flow through Chainer's GPU nodes
        assert isinstance(xv.grad, cupy.ndarray)


def test_non_contiguous_inputs():
    rng = numpy.random.RandomState(8)
    x = rng.standard_normal((7, 9, 3, 2)).astype(numpy.float32).transpose(3, 2, 1, 0)  # (2,3,9,7)
    assert not x.flags.c_contiguous
    W = rng.standard_normal((4, 3, 3, 3)).astype(numpy.float32)
    _close(fast.convolution_2d(x, W, stride=1, pad=1).array, F.convolution_2d(x, W, pad=1).array)
    _close(fast.conv2d_numpy(x, W, None, 2, 1), F.convolution_2d(x, W, stride=2, pad=1).array)
    numpy.testing.assert_array_equal(fast.max_pool_numpy(x, 3, 2), F.max_pooling_2d(x, 3, 2).array)
    _close(fast.avg_pool_numpy(x, 3, 2, 1), F.average_pooling_2d(x, 3, 2, 1).array, rtol=1e-6)


# ------------------------------------------------------------------ batch split over threads
@pytest.fixture
def split_everything(monkeypatch):
    """Every kernel splits its batch over 3 threads; yields the list of splits that ran."""
    monkeypatch.setattr(fast_threads, "_MIN_BYTES_PER_PART", 1)
    previous = fast_threads.set_threads(3)
    splits = []
    run = fast_threads.run

    def spy(fn, ranges):
        splits.append(list(ranges))
        return run(fn, ranges)
    monkeypatch.setattr(fast_threads, "run", spy)
    yield splits
    fast_threads.set_threads(previous)


def test_thread_parts_cover_the_batch(monkeypatch):
    previous = fast_threads.set_threads(3)
    try:
        assert fast_threads.parts(10, 1) == [(0, 10)]  # too little work to split
        monkeypatch.setattr(fast_threads, "_MIN_BYTES_PER_PART", 1)
        assert fast_threads.parts(10, 1) == [(0, 3), (3, 6), (6, 10)]
        assert fast_threads.parts(2, 1) == [(0, 1), (1, 2)]
        fast_threads.set_threads(1)
        assert fast_threads.parts(10, 1) == [(0, 10)]
    finally:
        fast_threads.set_threads(previous)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="positive integer"):
            fast_threads.set_threads(bad)
    assert fast_threads.get_threads() == previous


def test_thread_count_from_environment(monkeypatch):
    monkeypatch.setenv("BRANCHYNET_CPU_THREADS", "3")
    assert fast_threads._default_threads() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("BRANCHYNET_CPU_THREADS", bad)
        with pytest.raises(ValueError, match="BRANCHYNET_CPU_THREADS"):
            fast_threads._default_threads()


@pytest.mark.parametrize("stride,pad", [(1, 1), (1, 3), (2, 1)])
def test_conv_split_over_threads_matches_chainer(split_everything, stride, pad):
    _check_conv(7, 5, 9, 8, 10, 3, stride, pad, True)  # col2im input gradient (O = 2 C)
    _check_conv(7, 6, 9, 8, 4, 5, stride, pad, True)  # correlation input gradient (O < C)
    _check_conv(7, 1, 9, 8, 5, 5, stride, pad, False)  # per-sample weight-gradient GEMMs (K <= 64)
    assert split_everything and all(len(r) == 3 for r in split_everything)


def test_conv_split_equals_one_thread(split_everything):
    """Forward and input gradient: each slice of a split batch is the one-thread computation on
    that slice alone, bit for bit."""
    rng = numpy.random.RandomState(2)
    x = rng.standard_normal((5, 4, 8, 8)).astype(numpy.float32)
    W = rng.standard_normal((9, 4, 3, 3)).astype(numpy.float32)
    gy = rng.standard_normal((5, 9, 8, 8)).astype(numpy.float32)

    def both(x, gy):
        g = layout.Geom(x.shape, W.shape, (1, 1), (1, 1))
        return fast_conv._forward(x, W, None, g), fast_conv._col2im_grad_x(W, gy, g, x.dtype)
    split = both(x, gy)
    ranges = split_everything[0]
    assert len(ranges) == 3
    fast_threads.set_threads(1)
    for n0, n1 in ranges:
        for a, b in zip(split, both(x[n0:n1], gy[n0:n1])):
            numpy.testing.assert_array_equal(a[n0:n1], b)


def test_pools_split_over_threads_match_chainer(split_everything):
    rng = numpy.random.RandomState(6)
    for k, s, p in ((2, 2, 0), (3, 2, 1)):
        _check_max_pool(_relu_ints(rng, (5, 3, 9, 9)), k, s, p, True)
        _check_max_pool(rng.standard_normal((5, 3, 9, 9)).astype(numpy.float32), k, s, p, True)
    x = rng.standard_normal((5, 3, 8, 8)).astype(numpy.float32)
    ys, yf, gxs, gxf = _pool_both(F.average_pooling_2d, fast.average_pooling_2d, x, rng, 3, 2, 1)
    _close(yf, ys)
    _close(gxf, gxs)
    assert len(split_everything) >= 6 and all(len(r) == 3 for r in split_everything)


def test_thread_split_waits_for_workers_and_raises():
    """An error in any slice reaches the caller, after every worker has finished."""
    done = []

    def work(n0, n1):
        if n0 == 0:
            raise ValueError("slice %d-%d failed" % (n0, n1))
        done.append(n0)
        return n0
    with pytest.raises(ValueError, match="slice 0-2 failed"):
        fast_threads.run(work, [(0, 2), (2, 4), (4, 6)])
    assert sorted(done) == [2, 4]
    assert fast_threads.run(lambda a, b: b - a, [(0, 2), (2, 5)]) == [2, 3]


def test_blas_one_thread_restores_the_count():
    before = fast.blas.threads()
    if before is None:
        pytest.skip("numpy's BLAS is not an OpenBLAS this module can reach")
    with fast.blas.one_thread():
        assert fast.blas.threads() == 1
        with fast.blas.one_thread():
            assert fast.blas.threads() == 1
        assert fast.blas.threads() == 1
    assert fast.blas.threads() == before
    previous = fast.blas.set_threads(1)
    try:
        assert previous == before and fast.blas.threads() == 1
    finally:
        fast.blas.set_threads(before)


def test_training_step_keeps_blas_on_one_thread_while_kernels_split(monkeypatch):
    """fast.cpu_scope: one BLAS thread for the whole fast step when the kernels use several
    threads; BLAS untouched for stock Chainer or one kernel thread; restored after."""
    import networks
    from branchynet.training.optimizers import adam
    if fast.blas.threads() is None:
        pytest.skip("numpy's BLAS is not an OpenBLAS this module can reach")
    before = fast.blas.set_threads(2)
    previous = fast_threads.set_threads(2)
    try:
        net = networks.build("b-lenet")
        optimizer = adam()(net)
        seen = []
        update = optimizer.update
        monkeypatch.setattr(optimizer, "update",
                            lambda *a: (seen.append(fast.blas.threads()), update(*a)))
        x = numpy.random.RandomState(0).rand(8, 1, 28, 28).astype(numpy.float32)
        t = numpy.arange(8, dtype=numpy.int32) % 10
        net.train(x, t, optimizer)
        with chainer.using_config("branchynet_fast_cpu", False):
            net.train(x, t, optimizer)
        fast_threads.set_threads(1)
        net.train(x, t, optimizer)
        assert seen == [1, 2, 2]
        assert fast.blas.threads() == 2
    finally:
        fast_threads.set_threads(previous)
        fast.blas.set_threads(before)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_thread_split_works_in_a_forked_child(split_everything):
    """A child forked after the workers started gets workers of its own, not a dead pool."""
    import os
    rng = numpy.random.RandomState(7)
    x = rng.standard_normal((6, 3, 8, 8)).astype(numpy.float32)
    W = rng.standard_normal((4, 3, 3, 3)).astype(numpy.float32)
    expected = fast.conv2d_numpy(x, W, None, 1, 1)  # starts the parent's workers
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: writes 1 only if the split ran and agreed; killed if it hangs
        import signal
        signal.alarm(20)
        try:
            ok = numpy.array_equal(fast.conv2d_numpy(x, W, None, 1, 1), expected)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and status == 0
