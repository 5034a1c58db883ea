"""The CPU inference compiler: a trunk segment's or head's layer list into a numpy program.

Inference needs no Chainer graph, and at batch 1 each Chainer call costs as much as a small layer's
arithmetic, so inference on numpy runs programs compiled here. Each layer type says once, in
``numpy_function``'s table, how it runs on a numpy batch. A program for one sample goes further:
its stages get their buffers and strided views once, at compile time (zero-padded convolution
inputs whose padding stays as set, im2col buffers, pooling window views), so a run is a fixed list
of numpy calls with no allocation and no shape arithmetic; a max pooling and its ReLU run as one
stage, a pooling writes straight into the next convolution's padded input, and a program may read
another's output buffer in place (``source``), which ``Runner`` uses to chain segments and heads.
Parameters are read from the links at every run, so training in between is seen.

A batch-1 program owns its buffers: its output is overwritten by its next run, and it must not run
on two threads at once (``Runner`` keeps one set per thread).
"""
import copy
import threading

import numpy

import chainer
import chainer.functions as F
import chainer.links as L

from branchynet.model import layers as blayers
from branchynet.model import links as blinks
from branchynet.fast import conv as fconv
from branchynet.fast import jit
from branchynet.fast import pooling as fpool
from branchynet.fast import threads
from branchynet.fast.switch import relu_after_pool

__all__ = ["numpy_function", "BatchProgram", "SampleProgram", "chain", "Runner"]


# ------------------------------------------------------------------ layers on a numpy batch
def _conv(link):
    def run(x):
        b = None if link.b is None else link.b.array
        if jit.direct_conv_applies(link, x.dtype, batch=len(x)):
            return _conv_direct(x, link.W.array, b, link.pad)
        return fconv.conv2d_numpy(x, link.W.array, b, link.stride, link.pad)
    return run


def _conv_direct(x, W, b, pad):
    """A stride-1 convolution of a batch by the compiled direct kernel (``jit.conv_direct``) on the
    padded full-row buffer, the batch split over the kernel threads; a full-row output view."""
    if x.shape[1] != W.shape[1]:
        raise ValueError("x has %d channels, W expects %d" % (x.shape[1], W.shape[1]))
    g = fconv._geom(x.shape, W.shape, (1, 1), fconv._pair(pad))
    xbuf = fconv._padded(x, g)
    ypad = numpy.empty((g.N, g.O, g.L), dtype=x.dtype)
    span = g.C * g.plane
    threads.run(lambda n0, n1: jit.conv_direct(xbuf[n0 * span:n1 * span + g.kw], W, b,
                                               ypad[n0:n1], g, n1 - n0),
                threads.parts(g.N, (span + g.O * g.L) * x.dtype.itemsize))
    return fconv._output(ypad, g)


def _linear(link):
    def run(x):
        y = x.reshape(x.shape[0], -1) @ link.W.array.T
        return y if link.b is None else y + link.b.array
    return run


def _batch_norm(link):
    def run(x):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        scale = (link.gamma.array / numpy.sqrt(link.avg_var + link.eps)).reshape(shape)
        shift = link.beta.array.reshape(shape) - link.avg_mean.reshape(shape) * scale
        return x * scale + shift
    return run


def _relu(x):
    return numpy.maximum(x, 0, dtype=x.dtype)


def _lrn(layer):
    def run(x):
        half = layer.n // 2
        padded = numpy.zeros((x.shape[0], x.shape[1] + 2 * half) + x.shape[2:], dtype=x.dtype)
        padded[:, half:half + x.shape[1]] = numpy.square(x)
        window = sum(padded[:, i:i + x.shape[1]] for i in range(layer.n))
        return x * (layer.k + layer.alpha * window) ** -layer.beta
    return run


def _res_block(block):
    conv1, bn1, conv2, bn2 = (numpy_function(link)
                              for link in (block.conv1, block.bn1, block.conv2, block.bn2))

    def run(x):
        h = bn2(conv2(_relu(bn1(conv1(x)))))
        s = x
        if s.shape[2:] != h.shape[2:]:
            s = s[:, :, ::block.stride, ::block.stride]  # = 1x1 average pooling, floor mode
        pad_c = h.shape[1] - s.shape[1]
        if pad_c:
            s = numpy.concatenate(
                (numpy.zeros((s.shape[0], pad_c) + s.shape[2:], dtype=s.dtype), s), axis=1)
        return numpy.maximum(h + s, 0)
    return run


