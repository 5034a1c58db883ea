"""B-LeNet for MNIST (1x28x28), built as the original code builds it.

Trunk: three 5x5 convolutions with pad 3, each followed by a ceil-mode 2x2 max pool and a ReLU, then
Linear 720->84 and the final exit Linear 84->10, with no activation between the two (the original's,
kept: docs/original.md, B22). Exit 1 taps the first convolution's output (5x30x30): pool, ReLU,
conv 5->10 3x3, pool, ReLU, Linear 640->10. Layer table: docs/original.md#b-lenet.
"""
import chainer.functions as F
import chainer.links as L

from branchynet import Branch, BranchyNet
from branchynet.model.layers import MaxPool
from branchynet.model.loss import loss_weights
from networks.registry import register


@register("b-lenet", dataset="mnist", family="lenet")
def get_network(weights="slides", thresholds=None, loss=None):
    """B-LeNet; ``weights`` is a loss-weight preset ("slides": 1.0 then 0.3 on the last exit,
    "code": all 1.0) or an explicit list, one per exit; ``thresholds`` and ``loss`` go to the
    controller."""
    w = loss_weights(weights, 2)
    network = [
        L.Convolution2D(1, 5, 5, stride=1, pad=3),
        Branch([MaxPool(2, 2), F.relu, L.Convolution2D(5, 10, 3, stride=1, pad=1),
                MaxPool(2, 2), F.relu, L.Linear(640, 10)], weight=w[0]),
        MaxPool(2, 2), F.relu,
        L.Convolution2D(5, 10, 5, stride=1, pad=3), MaxPool(2, 2), F.relu,
        L.Convolution2D(10, 20, 5, stride=1, pad=3), MaxPool(2, 2), F.relu,
        L.Linear(720, 84),
        Branch([L.Linear(84, 10)], weight=w[1]),
    ]
    return BranchyNet(network, thresholds=thresholds, loss=loss)
