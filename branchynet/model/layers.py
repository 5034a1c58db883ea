"""Parameter-free layers with their arguments bound, for network lists.

A network list may hold any callable (``F.relu`` as it is); these classes exist for the layers that
take arguments, so that the list reads like the original's layer tables. Called, they run stock
Chainer; the fast CPU backend (``branchynet.fast``) knows each of them by type.
"""
import chainer.functions as F


class _Layer:
    # Whether the layer is a fixed function of its input; two equal deterministic layers at the
    # start of a head and of the next trunk segment are computed once in training (branch.py).
    deterministic = True

    def __repr__(self):
        args = ", ".join("%s=%r" % kv for kv in vars(self).items())
        return "%s(%s)" % (type(self).__name__, args)

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):  # equal layers share their type; their arguments may be lists
        return hash(type(self))


class MaxPool(_Layer):
    """Max pooling; ``cover_all=True`` (ceil-mode sizes) as Chainer's default, on which the
    original layer sizes (FC inputs 640, 720, 512, 128, 1024) depend."""

    def __init__(self, ksize, stride=None, pad=0, cover_all=True):
        self.ksize, self.stride, self.pad, self.cover_all = ksize, stride, pad, cover_all

    def __call__(self, x):
        return F.max_pooling_2d(x, self.ksize, self.stride, self.pad, self.cover_all)


class AvgPool(_Layer):
    """Average pooling, floor mode, padding counted in the divisor (Chainer's semantics)."""

    def __init__(self, ksize, stride=None, pad=0):
        self.ksize, self.stride, self.pad = ksize, stride, pad

    def __call__(self, x):
        return F.average_pooling_2d(x, self.ksize, self.stride, self.pad)


class LRN(_Layer):
    """Local response normalisation across channels: y = x / (k + alpha * sum_window x^2)^beta.

    Chainer does not divide alpha by n (PyTorch does): the original's alpha=5e-5 is Chainer's."""

    def __init__(self, n=5, k=2.0, alpha=1e-4, beta=0.75):
        self.n, self.k, self.alpha, self.beta = n, k, alpha, beta

    def __call__(self, x):
        return F.local_response_normalization(x, self.n, self.k, self.alpha, self.beta)


class Dropout(_Layer):
    """Dropout; active only while ``chainer.config.train`` is True."""

    deterministic = False  # a fresh mask per call: a head's dropout is never the trunk's

    def __init__(self, ratio=0.5):
        self.ratio = ratio

    def __call__(self, x):
        return F.dropout(x, self.ratio)
