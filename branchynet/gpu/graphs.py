"""Batch-1 inference on a GPU as CUDA graphs: each trunk segment and each head is captured once
per input shape and then replayed with one launch.

At batch 1 every Chainer function is a few kernel launches and Python calls that cost more than its
arithmetic (docs/gpu.md), so a segment or head of many layers is bound by launches; a graph
replays all of its kernels at once. Between a head and the next segment the exit decision still
reads the logits on the host, as without graphs, so a sample leaving early never runs the rest.

CuPy refuses cuBLAS calls inside a capture, so while one is captured Chainer's convolution and
linear layers run their products on a kernel of this module instead (one thread per output, the
sum in the layer's dtype): the replayed logits differ from plain Chainer's by float32 rounding.

Graphs read the parameters where they lie: updates in place (optimizers, ``load_npz``) are seen,
and parameters that moved (``to_device``, replaced arrays) are noticed and the graphs captured
again. Each graph allocates from a memory pool of its own, kept with it, so that no other array
is ever placed in its buffers.
"""
import contextlib
import threading
import warnings

import numpy

import chainer
import cupy
from chainer.functions.connection import convolution_2d, linear
from chainer.utils import conv

_MAX_SHAPES = 8  # (thread, input shape) pairs whose graphs are kept per net


class GraphSteps:
    """The captured segments and heads of a net for inputs shaped like x, with their buffers."""

    def __init__(self, net, x):
        self.stream = cupy.cuda.Stream()  # a blocking stream: ordered after the default stream
        with self.stream:
            self.input = cupy.array(x, copy=True)
        self.segments, self.heads = [], []  # (graph, output array, memory pool)
        h = self.input
        for k in range(net.numexits()):
            self.segments.append(_capture(net.segments[k], h, self.stream, "segment %d" % k))
            h = self.segments[k][1]
            self.heads.append(_capture(net.heads[k], h, self.stream, "head %d" % k))

    def segment(self, k, h):
        """Segment k on h, replayed; returns the graph's own output buffer."""
        graph, out, _ = self.segments[k]
        source = self.input if k == 0 else self.segments[k - 1][1]
        if h is not source:
            source[...] = h
        graph.launch(self.stream)
        return out

    def head(self, k, h):
        """Head k's logits on h, replayed; returns the graph's own output buffer."""
        graph, out, _ = self.heads[k]
        source = self.segments[k][1]
        if h is not source:
            source[...] = h
        graph.launch(self.stream)
        return out

    @contextlib.contextmanager
    def context(self):
        """The graphs' stream as the current one (copies and reads of the outputs run on it)."""
        with self.stream, _test_mode():
            yield


@contextlib.contextmanager
def _test_mode():
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        yield


def _capture(chain, x, stream, what):
    """(graph, output, pool) of ``chain`` in test mode on the array x, captured on ``stream``
    after one plain run outside the capture (kernels compiled, handles made), then replayed once
    so that the output holds the chain's result on x."""
    with stream, _test_mode(), _products_without_cublas():
        chainer.as_array(chain(x))
        stream.synchronize()
        pool = cupy.cuda.MemoryPool()
        with cupy.cuda.using_allocator(pool.malloc):
            stream.begin_capture()
            try:
                out = chainer.as_array(chain(x))
            except BaseException as err:
                with contextlib.suppress(Exception):
                    stream.end_capture()
                raise RuntimeError("%s could not be captured: %s: %s"
                                   % (what, type(err).__name__, err)) from err
            graph = stream.end_capture()
        graph.launch(stream)
        stream.synchronize()
    return graph, out, pool


_CONV = cupy.ElementwiseKernel(
    "raw T col, raw T W, raw T b, int32 K, int32 P, int32 O, bool has_b", "T y",
    """
    const int p = i % P;
    const int o = (i / P) % O;
    const int n = i / (P * O);
    T s = 0;
    for (int k = 0; k < K; ++k) s += W[o * K + k] * col[(n * K + k) * P + p];
    y = has_b ? s + b[o] : s;
    """, "branchynet_graph_conv")

