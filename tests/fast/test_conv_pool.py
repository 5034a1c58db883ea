"""Convolution fused with the 2 x 2 max pooling after it (``fast/conv_pool.py``) and the pooled
outputs laid out for the convolution that reads them (``halving.max_pool(..., into=)``,
``layout.filled``): bit for bit the unfused kernels' values, Chainer's within float32 rounding,
zero padding written in full, nothing written past a plane, read in place by the next
convolution, the same on one thread or two."""
import numpy
import pytest

import chainer.functions as F

from branchynet.fast import conv, conv_pool, halving, layout, linear, microkernel, threads, vector_ir

pytestmark = pytest.mark.skipif(vector_ir.why_not() is not None,
                                reason="vector code unavailable: %s" % vector_ir.why_not())

WIDTHS = [w for w in (8, 16) if w <= (vector_ir.vector_width() or 0)]

# (N, C, H, W, O, k, pad): B-LeNet's four convolutions, and an odd map with one output channel.
SHAPES = [(7, 1, 28, 28, 5, 5, 3), (5, 5, 15, 15, 10, 3, 1), (3, 5, 15, 15, 10, 5, 3),
          (3, 10, 9, 9, 20, 5, 3), (2, 3, 7, 11, 1, 3, 1)]


def _operands(shape, seed=0):
    N, C, H, W, out, k, _ = shape
    rng = numpy.random.default_rng(seed)
    return (rng.standard_normal((N, C, H, W)).astype(numpy.float32),
            rng.standard_normal((out, C, k, k)).astype(numpy.float32),
            rng.standard_normal(out).astype(numpy.float32))


def _unfused(x, W, b, pad, cover_all, relu, width):
    g = layout.geom(x.shape, W.shape, (1, 1), (pad, pad))
    ypad = numpy.empty((g.N, g.O, g.L), numpy.float32)
    microkernel.conv_forward(layout.padded(x, g, microkernel.TAIL), W, b, ypad, g, g.N, width,
                             unpacked=True)
    return halving.max_pool(layout.output(ypad, g), cover_all, relu, width)


def _reader(k, pad, out_channels=4):
    """``into`` for a k x k convolution with this padding reading the pooled output."""
    return lambda shape: layout.geom(shape, (out_channels, shape[1], k, k), (1, 1), (pad, pad))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cover_all", [True, False])
@pytest.mark.parametrize("relu", [True, False])
def test_equals_unfused_bitwise_and_chainer(width, shape, cover_all, relu):
    x, W, b = _operands(shape)
    pad = shape[-1]
    got = conv_pool.conv_pool(x, W, b, pad, cover_all, relu, width=width)
    numpy.testing.assert_array_equal(got, _unfused(x, W, b, pad, cover_all, relu, width))
    want = F.max_pooling_2d(F.convolution_2d(x, W, b, pad=pad), 2, 2, cover_all=cover_all).array
    numpy.testing.assert_allclose(got, numpy.maximum(want, 0) if relu else want,
                                  rtol=1e-5, atol=1e-5)
    assert got.flags.c_contiguous


@pytest.mark.parametrize("width", WIDTHS)
def test_inputs_read_in_place_or_copied_alike(width):
    """Unpadded inputs are copied sample by sample into the kernel's own padded buffer, read
    where they lie whatever their strides (a full-row convolution output, a channel slice, a
    batch slice, another convolution's padded layout), or copied whole when their columns are
    not contiguous: every way gives the contiguous input's output, bit for bit."""
    rng = numpy.random.default_rng(5)
    base = rng.standard_normal((6, 7, 15, 19)).astype(numpy.float32)
    filled = conv_pool.conv_pool(rng.standard_normal((6, 2, 30, 30)).astype(numpy.float32),
                                 rng.standard_normal((5, 2, 3, 3)).astype(numpy.float32), None,
                                 1, False, False, into=_reader(5, 2), width=width)
    for x in (base[:, 1:6, :, :15], base[2:5, :5, :, :15], filled,
              base[:, :5, :, ::2][..., :8], base[:, :5][:, :, ::-1, :15]):
        W = rng.standard_normal((10, 5, 3, 3)).astype(numpy.float32)
        for into in (None, _reader(3, 1)):
            got = conv_pool.conv_pool(x, W, None, 1, True, True, into=into, width=width)
            want = conv_pool.conv_pool(numpy.ascontiguousarray(x), W, None, 1, True, True,
                                       width=width)
            numpy.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("width", WIDTHS)
