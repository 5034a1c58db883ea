"""Shared test set-up: the real datasets in ../../shared/data (unless BRANCHYNET_DATA names others),
small real subsets, a briefly trained B-LeNet, and the ``slow`` marker."""
import copy
import os
from pathlib import Path

import numpy
import pytest

import branchynet  # noqa: F401  (its compatibility shims must run before the first `import chainer`)

_SHARED_DATA = (Path(__file__).parent / ".." / ".." / "shared" / "data").resolve()
if _SHARED_DATA.is_dir():
    os.environ.setdefault("BRANCHYNET_DATA", str(_SHARED_DATA))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes minutes on a 2-core CPU; deselect with -m 'not slow'")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (chainer.testing's marker)")


@pytest.fixture(scope="session")
def mnist_subset():
    """The first 2,000 real MNIST training images (float32 N x 1 x 28 x 28 in [0, 1]) and labels."""
    from branchynet.data import datasets
    train, _ = datasets.get_mnist(download=False)
    x, t = datasets.arrays(train)
    return x[:2000], t[:2000]


@pytest.fixture(scope="session")
def cifar_subset():
    """The first 512 real CIFAR-10 training images (default preprocessing) and labels."""
    from branchynet.data import datasets, files
    try:
        train, _ = datasets.get_cifar10(download=False)
    except files.DatasetError as err:
        pytest.skip("CIFAR-10 not available: %s" % err)
    x, t = datasets.arrays(train)
    return numpy.ascontiguousarray(x[:512]), numpy.asarray(t[:512])


@pytest.fixture(scope="session")
def _trained_lenet_once(mnist_subset):
    from tests import helpers
    x, t = mnist_subset
    return helpers.train_steps(helpers.build("b-lenet"), x[:1500], t[:1500], steps=300, batch=16)


@pytest.fixture(scope="module")
def trained_lenet(_trained_lenet_once):
    """B-LeNet trained 300 steps (batch 16) on the first 1,500 images of ``mnist_subset``:
    entropies spread from ~1e-3 to ~1.3 nats, across most of the paper's thresholds. Each test
    module gets its own copy (images 1,500-2,000 are held out)."""
    return copy.deepcopy(_trained_lenet_once)