def _max_pool(layer, relu):
    """Max pooling of a batch, with the ReLU after it when ``relu``: one compiled call for a small
    batch (``jit.pool_applies``), else the numpy pooling (and an in-place ReLU)."""
    def run(x):
        (kh, kw), (sy, sx), (ph, pw), _, (_, C, OH, OW) = _pool_sizes(x.shape, layer)
        if jit.pool_applies(x.shape, x.dtype):
            return jit.max_pool(x, numpy.empty((len(x), C, OH, OW), dtype=x.dtype),
                                (kh, kw), (sy, sx), (ph, pw), relu)
        y = fpool.max_pool_numpy(x, layer.ksize, layer.stride, layer.pad, layer.cover_all)
        return numpy.maximum(y, 0, out=y) if relu else y
    return run


def _chainer_test_mode(layer):
    def run(x):
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            return chainer.as_array(layer(x))
    return run


def _is_conv(layer):
    return isinstance(layer, L.Convolution2D) and fconv.supports(layer)


# (applies to the layer?, numpy function of a batch): the first entry that applies is used.
_FUNCTIONS = (
    (_is_conv, _conv),
    (lambda l: isinstance(l, L.Linear), _linear),
    (lambda l: (isinstance(l, L.BatchNormalization) and l.axis is None
                and l.avg_mean is not None), _batch_norm),
    (lambda l: l is F.relu, lambda l: _relu),
    (lambda l: isinstance(l, blayers.MaxPool), lambda l: _max_pool(l, relu=False)),
    (lambda l: isinstance(l, blayers.AvgPool),
     lambda l: lambda x: fpool.avg_pool_numpy(x, l.ksize, l.stride, l.pad)),
    (lambda l: isinstance(l, blayers.LRN), _lrn),
    (lambda l: isinstance(l, blayers.Dropout), lambda l: lambda x: x),  # identity at inference
    (lambda l: isinstance(l, blinks.ResBlock), _res_block),
)


def numpy_function(layer):
    """The inference function of one network item on a numpy batch (BN with running statistics,
    no dropout); items the table does not know run through Chainer in test mode."""
    for applies, build in _FUNCTIONS:
        if applies(layer):
            return build(layer)
    return _chainer_test_mode(layer)


# ------------------------------------------------------------------ stages of a batch-1 program
class _ConvInput:
    """A convolution's zero-padded input buffer and its interior, where the input goes: the
    padding stays zero because only the interior is ever written."""

    def __init__(self, link, shape, dtype):
        self.g = fconv._Geom(tuple(shape), link.W.shape, link.stride, link.pad)
        self.padded, self.interior = fconv._padded_buffer(1, self.g, dtype)


def _conv_stage(link, src, inp):
    """im2col copy and one GEMM, or one call of the compiled direct convolution for a short
    im2col column (``jit.direct_conv_applies``); the input is copied into ``inp`` unless it is
    written there."""
    g = inp.g
    if jit.direct_conv_applies(link, src.dtype, batch=1):
        return _direct_conv_stage(link, src, inp)
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


def _stage(layers, i, src, conv_inputs):
    """(run or None, output array, layers consumed) for the stage that starts at layers[i]. A
    pooling whose stage is followed by a convolution writes straight into that convolution's
    padded input, made ahead and kept in ``conv_inputs`` (by the id of its interior)."""
    layer = layers[i]
    nxt = layers[i + 1] if i + 1 < len(layers) else None
    if _is_conv(layer):
        inp = conv_inputs.get(id(src)) or _ConvInput(layer, src.shape, src.dtype)
        return _conv_stage(layer, src, inp) + (1,)
    if isinstance(layer, (blayers.MaxPool, blayers.AvgPool)):
        relu = isinstance(layer, blayers.MaxPool) and nxt is F.relu  # relu(max): one stage
        used = 2 if relu else 1
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


# ------------------------------------------------------------------ programs
class SampleProgram:
    """``layers`` compiled for one sample: of ``shape`` and ``dtype`` into an input buffer of its
    own, or read from ``source``, an array another program writes (its output buffer), which
    saves a copy when programs are chained."""

    def __init__(self, layers, shape=None, dtype=None, source=None):
        layers = relu_after_pool(layers)
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