def test_rows_run_as_the_gathered_samples(width):
    """``rows`` (early exit's samples in flight) gives x[rows]'s output bit for bit, read where
    the samples lie in every layout above (gathered first where the columns are not contiguous),
    in any order, repeated, with a classifier, and split over two threads."""
    rng = numpy.random.default_rng(8)
    base = rng.standard_normal((40, 7, 15, 19)).astype(numpy.float32)
    filled = conv_pool.conv_pool(rng.standard_normal((40, 2, 30, 30)).astype(numpy.float32),
                                 rng.standard_normal((5, 2, 3, 3)).astype(numpy.float32), None,
                                 1, False, False, into=_reader(5, 2), width=width)
    W = rng.standard_normal((10, 5, 3, 3)).astype(numpy.float32)
    head = rng.standard_normal((10, 10 * 8 * 8)).astype(numpy.float32)
    before = threads.get_threads()
    try:
        for count in (1, 2):
            threads.set_threads(count)
            assert len(threads.parts(157, (5 * 17 * 17 + 10 * 15 * 17) * 4)) == count
            for x in (base[:, 1:6, :, :15], filled, base[:, :5, :, ::2][..., :8],
                      base[:, :5][:, :, ::-1, :15]):
                for rows in ([39, 0, 7, 7, 21] + list(range(1, 38, 2)) * 8, [len(x) - 1, 3]):
                    rows = numpy.array(rows)
                    for into in (None, _reader(3, 1)):
                        got = conv_pool.conv_pool(x, W, None, 1, True, True, into=into,
                                                  width=width, rows=rows)
                        want = conv_pool.conv_pool(x[rows], W, None, 1, True, True, into=into,
                                                   width=width)
                        numpy.testing.assert_array_equal(got, want)
                    if x.shape[2:] == (15, 15):
                        numpy.testing.assert_array_equal(
                            conv_pool.conv_pool(x, W, None, 1, True, True, width=width,
                                                classifier=(head, None), rows=rows),
                            conv_pool.conv_pool(x[rows], W, None, 1, True, True, width=width,
                                                classifier=(head, None)))
    finally:
        threads.set_threads(before)


@pytest.mark.parametrize("width", WIDTHS)
def test_nan_in_an_input_reaches_the_outputs_it_touches(width):
    """A NaN input makes NaN every convolution output that reads it, and so every pooled output
    over those: as the unfused kernels give it."""
    x, W, b = _operands(SHAPES[0])
    x[2, 0, 10, 10] = numpy.nan
    for relu in (True, False):
        got = conv_pool.conv_pool(x, W, b, 3, True, relu, width=width)
        numpy.testing.assert_array_equal(got, _unfused(x, W, b, 3, True, relu, width))
        assert numpy.isnan(got[2]).sum() == 5 * 9 and not numpy.isnan(got[[0, 1, 3]]).any()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("cover_all", [True, False])
@pytest.mark.parametrize("relu", [True, False])
def test_a_classifier_reads_the_pooled_maps_as_linear_does(width, cover_all, relu):
    """With a classifier (B-LeNet's exit head: 10 outputs on 10 pooled 8x8 or 7x7 maps), the
    output is ``linear.linear`` on the pooled output, bit for bit, with and without its bias."""
    x, W, b = _operands((9, 5, 15, 15, 10, 3, 1))
    pooled = conv_pool.conv_pool(x, W, b, 1, cover_all, relu, width=width).reshape(len(x), -1)
    rng = numpy.random.default_rng(6)
    Wl = rng.standard_normal((10, pooled.shape[1])).astype(numpy.float32)
    bl = rng.standard_normal(10).astype(numpy.float32)
    for bias in (bl, None):
        for into in (None, _reader(3, 1)):  # the maps a classifier reads are never laid out
            got = conv_pool.conv_pool(x, W, b, 1, cover_all, relu, into=into, width=width,
                                      classifier=(Wl, bias))
            numpy.testing.assert_array_equal(got, linear.linear(pooled, Wl, bias, width=width))
    with pytest.raises(ValueError, match="does not fit 10 pooled maps"):
        conv_pool.conv_pool(x, W, b, 1, cover_all, relu, classifier=(Wl[:, 1:], bl))


