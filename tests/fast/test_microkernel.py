"""The micro-kernel convolution paths (``fast/microkernel.py``), packed and unpacked: against stock
Chainer on shapes whose output panels lie inside one sample, straddle two, or hold several
samples, with output channel counts that leave padded weight rows; in both vector geometries; the
same whether or not the batch is split over threads."""
import numpy
import pytest

import chainer
import chainer.functions as F

from branchynet.fast import conv, layout, microkernel, threads

pytestmark = pytest.mark.skipif(not microkernel.available(),
                                reason="packed path unavailable: %s" % microkernel.why_not())

WIDTHS = [w for w in (8, 16) if w <= (microkernel.vector_width() or 0)]


def _forward(unpacked, x, W, b, pad, width=None):
    g = layout.geom(x.shape, W.shape, (1, 1), (pad, pad))
    out = numpy.empty((g.N, g.O, g.L), numpy.float32)
    microkernel.conv_forward(layout.padded(x, g, microkernel.TAIL), W, b, out, g, g.N, width,
                             unpacked)
    return layout.output(out, g)


@pytest.mark.parametrize("unpacked", [False, True], ids=["packed", "unpacked"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("n,C,H,out,k,pad", [
    (3, 32, 16, 64, 5, 2),   # 288 positions a sample: panels inside one sample
    (5, 16, 8, 10, 3, 1),    # 72 a sample: panels straddle two samples; 10 channels pad a panel
    (7, 8, 4, 37, 3, 1),     # 20 a sample: a panel holds several samples; 37 channels
    (1, 5, 15, 20, 5, 3),    # one sample, the last panel partial
    (4, 3, 9, 7, 5, 0),      # no padding
    (2, 3, 5, 1, 1, 0),      # one output channel, a 1x1 kernel
])
def test_equals_chainer(unpacked, width, n, C, H, out, k, pad):
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((n, C, H, H), dtype=numpy.float32)
    W = rng.standard_normal((out, C, k, k), dtype=numpy.float32)
    b = rng.standard_normal(out, dtype=numpy.float32)
    expected = F.convolution_2d(x, W, b, pad=pad).array
    numpy.testing.assert_allclose(_forward(unpacked, x, W, b, pad, width), expected,
                                  rtol=1e-4, atol=1e-4)
    numpy.testing.assert_allclose(_forward(unpacked, x, W, None, pad, width),
                                  expected - b[:, None, None],
                                  rtol=1e-4, atol=1e-4)


def test_rows_per_panel():
    """The panel height wasting fewest padded rows (the taller on ties), at most 8 rows (AVX-512)
    or 6 (AVX2): counted by hand."""
    assert [microkernel.rows_per_panel(o, 16) for o in (96, 64, 10, 20, 5, 7, 37)] == [
        8, 8, 5, 5, 5, 7, 8]  # 37: 40 rows as 10 x 4, 8 x 5 or 5 x 8 (the tallest), 42 as 6 or 7
    assert [microkernel.rows_per_panel(o, 8) for o in (96, 64, 10, 7)] == [6, 4, 5, 4]


def test_pack_weights_layout():
    W = numpy.arange(3 * 2 * 2 * 2, dtype=numpy.float32).reshape(3, 2, 2, 2) + 1
    ap = microkernel.pack_weights(W, 2)  # two panels of two rows, the last row zero
    assert ap.shape == (2, 8 * 2)
    flat = W.reshape(3, 8)
    for i in range(2):
        for k in range(8):
            for r in range(2):
                expected = flat[2 * i + r, k] if 2 * i + r < 3 else 0
                assert ap[i, k * 2 + r] == expected


def test_offsets_by_hand_and_shared_read_only():
    """Reduction index (c, i, j) reads c planes, i rows and j columns past an output position:
    2 channels of 3 x 3 windows on planes of 40 values with rows of 7."""
    table = microkernel.offsets(2, 3, 3, 40, 7)
    assert table.tolist() == [c * 40 + i * 7 + j for c in range(2) for i in range(3)
                              for j in range(3)]
    assert microkernel.offsets(2, 3, 3, 40, 7) is table  # built once per geometry
    with pytest.raises(ValueError):
        table[0] = 1  # shared, so nobody may change it


@pytest.mark.parametrize("path", ["packed", "unpacked"])
def test_thread_split_changes_nothing(path):
    """Slices of the batch group positions into panels differently; every output sums its
    reduction in the same order, so the split result is bitwise the one-thread result."""
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((64, 32, 16, 16), dtype=numpy.float32)
    W = rng.standard_normal((64, 32, 5, 5), dtype=numpy.float32)
    g = layout.geom(x.shape, W.shape, (1, 1), (2, 2))
    assert len(conv._split(g, x.dtype, lambda n0, n1: None)) >= 1
    before = threads.set_threads(1)
    try:
        one = numpy.array(conv._run_forward(x, W, None, g, path))
        threads.set_threads(2)
        assert len(threads.parts(g.N, (g.C * g.plane + g.O * g.L) * 4)) == 2
        two = numpy.array(conv._run_forward(x, W, None, g, path))
    finally:
        threads.set_threads(before)
    assert numpy.array_equal(one, two)


@pytest.mark.parametrize("width", WIDTHS)
def test_product_into_equals_numpy(width):
    rows, cols = microkernel.product_shape(75, 37, width)
    assert rows % microkernel.rows_per_panel(75, width) == 0 and cols % (2 * width) == 0
    rng = numpy.random.default_rng(2)
    a = rng.standard_normal((rows, 300), dtype=numpy.float32)
    b = rng.standard_normal((300, cols), dtype=numpy.float32)
    c = rng.standard_normal((rows, cols), dtype=numpy.float32)
    expected = c.astype(numpy.float64) + a.astype(numpy.float64) @ b.astype(numpy.float64)
    numpy.testing.assert_allclose(microkernel.product_into(a, b, c, width), expected,
                                  rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="rows and columns"):
        microkernel.product_into(a[:rows - 1], b, c[:rows - 1], width)


@pytest.mark.parametrize("unpacked", [False, True], ids=["packed", "unpacked"])
@pytest.mark.parametrize("n,C,H,out,k,pad", [(5, 16, 8, 10, 3, 1), (3, 3, 9, 37, 5, 2),
                                             (2, 1, 28, 5, 5, 3)])  # L = 930: several slices
@pytest.mark.parametrize("one_per_chunk", [False, True])
def test_weight_gradient_equals_chainer(unpacked, n, C, H, out, k, pad, one_per_chunk,
                                        monkeypatch):
    """Against Chainer; with one sample a chunk, each chunk reads its own samples."""
    if one_per_chunk:
        monkeypatch.setattr(conv, "_CHUNK_BYTES", 1)
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal((n, C, H, H), dtype=numpy.float32)
    W = rng.standard_normal((out, C, k, k), dtype=numpy.float32)
    g = layout.geom(x.shape, W.shape, (1, 1), (pad, pad))
    gy = rng.standard_normal((n, out, g.OH, g.OW), dtype=numpy.float32)
    gWt = conv._grad_w_packed_slice(x, gy, g, unpacked)
    _, expected = F.convolution_2d(x, W, pad=pad).creator.backward((0, 1), (chainer.Variable(gy),))
    numpy.testing.assert_allclose(gWt.T.reshape(W.shape), expected.array, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("width", WIDTHS)
def test_weight_gradient_into_both_geometries(width):
    """The in-place weight gradient in each vector geometry, against the im2col matrix times gy
    in float64 (rows and columns padded as ``product_shape`` gives for that width)."""
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((3, 6, 9, 9), dtype=numpy.float32)
    g = layout.geom(x.shape, (11, 6, 3, 3), (1, 1), (1, 1))
    gy = rng.standard_normal((3, 11, g.OH, g.OW), dtype=numpy.float32)
    rows, cols = microkernel.product_shape(g.K, g.O, width)
    gyt = numpy.zeros((3 * g.L, cols), numpy.float32)
    gyt.reshape(3, g.OH, g.Wq, cols)[:, :, :g.OW, :g.O] = gy.transpose(0, 2, 3, 1)
    got = microkernel.weight_gradient_into(layout.padded(x, g), gyt, numpy.zeros(
        (rows, cols), numpy.float32), g, 3, width)[:g.K, :g.O]
    xp = numpy.pad(x.astype(numpy.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    col = numpy.stack([xp[:, c, i:i + g.OH, j:j + g.OW] for c in range(6) for i in range(3)
                       for j in range(3)])  # (K, n, OH, OW)
    expected = numpy.einsum("knyx,noyx->ko", col, gy.astype(numpy.float64))
    numpy.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("n,C,H,out,k,pad,per_chunk", [(3, 32, 16, 64, 5, 2, 1),
                                                       (2, 3, 9, 37, 5, 2, 2)])
def test_col2im_input_gradient_equals_chainer(n, C, H, out, k, pad, per_chunk):
    """gcol = W^T gy on the micro-kernel, then col2im; with one sample a chunk, a chunk's product
    must not add onto the last one's."""
    rng = numpy.random.default_rng(4)
    x = rng.standard_normal((n, C, H, H), dtype=numpy.float32)
    W = rng.standard_normal((out, C, k, k), dtype=numpy.float32)
    g = layout.geom(x.shape, W.shape, (1, 1), (pad, pad))
    assert conv._chunk(n, g.K * g.L * 4) == per_chunk
    gy = rng.standard_normal((n, out, g.OH, g.OW), dtype=numpy.float32)
    gx = conv._col2im_grad_x(W, gy, g, numpy.float32, packed=True)
    expected, _ = F.convolution_2d(x, W, pad=pad).creator.backward((0, 1), (chainer.Variable(gy),))
    numpy.testing.assert_allclose(gx, expected.array, rtol=1e-4, atol=1e-3)
