"""The compiled training kernels (``branchynet.fast.jit_train``) against stock Chainer: max pooling
with its winners and fused ReLU, and LRN, values and gradients."""
import numpy
import pytest

import chainer
import chainer.functions as F

import branchynet  # noqa: F401  (before chainer)
from branchynet.fast import jit, lrn, pooling_nodes, threads

pytestmark = pytest.mark.skipif(not jit.available(), reason="Numba is off: %s" % jit.why_not())


def _grads(fn, x, gy):
    xv = chainer.Variable(x.copy())
    y = fn(xv)
    y.grad = gy.copy()
    y.backward()
    return y.array, xv.grad


@pytest.mark.parametrize("k,s,p", [(3, 2, 0), (2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 1)])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_max_pool_with_relu_equals_relu_of_chainers_pool(k, s, p, dtype):
    """Ties, zeros and negative windows; integer gradients, so every sum is exact."""
    rng = numpy.random.RandomState(k * 10 + s)
    x = rng.randint(-3, 4, size=(3, 4, 9, 8)).astype(dtype)
    ref_y = F.relu(F.max_pooling_2d(x, k, s, p)).array
    gy = rng.randint(1, 1 << 10, size=ref_y.shape).astype(dtype)
    y, gx = _grads(lambda v: pooling_nodes.max_pooling_2d(v, k, s, p, relu=True), x, gy)
    y_ref, gx_ref = _grads(lambda v: F.relu(F.max_pooling_2d(v, k, s, p)), x, gy)
    numpy.testing.assert_array_equal(y, y_ref)
    numpy.testing.assert_array_equal(gx, gx_ref)
    assert y.dtype == dtype and gx.dtype == dtype


def test_max_pool_propagates_nan_as_chainer():
    x = numpy.arange(2 * 2 * 6 * 6, dtype=numpy.float32).reshape(2, 2, 6, 6)
    x[0, 1, 2, 3] = numpy.nan
    for relu in (False, True):
        y = pooling_nodes.max_pooling_2d(x, 3, 2, relu=relu).array
        ref = F.max_pooling_2d(x, 3, 2).array
        numpy.testing.assert_array_equal(y, ref)  # assert_array_equal treats NaN == NaN
        assert numpy.isnan(y).sum() == numpy.isnan(ref).sum() > 0


def test_max_pool_fused_relu_needs_the_compiled_kernels():
    previous = jit.set_enabled(False)
    try:
        with pytest.raises(RuntimeError, match="compiled kernels"):
            pooling_nodes.max_pooling_2d(numpy.ones((1, 1, 4, 4), numpy.float32), 2, relu=True)
    finally:
        jit.set_enabled(previous)


def test_max_pool_threads_split_gives_the_one_thread_result():
    rng = numpy.random.RandomState(0)
    x = rng.standard_normal((64, 8, 16, 16)).astype(numpy.float32)
    gy = rng.standard_normal((64, 8, 8, 8)).astype(numpy.float32)
    results = []
    for n in (1, 2):
        previous = threads.set_threads(n)
        try:
            results.append(_grads(lambda v: pooling_nodes.max_pooling_2d(v, 3, 2, relu=True),
                                  x, gy))
        finally:
            threads.set_threads(previous)
    numpy.testing.assert_array_equal(results[0][0], results[1][0])
    numpy.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("n,k,alpha,beta", [(3, 2.0, 5e-5, 0.75), (5, 1.0, 1e-2, 0.75),
                                            (4, 2.0, 1e-3, 0.6), (1, 1.5, 0.1, 0.5)])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_lrn_matches_chainer(n, k, alpha, beta, dtype):
    """Large inputs, so that the normalisation is far from 1 and its gradient's second term
    matters."""
    rng = numpy.random.RandomState(n)
    x = (rng.standard_normal((3, 7, 5, 6)) * 20).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    y, gx = _grads(lambda v: lrn.local_response_normalization(v, n, k, alpha, beta), x, gy)
    y_ref, gx_ref = _grads(lambda v: F.local_response_normalization(v, n, k, alpha, beta), x, gy)
    tol = 2e-6 if dtype == numpy.float32 else 1e-12
    numpy.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    numpy.testing.assert_allclose(gx, gx_ref, rtol=tol * 10, atol=tol * numpy.abs(gx_ref).max())
    assert y.dtype == dtype and gx.dtype == dtype
    assert not numpy.allclose(gx_ref, gy * (k ** -beta), rtol=1e-3)  # the window term is not tiny


def test_lrn_threads_split_gives_the_one_thread_result():
    rng = numpy.random.RandomState(1)
    x = rng.standard_normal((64, 32, 8, 8)).astype(numpy.float32) * 10
    gy = rng.standard_normal(x.shape).astype(numpy.float32)
    results = []
    for n in (1, 2):
        previous = threads.set_threads(n)
        try:
            results.append(_grads(lambda v: lrn.local_response_normalization(v, 3, 2.0, 5e-5,
                                                                              0.75), x, gy))
        finally:
            threads.set_threads(previous)
    numpy.testing.assert_array_equal(results[0][0], results[1][0])
    numpy.testing.assert_array_equal(results[0][1], results[1][1])