def test_no_bias_and_channel_mismatch():
    x, W, _ = _operands(SHAPES[1])
    want = F.max_pooling_2d(F.convolution_2d(x, W, pad=1), 2, 2).array
    numpy.testing.assert_allclose(conv_pool.conv_pool(x, W, None, 1, True, False), want,
                                  rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="x has 5 channels, W expects 4"):
        conv_pool.conv_pool(x, W[:, :4], None, 1, True, False)
    with pytest.raises(ValueError, match="too small for 2x2 pooling"):
        conv_pool.conv_pool(x[:, :, :1], W, None, 1, False, False)  # a 1x15 output: no rows


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("k, pad", [(3, 1), (5, 3), (1, 0)])
def test_into_lays_out_the_next_convolution_input(width, k, pad):
    """Pooled into the padded layout of the convolution that reads it: the plane holds the
    outputs at (pad, pad) and zeros everywhere else, and that convolution takes the buffer as it
    is (no copy) and gives what it gives on a contiguous copy."""
    x, W, b = _operands(SHAPES[0])
    into = _reader(k, pad)
    got = conv_pool.conv_pool(x, W, b, 3, True, True, into=into, width=width)
    compact = conv_pool.conv_pool(x, W, b, 3, True, True, width=width)
    numpy.testing.assert_array_equal(got, compact)
    g = into(got.shape)
    buf = layout.padded(got, g, microkernel.TAIL)
    assert buf.ctypes.data + (g.ph * g.Wq + g.pw) * 4 == got.ctypes.data  # read in place
    planes = buf[:g.N * g.C * g.plane].reshape(g.N, g.C, g.Hp, g.Wq).copy()
    planes[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W] = 0
    assert not planes.any() and not buf[g.N * g.C * g.plane:].any()
    W2 = numpy.random.default_rng(3).standard_normal((4, 5, k, k)).astype(numpy.float32)
    numpy.testing.assert_array_equal(conv.conv2d_numpy(got, W2, None, 1, pad),
                                     conv.conv2d_numpy(numpy.ascontiguousarray(got), W2, None, 1, pad))


@pytest.mark.parametrize("width", WIDTHS)
def test_store_writes_every_plane_element_and_nothing_past_it(width):
    """The compiled pooling writes each destination plane whole (interior and zero padding)
    over memory full of NaN, and not one element past the last plane."""
    run = halving._kernel(width)[0]
    rng = numpy.random.default_rng(4)
    for (H, W, row), (Hp, Wq, ph, pw) in [((30, 30, 31), (17, 16, 1, 1)),
                                          ((30, 30, 34), (17, 17, 1, 1)),  # rows past a vector
                                          ((15, 15, 17), (10, 10, 1, 1)),
                                          ((17, 17, 18), (15, 12, 3, 3)),
                                          ((15, 15, 16), (8, 8, 0, 0)),
                                          ((4, 6, 6), (2, 3, 0, 0))]:
        C = 3
        y = rng.standard_normal(C * H * row + 64).astype(numpy.float32)
        OH, OW = (H + 1) // 2, (W + 1) // 2
        dst = numpy.full(C * Hp * Wq + 40, numpy.nan, numpy.float32)
        run(y, 0, C, H * row, row, H, W, OH, OW, 0.0, dst, Hp, Wq, ph, pw)
        x = y[:C * H * row].reshape(1, C, H, row)[..., :W]
        want = numpy.zeros((C, Hp, Wq), numpy.float32)
        want[:, ph:ph + OH, pw:pw + OW] = numpy.maximum(
            F.max_pooling_2d(numpy.ascontiguousarray(x), 2, 2).array[0], 0)
        numpy.testing.assert_array_equal(dst[:C * Hp * Wq].reshape(C, Hp, Wq), want)
        assert numpy.isnan(dst[C * Hp * Wq:]).all()


