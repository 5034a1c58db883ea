"""B-AlexNet for CIFAR-10 (3x32x32), built as the original code builds it.

Trunk: five convolutions (the first two followed by ReLU, max pool 3/2 and LRN), a max pool, two
fully connected layers with ReLU and dropout, and the final exit Linear 128->10. The heads are made
of the original's helpers ``norm``, ``conv`` and ``cap`` below and tap the trunk before the ReLU of
the convolution they follow. Max pooling rounds up and LRN is Chainer's, as the FC sizes and the
original's results depend on both (docs/original.md#chainer-v1-semantics).

The code and the paper place the branches differently, hence two variants: ``"faithful"`` (the
code: after conv2 and conv3, the likely source of Table I) and ``"paper"`` (the paper's text: after
conv1 and conv2, heads with the tapped convolution's input channels). Layer tables and the
reasoning: docs/original.md#b-alexnet.
"""
import chainer.functions as F
import chainer.links as L

from branchynet import Branch, BranchyNet
from branchynet.model.layers import LRN, Dropout, MaxPool
from branchynet.model.loss import loss_weights
from networks.registry import register

VARIANTS = ("faithful", "paper")


def _lrn():
    return LRN(n=3, k=2.0, alpha=5e-5, beta=0.75)


def norm():
    """The original's norm(): ReLU, max pool 3/2 (ceil mode), LRN."""
    return [F.relu, MaxPool(3, 2), _lrn()]


def conv(n):
    """The original's conv(n): conv n->32 3x3 pad 1, ReLU."""
    return [L.Convolution2D(n, 32, 3, stride=1, pad=1), F.relu]


def cap(n):
    """The original's cap(n): max pool 3/2 (ceil mode), Linear n->10."""
    return [MaxPool(3, 2), L.Linear(n, 10)]


@register("b-alexnet", dataset="cifar10", family="alexnet", variant="faithful")
@register("b-alexnet-paper", dataset="cifar10", family="alexnet", variant="paper")
def get_network(variant="faithful", weights="slides", thresholds=None, loss=None):
    """B-AlexNet; ``variant`` is "faithful" (branches after conv2 and conv3, as the code) or "paper"
    (after conv1 and conv2, as the paper's text); ``weights`` is a loss-weight preset ("slides":
    1.0, 1.0, 0.3; "code": all 1.0) or an explicit list of 3."""
    if variant not in VARIANTS:
        raise ValueError("variant must be one of %s, got %r" % (VARIANTS, variant))
    w = loss_weights(weights, 3)
    if variant == "faithful":
        branch1 = Branch(norm() + conv(64) + conv(32) + cap(512), weight=w[0])  # on 64x16x16
        branch2 = Branch(norm() + conv(96) + cap(128), weight=w[1])  # on 96x8x8
        after_conv1, after_conv2, after_conv3 = [], [branch1], [branch2]
    else:
        branch1 = Branch(norm() + conv(32) + conv(32) + cap(2048), weight=w[0])  # on 32x32x32
        branch2 = Branch(norm() + conv(64) + cap(512), weight=w[1])  # on 64x16x16
        after_conv1, after_conv2, after_conv3 = [branch1], [branch2], []
    network = (
        [L.Convolution2D(3, 32, 5, stride=1, pad=2)]  # 32x32x32
        + after_conv1
        + [F.relu, MaxPool(3, 2), _lrn(),  # 32x16x16
           L.Convolution2D(32, 64, 5, stride=1, pad=2)]  # 64x16x16
        + after_conv2
        + [F.relu, MaxPool(3, 2), _lrn(),  # 64x8x8
           L.Convolution2D(64, 96, 3, stride=1, pad=1)]  # 96x8x8
        + after_conv3
        + [F.relu,
           L.Convolution2D(96, 96, 3, stride=1, pad=1), F.relu,
           L.Convolution2D(96, 64, 3, stride=1, pad=1), F.relu,
           MaxPool(3, 2),  # 64x4x4 = 1024
           L.Linear(1024, 256), F.relu, Dropout(0.5),
           L.Linear(256, 128), F.relu, Dropout(0.5),
           Branch([L.Linear(128, 10)], weight=w[2])]
    )
    return BranchyNet(network, thresholds=thresholds, loss=loss)
