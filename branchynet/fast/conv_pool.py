"""Inference convolution with the 2 x 2 stride-2 max pooling (and ReLU) after it, fused, sample by
sample: the unpacked micro-kernel's output of one sample stays in L1 and is pooled there.

Why: a small convolution (B-LeNet's, a few output channels) writes several times more than it
reads, so in a batch its output goes out to memory and comes back for the pooling; pooled in
cache, only the quarter-size result is written. The output is stored contiguously or, for a
convolution that reads it, in that convolution's zero-padded layout (``layout.filled``), as
``halving.max_pool`` stores it; values are those of ``microkernel.conv_forward(...,
unpacked=True)`` followed by ``halving.max_pool``, bit for bit.
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
    pool_plane, store_plane, grid_size = halving.plane_functions(width)

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(xbuf, ap, bias, n, sample, offsets, OH, OW, row, POH, POW, floor, dst, Hp, Wq, ph, pw):
        """n samples of xbuf: each one's convolution (O planes of OH rows ``row`` apart) into a
        scratch block, then each plane pooled into dst (planes of Hp x Wq)."""
        channels = len(bias)
        rows = ap.shape[0] * mr
        L = OH * row
        ldc = L + nr  # the last panel of a plane runs past L
        padded_bias = numpy.zeros(rows, numpy.float32)
        padded_bias[:channels] = bias
        block = numpy.empty(rows * ldc, numpy.float32)
        grid = numpy.empty(grid_size(row, POH, Wq), numpy.float32)
        for s in range(n):
            for p0 in range(0, L, nr):
                for i in range(ap.shape[0]):
                    dblock(ap[i], padded_bias[i * mr:], xbuf, offsets, block[i * mr * ldc + p0:],
                           s * sample + p0, ldc)
            for o in range(channels):
                pool_plane(block, o * ldc, row, OH, OW, grid, pw, POH, POW, floor)
                store_plane(grid, row, POH, POW, dst, (s * channels + o) * Hp * Wq, Hp, Wq, ph, pw)
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
    threads.run(lambda n0, n1: run(layout.padded(x[n0:n1], g, microkernel.TAIL), ap, bias,
                                   n1 - n0, sample, offsets, g.OH, g.OW, g.Wq, POH, POW, floor,
                                   dst[n0 * planes:], Hp, Wq, ph, pw),
                threads.parts(g.N, (sample + g.O * g.L) * 4))
    return out
