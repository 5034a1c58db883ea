"""2 x 2 stride-2 inference max pooling on vector code (``fast/halving.py``): equal to Chainer's
max pooling (and the ReLU after it) on contiguous inputs and on a convolution's full-row output,
even and odd sizes, with and without cover_all, in both vector geometries, split over threads or
not; NaN as numpy.maximum gives it; other poolings are refused."""
import numpy
import pytest

import chainer.functions as F

from branchynet.fast import conv, halving, threads, vector_ir

pytestmark = pytest.mark.skipif(vector_ir.why_not() is not None,
                                reason="vector code unavailable: %s" % vector_ir.why_not())

WIDTHS = [w for w in (8, 16) if w <= (vector_ir.vector_width() or 0)]


def _full_row_view(rng, shape, pitch):
    """x of ``shape`` laid out as a convolution's output: rows ``pitch`` apart, planes back to
    back."""
    N, C, H, W = shape
    buf = rng.standard_normal((N, C, H * pitch)).astype(numpy.float32)
    return buf.reshape(N, C, H, pitch)[..., :W]


def _chainer(x, cover_all, relu):
    y = F.max_pooling_2d(numpy.ascontiguousarray(x), 2, 2, 0, cover_all=cover_all).array
    return numpy.maximum(y, 0) if relu else y


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("shape,pitch", [
    ((3, 5, 30, 30), 34),  # B-LeNet's exit-1 input: a full-row convolution output
    ((2, 10, 15, 15), 17),  # odd: a partial last row and column under cover_all
    ((4, 3, 11, 8), 8),     # contiguous, odd height only
    ((1, 2, 2, 37), 40),    # one output row, more than a vector of outputs
])
@pytest.mark.parametrize("cover_all", [True, False])
@pytest.mark.parametrize("relu", [True, False])
def test_equals_chainer(width, shape, pitch, cover_all, relu):
    x = _full_row_view(numpy.random.default_rng(0), shape, pitch)
    assert halving.applies(x, 2, None, 0)
    got = halving.max_pool(x, cover_all, relu, width)
    numpy.testing.assert_array_equal(got, _chainer(x, cover_all, relu))


def test_thread_split_changes_nothing():
    x = _full_row_view(numpy.random.default_rng(1), (64, 5, 30, 30), 34)
    before = threads.set_threads(1)
    try:
        one = numpy.array(halving.max_pool(x, True, True))
        threads.set_threads(2)
        assert len(threads.parts(64, 5 * (34 * 30 + 15 * 34) * 4)) == 2
        two = numpy.array(halving.max_pool(x, True, True))
    finally:
        threads.set_threads(before)
    numpy.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("width", WIDTHS)
