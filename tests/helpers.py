"""Small helpers the tests share: a seeded build, random inputs, a few training steps."""
import numpy

import chainer.functions as F
import chainer.links as L

import networks
from branchynet import Branch, BranchyNet
from branchynet.model.layers import MaxPool
from branchynet.training.optimizers import adam

INPUT_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def build(name="b-lenet", seed=0, **kwargs):
    """The registered network ``name``, its weights drawn after seeding numpy with ``seed``."""
    numpy.random.seed(seed)
    return networks.build(name, **kwargs)


def random_images(n, seed=1, network="b-lenet"):
    """n float32 images in [0, 1) of the shape ``network`` takes."""
    shape = INPUT_SHAPES[networks.dataset_of(network)]
    return numpy.random.RandomState(seed).rand(n, *shape).astype(numpy.float32)


def train_steps(net, x, t, steps, batch, seed=0, alpha=1e-3):
    """``steps`` joint training steps (Adam, ``alpha``) on batches drawn in a seeded order;
    returns the net."""
    optimizer = adam(alpha=alpha)(net)
    order = numpy.random.RandomState(seed).permutation(len(x))
    for i in range(steps):
        start = (i * batch) % len(x)
        index = order[start:start + batch]
        net.train(x[index], t[index], optimizer)
    return net


def tiny_three_exit_net():
    """A small 3-exit network for 1x28x28 input, declared directly (not registered); trained with
    Adam's alpha at 0.01 (``TINY_ALPHA``), 60 steps spread its entropies."""
    return BranchyNet([
        L.Convolution2D(1, 4, 3, pad=1),  # 4x28x28
        Branch([MaxPool(4, 4), F.relu, L.Linear(4 * 7 * 7, 10)]),
        MaxPool(2, 2), F.relu,  # 4x14x14
        L.Convolution2D(4, 8, 3, pad=1),  # 8x14x14
        Branch([MaxPool(2, 2), F.relu, L.Linear(8 * 7 * 7, 10)]),
        MaxPool(2, 2), F.relu,  # 8x7x7
        L.Linear(8 * 7 * 7, 32), F.relu,
        Branch([L.Linear(32, 10)]),
    ])


TINY_ALPHA = 0.01
