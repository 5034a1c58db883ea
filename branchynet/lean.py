"""A lean CPU inference path: network lists run as plain numpy calls, no Chainer graph.

Each Chainer function call costs 25-50 us of Python, as much as a small layer's arithmetic. Here
each layer becomes one numpy function reading the link's current parameters. Inference semantics
only (BN with running statistics, no dropout). ``BranchyNet`` runs batches through it on CPU when
the fast path is on (one sample at a time goes through the compiled programs of ``single.py``, which
fall back to these functions for layers without a stage of their own); tests check it against the
Chainer path.
"""
import numpy

import chainer
import chainer.functions as F
import chainer.links as L

from branchynet import fast


def _conv(link):
    def run(x):
        b = None if link.b is None else link.b.array
        return fast.conv2d_numpy(x, link.W.array, b, link.stride, link.pad)
    return run


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


def _chainer_fallback(layer):
    def run(x):
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            y = layer(x)
        return y.array if isinstance(y, chainer.Variable) else y
    return run


def compile_layer(layer):
    """One numpy function for one network item; unknown items run through Chainer."""
    if hasattr(layer, "numpy_forward"):
        return layer.numpy_forward
    if isinstance(layer, L.Convolution2D) and layer.groups == 1 and layer.dilate == (1, 1):
        return _conv(layer)
    if isinstance(layer, L.Linear):
        return _linear(layer)
    if isinstance(layer, L.BatchNormalization) and layer.axis is None and layer.avg_mean is not None:
        return _batch_norm(layer)
    if layer is F.relu:
        return _relu
    return _chainer_fallback(layer)


def compile_sequence(layers):
    """A list of numpy functions, one per layer, to be applied in order."""
    return [compile_layer(layer) for layer in layers]


def run_sequence(functions, x):
    for fn in functions:
        x = fn(x)
    return x
