"""Shared test set-up: the real datasets in ../../shared/data, unless BRANCHYNET_DATA names others."""
import os
from pathlib import Path

import numpy
import pytest

import branchynet  # noqa: F401  (its compatibility shims must run before the first `import chainer`)

_SHARED_DATA = (Path(__file__).parent / ".." / ".." / "shared" / "data").resolve()
if _SHARED_DATA.is_dir():
    os.environ.setdefault("BRANCHYNET_DATA", str(_SHARED_DATA))


# NOTE (datasets helper): this file was overwritten by mistake; the fixture below is a reconstruction
# from its uses in test_core.py / test_training.py, to be replaced by the original's owner.
@pytest.fixture(scope="session")
def mnist_subset():
    """The first 2,000 real MNIST training images (float32 N x 1 x 28 x 28 in [0, 1]) and int32 labels."""
    from branchynet import datasets
    x, t = datasets.load_mnist_raw(download=False)[:2]
    return (x[:2000] / numpy.float32(255)).astype(numpy.float32), t[:2000].astype(numpy.int32)
