"""Reusable links with parameters for network lists: the residual block of B-ResNet-110.

``ResBlock`` reproduces the original's basic two-convolution block with the zero-padding
("option A") shortcut. ``forward_with`` takes the function that applies its parts, so that the fast
CPU backend (``branchynet.fast``) runs its convolutions and pooling in training.
"""
import math

import chainer
import chainer.functions as F
import chainer.initializers as I
import chainer.links as L

from branchynet.model.layers import AvgPool


def v1_initializer(wscale=1.0):
    """The weight initializer of a Chainer v1 ``Convolution2D``/``Linear`` built with ``wscale``.

    Chainer v1 (1.17, the original's version) draws W ~ N(0, std) with
    std = sqrt(wscale) * sqrt(1 / fan_in): its default initializer is HeNormal(1/sqrt(2)), i.e.
    std = sqrt(1/fan_in), and ``init_weight`` multiplies it by ``scale=sqrt(wscale)`` "for backward
    compatibility" (docs/original.md: std = sqrt(wscale)/sqrt(fan_in)). Our reading: with the
    original's wscale = sqrt(2) that is std = 2**0.25 / sqrt(fan_in), about 1.19/sqrt(fan_in), i.e.
    ``LeCunNormal(scale=2**0.25)``; not He's sqrt(2)/sqrt(fan_in). wscale = 1 is LeCunNormal(), which
    is also Chainer 7's default for both links. Biases start at 0 either way.
    """
    return I.LeCunNormal(scale=math.sqrt(wscale))


class ResBlock(chainer.Chain):
    """The original's basic residual block (docs/original.md).

    h = BN(conv2(ReLU(BN(conv1(x))))), with conv1 3x3 at ``stride``, pad 1 and conv2 3x3, stride 1,
    pad 1, both with biases and the v1 ``wscale=sqrt(2)`` initialisation; BN with Chainer's defaults
    (decay 0.9, eps 2e-5). Output ReLU(h + shortcut(x)). The shortcut is x itself when the shapes
    agree; otherwise x is subsampled by a 1x1 average pool with stride ``stride`` (every
    ``stride``-th pixel) when the spatial size differs, and zero channels are concatenated **in
    front of** it (zeros first, then x), as the original does. The original concatenates before it
    pools; the zeros pool to zeros, so the order does not change the result.
    """

    def __init__(self, in_size, out_size, stride=1, ksize=3, wscale=math.sqrt(2)):
        super().__init__()
        if out_size < in_size:
            raise ValueError("ResBlock can only add channels in its shortcut (%d -> %d)"
                             % (in_size, out_size))
        self.in_size, self.out_size, self.stride = in_size, out_size, stride
        with self.init_scope():
            self.conv1 = L.Convolution2D(in_size, out_size, ksize, stride, 1,
                                         initialW=v1_initializer(wscale))
            self.bn1 = L.BatchNormalization(out_size)
            self.conv2 = L.Convolution2D(out_size, out_size, ksize, 1, 1,
                                         initialW=v1_initializer(wscale))
            self.bn2 = L.BatchNormalization(out_size)

    def forward(self, x):
        return self.forward_with(x, lambda layer, h: layer(h))

    def forward_with(self, x, apply):
        """The block on x, each convolution and pooling run by ``apply(layer, h)``."""
        h = F.relu(self.bn1(apply(self.conv1, x)))
        h = self.bn2(apply(self.conv2, h))
        return F.relu(h + self._shortcut(x, h.shape, apply))

    def _shortcut(self, x, shape, apply):
        if x.shape[2:] != shape[2:]:
            x = apply(AvgPool(1, self.stride), x)
        pad_c = shape[1] - x.shape[1]
        if pad_c:
            xp = chainer.backend.get_array_module(x)
            zeros = xp.zeros((x.shape[0], pad_c) + tuple(x.shape[2:]), dtype=x.dtype)
            x = F.concat((zeros, x), axis=1)
        return x
