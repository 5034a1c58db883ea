"""The one switch between the fast CPU kernels and stock Chainer, for Chainer graphs (training).

A network item runs on the fast kernels when its input is a numpy array and the flag is on; CuPy
arrays, or the flag off, run stock Chainer. The flag is Chainer's configuration key
``branchynet_fast_cpu``: on by default, off with ``BRANCHYNET_FAST_CPU=0`` or
``with chainer.using_config('branchynet_fast_cpu', False): ...`` (every script's ``--stock-chainer``).
"""
import contextlib
import os

import numpy

import chainer
import chainer.functions as F
import chainer.links as L

from branchynet.fast import blas, jit_train, memory, threads
from branchynet.fast.conv import supports
from branchynet.fast.conv_nodes import convolution_2d
from branchynet.fast.lrn import local_response_normalization
from branchynet.fast.pooling_nodes import average_pooling_2d, max_pooling_2d
from branchynet.model import layers as blayers

chainer.global_config.branchynet_fast_cpu = os.environ.get("BRANCHYNET_FAST_CPU", "1") != "0"


def is_numpy(x):
    """True for a numpy array or a Variable holding one."""
    return isinstance(chainer.as_array(x), numpy.ndarray)


def enabled(x=None):
    """True when the fast CPU kernels should run (for the input ``x``, if given)."""
    return bool(chainer.config.branchynet_fast_cpu) and (x is None or is_numpy(x))


def cpu_scope(x):
    """The context for one training step or one batched inference on x: freed memory kept for the
    next step (``memory``), and BLAS on one thread while the kernels split batches over several
    (OpenBLAS helpers left spinning after a multi-threaded call take the cores the kernels' workers
    need)."""
    if enabled(x):
        memory.keep_freed()
        if threads.get_threads() > 1:
            return blas.one_thread()
    return contextlib.nullcontext()


def _graph_rule(layer):
    """The fast kernel's Chainer function for a network item, or None (the item runs itself)."""
    if isinstance(layer, blayers.MaxPool):
        return lambda x: max_pooling_2d(x, layer.ksize, layer.stride, layer.pad, layer.cover_all)
    if isinstance(layer, blayers.LRN):
        return lambda x: (local_response_normalization(x, layer.n, layer.k, layer.alpha, layer.beta)
                          if jit_train.applies(x.dtype) else layer(x))
    if isinstance(layer, blayers.AvgPool):
        return lambda x: average_pooling_2d(x, layer.ksize, layer.stride, layer.pad)
    if isinstance(layer, L.Convolution2D) and supports(layer):
        return lambda x: convolution_2d(x, layer.W, layer.b, layer.stride, layer.pad)
    if hasattr(layer, "forward_with"):  # a composite link: its parts go through this switch
        return lambda x: layer.forward_with(x, apply)
    return None


def apply(layer, x):
    """Applies one network item to x, on the fast kernels where they apply."""
    rule = _graph_rule(layer) if enabled(x) else None
    return layer(x) if rule is None else rule(x)


def relu_after_pool(layers):
    """``layers`` with each ReLU that precedes a max pooling moved after it: the same values and
    gradients (the two commute, and where a window's maximum is positive both route the gradient
    to its first occurrence; elsewhere both give zero), on a tensor the pooling made smaller."""
    layers = list(layers)
    for i in range(len(layers) - 1):
        if layers[i] is F.relu and isinstance(layers[i + 1], blayers.MaxPool):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return layers


def _fused_with_relu(layers, i, x):
    """The function that runs layers[i] and the ReLU after it as one on x (a max pooling on the
    compiled kernels, a convolution with the ReLU in place on its output), else None."""
    if i + 1 >= len(layers) or layers[i + 1] is not F.relu:
        return None
    layer = layers[i]
    if isinstance(layer, blayers.MaxPool) and jit_train.applies(x.dtype):
        return lambda h: max_pooling_2d(h, layer.ksize, layer.stride, layer.pad, layer.cover_all,
                                        relu=True)
    if isinstance(layer, L.Convolution2D) and supports(layer):
        return lambda h: convolution_2d(h, layer.W, layer.b, layer.stride, layer.pad, relu=True)
    return None


def run_layers(layers, x):
    """Runs a list of network items on x in a Chainer graph (fast kernels where they apply; a max
    pooling or a convolution and the ReLU after it as one)."""
    fast = enabled(x)
    layers, i = relu_after_pool(layers) if fast else layers, 0
    while i < len(layers):
        fused = _fused_with_relu(layers, i, x) if fast else None
        if fused is not None:
            x = fused(x)
            i += 2
        else:
            x = apply(layers[i], x)
            i += 1
    return x
