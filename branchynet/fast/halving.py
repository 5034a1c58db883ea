"""Inference max pooling with 2 x 2 windows and stride 2 (B-LeNet's pooling), on vector code.

Why: in a batch, B-LeNet's early exit spends more time pooling than convolving; numpy's pooling
costs about 1 ns an input element and the compiled row-by-row kernel (``jit.max_pool``) no less.
Here each plane is read where it lies (a convolution's full-row output needs no copy) and pooled
row by row: a vector of outputs is two vector loads from each of two input rows, a maximum, and
an even/odd lane shuffle (``vector_ir.pool_row``), stored straight where it goes: contiguously
or, for a convolution that reads the output, with that convolution's zero padding around it
(``layout.filled``), which saves its padded copy. Lanes past a row's outputs store zeros (its
padding, or the next row's start, written after it); a masked store keeps the last vector of a
plane inside it.

Chainer's semantics with pad 0: ``cover_all`` adds the partial last row and column of an odd
size; NaN propagates as in ``numpy.maximum``, as in the other inference kernels.
"""
import numpy

from branchynet.fast import jit, layout, microkernel, threads, vector_ir
from branchynet.fast.layout import pair, strided_flat

__all__ = ["applies", "max_pool", "pooled_size", "output_planes", "plane_function"]


def _flat_planes(x):
    """(flat view from x's first element, plane pitch, row pitch) in elements when x's planes
    (N * C of them, in order) are evenly spaced and disjoint, with unit column stride; else
    None."""
    N, C, H, W = x.shape
    found = strided_flat(x) if x.strides[3] == x.itemsize else None
    if found is None:
        return None
    flat, (sn, sc, row) = found
    pitch = sc if C > 1 else sn if N > 1 else H * row  # from one plane to the next
    if (N > 1 and sn != C * pitch) or row < W or pitch < H * row:
        return None
    return flat, pitch, row


def applies(x, ksize, stride, pad):
    """Whether this pooling of x runs here: float32, 2 x 2 windows, stride 2, no padding, planes
    laid out evenly (any row pitch), on a CPU with vector code."""
    stride = ksize if stride is None else stride
    return (vector_ir.why_not() is None and x.dtype == numpy.float32 and x.ndim == 4
            and pair(ksize) == (2, 2) and pair(stride) == (2, 2) and pair(pad) == (0, 0)
            and min(x.shape[2:]) >= 2 and _flat_planes(x) is not None)


_kernels = {}


def _kernel(width):
    if width not in _kernels:
        _kernels[width] = _build(width, vector_ir.pool_row(width))
    return _kernels[width]


def plane_function(width):
    """pool_plane on vectors of ``width`` floats, for compiled callers that pool planes of their
    own (``conv_pool``)."""
    return _kernel(width)[1]


def _build(width, put):
    pool_plane = _plane_pooling(width, put)

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(y, p0, p1, pitch, row, H, W, OH, OW, floor, dst, Hp, Wq, ph, pw):
        """Planes p0 .. p1 of y into dst's planes of Hp x Wq."""
        for p in range(p0, p1):
            pool_plane(y, p * pitch, row, H, W, OH, OW, floor, dst, p * Hp * Wq, Hp, Wq, ph, pw)
    return run, pool_plane


