"""The convolution kernels of ``conv`` as Chainer FunctionNodes: a drop-in for
``F.convolution_2d`` (cover_all=False, no dilation or groups) on numpy inputs, with its gradients
and the gradients' own gradients (each gradient is bilinear, so its gradient is the convolution or
the other gradient)."""
import numpy

import chainer
from chainer import function_node

from branchynet.fast.conv import _forward, bias_grad, grad_w, grad_x
from branchynet.fast.layout import geom, pair

__all__ = ["convolution_2d"]


class Convolution2D(function_node.FunctionNode):
    """y = conv(x, W) + b on numpy arrays; with ``relu``, y = relu(conv(x, W) + b), the ReLU done
    in place on the output (no pass of its own, no array of its own)."""

    def __init__(self, stride, pad, relu=False):
        self.stride = stride
        self.pad = pad
        self.relu = relu

    def check_type_forward(self, in_types):
        chainer.utils.type_check._argname(in_types, ("x", "W", "b")[:len(in_types)])
        x_type, w_type = in_types[:2]
        chainer.utils.type_check.expect(
            x_type.dtype.kind == "f", w_type.dtype.kind == "f",
            x_type.ndim == 4, w_type.ndim == 4, x_type.shape[1] == w_type.shape[1])
        if len(in_types) == 3:
            b_type = in_types[2]
            chainer.utils.type_check.expect(
                b_type.dtype == x_type.dtype, b_type.ndim == 1,
                b_type.shape[0] == w_type.shape[0])

    def forward_cpu(self, inputs):
        self.retain_inputs((0, 1))
        x, W = inputs[:2]
        b = inputs[2] if len(inputs) == 3 else None
        y = _forward(x, W, b, geom(x.shape, W.shape, self.stride, self.pad))
        if self.relu:
            numpy.maximum(y, 0, out=y)
            self._active = y > 0
        return y,

    def backward(self, indexes, grad_outputs):
        x, W = self.get_retained_inputs()
        gy, = grad_outputs
        if self.relu:  # the ReLU's gradient, as Chainer's: gy where the output is positive
            gy = gy * self._active
        ret = []
        if 0 in indexes:
            ret.append(Convolution2DGradX(self.stride, self.pad, x.shape, x.dtype).apply(
                (W, gy))[0])
        if 1 in indexes:
            ret.append(Convolution2DGradW(self.stride, self.pad, W.shape, W.dtype).apply(
                (x, gy))[0])
        if 2 in indexes:
            ret.append(BiasGrad().apply((gy,))[0])
        return ret


class BiasGrad(function_node.FunctionNode):
    """gb = gy summed over all but the channel axis (``conv.bias_grad``); its gradient broadcasts."""

    def forward_cpu(self, inputs):
        gy, = inputs
        self._shape = gy.shape
        return bias_grad(gy),

    def backward(self, indexes, grad_outputs):
        ggb, = grad_outputs
        return chainer.functions.broadcast_to(
            chainer.functions.reshape(ggb, (1, self._shape[1], 1, 1)), self._shape),


class _Gradient(function_node.FunctionNode):
    """A gradient of the convolution, bilinear in (its other input ``a``, gy): differentiated, it
    gives the other gradient node and the convolution itself."""

    def __init__(self, stride, pad, shape, dtype):
        self.stride = stride
        self.pad = pad
        self.shape = tuple(shape)  # of what it computes
        self.dtype = dtype

    def forward_cpu(self, inputs):
        self.retain_inputs((0, 1))
        a, gy = inputs
        return self._compute(a, gy),

    def backward(self, indexes, grad_outputs):
        a, gy = self.get_retained_inputs()
        gg, = grad_outputs
        ret = []
        if 0 in indexes:
            ret.append(self._other(self.stride, self.pad, a.shape, a.dtype).apply((gg, gy))[0])
        if 1 in indexes:
            ret.append(Convolution2D(self.stride, self.pad).apply(self._conv_inputs(a, gg))[0])
        return ret


class Convolution2DGradX(_Gradient):
    """gx = conv^T(gy, W), the input gradient (bilinear in W and gy)."""

    def _compute(self, W, gy):
        return grad_x(W, gy, geom(self.shape, W.shape, self.stride, self.pad), self.dtype)

    def _other(self, *args):
        return Convolution2DGradW(*args)

    def _conv_inputs(self, W, ggx):
        return ggx, W


class Convolution2DGradW(_Gradient):
    """gW = correlation of x with gy, the weight gradient (bilinear in x and gy)."""

    def _compute(self, x, gy):
        return grad_w(x, gy, geom(x.shape, self.shape, self.stride, self.pad), self.dtype)

    def _other(self, *args):
        return Convolution2DGradX(*args)

    def _conv_inputs(self, x, ggW):
        return x, ggW


def convolution_2d(x, W, b=None, stride=1, pad=0, relu=False):
    """``chainer.functions.convolution_2d`` (cover_all=False, no dilation or groups) on numpy
    inputs, followed by ``F.relu`` when ``relu``; ``branchynet.fast.switch`` decides when it
    runs."""
    args = (x, W) if b is None else (x, W, b)
    y, = Convolution2D(pair(stride), pair(pad), relu).apply(args)
    return y
