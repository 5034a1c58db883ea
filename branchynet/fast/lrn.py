"""Local response normalisation on the compiled kernels (``jit_train``), a drop-in for
``F.local_response_normalization`` on numpy inputs (first-order gradient, as Chainer's own)."""
from chainer import function_node

from branchynet.fast import jit_train

__all__ = ["local_response_normalization"]


class LocalResponseNormalization(function_node.FunctionNode):

    def __init__(self, n, k, alpha, beta):
        self.n, self.k, self.alpha, self.beta = n, k, alpha, beta

    def forward_cpu(self, inputs):
        x, = inputs
        self.retain_inputs((0,))
        self.retain_outputs((0,))
        y, self.unit, self.scale = jit_train.lrn_forward(x, self.n, self.k, self.alpha, self.beta)
        return y,

    def backward(self, indexes, grad_outputs):
        x, = self.get_retained_inputs()
        y, = self.get_retained_outputs()
        return LocalResponseNormalizationGrad(self).apply((x, y) + tuple(grad_outputs))


class LocalResponseNormalizationGrad(function_node.FunctionNode):

    def __init__(self, forward):
        self.forward_node = forward

    def forward_cpu(self, inputs):
        x, y, gy = inputs
        f = self.forward_node
        return jit_train.lrn_backward(x, y, gy, f.unit, f.scale, f.n, f.alpha, f.beta),


def local_response_normalization(x, n=5, k=2, alpha=1e-4, beta=0.75):
    """``F.local_response_normalization`` on the compiled kernels (where ``jit_train.applies``)."""
    return LocalResponseNormalization(n, k, alpha, beta).apply((x,))[0]
