"""Batch-1 inference programs: a layer list compiled for one sample of one input shape.

Why: at batch 1 a layer's arithmetic takes a few microseconds and so does each numpy call, so an
early exit saves little unless every layer is a handful of calls. Here each layer gets its buffers
and strided views once, at compile time (padded inputs whose padding stays as set, im2col
buffers, pooling window views); a run is then a fixed list of numpy calls writing into those
buffers, with no allocation, no shape arithmetic and no Chainer. A max pooling followed by a ReLU
(or preceded by one) runs as one stage, a pooling writes straight into the next convolution's padded input, and a
program may read another's output buffer in place (``source``): ``BranchyNet`` chains its segments
and heads that way. Parameters are read from the links at every run, so training in between is
seen.

A program owns its buffers: its output is overwritten by its next run, and one program must not
run on two threads at once (``BranchyNet`` keeps one per thread). Layers without a stage of their
own run through ``lean.compile_layer`` and are copied into a buffer (compiling runs them once, on
the zeros every buffer starts as).
"""
import numpy

import chainer.functions as F
import chainer.links as L

from branchynet import layers as blayers
from branchynet import lean
from branchynet.fast import conv as fconv
from branchynet.fast import pooling as fpool

__all__ = ["Program", "chain"]


def _is_conv(layer):
    return isinstance(layer, L.Convolution2D) and layer.groups == 1 and layer.dilate == (1, 1)


class _ConvInput:
    """A convolution's zero-padded input buffer and its interior, where the input goes: the
    padding stays zero because only the interior is ever written."""

    def __init__(self, link, shape, dtype):
        self.g = fconv._Geom(tuple(shape), link.W.shape, link.stride, link.pad)
        self.padded, self.interior = fconv._padded_buffer(1, self.g, dtype)


def _conv_stage(link, src, inp):
    """im2col copy and one GEMM; the input is copied into ``inp`` unless it is written there."""
    g = inp.g
    col = numpy.zeros((g.K, g.L), dtype=src.dtype)
    window = fconv._col_view(inp.padded, g, 0, 1)
    col_dst = col.reshape(window.shape)
    out = numpy.zeros((g.O, g.L), dtype=src.dtype)
    shape2 = (g.O, g.K)
    bias_shape = (g.O, 1)
    copy = None if src is inp.interior else (inp.interior, src)
    copyto, matmul, add = numpy.copyto, numpy.matmul, numpy.add

    def run():
        if copy is not None:
            copyto(*copy)
        copyto(col_dst, window)
        matmul(link.W.array.reshape(shape2), col, out=out)
        if link.b is not None:
            add(out, link.b.array.reshape(bias_shape), out=out)
    return run, fconv._output(out, g)


def _pool_sizes(shape, layer):
    """((kh, kw), (sy, sx), (ph, pw), cover_all, output shape) of a MaxPool/AvgPool layer."""
    _, C, H, W = shape
    is_max = isinstance(layer, blayers.MaxPool)
    cover_all = layer.cover_all if is_max else False
    k = fconv._pair(layer.ksize)
    st = fconv._pair(layer.ksize if layer.stride is None else layer.stride)
    p = fconv._pair(layer.pad)
    OH = fpool._out_size(H, k[0], st[0], p[0], cover_all)
    OW = fpool._out_size(W, k[1], st[1], p[1], cover_all)
    return k, st, p, cover_all, (1, C, OH, OW)


def _pool_stage(src, layer, relu, out):
    """Max or average pooling (Chainer's semantics, as branchynet.fast.pooling) into ``out``,
    with a following ReLU fused into a max pooling."""
    is_max = isinstance(layer, blayers.MaxPool)
    (kh, kw), (sy, sx), (ph, pw), _, (_, C, OH, OW) = _pool_sizes(src.shape, layer)
    H, W = src.shape[2:]
    rows, cols = sy * (OH - 1) + kh, sx * (OW - 1) + kw  # the extent the windows read
    copy = None
    if ph == 0 and pw == 0 and rows <= H and cols <= W:
        base = src  # windows read the input itself
    else:
        fill = -numpy.inf if is_max else 0
        base = numpy.full((1, C, max(rows, ph + H), max(cols, pw + W)), fill, dtype=src.dtype)
        copy = (base[:, :, ph:ph + H, pw:pw + W], src)
    if is_max:  # separable: the max over kw columns, then over kh rows of those
        wide = numpy.zeros((1, C, rows, OW), dtype=src.dtype)
        steps = _reduction(numpy.maximum, [base[:, :, :rows, j:j + sx * (OW - 1) + 1:sx]
                                           for j in range(kw)], wide)
        steps += _reduction(numpy.maximum, [wide[:, :, i:i + sy * (OH - 1) + 1:sy]
                                            for i in range(kh)], out)
    else:  # the fast path's summation order (row-major window offsets), for equal values
        steps = _reduction(numpy.add, [base[:, :, i:i + sy * (OH - 1) + 1:sy,
                                            j:j + sx * (OW - 1) + 1:sx]
                                       for i in range(kh) for j in range(kw)], out)
        steps.append((numpy.divide, (out, src.dtype.type(kh * kw)), out))
    if relu:
        steps.append((numpy.maximum, (out, 0), out))
    if copy is not None:
        steps.insert(0, (numpy.copyto, copy, None))
    steps = tuple(steps)

    def run():
        for fn, args, dst in steps:
            if dst is None:
                fn(*args)
            else:
                fn(*args, out=dst)
    return run


