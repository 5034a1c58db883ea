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
import functools

import numpy

from branchynet.fast import halving, jit, layout, linear, microkernel, threads, vector_ir

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


def _kernel(mr, width, classes):
    if (mr, width, classes) not in _kernels:
        _kernels[mr, width, classes] = _build(mr, width, classes)
    return _kernels[mr, width, classes]


def _build(mr, width, classes):
    """The kernel for MR = mr, vectors of ``width`` floats and, with ``classes`` > 0, a linear
    classifier of that many outputs on each sample's pooled map."""
    nr = 2 * width
    classify = vector_ir.dots(1, max(classes, 1), width)
    dblock = vector_ir.inplace_block(mr, width)
    pool_plane = halving.plane_function(width)
    fill = _filling(width)

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(xs, n, picked, sample_step, channel_step, row_step, padded, first, plane, C, H, W,
            ap, bias, offsets, OH, OW, row, POH, POW, floor, dst, Hp, Wq, ph, pw, lw, logits,
            count):
        """n samples: each one's convolution (O planes of OH rows ``row`` apart) into a scratch
        block, then each plane pooled into dst (planes of Hp x Wq). The samples lie in xs
        ``sample_step`` floats apart (the i-th run is sample ``picked[i]``, or i where ``picked``
        is empty), either padded as the convolution reads them (planes ``plane``
        floats apart; ``padded`` empty) or not, each then copied (``fill``) into one of the two
        sample buffers of ``padded``, zero-padded as the convolution reads them: the next
        sample's copy is made before this one's pooling, so that the convolution does not read
        what was just stored (which costs more than the copy saves). With a classifier (``lw``:
        its weights, classes x pooled values), each sample's pooled map is written to dst's first
        sample only and its products go to ``logits`` (n x classes). Returns how many copied
        samples hold a NaN or an infinity when ``count`` (each copy checked while in L1), else 0."""
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
        every = len(picked) == 0
        bad = 0
        if copied and n:
            bad += fill(xs, (0 if every else picked[0]) * sample_step, channel_step, row_step,
                        padded, 0, first, plane, C, H, W, row, count)
        for s in range(n):
            base = (s % 2) * sample if copied else (s if every else picked[s]) * sample_step
            for p0 in range(0, L, nr):
                for i in range(ap.shape[0]):
                    dblock(ap[i], padded_bias[i * mr:], src, offsets, block[i * mr * ldc + p0:],
                           base + p0, ldc)
            if copied and s + 1 < n:
                bad += fill(xs, (s + 1 if every else picked[s + 1]) * sample_step, channel_step,
                            row_step, padded, ((s + 1) % 2) * sample, first, plane, C, H, W, row,
                            count)
            at = 0 if classes else s * channels * Hp * Wq
            for o in range(channels):
                pool_plane(block, o * ldc, row, OH, OW, POH, POW, floor, dst,
                           at + o * Hp * Wq, Hp, Wq, ph, pw)
            if classes:
                classify(dst, 0, 0, lw, channels * Hp * Wq, logits, s * classes)
        return bad
    return run


@functools.lru_cache(maxsize=None)
def _filling(width):
    """fill, compiled once per vector width for the kernels of every MR."""
    put = vector_ir.window_row(width)
    zero_sum = jit._zero_sum

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def fill(xs, at, channel_step, row_step, padded, slot, first, plane, C, H, W, row, count):
        """The sample at xs[at:] (channels ``channel_step``, rows ``row_step`` floats apart) into
        the sample of ``padded`` at ``slot`` (its first value ``first`` further, planes ``plane``
        floats apart, rows ``row``): in whole vectors (the zeros past a row land in its padding
        or in the next row, written after it), lane by lane where a vector would read past xs.
        Returns 1 when ``count`` and the copy holds a NaN or an infinity (checked while in L1),
        else 0."""
        for c in range(C):
            src = at + c * channel_step
            start = slot + first + c * plane
            for d in range(start, start + H * row, row):
                for j0 in range(0, W, width):
                    m = min(width, W - j0)
                    if src + j0 + width <= len(xs):
                        put(xs, src + j0, padded, d + j0, 0, m)
                    else:
                        for j in range(j0, j0 + m):
                            padded[d + j] = xs[src + j]
                src += row_step
        return 1 if count and zero_sum(padded[slot:slot + C * plane]) != 0 else 0
    return fill


