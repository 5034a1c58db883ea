"""B-ResNet-110 for CIFAR-10 (3x32x32), built as the original code builds it.

Stem conv 3->16 with pad 0 (16x30x30), BN, ReLU; three stages of n residual blocks (16, 32, 64
channels; n = 18 gives 1 + 6n = 109 convolutions plus the FC, "ResNet-110"); a 6x6 stride-1 average
pool (576 features); Linear 576->10. Exit 1: three convolutions and an FC on a 16x30x30 map; exit 2:
one block and an FC at the end of stage 1. The trunk convolutions keep the original's
``wscale=sqrt(2)`` initialisation (``branchynet.model.links.v1_initializer``).

The code and the paper place exit 1 differently, hence two variants: ``"faithful"`` (the code: exit 1
after the stem) and ``"paper"`` (exit 1 after the first block, our reading of "after the 2nd conv");
exit 2 is after conv 37 in both. Layer tables and the reasoning: docs/original.md#b-resnet-110; the
oddities kept on purpose: docs/original.md, B22.
"""
import chainer.functions as F
import chainer.links as L

from branchynet import Branch, BranchyNet
from branchynet.model.layers import LRN, AvgPool
from branchynet.model.links import ResBlock, v1_initializer
from branchynet.model.loss import loss_weights
from networks.registry import register

VARIANTS = ("faithful", "paper")
WSCALE = 2 ** 0.5  # the original's wscale on the trunk convs (docs/original.md#chainer-v1-semantics)


def _exit1_head(weight):
    return Branch([L.Convolution2D(16, 64, 5, stride=1, pad=2), F.relu,
                   LRN(n=3, k=2.0, alpha=5e-5, beta=0.75),
                   L.Convolution2D(64, 32, 3, stride=1, pad=1), F.relu,
                   L.Convolution2D(32, 32, 3, stride=1, pad=1), F.relu,
                   L.Linear(28800, 10)], weight=weight)  # 32x30x30


def _exit2_head(weight):
    return Branch([ResBlock(16, 16), L.Linear(14400, 10)], weight=weight)  # 16x30x30


def _stage(in_size, out_size, n, stride):
    return [ResBlock(in_size, out_size, stride)] + [ResBlock(out_size, out_size) for _ in range(n - 1)]


@register("b-resnet110", dataset="cifar10", family="resnet110", variant="faithful")
@register("b-resnet110-paper", dataset="cifar10", family="resnet110", variant="paper")
def get_network(variant="faithful", weights="slides", n=18, thresholds=None, loss=None):
    """B-ResNet-110; ``variant`` is "faithful" (exit 1 after conv 1, as HEAD of the code) or "paper"
    (exit 1 after the first residual block, our reading of the paper's "after the 2nd conv");
    ``n`` is the number of blocks per stage (18 for ResNet-110; smaller for quick tests);
    ``weights`` is a loss-weight preset ("slides": 1.0, 1.0, 0.3; "code": all 1.0) or a list of 3."""
    if variant not in VARIANTS:
        raise ValueError("variant must be one of %s, got %r" % (VARIANTS, variant))
    if int(n) != n or n < 1:
        raise ValueError("n (blocks per stage) must be a positive integer, got %r" % (n,))
    n = int(n)
    w = loss_weights(weights, 3)
    before_exit1 = 0 if variant == "faithful" else 1  # blocks of stage 1 before exit 1
    network = (
        [L.Convolution2D(3, 16, 3, stride=1, pad=0, initialW=v1_initializer(WSCALE)),  # 16x30x30
         L.BatchNormalization(16), F.relu]
        + [ResBlock(16, 16) for _ in range(before_exit1)]
        + [_exit1_head(w[0])]
        + [ResBlock(16, 16) for _ in range(n - before_exit1)]  # 16x30x30
        + [_exit2_head(w[1])]
        + _stage(16, 32, n, 2)  # 32x15x15
        + _stage(32, 64, n, 2)  # 64x8x8
        + [AvgPool(6, 1),  # 64x3x3 = 576
           Branch([L.Linear(576, 10)], weight=w[2])]
    )
    return BranchyNet(network, thresholds=thresholds, loss=loss)