def test_nan_propagates_as_numpy_maximum(width):
    """A NaN anywhere in a window, in the vector part or the scalar edges, makes that output NaN
    (as numpy.maximum over the window would), with or without the ReLU."""
    x = numpy.arange(2 * 9 * 40, dtype=numpy.float32).reshape(1, 2, 9, 40)
    for y0, x0 in [(0, 0), (3, 17), (8, 39), (4, 38)]:
        x[0, 1, y0, x0] = numpy.nan
    for relu in (True, False):
        got = halving.max_pool(x, True, relu, width)
        expected = numpy.zeros((1, 2, 5, 20), dtype=bool)
        for y0, x0 in [(0, 0), (3, 17), (8, 39), (4, 38)]:
            expected[0, 1, y0 // 2, x0 // 2] = True
        numpy.testing.assert_array_equal(numpy.isnan(got), expected)


@pytest.mark.parametrize("width", WIDTHS)
def test_nan_propagates_in_rows_of_one_vector(width):
    """The same where each output row is one vector (planes at most ``width`` wide, the
    row-by-row path): NaN at the edges of a window and of the plane."""
    x = numpy.arange(3 * 9 * 15, dtype=numpy.float32).reshape(1, 3, 9, 15) - 200
    spots = [(0, 0, 0), (1, 3, 14), (2, 8, 7), (1, 5, 6)]
    for c, y0, x0 in spots:
        x[0, c, y0, x0] = numpy.nan
    for relu in (True, False):
        got = halving.max_pool(x, True, relu, width)
        numpy.testing.assert_array_equal(got, _chainer(x, True, relu))
        assert numpy.isnan(got).sum() == len(spots)


def test_a_channel_slice_pools_its_own_planes():
    """One channel of a wider array: its planes lie a whole sample apart, not a plane apart."""
    wide = _full_row_view(numpy.random.default_rng(3), (4, 3, 6, 6), 7)
    x = wide[:, 1:2]
    numpy.testing.assert_array_equal(halving.max_pool(x, True, False), _chainer(x, True, False))


def test_the_flat_view_spans_exactly_the_planes():
    buf = numpy.zeros(2 * 3 * 5 * 9 + 7, numpy.float32)
    x = buf[:2 * 3 * 5 * 9].reshape(2, 3, 5, 9)[:, :, :4, :6]  # planes 45 apart, rows 9 apart
    flat, pitch, row = halving._flat_planes(x)
    assert (pitch, row) == (45, 9)
    assert flat.size == 5 * 45 + 3 * 9 + 6  # up to the last plane's last value
    assert numpy.shares_memory(flat, buf) and flat.__array_interface__["data"][0] == \
        buf.__array_interface__["data"][0]


def test_other_poolings_and_layouts_are_refused():
    x = numpy.zeros((2, 3, 8, 8), numpy.float32)
    assert halving.applies(x, 2, 2, 0) and halving.applies(x, (2, 2), None, (0, 0))
    assert not halving.applies(x, 3, 2, 0)  # overlapping windows
    assert not halving.applies(x, 2, 1, 0)
    assert not halving.applies(x, 2, 2, 1)  # padding
    assert not halving.applies(x.astype(numpy.float64), 2, 2, 0)
    assert not halving.applies(x[:, :, :, ::2], 2, 2, 0)  # columns not adjacent
    assert not halving.applies(x.transpose(1, 0, 2, 3), 2, 2, 0)  # planes not evenly spaced
    assert not halving.applies(x[:, :, ::-1], 2, 2, 0)  # rows backwards
    assert not halving.applies(x[:, :, :1], 2, 2, 0) and not halving.applies(x[..., :1], 2, 2, 0)
    strided = numpy.lib.stride_tricks.as_strided
    big = numpy.zeros(4096, numpy.float32)
    assert not halving.applies(strided(big, (2, 3, 8, 8), (3 * 32 * 4, 32 * 4, 4 * 4, 4)), 2, 2, 0)
    assert not halving.applies(strided(big, (2, 3, 8, 8), (3 * 72 * 4, 72 * 4, 8 * 4 + 2, 4)), 2,
                               2, 0)  # rows not a whole number of values apart
    assert not halving.applies(strided(big, (2, 3, 8, 8), (3 * 40 * 4, 40 * 4, 8 * 4, 4)), 2, 2,
                               0)  # planes 40 apart hold 64 values


def test_one_sample_of_a_channel_slice_pools_alike():
    """One sample: the sample stride says nothing about where planes lie (here 3 planes apart for
    2 channels), and must not refuse or misplace them."""
    wide = _full_row_view(numpy.random.default_rng(4), (2, 3, 6, 6), 7)
    x = wide[:1, :2]
    assert halving.applies(x, 2, 2, 0)
    numpy.testing.assert_array_equal(halving.max_pool(x, False, True), _chainer(x, False, True))


def test_the_batch_program_pools_here(monkeypatch):
    """A B-LeNet pooling in a batch program runs this kernel, fed by a convolution's output."""
    from branchynet.fast import batch
    from branchynet.model.layers import MaxPool
    calls = []
    real = halving.max_pool
    monkeypatch.setattr(halving, "max_pool", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((6, 1, 28, 28)).astype(numpy.float32)
    W = rng.standard_normal((5, 1, 5, 5)).astype(numpy.float32)
    h = conv.conv2d_numpy(x, W, None, 1, 3)
    got = batch.max_pool_function(MaxPool(2, 2), relu=True)(h)
    assert calls == [1]
    numpy.testing.assert_array_equal(got, _chainer(h, True, True))
