"""Inference convolution with the 2 x 2 stride-2 max pooling (and ReLU) after it, fused, sample by
sample: the unpacked micro-kernel's output of one sample stays in L1 and is pooled there.

Why: a small convolution (B-LeNet's, a few output channels) writes several times more than it
reads, so in a batch its output goes out to memory and comes back for the pooling; pooled in
cache, only the quarter-size result is written. The output is stored contiguously or, for a
convolution that reads it, in that convolution's zero-padded layout (``layout.filled``), as
``halving.max_pool`` stores it. An input not already in this convolution's padded layout is not
padded whole first: each sample is copied into a padded buffer in L1 (any strides with
contiguous rows), which saves writing and reading back the padded batch. Values are those of
``microkernel.conv_forward(..., unpacked=True)`` followed by ``halving.max_pool``, bit for bit.
"""
import numpy

from branchynet.fast import halving, jit, layout, microkernel, threads, vector_ir

__all__ = ["applies", "conv_pool"]


def applies(x, W, stride, pooled):
    """Whether conv_pool runs this: float32, a stride-1 convolution, vector code, and a pooling
    ``halving`` runs on the convolution's output (``pooled``: (ksize, stride, pad))."""
    ksize, pool_stride, pad = pooled
    pool_stride = ksize if pool_stride is None else pool_stride
    return (microkernel.available() and x.dtype == W.dtype == numpy.float32 and x.ndim == 4
            and layout.pair(stride) == (1, 1) and layout.pair(ksize) == (2, 2)
            and layout.pair(pool_stride) == (2, 2) and layout.pair(pad) == (0, 0))


_kernels = {}


def _kernel(mr, width):
    if (mr, width) not in _kernels:
        _kernels[mr, width] = _build(mr, width)
    return _kernels[mr, width]


def _build(mr, width):
    nr = 2 * width
    dblock = vector_ir.inplace_block(mr, width)
    pool_plane = halving.plane_function(width)
    put = vector_ir.window_row(width)

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def fill(xs, at, channel_step, row_step, padded, first, plane, C, H, W, row):
        """The sample at xs[at:] (channels ``channel_step``, rows ``row_step`` floats apart) into
        ``padded`` (its first value at ``first``, planes ``plane`` floats apart, rows ``row``): in
        whole vectors (the zeros past a row land in its padding or in the next row, written
        after it), lane by lane where a vector would read past xs."""
        for c in range(C):
            src = at + c * channel_step
            for d in range(first + c * plane, first + c * plane + H * row, row):
                for j0 in range(0, W, width):
                    m = min(width, W - j0)
                    if src + j0 + width <= len(xs):
                        put(xs, src + j0, padded, d + j0, 0, m)
                    else:
                        for j in range(j0, j0 + m):
                            padded[d + j] = xs[src + j]
                src += row_step

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(xs, n, sample_step, channel_step, row_step, padded, first, plane, C, H, W, ap, bias,
            offsets, OH, OW, row, POH, POW, floor, dst, Hp, Wq, ph, pw):
        """n samples: each one's convolution (O planes of OH rows ``row`` apart) into a scratch
        block, then each plane pooled into dst (planes of Hp x Wq). The samples lie in xs
        ``sample_step`` floats apart, either padded as the convolution reads them (planes ``plane``
        floats apart; ``padded`` empty) or not, each then copied (``fill``) into one of the two
        sample buffers of ``padded``, zero-padded as the convolution reads them: the next
        sample's copy is made before this one's pooling, so that the convolution does not read
        what was just stored (which costs more than the copy saves)."""
        channels = len(bias)
        rows = ap.shape[0] * mr
        L = OH * row
        ldc = L + nr  # the last panel of a plane runs past L
        padded_bias = numpy.zeros(rows, numpy.float32)
        padded_bias[:channels] = bias
        block = numpy.zeros(rows * ldc, numpy.float32)  # the pooling's vectors read past L
        copied = len(padded) > 0
        sample = C * plane
        src = padded if copied else xs
        if copied and n:
            fill(xs, 0, channel_step, row_step, padded, first, plane, C, H, W, row)
        for s in range(n):
            base = (s % 2) * sample if copied else s * sample_step
            for p0 in range(0, L, nr):
                for i in range(ap.shape[0]):
                    dblock(ap[i], padded_bias[i * mr:], src, offsets, block[i * mr * ldc + p0:],
                           base + p0, ldc)
            if copied and s + 1 < n:
                fill(xs, (s + 1) * sample_step, channel_step, row_step, padded,
                     ((s + 1) % 2) * sample + first, plane, C, H, W, row)
            for o in range(channels):
                pool_plane(block, o * ldc, row, OH, OW, POH, POW, floor, dst,
                           (s * channels + o) * Hp * Wq, Hp, Wq, ph, pw)
    return run


def conv_pool(x, W, b, pad, cover_all, relu, into=None, width=None):
    """max_pooling_2d(convolution_2d(x, W, b, 1, pad), 2, 2, 0, cover_all), then a ReLU if
    ``relu``, for x and W that ``applies`` to; the output as ``halving.max_pool`` gives it
    (contiguous, or laid out for the convolution ``into`` describes). ``width`` picks the vector
    width (tests run the AVX2 geometry on AVX-512 machines too)."""
    g = layout.geom(x.shape, W.shape, (1, 1), layout.pair(pad))
    if x.shape[1] != W.shape[1]:
        raise ValueError("x has %d channels, W expects %d" % (x.shape[1], W.shape[1]))
    POH, POW = halving.pooled_size(g.OH, g.OW, cover_all)
    if min(POH, POW) < 1:
        raise ValueError("a %dx%d convolution output is too small for 2x2 pooling" % (g.OH, g.OW))
    dst, out, Hp, Wq, ph, pw = halving.output_planes(g.N, g.O, POH, POW, into)
    width = width or vector_ir.vector_width()
    mr, ap, bias, offsets = microkernel.forward_operands(W, b, g, width)
    run = _kernel(mr, width)
    floor = 0.0 if relu else -numpy.inf
    sample, planes = g.C * g.plane, g.O * Hp * Wq
    first = g.ph * g.Wq + g.pw
    none = numpy.zeros(0, numpy.float32)

    def part(n0, n1):
        xs, steps, padded = layout.in_filled(x[n0:n1], g, microkernel.TAIL), (sample, 0, 0), none
        if xs is None:
            xs, steps = layout.flat_samples(x[n0:n1])
            padded = layout.padded_buffer(2, g, numpy.float32, microkernel.TAIL)[0]
        run(xs, n1 - n0, *steps, padded, first, g.plane, g.C, g.H, g.W, ap, bias,
            offsets, g.OH, g.OW, g.Wq, POH, POW, floor, dst[n0 * planes:], Hp, Wq, ph, pw)
    threads.run(part, threads.parts(g.N, (sample + g.O * g.L) * 4))
    return out
