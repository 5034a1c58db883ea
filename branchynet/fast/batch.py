"""How each layer type runs on a numpy batch at inference: one table, ``numpy_function``.

The batched programs of ``compiler`` are lists of these functions; layers the table does not know
run through Chainer in test mode. Parameters are read from the links at every call.
"""
import numpy

import chainer
import chainer.functions as F
import chainer.links as L

from branchynet.fast import conv as fconv
from branchynet.fast import conv_pool, halving, jit, layout, threads
from branchynet.fast import linear as flinear
from branchynet.fast import pooling as fpool
from branchynet.model import layers as blayers
from branchynet.model import links as blinks

__all__ = ["numpy_function", "functions", "max_pool_function", "is_conv", "conv_direct",
           "pool_sizes"]


def _conv(link):
    """A few samples: the direct convolution by ``jit``'s rule; a batch: the path
    ``conv.conv2d_numpy`` times on this machine (direct or im2col + GEMM)."""
    def run(x):
        b = None if link.b is None else link.b.array
        if len(x) <= jit.DIRECT_SMALL_BATCH and jit.direct_conv_applies(link, x.dtype, len(x)):
            return conv_direct(x, link.W.array, b, link.pad)
        return fconv.conv2d_numpy(x, link.W.array, b, link.stride, link.pad)
    return run


def conv_direct(x, W, b, pad):
    """A stride-1 convolution of a batch by the compiled direct kernel (``jit.conv_direct``) on the
    padded full-row buffer, the batch split over the kernel threads; a full-row output view."""
    if x.shape[1] != W.shape[1]:
        raise ValueError("x has %d channels, W expects %d" % (x.shape[1], W.shape[1]))
    g = layout.geom(x.shape, W.shape, (1, 1), layout.pair(pad))
    xbuf = layout.padded(x, g)
    ypad = numpy.empty((g.N, g.O, g.L), dtype=x.dtype)
    span = g.C * g.plane
    threads.run(lambda n0, n1: jit.conv_direct(xbuf[n0 * span:n1 * span + g.kw], W, b,
                                               ypad[n0:n1], g, n1 - n0),
                threads.parts(g.N, (span + g.O * g.L) * x.dtype.itemsize))
    return layout.output(ypad, g)


def _linear(link):
    """x W^T + b by OpenBLAS, or by ``linear`` for few outputs where it is faster here."""
    def run(x):
        x, W = x.reshape(x.shape[0], -1), link.W.array
        b = None if link.b is None else link.b.array
        if flinear.applies(x, W) and _linear_path(x, W, b) == "dots":
            return flinear.linear(x, W, b)
        return _blas_linear(x, W, b)
    return run


def _blas_linear(x, W, b):
    y = x @ W.T
    return y if b is None else y + b


def _linear_path(x, W, b):
    """"blas" or "dots" (``linear``), timed on this machine (``conv.choose_for_batch``); by
    default (timing off) "blas"."""
    return fconv.choose_for_batch("linear K%d O%d" % (W.shape[1], W.shape[0]), len(x), "blas", {
        "blas": lambda n: _blas_linear(x[:n], W, b), "dots": lambda n: flinear.linear(x[:n], W, b)})


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


def pool_sizes(shape, layer):
    """((kh, kw), (sy, sx), (ph, pw), cover_all, output shape) of a MaxPool/AvgPool layer."""
    _, C, H, W = shape
    is_max = isinstance(layer, blayers.MaxPool)
    cover_all = layer.cover_all if is_max else False
    k = layout.pair(layer.ksize)
    st = layout.pair(layer.ksize if layer.stride is None else layer.stride)
    p = layout.pair(layer.pad)
    OH = fpool._out_size(H, k[0], st[0], p[0], cover_all)
    OW = fpool._out_size(W, k[1], st[1], p[1], cover_all)
    return k, st, p, cover_all, (1, C, OH, OW)


def max_pool_function(layer, relu, into=None):
    """Max pooling of a batch, with the ReLU after it when ``relu``: 2 x 2 windows of stride 2 on
    vector code (``halving``; ``into``: the output shape -> the stride-1 geometry of the
    convolution that reads the output, which then takes it without a copy), others in one
    compiled call for a small batch (``jit.pool_applies``), else the numpy pooling (and an
    in-place ReLU)."""
    def run(x):
        if halving.applies(x, layer.ksize, layer.stride, layer.pad):
            return halving.max_pool(x, layer.cover_all, relu, into=into)
        (kh, kw), (sy, sx), (ph, pw), _, (_, C, OH, OW) = pool_sizes(x.shape, layer)
        if jit.pool_applies(x.shape, x.dtype):
            return jit.max_pool(x, numpy.empty((len(x), C, OH, OW), dtype=x.dtype),
                                (kh, kw), (sy, sx), (ph, pw), relu)
        y = fpool.max_pool_numpy(x, layer.ksize, layer.stride, layer.pad, layer.cover_all)
        return numpy.maximum(y, 0, out=y) if relu else y
    return run