def _classifier(classifier, channels, POH, POW, width):
    """(classes, weights, bias) of a classifier (weights, bias) on ``channels`` pooled maps of
    POH x POW, checked; (0, a placeholder, None) without one."""
    if classifier is None:
        return 0, numpy.zeros((1, 1), numpy.float32), None
    lw, lb = classifier
    if lw.shape[1] != channels * POH * POW or linear.rows_per_step(lw.shape[0], width) < 1:
        raise ValueError("a classifier of shape %s does not fit %d pooled maps of %dx%d"
                         % (lw.shape, channels, POH, POW))
    return lw.shape[0], numpy.ascontiguousarray(lw, dtype=numpy.float32), lb


def conv_pool(x, W, b, pad, cover_all, relu, into=None, width=None, classifier=None, rows=None,
              count_non_finite=False):
    """max_pooling_2d(convolution_2d(x, W, b, 1, pad), 2, 2, 0, cover_all), then a ReLU if
    ``relu``, for x and W that ``applies`` to; the output as ``halving.max_pool`` gives it
    (contiguous, or laid out for the convolution ``into`` describes). With ``classifier`` (the
    weights (classes, C * OH * OW) and bias of a linear layer with few outputs, as
    ``linear.applies`` takes them), that layer's output on the pooled maps instead, which are
    then never stored (an exit head's last layers); equal to ``linear.linear`` on the pooled
    output, bit for bit. ``rows`` (sample indices) runs those samples of x only, as x[rows]
    would, each read where it lies (early exit's samples in flight, without gathering them
    first). ``width`` picks the vector width (tests run the AVX2 geometry on AVX-512 machines
    too). ``count_non_finite`` (without ``rows``) returns (output, how many samples of x hold a
    NaN or an infinity), counted on each sample's copy in L1, which saves the input check a pass
    over memory; the count is None where x needed no copy (already laid out for the kernel)."""
    whole = None if rows is None else layout.strided_flat(x)
    if rows is not None and whole is None:
        x, rows = x[rows], None
    g = layout.geom(x.shape if rows is None else (len(rows),) + x.shape[1:], W.shape, (1, 1),
                    layout.pair(pad))
    if x.shape[1] != W.shape[1]:
        raise ValueError("x has %d channels, W expects %d" % (x.shape[1], W.shape[1]))
    POH, POW = halving.pooled_size(g.OH, g.OW, cover_all)
    if min(POH, POW) < 1:
        raise ValueError("a %dx%d convolution output is too small for 2x2 pooling" % (g.OH, g.OW))
    width = width or vector_ir.vector_width()
    classes, lw, lb = _classifier(classifier, g.O, POH, POW, width)
    into = None if classes else into
    dst, out, Hp, Wq, ph, pw = halving.output_planes(1 if classes else g.N, g.O, POH, POW, into)
    logits = numpy.empty((g.N if classes else 0, max(classes, 1)), numpy.float32)
    mr, ap, bias, offsets = microkernel.forward_operands(W, b, g, width)
    run = _kernel(mr, width, classes)
    floor = 0.0 if relu else -numpy.inf
    sample, planes = g.C * g.plane, g.O * Hp * Wq
    first = g.ph * g.Wq + g.pw
    none, none_picked = numpy.zeros(0, numpy.float32), numpy.zeros(0, numpy.intp)
    if rows is not None:
        rows = numpy.asarray(rows, dtype=numpy.intp)
    count = count_non_finite and rows is None

    def part(n0, n1):
        xs, steps, picked, padded = None, (sample, 0, 0), none_picked, none
        if rows is None:
            xs = layout.in_filled(x[n0:n1], g, microkernel.TAIL)
        if xs is None:  # copied sample by sample
            if rows is None:
                xs, steps = layout.flat_samples(x[n0:n1])
            else:
                (xs, steps), picked = whole, rows[n0:n1]
            padded = layout.padded_buffer(2, g, numpy.float32, microkernel.TAIL)[0]
        own = numpy.empty(planes, numpy.float32) if classes else dst[n0 * planes:]
        bad = run(xs, n1 - n0, picked, *steps, padded, first, g.plane, g.C, g.H, g.W, ap, bias,
                  offsets, g.OH, g.OW, g.Wq, POH, POW, floor, own, Hp, Wq, ph, pw, lw,
                  logits[n0:n1].reshape(-1), count)
        return bad if len(padded) else None
    counts = threads.run(part, threads.parts(g.N, (sample + g.O * g.L) * 4))
    result = out if not classes else logits if lb is None else logits + lb
    if not count_non_finite:
        return result
    return result, (None if not count or None in counts else sum(counts))