_LINEAR = cupy.ElementwiseKernel(
    "raw T x, raw T W, raw T b, int32 K, int32 J, bool has_b", "T y",
    """
    const int j = i % J;
    const int n = i / J;
    T s = 0;
    for (int k = 0; k < K; ++k) s += x[n * K + k] * W[j * K + k];
    y = has_b ? s + b[j] : s;
    """, "branchynet_graph_linear")


def _conv_forward(self, x, W, b):
    """``Convolution2DFunction._forward_gpu_core`` without cuBLAS: im2col, then ``_CONV``."""
    kh, kw = W.shape[2:]
    col = conv.im2col_gpu(x, kh, kw, self.sy, self.sx, self.ph, self.pw,
                          cover_all=self.cover_all, dy=self.dy, dx=self.dx)
    n, c, _, _, out_h, out_w = col.shape
    y = cupy.empty((n, W.shape[0], out_h, out_w), dtype=x.dtype)
    _CONV(col, cupy.ascontiguousarray(W), W if b is None else b, c * kh * kw, out_h * out_w,
          W.shape[0], b is not None, y)
    return y,


def _linear_forward(plain):
    """``LinearFunction.forward`` without cuBLAS for GPU arrays (``_LINEAR``); ``plain`` else."""
    def forward(self, inputs):
        x, W = inputs[:2]
        b = inputs[2] if len(inputs) == 3 else None
        if isinstance(x, numpy.ndarray) or x.ndim != 2 or x.shape[1] != W.shape[1]:
            return plain(self, inputs)
        self._config_use_ideep = chainer.config.use_ideep
        y = cupy.empty((x.shape[0], W.shape[0]), dtype=x.dtype)
        _LINEAR(cupy.ascontiguousarray(x), cupy.ascontiguousarray(W), W if b is None else b,
                W.shape[1], W.shape[0], b is not None, y)
        self.retain_inputs((0, 1))
        return y,
    return forward


@contextlib.contextmanager
def _products_without_cublas():
    """Chainer's convolution and linear forward on this module's kernels, for a capture."""
    conv_class, linear_class = convolution_2d.Convolution2DFunction, linear.LinearFunction
    saved = conv_class._forward_gpu_core, linear_class.forward
    conv_class._forward_gpu_core = _conv_forward
    linear_class.forward = _linear_forward(saved[1])
    try:
        yield
    finally:
        conv_class._forward_gpu_core, linear_class.forward = saved


def _placement(net):
    """Where every parameter and persistent array (batch normalisation's statistics) lies."""
    where = []
    for link in net.links():
        for name in sorted(link._params):
            array = getattr(link, name).array
            where.append(None if array is None else array.data.ptr)
        for name in sorted(link._persistent):
            value = getattr(link, name)
            where.append(value.data.ptr if isinstance(value, cupy.ndarray) else None)
    return tuple(where)


def steps_for(cache, net, x):
    """(segment, head, context) replaying ``net``'s graphs for inputs like x, captured on first
    use and again when a parameter moved; None (after one warning) where capture failed."""
    key = (threading.get_ident(), x.shape, x.dtype.str, x.device.id)  # buffers are per thread
    placement = _placement(net)
    entry = cache.get(key)
    if entry is None or entry[0] != placement:
        if len(cache) >= _MAX_SHAPES:
            cache.clear()
        try:
            with x.device:
                steps = GraphSteps(net, x)
        except Exception as err:
            warnings.warn("CUDA graphs are off for inputs of shape %s: %s. Batch-1 inference runs "
                          "on plain Chainer (BRANCHYNET_CUDA_GRAPHS=0 turns graphs off)."
                          % (x.shape, err), RuntimeWarning, stacklevel=4)
            steps = None
        entry = cache[key] = (placement, steps)
    steps = entry[1]
    return None if steps is None else (steps.segment, steps.head, steps.context())