def test_thread_split_changes_nothing():
    x, W, b = _operands((64, 1, 28, 28, 5, 5, 3))
    head = numpy.random.default_rng(7).standard_normal((10, 5 * 15 * 15)).astype(numpy.float32)
    runs = []
    before = threads.set_threads(1)
    try:
        for count in (1, 2):
            threads.set_threads(count)
            assert len(threads.parts(64, (31 * 34 + 5 * 30 * 31) * 4)) == count
            runs.append((numpy.array(conv_pool.conv_pool(x, W, b, 3, True, True, into=_reader(3, 1))),
                         conv_pool.conv_pool(x, W, b, 3, True, True, classifier=(head, None))))
    finally:
        threads.set_threads(before)
    for one, two in zip(*runs):
        numpy.testing.assert_array_equal(one, two)


def test_applies_only_where_it_runs():
    x, W, _ = _operands(SHAPES[1])
    assert conv_pool.applies(x, W, 1, (2, None, 0))
    assert not conv_pool.applies(x, W, 2, (2, None, 0))
    assert not conv_pool.applies(x, W, 1, (3, 2, 0))
    assert not conv_pool.applies(x, W, 1, (2, 2, 1))
    assert not conv_pool.applies(x.astype(numpy.float64), W.astype(numpy.float64), 1, (2, None, 0))


def _per_sample_non_finite(x):
    return int((~numpy.isfinite(x.reshape(len(x), -1))).any(axis=1).sum())


@pytest.mark.parametrize("width", WIDTHS)
def test_non_finite_samples_are_counted_on_their_copy(width):
    """count_non_finite counts the samples holding NaN or +-inf as a per-sample numpy check does:
    at the first and the last value of the batch (read lane by lane at its end), in strided
    views, on one thread or two; the output is the uncounted call's; an input already laid out
    for the kernel is not copied, so not counted (None)."""
    rng = numpy.random.default_rng(11)
    W = rng.standard_normal((5, 1, 5, 5)).astype(numpy.float32)
    W5 = rng.standard_normal((10, 5, 3, 3)).astype(numpy.float32)
    before = threads.set_threads(1)
    try:
        for bad in ([], [(0, 0, 0, 0)], [(63, 0, 27, 27)],
                    [(3, 0, 5, 9), (3, 0, 6, 1), (30, 0, 27, 0), (31, 0, 0, 14)]):
            for value in (numpy.nan, numpy.inf, -numpy.inf):
                x = rng.standard_normal((64, 1, 28, 28)).astype(numpy.float32)
                for at in bad:
                    x[at] = value
                for view, weights, pad in ((x, W, 3), (x[::2], W, 3), (x[:, :, :, :15], W, 1),
                                          (x, W, 0)):
                    want = _per_sample_non_finite(view)
                    for count in (1, 2):
                        threads.set_threads(count)
                        g = layout.geom(view.shape, weights.shape, (1, 1), (pad, pad))
                        assert len(threads.parts(g.N, (g.C * g.plane + g.O * g.L) * 4)) == count
                        with numpy.errstate(all="ignore"):
                            got, counted = conv_pool.conv_pool(view, weights, None, pad, True, True,
                                                               width=width, count_non_finite=True)
                            plain = conv_pool.conv_pool(view, weights, None, pad, True, True,
                                                        width=width)
                        assert counted == want, (bad, value, view.shape, count)
                        numpy.testing.assert_array_equal(got, plain)
        threads.set_threads(1)
        x = rng.standard_normal((6, 1, 28, 28)).astype(numpy.float32)
        x[2, 0, 0, 0] = numpy.nan
        laid_out = conv_pool.conv_pool(x, W, None, 3, True, True, into=_reader(3, 1, 10),
                                       width=width)
        assert layout.in_filled(laid_out, _reader(3, 1, 10)(laid_out.shape), microkernel.TAIL) is not None
        with numpy.errstate(all="ignore"):
            assert conv_pool.conv_pool(laid_out, W5, None, 1, True, True, width=width,
                                       count_non_finite=True)[1] is None
            assert conv_pool.conv_pool(x, W, None, 3, True, True, width=width, rows=[1, 2],
                                       count_non_finite=True)[1] is None
    finally:
        threads.set_threads(before)
