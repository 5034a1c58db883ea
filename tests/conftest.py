"""Shared test set-up: the real datasets in ../../shared/data (unless BRANCHYNET_DATA names others),
small real subsets, and the ``slow`` marker."""
import os
from pathlib import Path

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
    from branchynet import datasets
    train, _ = datasets.get_mnist(download=False)
    x, t = datasets.arrays(train)
    return x[:2000], t[:2000]
