"""The stages of a batch-1 program: each with its buffers and strided views made once.

A stage is ``(run, output array)``; ``run()`` reads its source buffer and writes its output buffer
with a fixed list of numpy calls. A max pooling and its ReLU run as one stage, and a pooling writes
straight into the next convolution's zero-padded input.
"""
import numpy

import chainer.functions as F
import chainer.links as L

from branchynet.fast import jit, layout
from branchynet.fast.batch import is_conv, numpy_function, pool_sizes
from branchynet.model import layers as blayers

__all__ = ["ConvInput", "stage"]


class ConvInput:
    """A convolution's zero-padded input buffer and its interior, where the input goes: the
    padding stays zero because only the interior is ever written."""

    def __init__(self, link, shape, dtype):
        self.g = layout.Geom(tuple(shape), link.W.shape, link.stride, link.pad)
        self.padded, self.interior = layout.padded_buffer(1, self.g, dtype)


def _conv_stage(link, src, inp):
    """im2col copy and one GEMM, or one call of the compiled direct convolution for a short
    im2col column (``jit.direct_conv_applies``); the input is copied into ``inp`` unless it is
    written there."""
    g = inp.g
    if jit.direct_conv_applies(link, src.dtype, batch=1):
        return _direct_conv_stage(link, src, inp)
    col = numpy.zeros((g.K, g.L), dtype=src.dtype)
    window = layout.col_view(inp.padded, g, 0, 1)
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
    return run, layout.output(out, g)


def _direct_conv_stage(link, src, inp):
    g = inp.g
    out = numpy.zeros((1, g.O, g.L), dtype=src.dtype)
    no_bias = numpy.zeros(g.O, dtype=src.dtype)
    copy = None if src is inp.interior else (inp.interior, src)
    copyto, kernel, padded = numpy.copyto, jit.conv_direct, inp.padded

    def run():
        if copy is not None:
            copyto(*copy)
        kernel(padded, link.W.array, no_bias if link.b is None else link.b.array, out, g)
    return run, layout.output(out, g)


def _pool_stage(src, layer, relu, out):
    """Max or average pooling (Chainer's semantics, as branchynet.fast.pooling) into ``out``,
    with a following ReLU fused into a max pooling."""
    is_max = isinstance(layer, blayers.MaxPool)
    (kh, kw), (sy, sx), (ph, pw), _, (_, C, OH, OW) = pool_sizes(src.shape, layer)
    H, W = src.shape[2:]
    if is_max and jit.pool_applies(src.shape, src.dtype) and out.dtype == src.dtype:
        kernel, sizes = jit.max_pool, ((kh, kw), (sy, sx), (ph, pw))

        def run_compiled():  # one call, ReLU included
            kernel(src, out, *sizes, relu)
        return run_compiled
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
    if src.flags.c_contiguous and jit.linear_applies(link, src.dtype):  # one compiled call
        out = numpy.zeros((1, link.out_size), dtype=src.dtype)
        flat, kernel = src.reshape(-1), jit._linear

        def run_compiled():
            kernel(flat, link.W.array, link.b.array, out)
        return run_compiled, out
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
    fn = numpy_function(layer)
    out = numpy.array(fn(src), dtype=src.dtype)  # its shape, from one run on the buffer

    def run():
        numpy.copyto(out, fn(src))
    return run, out


def stage(layers, i, src, conv_inputs):
    """(run or None, output array, layers consumed) for the stage that starts at layers[i]. A
    pooling whose stage is followed by a convolution writes straight into that convolution's
    padded input, made ahead and kept in ``conv_inputs`` (by the id of its interior)."""
    layer = layers[i]
    nxt = layers[i + 1] if i + 1 < len(layers) else None
    if is_conv(layer):
        inp = conv_inputs.get(id(src)) or ConvInput(layer, src.shape, src.dtype)
        return _conv_stage(layer, src, inp) + (1,)
    if isinstance(layer, (blayers.MaxPool, blayers.AvgPool)):
        relu = isinstance(layer, blayers.MaxPool) and nxt is F.relu  # relu(max): one stage
        used = 2 if relu else 1
        shape = pool_sizes(src.shape, layer)[-1]
        after = layers[i + used] if i + used < len(layers) else None
        if is_conv(after):
            inp = ConvInput(after, shape, src.dtype)
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
