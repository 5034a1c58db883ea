"""The padded input buffers of the full-row layout (``fast/layout.py``): a thread's buffer is kept
for the next call of the same layout, so its padding must stay zero whatever the inputs were, and
another layout or thread must get a buffer of its own."""
import threading

import numpy
import pytest

import chainer.functions as F

from branchynet.fast import conv, layout


def _fresh(x, g, tail):
    """The padded layout built from scratch: zeros with x placed in each plane's interior."""
    n = len(x)
    planes = numpy.zeros((n, g.C, g.Hp, g.Wq), x.dtype)
    planes[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W] = x
    return numpy.concatenate([planes.reshape(-1), numpy.zeros(g.kw + tail, x.dtype)])


def test_a_kept_buffer_holds_only_the_new_input():
    rng = numpy.random.default_rng(0)
    g = layout.geom((3, 2, 7, 5), (4, 2, 3, 3), (1, 1), (1, 2))
    first = rng.standard_normal((3, 2, 7, 5)).astype(numpy.float32) + 10
    second = rng.standard_normal((3, 2, 7, 5)).astype(numpy.float32)
    a = layout.padded(first, g, tail=4)
    b = layout.padded(second, g, tail=4)
    assert a is b  # kept: nothing allocated or zeroed the second time
    numpy.testing.assert_array_equal(b, _fresh(second, g, 4))


def test_layouts_and_threads_do_not_share():
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 6)).astype(numpy.float32)
    g1 = layout.geom(x.shape, (4, 3, 3, 3), (1, 1), (1, 1))
    g2 = layout.geom(x.shape, (4, 3, 5, 5), (1, 1), (2, 2))
    a, b = layout.padded(x, g1), layout.padded(x, g2)
    assert a is not b and not numpy.shares_memory(a, b)
    numpy.testing.assert_array_equal(a, _fresh(x, g1, 0))
    other = []
    worker = threading.Thread(target=lambda: other.append(layout.padded(x, g1)))
    worker.start()
    worker.join()
    assert not numpy.shares_memory(other[0], layout.padded(x, g1))


def test_repeated_convolutions_stay_equal_to_chainer():
    """The same layout convolved again and again with other inputs (the buffer kept between the
    calls): each result is Chainer's for its own input."""
    rng = numpy.random.default_rng(2)
    W = rng.standard_normal((6, 3, 5, 5)).astype(numpy.float32)
    for scale in (100.0, 1.0, -3.0):
        x = (scale * rng.standard_normal((4, 3, 9, 9))).astype(numpy.float32)
        numpy.testing.assert_allclose(conv.conv2d_numpy(x, W, None, 1, 2),
                                      F.convolution_2d(x, W, pad=2).array, rtol=1e-4,
                                      atol=1e-3 * abs(scale))


def test_a_kernel_larger_than_the_padded_input_is_refused():
    with pytest.raises(ValueError, match="output size would be -1"):
        layout.geom((1, 1, 3, 3), (1, 1, 5, 5), (1, 1), (0, 0))


def _filled(g, seed=0):
    """A ``filled`` buffer holding random data with zero padding, as a pooling leaves it."""
    buf, interior = layout.filled(g.N, g, numpy.float32, 8)
    planes = buf[:g.N * g.C * g.plane].reshape(g.N, g.C, g.Hp, g.Wq)
    planes[...] = 0
    interior[...] = numpy.random.default_rng(seed).standard_normal(interior.shape)
    return buf, interior


def test_a_filled_buffer_is_read_in_place_whole_or_by_samples():
    g = layout.geom((4, 3, 6, 5), (2, 3, 3, 3), (1, 1), (1, 1))
    buf, x = _filled(g)
    sample = g.C * g.plane
    assert layout.padded(x, g, tail=8) is not None
    assert layout.padded(x, g, tail=8).ctypes.data == buf.ctypes.data
    part = layout.padded(x[1:3], g, tail=8)  # a thread's slice of the batch
    assert part.ctypes.data == buf.ctypes.data + sample * 4
    numpy.testing.assert_array_equal(part[:2 * sample], _fresh(x[1:3], g, 0)[:2 * sample])


@pytest.mark.parametrize("why", ["other padding", "longer tail", "a copy", "channel slice",
                                 "unregistered buffer"])
def test_other_inputs_are_copied_not_taken(why):
    """Only samples of a live ``filled`` buffer with this very layout (and a tail as long) are
    read in place; anything else goes into a kept buffer, as before."""
    g = layout.geom((4, 3, 6, 5), (2, 3, 3, 3), (1, 1), (1, 1))
    buf, x = _filled(g)
    if why == "other padding":
        g = layout.geom((4, 3, 6, 5), (2, 3, 3, 3), (1, 1), (2, 2))
    elif why == "longer tail":
        pass
    elif why == "a copy":
        x = x.copy()
    elif why == "channel slice":
        g = layout.geom((4, 2, 6, 5), (2, 2, 3, 3), (1, 1), (1, 1))
        x = x[:, :2]
    else:
        other, x = layout.padded_buffer(4, g, numpy.float32, 8)
        x[...] = 1
    got = layout.padded(x, g, tail=64 if why == "longer tail" else 8)
    assert not (buf.ctypes.data <= got.ctypes.data < buf.ctypes.data + buf.nbytes)
    numpy.testing.assert_array_equal(got, _fresh(x, g, 64 if why == "longer tail" else 8))


def test_a_dead_filled_buffer_is_forgotten():
    g = layout.geom((2, 1, 4, 4), (1, 1, 3, 3), (1, 1), (1, 1))
    buf, x = _filled(g)
    address = buf.ctypes.data
    assert address in layout._filled
    del buf, x
    assert address not in layout._filled


def test_flat_samples_views_or_copies():
    """A flat view with the samples', channels' and rows' element strides where the rows are
    contiguous (a view spanning exactly x's elements), else a contiguous copy's."""
    base = numpy.arange(4 * 3 * 5 * 7, dtype=numpy.float32).reshape(4, 3, 5, 7)
    for x in (base, base[1:3, :2, 1:, 2:6], base[::2]):
        flat, (sn, sc, sr) = layout.flat_samples(x)
        assert numpy.shares_memory(flat, base)
        n, c, r, j = numpy.indices(x.shape).reshape(4, -1)
        numpy.testing.assert_array_equal(flat[n * sn + c * sc + r * sr + j], x.reshape(-1))
        assert flat.ctypes.data == x.ctypes.data and len(flat) == (
            (x.shape[0] - 1) * sn + (x.shape[1] - 1) * sc + (x.shape[2] - 1) * sr + x.shape[3])
    for x in (base[..., ::2], base[:, :, ::-1]):
        flat, steps = layout.flat_samples(x)
        assert not numpy.shares_memory(flat, base)
        assert steps == (x[0].size, x[0, 0].size, x.shape[3])
        numpy.testing.assert_array_equal(flat, x.reshape(-1))
