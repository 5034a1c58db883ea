"""The pooling kernels as Chainer FunctionNodes: drop-ins for ``F.max_pooling_2d`` (optionally
with the ReLU after it) and ``F.average_pooling_2d``, with their gradients and the gradients' own
gradients. Max pooling runs the compiled kernels of ``jit_train`` where they apply (they record
each window's winner, so the backward is one scatter), else the numpy kernels of ``pooling``."""
import numpy

import chainer
from chainer import function_node

from branchynet.fast import jit_train
from branchynet.fast.layout import pair
from branchynet.fast.pooling import (
    _avg_backward,
    _get_plan,
    _max_backward,
    _max_backward_winners,
    _max_forward_winners,
    _max_gather,
    _pool_forward,
    avg_pool_numpy,
)

__all__ = ["max_pooling_2d", "average_pooling_2d"]


class MaxPooling2D(function_node.FunctionNode):
    """Max pooling, then a ReLU when ``relu`` (which needs the compiled kernels)."""

    def __init__(self, ksize, stride, pad, cover_all, relu=False):
        self.ksize, self.stride, self.pad, self.cover_all = ksize, stride, pad, cover_all
        self.relu = relu

    def check_type_forward(self, in_types):
        x_type, = in_types
        chainer.utils.type_check.expect(x_type.dtype.kind == "f", x_type.ndim == 4)

    def forward_cpu(self, inputs):
        x, = inputs
        plan = _get_plan(x.shape, x.dtype, self.ksize, self.stride, self.pad, self.cover_all)
        if jit_train.applies(x.dtype):
            y, win = _max_forward_winners(x, plan, self.relu)
            self._grad = lambda: _WinnerGrad(plan, win)
            return y,
        if self.relu:
            raise RuntimeError("max pooling fused with its ReLU needs the compiled kernels")
        self.retain_inputs((0,))
        self._grad = lambda: MaxPooling2DGrad(plan, self.get_retained_inputs()[0].array)
        return _pool_forward(x, plan, numpy.maximum, -numpy.inf),

    def backward(self, indexes, grad_outputs):
        return self._grad().apply(grad_outputs)


class _WinnerGrad(function_node.FunctionNode):
    """gy -> gx through recorded winners (linear in gy); its ``adjoint``, ggx -> ggy, reads ggx at
    the winners. Each is the other's gradient."""

    def __init__(self, plan, win, adjoint=False):
        self.plan, self.win, self.adjoint = plan, win, adjoint

    def forward_cpu(self, inputs):
        g, = inputs
        return _max_backward_winners(g, self.win, self.plan, self.adjoint),

    def backward(self, indexes, grad_outputs):
        return _WinnerGrad(self.plan, self.win, not self.adjoint).apply(grad_outputs)


class MaxPooling2DGrad(function_node.FunctionNode):
    """gy -> gx for a fixed input x (linear in gy); its ``adjoint``, ggx -> ggy, has each window
    take ggx at the position of its max. Each is the other's gradient."""

    def __init__(self, plan, x, adjoint=False):
        self.plan = plan
        self.x = x
        self.adjoint = adjoint

    def forward_cpu(self, inputs):
        g, = inputs
        if self.adjoint:
            return _max_gather(self.x, g, self.plan),
        return _max_backward(self.x, g, self.plan),

    def backward(self, indexes, grad_outputs):
        return MaxPooling2DGrad(self.plan, self.x, not self.adjoint).apply(grad_outputs)


class AveragePooling2D(function_node.FunctionNode):

    def __init__(self, ksize, stride, pad):
        self.ksize, self.stride, self.pad = ksize, stride, pad

    def check_type_forward(self, in_types):
        x_type, = in_types
        chainer.utils.type_check.expect(x_type.dtype.kind == "f", x_type.ndim == 4)

    def forward_cpu(self, inputs):
        x, = inputs
        self._shape, self._dtype = x.shape, x.dtype
        return avg_pool_numpy(x, self.ksize, self.stride, self.pad),

    def backward(self, indexes, grad_outputs):
        return AveragePooling2DGrad(self).apply(grad_outputs)


class AveragePooling2DGrad(function_node.FunctionNode):

    def __init__(self, func):
        self.func = func

    def forward_cpu(self, inputs):
        gy, = inputs
        f = self.func
        plan = _get_plan(f._shape, gy.dtype, f.ksize, f.stride, f.pad, False)
        return _avg_backward(gy, plan),

    def backward(self, indexes, grad_outputs):
        f = self.func
        return AveragePooling2D(f.ksize, f.stride, f.pad).apply(grad_outputs)


def max_pooling_2d(x, ksize, stride=None, pad=0, cover_all=True, relu=False):
    """``chainer.functions.max_pooling_2d`` (without return_indices) on numpy inputs, followed by
    ``F.relu`` when ``relu`` (only where ``jit_train.applies``)."""
    if stride is None:
        stride = ksize
    return MaxPooling2D(pair(ksize), pair(stride), pair(pad), cover_all,
                        relu).apply((x,))[0]


def average_pooling_2d(x, ksize, stride=None, pad=0):
    """``chainer.functions.average_pooling_2d`` on numpy inputs."""
    if stride is None:
        stride = ksize
    return AveragePooling2D(pair(ksize), pair(stride), pair(pad)).apply((x,))[0]
