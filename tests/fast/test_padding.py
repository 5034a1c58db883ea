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
