"""Linear layers with few outputs on vector code (``fast/linear.py``): equal to the float64
product within float32 rounding for any reduction length (a masked last vector) and any batch
(steps of several samples, then single ones), in both vector geometries, the same split over
threads; too many outputs refused; a batch program that picks it predicts as stock Chainer."""
import numpy
import pytest

import chainer
import chainer.links as L

from branchynet.fast import batch, calibration, linear, threads, vector_ir

pytestmark = pytest.mark.skipif(vector_ir.why_not() is not None,
                                reason="vector code unavailable: %s" % vector_ir.why_not())

WIDTHS = [w for w in (8, 16) if w <= (vector_ir.vector_width() or 0)]


def _operands(N, K, outputs, seed=0):
    rng = numpy.random.default_rng(seed)
    return (rng.standard_normal((N, K)).astype(numpy.float32),
            rng.standard_normal((outputs, K)).astype(numpy.float32),
            rng.standard_normal(outputs).astype(numpy.float32))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("N, K, outputs", [(1000, 640, 10), (7, 84, 10), (5, 33, 3), (3, 5, 1),
                                     (9, 16, 4), (2, 640, 12), (4, 16, 20)])
def test_equals_the_float64_product(width, N, K, outputs):
    x, W, b = _operands(N, K, outputs)
    if linear.rows_per_step(outputs, width) < 1:
        with pytest.raises(ValueError, match="too many"):
            linear.linear(x, W, b, width=width)
        return
    want = x.astype(numpy.float64) @ W.T.astype(numpy.float64)
    tol = 1e-6 * numpy.sqrt(K) * numpy.abs(x).max() * numpy.abs(W).max()
    numpy.testing.assert_allclose(linear.linear(x, W, None, width=width), want, rtol=0, atol=tol)
    numpy.testing.assert_allclose(linear.linear(x, W, b, width=width), want + b, rtol=0,
                                  atol=tol)


def test_each_output_reads_only_its_own_row_and_sample():
    """One nonzero weight and one nonzero input value: exactly one output is nonzero."""
    x = numpy.zeros((5, 37), numpy.float32)
    W = numpy.zeros((6, 37), numpy.float32)
    x[3, 36], W[4, 36] = 2.0, 3.0
    got = linear.linear(x, W)
    want = numpy.zeros((5, 6), numpy.float32)
    want[3, 4] = 6.0
    numpy.testing.assert_array_equal(got, want)


def test_thread_split_changes_nothing():
    x, W, b = _operands(1024, 200, 10, seed=1)
    before = threads.set_threads(1)
    try:
        one = linear.linear(x, W, b)
        threads.set_threads(2)
        assert len(threads.parts(1024, 200 * 4)) == 2
        two = linear.linear(x, W, b)
    finally:
        threads.set_threads(before)
    numpy.testing.assert_array_equal(one, two)


def test_applies_to_few_float32_outputs_only():
    x, W, _ = _operands(4, 8, 10)
    assert linear.applies(x, W)
    assert not linear.applies(x.astype(numpy.float64), W.astype(numpy.float64))
    assert not linear.applies(x, W[:, :7])
    assert not linear.applies(x, numpy.zeros((40, 8), numpy.float32))
    assert linear.rows_per_step(10, 16) == 2 and linear.rows_per_step(10, 8) == 1
    assert linear.rows_per_step(31, 16) == 0 and linear.rows_per_step(15, 8) == 0
    if vector_ir.vector_width() == 16:  # one sample a step still applies
        assert linear.applies(x, numpy.zeros((15, 8), numpy.float32))


@pytest.mark.parametrize("path", ["dots", "blas"])
def test_batch_linear_follows_the_choice(path, monkeypatch):
    """The batch program's linear function runs the chosen path and gives Chainer's output."""
    layer = L.Linear(30, 10)
    x = numpy.random.default_rng(2).standard_normal((12, 3, 10)).astype(numpy.float32)
    ran = []
    real = linear.linear
    monkeypatch.setattr(linear, "linear", lambda *a, **k: ran.append(1) or real(*a, **k))
    monkeypatch.setattr(calibration, "choose", lambda key, candidates, default: path)
    got = batch.numpy_function(layer)(x)
    with chainer.using_config("train", False):
        want = layer(x).array
    numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert bool(ran) == (path == "dots")