def _reduction(op, views, out):
    """Steps (fn, args, out) that set out = op over the views, in order."""
    if len(views) == 1:
        return [(numpy.copyto, (out, views[0]), None)]
    return [(op, (views[0], views[1]), out)] + [(op, (out, v), out) for v in views[2:]]


def _relu_stage(src):
    out = numpy.zeros_like(src)

    def run():
        numpy.maximum(src, 0, out=out)
    return run, out


def _linear_stage(link, src):
    if src.flags.c_contiguous:
        flat, pre = src.reshape(1, -1), None
    else:  # a strided view: gathered into a buffer at each run
        flat = numpy.zeros((1, src.size), dtype=src.dtype)
        pre = (flat.reshape(src.shape), src)
    out = numpy.zeros((1, link.out_size), dtype=src.dtype)
    copyto, matmul, add = numpy.copyto, numpy.matmul, numpy.add

    def run():
        if pre is not None:
            copyto(*pre)
        matmul(flat, link.W.array.T, out=out)
        if link.b is not None:
            add(out, link.b.array, out=out)
    return run, out


def _generic_stage(layer, src):
    fn = lean.compile_layer(layer)
    out = numpy.array(fn(src), dtype=src.dtype)  # its shape, from one run on the buffer

    def run():
        numpy.copyto(out, fn(src))
    return run, out


def _stage(layers, i, src, conv_inputs):
    """(run or None, output array, layers consumed) for the stage that starts at layers[i]. A
    pooling whose stage is followed by a convolution writes straight into that convolution's
    padded input, made ahead and kept in ``conv_inputs`` (by the id of its interior)."""
    layer = layers[i]
    nxt = layers[i + 1] if i + 1 < len(layers) else None
    if _is_conv(layer):
        inp = conv_inputs.get(id(src)) or _ConvInput(layer, src.shape, src.dtype)
        return _conv_stage(layer, src, inp) + (1,)
    if layer is F.relu and isinstance(nxt, blayers.MaxPool):  # max(relu) = relu(max)
        layer, relu, used = nxt, True, 2
    else:
        relu = isinstance(layer, blayers.MaxPool) and nxt is F.relu  # relu(max): one stage
        used = 2 if relu else 1
    if isinstance(layer, (blayers.MaxPool, blayers.AvgPool)):
        shape = _pool_sizes(src.shape, layer)[-1]
        after = layers[i + used] if i + used < len(layers) else None
        if _is_conv(after):
            inp = _ConvInput(after, shape, src.dtype)
            conv_inputs[id(inp.interior)] = inp
            out = inp.interior
        else:
            out = numpy.zeros(shape, dtype=src.dtype)
        return _pool_stage(src, layer, relu, out), out, used
    if layer is F.relu:
        return _relu_stage(src) + (1,)
    if isinstance(layer, L.Linear) and layer.W.array is not None:
        return _linear_stage(layer, src) + (1,)
    if isinstance(layer, blayers.Dropout):
        return None, src, 1  # identity at inference
    return _generic_stage(layer, src) + (1,)


class Program:
    """``layers`` compiled for one sample: of ``shape`` and ``dtype`` into an input buffer of its
    own, or read from ``source``, an array another program writes (its output buffer), which
    saves a copy when programs are chained."""

    def __init__(self, layers, shape=None, dtype=None, source=None):
        conv_inputs = {}
        if source is None:
            if shape is None or shape[0] != 1:
                raise ValueError("a batch-1 program takes one sample, got shape %r" % (shape,))
            dtype = numpy.dtype(dtype)
            if layers and _is_conv(layers[0]):  # the input goes straight into the padding
                inp = _ConvInput(layers[0], shape, dtype)
                conv_inputs[id(inp.interior)] = inp
                source = inp.interior
            else:
                source = numpy.zeros(shape, dtype=dtype)
        elif source.shape[0] != 1:
            raise ValueError("a batch-1 program takes one sample, got shape %r" % (source.shape,))
        self.source = src = source
        stages, i = [], 0
        while i < len(layers):
            run, src, used = _stage(layers, i, src, conv_inputs)
            if run is not None:
                stages.append((tuple(layers[i:i + used]), run, src))
            i += used
        self.stages = tuple(stages)  # (the layers a stage runs, its run(), its output buffer)
        self.runs = tuple(run for _, run, _ in stages)
        self.output = src

    def __call__(self, x):
        """The layers' output for x: a buffer the next call reuses. x that is this program's
        source (the previous program's output) is read where it is; anything else is copied in."""
        if x is not self.source:
            numpy.copyto(self.source, x)
        for run in self.runs:
            run()
        return self.output


def chain(segments, heads, shape, dtype):
    """Programs for a BranchyNet's trunk segments and heads (layer lists) on one sample of
    ``shape``: segment k reads segment k-1's output buffer and head k segment k's, in place.
    Returns (segment programs, head programs)."""
    seg_programs, head_programs, source = [], [], None
    for seg, head in zip(segments, heads):
        program = (Program(seg, shape, dtype) if source is None
                   else Program(seg, source=source))
        source = program.output
        seg_programs.append(program)
        head_programs.append(Program(head, source=source))
    return seg_programs, head_programs
