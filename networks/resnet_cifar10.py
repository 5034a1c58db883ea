"""B-ResNet-110 for CIFAR-10 (3x32x32), as the original code builds it at HEAD (reference section 2.6).

Trunk: conv 3->16 3x3 **pad 0** (16x30x30), BN, ReLU; stage 1: n x ResBlock(16, 16); stage 2:
ResBlock(16, 32, stride 2) + (n-1) x ResBlock(32, 32) (32x15x15); stage 3: ResBlock(32, 64, stride 2) +
(n-1) x ResBlock(64, 64) (64x8x8); average pool 6x6 stride 1 (not global: 64x3x3 = 576); final exit
Linear 576->10. With n = 18: 1 + 6n = 109 convolutions plus the FC, "ResNet-110". ``ResBlock`` is
``branchynet.links.ResBlock`` (zero channels in front in its shortcut). The first conv and the blocks'
convs use the original's ``wscale=sqrt(2)`` (``branchynet.links.v1_initializer``); the head convs and
the Linears the v1 default, which is Chainer 7's default (LeCunNormal). BN is Chainer's default
(decay 0.9, eps 2e-5).

Heads: exit 1 = conv 16->64 5x5 p2, ReLU, LRN(n=3, alpha=5e-5, beta=0.75, k=2), conv 64->32 3x3 p1,
ReLU, conv 32->32 3x3 p1, ReLU, Linear 28800->10 (32x30x30, no pooling; 3 conv + 1 FC); exit 2 =
ResBlock(16, 16), Linear 14400->10 (2 conv + 1 FC). FC inputs 28800, 14400, 576.

Two variants (the sources disagree on where branch 1 goes):

* ``"faithful"`` (``b-resnet110``): HEAD of the original (commit 2c61194, "align configuration with
  the paper"): exit 1 taps the post-ReLU output of the first conv+BN+ReLU (after conv 1), exit 2
  the end of stage 1 (after conv 1 + 2n = 37).
* ``"paper"`` (``b-resnet110-paper``): the paper says exit 1 comes "after the 2nd conv" and exit 2
  "after the 37th conv". The 2nd conv is the first conv inside the first residual block, where a
  tap would cut the block's shortcut, so exit 1 goes after that first block (its output is the
  first block boundary past the 2nd conv, after conv 3); stage 1 keeps n blocks in all (1 before
  exit 1, n-1 between the exits), so exit 2 stays after conv 37 and the net stays ResNet-110. Heads,
  FC sizes (28800, 14400, 576) and parameter count are those of the faithful variant, because the
  tapped map is again 16x30x30. This is our reading, not a network the original ever had.

  The original's *earlier* network (initial commit through 5c80c3a) also had a ResBlock(16, 16)
  before exit 1, but with 19 blocks in stage 1 and an older exit-1 head (ReLU, LRN, conv 16->32,
  ReLU, conv 32->32, ReLU, max pool 3/2, Linear 7200->3600, Linear 3600->10: 2 conv + 2 FC); its
  kernel sizes and exit-2 position are not recorded, so it is not offered here.

Which network Table I's B-ResNet row came from is unknown: the repository holds no ResNet sweep
output at all, and the notebook's saved training curves come from that earlier network, not from
either variant here. The HEAD code (the faithful variant) is what the authors last aligned "with the
paper".
"""
import chainer.functions as F
import chainer.links as L

from branchynet import Branch, BranchyNet
from branchynet.layers import LRN, AvgPool
from branchynet.links import ResBlock, v1_initializer
from networks.registry import loss_weights, register

VARIANTS = ("faithful", "paper")
WSCALE = 2 ** 0.5  # the original's wscale=math.sqrt(2) on the trunk convs


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
def get_network(variant="faithful", weights="slides", n=18, **controller_kwargs):
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
    return BranchyNet(network, **controller_kwargs)