class BatchProgram:
    """``layers`` compiled for a batch of any size: one numpy function per layer."""

    def __init__(self, layers):
        layers = relu_after_pool(layers)
        functions, i = [], 0
        while i < len(layers):  # relu(max pooling): one function, as in a batch-1 program
            if (isinstance(layers[i], blayers.MaxPool) and i + 1 < len(layers)
                    and layers[i + 1] is F.relu):
                functions.append(_max_pool(layers[i], relu=True))
                i += 2
            else:
                functions.append(numpy_function(layers[i]))
                i += 1
        self.functions = tuple(functions)

    def __call__(self, x):
        for fn in self.functions:
            x = fn(x)
        return x


def chain(segments, heads, shape, dtype):
    """Batch-1 programs for a BranchyNet's trunk segments and heads (layer lists) on one sample of
    ``shape``: segment k reads segment k-1's output buffer and head k segment k's, in place.
    Returns (segment programs, head programs)."""
    seg_programs, head_programs, source = [], [], None
    for seg, head in zip(segments, heads):
        program = (SampleProgram(seg, shape, dtype) if source is None
                   else SampleProgram(seg, source=source))
        source = program.output
        seg_programs.append(program)
        head_programs.append(SampleProgram(head, source=source))
    return seg_programs, head_programs


class Runner:
    """What inference on numpy runs for a BranchyNet's segments and heads (layer lists): batch
    programs, and for one floating-point sample, chained batch-1 programs per thread and shape.
    In a batch, the few samples that early exit leaves in flight (at most ``SAMPLE_MAX``) go on
    one at a time through the batch-1 programs, which cost less than a batch program's calls."""

    _MAX_SAMPLE_CHAINS = 64  # threads come and go; programs are cheap to rebuild
    # Largest part of a batch run sample by sample: at 1-2 samples the batch-1 programs beat the
    # batch programs on B-LeNet and B-AlexNet alike (B-LeNet's from 1 to 64 samples, B-AlexNet's
    # from 4 samples on lose by 10-20 %).
    SAMPLE_MAX = 2

    def __init__(self, segments, heads):
        self.segments, self.heads = segments, heads
        self._batch = None
        self._sample = {}

    def __deepcopy__(self, memo):
        """A copy over copied layers, with no programs: compiled closures would still read the
        original links."""
        return Runner(copy.deepcopy(self.segments, memo), copy.deepcopy(self.heads, memo))

    def _chain(self, shape, dtype):
        key = (threading.get_ident(), shape, dtype.str)
        programs = self._sample.get(key)
        if programs is None:
            if len(self._sample) >= self._MAX_SAMPLE_CHAINS:
                self._sample.clear()
            programs = self._sample[key] = chain(self.segments, self.heads, shape, dtype)
        return programs

    def steps(self, x):
        """(segment k on h, head k on h) for inputs like x. A batch-1 program returns its own
        buffer, which its next run overwrites."""
        if len(x) == 1 and x.dtype.kind == "f":
            segments, heads = self._chain(x.shape, x.dtype)
            return (lambda k, h: segments[k](h)), (lambda k, h: heads[k](h))
        if self._batch is None:
            self._batch = ([BatchProgram(s) for s in self.segments],
                           [BatchProgram(h) for h in self.heads])
        segments, heads = self._batch
        if x.dtype.kind != "f":
            return (lambda k, h: segments[k](h)), (lambda k, h: heads[k](h))
        sample_shape = (1,) + tuple(x.shape[1:])

        def by_sample(programs, k, h):  # programs[k] on each sample of h, results stacked
            program = programs[k]
            first = program(h[:1])
            out = numpy.empty((len(h),) + first.shape[1:], dtype=first.dtype)
            out[0] = first[0]
            for i in range(1, len(h)):
                out[i] = program(h[i:i + 1])[0]
            return out

        def segment(k, h):
            if 0 < len(h) <= self.SAMPLE_MAX:
                return by_sample(self._chain(sample_shape, x.dtype)[0], k, h)
            return segments[k](h)

        def head(k, h):
            if 0 < len(h) <= self.SAMPLE_MAX:
                return by_sample(self._chain(sample_shape, x.dtype)[1], k, h)
            return heads[k](h)
        return segment, head