def _conv_then_pool(link, pool, relu, into, classifier=None):
    """A convolution and the max pooling (and ReLU) after it, and the ``classifier`` (a linear
    layer with few outputs) after them if given: fused (``conv_pool``) where the convolution runs
    on the unpacked micro-kernel for this batch, else one after the other. ``run(x, rows)`` runs
    x[rows], reading the fused path's samples where they lie (``takes_rows``); ``run(x,
    counted=[])`` appends how many samples of x are not finite where the fused path counts them
    while copying x (``counts_non_finite``), and nothing elsewhere."""
    conv, pooling = _conv(link), max_pool_function(pool, relu, into)
    last = (lambda y: y) if classifier is None else numpy_function(classifier)
    pooled = (pool.ksize, pool.stride, pool.pad)

    def run(x, rows=None, counted=None):
        n = len(x) if rows is None else len(rows)
        if (n > jit.DIRECT_SMALL_BATCH and conv_pool.applies(x, link.W.array, link.stride, pooled)
                and fconv.forward_path(x, link.W.array, link.stride, link.pad, n) == "unpacked"):
            b = None if link.b is None else link.b.array
            head = None if classifier is None else (
                classifier.W.array, None if classifier.b is None else classifier.b.array)
            found = conv_pool.conv_pool(x, link.W.array, b, link.pad, pool.cover_all, relu, into,
                                        classifier=head, rows=rows,
                                        count_non_finite=counted is not None)
            if counted is None:
                return found
            y, count = found
            if count is not None:
                counted.append(count)
            return y
        return last(pooling(conv(x if rows is None else x[rows])))
    run.takes_rows = run.counts_non_finite = True
    return run


def _few_outputs(layer):
    """Whether ``layer`` is a float32 linear layer ``conv_pool`` can run after its pooling."""
    return (isinstance(layer, L.Linear) and layer.W.array is not None
            and layer.W.dtype == numpy.float32 and flinear.rows_per_step(layer.W.shape[0]) > 0)


def _reader(layer):
    """For a layer that reads a pooling's output: the output shape -> its stride-1 convolution
    geometry (``max_pool_function``'s ``into``), or None when it is not such a convolution."""
    if not (is_conv(layer) and layout.pair(layer.stride) == (1, 1) and layer.W.array is not None):
        return None
    return lambda shape: layout.geom(shape, layer.W.shape, (1, 1), layout.pair(layer.pad))


def functions(layers, then=None):
    """The batch functions of ``layers`` (ReLUs already after poolings), one per layer, except
    that a max pooling runs with the ReLU after it, and a convolution with the max pooling after
    it (and with a linear layer of few outputs after that, an exit head's classifier); a pooling
    stores its output as the convolution that reads it (the next layer, or ``then`` after the
    last) takes it."""
    out, i = [], 0
    while i < len(layers):
        layer = layers[i]
        conv_first = is_conv(layer) and i + 1 < len(layers)
        p = i + 1 if conv_first and isinstance(layers[i + 1], blayers.MaxPool) else i
        if not isinstance(layers[p], blayers.MaxPool):
            out.append(numpy_function(layer))
            i += 1
            continue
        relu = p + 1 < len(layers) and layers[p + 1] is F.relu
        end = p + 1 + relu
        if p > i and end < len(layers) and _few_outputs(layers[end]):
            out.append(_conv_then_pool(layer, layers[p], relu, None, layers[end]))
            i = end + 1
            continue
        into = _reader(layers[end] if end < len(layers) else then)
        out.append(_conv_then_pool(layer, layers[p], relu, into) if p > i
                   else max_pool_function(layers[p], relu, into))
        i = end
    return out


def _chainer_test_mode(layer):
    def run(x):
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            return chainer.as_array(layer(x))
    return run


def is_conv(layer):
    return isinstance(layer, L.Convolution2D) and fconv.supports(layer)


# (applies to the layer?, numpy function of a batch): the first entry that applies is used.
_FUNCTIONS = (
    (is_conv, _conv),
    (lambda layer: isinstance(layer, L.Linear), _linear),
    (lambda layer: (isinstance(layer, L.BatchNormalization) and layer.axis is None
                    and layer.avg_mean is not None), _batch_norm),
    (lambda layer: layer is F.relu, lambda layer: _relu),
    (lambda layer: isinstance(layer, blayers.MaxPool),
     lambda layer: max_pool_function(layer, relu=False)),
    (lambda layer: isinstance(layer, blayers.AvgPool),
     lambda layer: lambda x: fpool.avg_pool_numpy(x, layer.ksize, layer.stride, layer.pad)),
    (lambda layer: isinstance(layer, blayers.LRN), _lrn),
    (lambda layer: isinstance(layer, blayers.Dropout), lambda layer: lambda x: x),  # inference: identity
    (lambda layer: isinstance(layer, blinks.ResBlock), _res_block),
)


def numpy_function(layer):
    """The inference function of one network item on a numpy batch (BN with running statistics,
    no dropout); items the table does not know run through Chainer in test mode."""
    for applies, build in _FUNCTIONS:
        if applies(layer):
            return build(layer)
    return _chainer_test_mode(layer)