def _plane_pooling(width, put):
    nan_max = jit._nan_max

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def pool_plane(y, at, row, H, W, OH, OW, floor, dst, to, Hp, Wq, ph, pw):
        """The H x W plane at y[at:] (rows ``row`` apart) pooled into the Hp x Wq plane at
        dst[to:] (rows Wq apart), its OH x OW outputs at row ph, column pw, zeros around them.
        A row's last vector stores zeros past its outputs, which covers its padding and the next
        row's where it reaches; the padding it does not reach is zeroed here."""
        end = to + Hp * Wq
        pairs = W // 2  # outputs whose window has both columns, in a row
        d = to + ph * Wq + pw
        for i in range(to, d):
            dst[i] = 0.0
        written, first = d, 0
        if OW <= width:  # one vector a row, whole, for the rows of two input rows ...
            first = max(0, min(OH, H // 2, (end - d - width) // Wq + 1))
            while first > 0 and at + 2 * (first - 1) * row + row + 2 * width > len(y):
                first -= 1  # ... whose vector reads stay inside y
            src = at
            for oy in range(first):
                put(y, src, row, dst, d, OW, pairs, width, floor)
                src += 2 * row
                d += Wq
            if first:
                written = d - Wq + width
                if Wq > width:  # padding past each row's vector
                    for r in range(d - first * Wq, d, Wq):
                        for i in range(r + width, r + Wq):
                            dst[i] = 0.0
                    written = d
        for oy in range(first, OH):
            src = at + 2 * oy * row
            pitch = row if 2 * oy + 1 < H else 0  # cover_all's last row: one input row
            for c0 in range(0, OW, width):
                if src + 2 * c0 + pitch + 2 * width <= len(y):
                    limit = min(width, end - d - c0)
                    put(y, src + 2 * c0, pitch, dst, d + c0, OW - c0, pairs - c0, limit, floor)
                    written = d + c0 + limit
                    continue
                for t in range(min(width, OW - c0)):  # a vector would read past y
                    i = src + 2 * (c0 + t)
                    v = nan_max(y[i], y[i + pitch])
                    if c0 + t < pairs:
                        v = nan_max(v, nan_max(y[i + 1], y[i + pitch + 1]))
                    dst[d + c0 + t] = nan_max(v, floor)
                written = d + c0 + min(width, OW - c0)
            gap = min(d + Wq, end)
            for i in range(written, gap):
                dst[i] = 0.0
            written = max(written, gap)
            d += Wq
        for i in range(written, end):
            dst[i] = 0.0
    return pool_plane


def pooled_size(H, W, cover_all):
    """(OH, OW) of 2 x 2 stride-2 pooling of an H x W map."""
    return ((H + 1) // 2, (W + 1) // 2) if cover_all else (H // 2, W // 2)


def output_planes(N, C, OH, OW, into):
    """(flat buffer, (N, C, OH, OW) view of the outputs, Hp, Wq, ph, pw) for pooled planes:
    contiguous, or laid out as the convolution ``into(shape)`` describes reads its input
    (``layout.filled``)."""
    if into is None:
        out = numpy.empty((N, C, OH, OW), numpy.float32)
        return out.reshape(-1), out, OH, OW, 0, 0
    g = into((N, C, OH, OW))
    buf, interior = layout.filled(N, g, numpy.float32, microkernel.TAIL)
    return buf, interior, g.Hp, g.Wq, g.ph, g.pw


def max_pool(x, cover_all, relu, width=None, into=None):
    """max_pooling_2d(x, 2, 2, 0, cover_all), then a ReLU if ``relu``, for x that ``applies``:
    contiguous (N, C, OH, OW), or, with ``into`` (the output shape -> the stride-1 ``layout.Geom``
    of the convolution that reads it), the view of a zero-padded buffer that convolution takes
    without a copy. ``width`` picks the vector width (tests run the AVX2 geometry on AVX-512
    machines too)."""
    flat, pitch, row = _flat_planes(x)
    N, C, H, W = x.shape
    OH, OW = pooled_size(H, W, cover_all)
    dst, out, Hp, Wq, ph, pw = output_planes(N, C, OH, OW, into)
    run = _kernel(width or vector_ir.vector_width())[0]
    floor = 0.0 if relu else -numpy.inf
    threads.run(lambda n0, n1: run(flat, n0 * C, n1 * C, pitch, row, H, W, OH, OW, floor,
                                   dst, Hp, Wq, ph, pw),
                threads.parts(N, C * (pitch + Hp * Wq) * 4))
    return out
