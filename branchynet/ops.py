"""The one switch between the fast CPU kernels (branchynet.fast) and stock Chainer.

Networks are declared with ordinary Chainer links and the small layers of ``branchynet.layers``;
whenever one of them runs a convolution or a pooling it asks this module, which sends numpy input to
``branchynet.fast`` and everything else (CuPy arrays, or the fast path switched off) to Chainer.

The flag is Chainer's own configuration key ``branchynet_fast_cpu``: on by default, off with the
environment variable ``BRANCHYNET_FAST_CPU=0`` or, for a block of code,
``with chainer.using_config('branchynet_fast_cpu', False): ...`` (every script's ``--stock-chainer``).
"""
import contextlib
import os

import numpy

import chainer
import chainer.functions as F

from branchynet import fast

chainer.global_config.branchynet_fast_cpu = os.environ.get("BRANCHYNET_FAST_CPU", "1") != "0"


def fast_enabled(x=None):
    """True when the fast CPU kernels should run (for the input ``x``, if given)."""
    if not chainer.config.branchynet_fast_cpu:
        return False
    return x is None or isinstance(chainer.as_array(x), numpy.ndarray)


def cpu_scope(x):
    """The context for one training step or one batched inference on x. When the fast kernels
    split batches over several threads, BLAS stays on one thread for the whole of it: a
    multi-threaded BLAS call in between (a linear layer) leaves OpenBLAS's helper threads spinning
    on the cores the kernels' workers need (measured: a B-LeNet step slower on two cores than on
    one)."""
    if fast_enabled(x) and fast.threads.get_threads() > 1:
        return fast.blas.one_thread()
    return contextlib.nullcontext()


def convolution_2d(link, x):
    """Runs an ``L.Convolution2D`` link, through the fast kernel where it applies."""
    if fast_enabled(x) and link.groups == 1 and link.dilate == (1, 1):
        return fast.convolution_2d(x, link.W, link.b, stride=link.stride, pad=link.pad)
    return link(x)


def max_pooling_2d(x, ksize, stride=None, pad=0, cover_all=True):
    if fast_enabled(x):
        return fast.max_pooling_2d(x, ksize, stride=stride, pad=pad, cover_all=cover_all)
    return F.max_pooling_2d(x, ksize, stride=stride, pad=pad, cover_all=cover_all)


def average_pooling_2d(x, ksize, stride=None, pad=0):
    if fast_enabled(x):
        return fast.average_pooling_2d(x, ksize, stride=stride, pad=pad)
    return F.average_pooling_2d(x, ksize, stride=stride, pad=pad)


def apply(layer, x):
    """Applies one item of a network list: a link, or a parameter-free callable."""
    if isinstance(layer, chainer.links.Convolution2D):
        return convolution_2d(layer, x)
    return layer(x)
