"""MNIST and CIFAR-10 for the BranchyNet experiments, read from the official files and checked.

``get_mnist`` and ``get_cifar10`` return ``(train, test)`` as ``chainer.datasets.TupleDataset`` of
(float32 image N x C x H x W, int32 label), like ``chainer.datasets.get_mnist(ndim=3)``;
``mnist.load_mnist_raw`` and ``cifar10.load_cifar10_raw`` return the undecorated uint8 arrays
``(x_train, y_train, x_test, y_test)`` (images N x C x H x W, labels N, both uint8).

Where the files are, and how they are checked and cached: ``files``.

Preprocessing
-------------
MNIST is scaled to [0, 1] (x / 255) and nothing else, as in the original code (``datasets/mnist.py``
of the authors' repository, which read the same images through sklearn's long-gone ``fetch_mldata``).

CIFAR-10: the original experiments read a preprocessed ``data.npz`` that was never published, and
how it was made is undocumented. ``preprocessing`` therefore makes the choice explicit:

* ``"gcn"`` (default): the candidate found in the original repository, ``datasets/cifar10gcn.py``:
  x / 255, minus the per-pixel mean of the *training* images (the test set uses the training mean), then
  per-image global contrast normalisation: minus the image's own mean, divided by the image's
  standard deviation (ddof=1); as in that code (pylearn2's ``global_contrast_normalize``), an image
  whose divisor is below 1e-8 is not divided (divisor 1). It is the default because it is the
  simplest well-conditioned candidate present in the original repository, not because it is known
  to be what the paper used.
* ``"scale"``: x / 255 only, like ``chainer.datasets.get_cifar10``.
* ``"standardize"``: x / 255, then minus the per-channel mean and divided by the per-channel
  standard deviation, both of the training set.
* ``"zca"``: the other candidate of the original repository, ``datasets/cifar10.py``: ZCA whitening
  of the raw 0-255 pixels (no epsilon, float32), then per-image min-max to [0, 1] (``zca``).

"gcn", "standardize" and "zca" use statistics of training images (``cifar10_statistics``): all 50,000 in
``get_cifar10``; in ``data_split.load_split`` those of the training part only, unless told otherwise.
Absolute CIFAR-10 accuracies depend on these choices; report them with any result.
"""
import numpy as np

from chainer.datasets import TupleDataset

from branchynet.data import cifar10, mnist
from branchynet.data.zca import zca_statistics, zca_whiten

PREPROCESSINGS = ("gcn", "scale", "standardize", "zca")
_GCN_MIN_DIVISOR = 1e-8


def get_mnist(data_dir=None, download=True):
    """MNIST ``(train, test)`` TupleDatasets of float32 N x 1 x 28 x 28 images in [0, 1] (x / 255)
    and int32 labels, as the original BranchyNet code prepared them."""
    x_train, y_train, x_test, y_test = mnist.load_mnist_raw(data_dir, download)
    return (TupleDataset(_scaled(x_train), y_train.astype(np.int32)),
            TupleDataset(_scaled(x_test), y_test.astype(np.int32)))


def _scaled(raw):
    """float32 ``raw / 255``."""
    x = raw.astype(np.float32)
    x /= 255
    return x


def _global_contrast_normalize(x, chunk=5000):
    """In place, per image: minus its mean, divided by its std (ddof=1) unless that is < 1e-8.
    Works in chunks of images so that the temporaries stay small."""
    flat = x.reshape(len(x), -1)
    for start in range(0, len(flat), chunk):
        part = flat[start:start + chunk]
        part -= part.mean(axis=1, keepdims=True)
        divisor = part.std(axis=1, ddof=1, keepdims=True)
        divisor[divisor < _GCN_MIN_DIVISOR] = 1
        part /= divisor


def cifar10_statistics(x_raw, preprocessing):
    """The statistics ``preprocessing`` takes from the uint8 images ``x_raw`` (float32 arrays):
    "gcn": the per-pixel mean (``pixel_mean``, 3 x 32 x 32); "standardize": the per-channel mean
    and standard deviation (``channel_mean``, ``channel_std``, 3 x 1 x 1); "zca": the per-feature
    mean and whitening matrix of the raw pixels (``zca.zca_statistics``); "scale": none."""
    if preprocessing == "scale":
        return {}
    if preprocessing == "zca":
        return zca_statistics(x_raw)
    x = _scaled(x_raw)
    if preprocessing == "gcn":
        return {"pixel_mean": x.mean(axis=0, dtype=np.float64).astype(np.float32)}
    mean = x.mean(axis=(0, 2, 3), dtype=np.float64, keepdims=True)[0].astype(np.float32)
    x -= mean
    std = np.sqrt(np.square(x).mean(axis=(0, 2, 3), dtype=np.float64, keepdims=True)[0])
    return {"channel_mean": mean, "channel_std": std.astype(np.float32)}


def preprocess_cifar10(x_raw, preprocessing, statistics):
    """float32 copy of the uint8 images ``x_raw``, preprocessed with ``statistics`` (from
    ``cifar10_statistics`` of the images the network is trained on)."""
    if preprocessing == "zca":
        return zca_whiten(x_raw, statistics)
    x = _scaled(x_raw)
    if preprocessing == "gcn":
        x -= statistics["pixel_mean"]
        _global_contrast_normalize(x)
    elif preprocessing == "standardize":
        x -= statistics["channel_mean"]
        x /= statistics["channel_std"]
    return x


def _preprocess_cifar10(x_train, x_test, preprocessing):
    """float32 copies of the uint8 images, preprocessed with statistics of the training set only."""
    statistics = cifar10_statistics(x_train, preprocessing)
    return (preprocess_cifar10(x_train, preprocessing, statistics),
            preprocess_cifar10(x_test, preprocessing, statistics))


def check_preprocessing(preprocessing):
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(f"preprocessing must be one of {PREPROCESSINGS}, not {preprocessing!r}")


def get_cifar10(data_dir=None, preprocessing="gcn", download=True):
    """CIFAR-10 ``(train, test)`` TupleDatasets of float32 N x 3 x 32 x 32 images and int32 labels;
    ``preprocessing`` is one of ``PREPROCESSINGS`` (see the module docstring for why "gcn"), its
    statistics taken from all 50,000 training images (``data_split.load_split`` takes them from
    the training part only, the validation images left out)."""
    check_preprocessing(preprocessing)
    x_train, y_train, x_test, y_test = cifar10.load_cifar10_raw(data_dir, download)
    train, test = _preprocess_cifar10(x_train, x_test, preprocessing)
    return TupleDataset(train, y_train.astype(np.int32)), TupleDataset(test, y_test.astype(np.int32))


def arrays(dataset):
    """(x, t) numpy arrays of a loaded dataset (a TupleDataset), or of an (x, t) pair."""
    if isinstance(dataset, tuple) and len(dataset) == 2:
        return dataset
    x, t = dataset._datasets
    return x, t
