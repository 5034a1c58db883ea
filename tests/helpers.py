"""Small helpers the tests share: a seeded build, random inputs, a few training steps."""
import numpy

import networks

INPUT_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def build(name="b-lenet", seed=0, **kwargs):
    """The registered network ``name``, its weights drawn after seeding numpy with ``seed``."""
    numpy.random.seed(seed)
    return networks.build(name, **kwargs)


def random_images(n, seed=1, network="b-lenet"):
    """n float32 images in [0, 1) of the shape ``network`` takes."""
    shape = INPUT_SHAPES[networks.dataset_of(network)]
    return numpy.random.RandomState(seed).rand(n, *shape).astype(numpy.float32)


def train_steps(net, x, t, steps, batch, seed=0):
    """``steps`` joint training steps on batches drawn in a seeded order; returns the net."""
    order = numpy.random.RandomState(seed).permutation(len(x))
    for i in range(steps):
        start = (i * batch) % len(x)
        index = order[start:start + batch]
        net.train(x[index], t[index])
    return net
