"""MNIST from the four official idx files (``mnist/`` in the data folder, gzip-compressed as
published), each checked against its md5 on every load (it costs ~30 ms); ``load_mnist_raw``
returns the uint8 arrays ``(x_train N x 1 x 28 x 28, y_train, x_test, y_test)``.
"""
import gzip

import numpy as np

from branchynet.data.files import (
    DatasetError,
    cached,
    download_file,
    file_digest,
    folder_hint,
    resolve_data_dir,
)

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_MNIST_SHAPES = ((60000, 1, 28, 28), (60000,), (10000, 1, 28, 28), (10000,))


def _mnist_hint(folder, data_dir=None):
    return (f"Put the official files {', '.join(MNIST_MD5)} (from {MNIST_MIRRORS[0]}) in {folder}. "
            + folder_hint(folder, data_dir, "mnist"))


def _check_mnist_file(path):
    """The md5 of ``path``, after checking that it is the official one."""
    digest = file_digest(path, "md5")
    if digest != MNIST_MD5[path.name]:
        raise DatasetError(
            f"{path} ({path.stat().st_size} bytes) has md5 {digest}, not the official "
            f"{MNIST_MD5[path.name]}: it is truncated, corrupt or not the official file. Delete it and "
            f"rerun (it is downloaded again and checked), or copy the official file there.")
    return digest


def _parse_idx(path):
    """The array in a (checked) gzip-compressed idx file."""
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", count=ndim, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _decode_mnist(folder):
    x_train, y_train, x_test, y_test = (_parse_idx(folder / name) for name in MNIST_MD5)  # in this order
    return x_train[:, None].copy(), y_train.copy(), x_test[:, None].copy(), y_test.copy()


def load_mnist_raw(data_dir=None, download=True):
    """MNIST as uint8 ``(x_train N x 1 x 28 x 28, y_train, x_test, y_test)``, checked against md5s."""
    folder = resolve_data_dir(data_dir) / "mnist"
    missing = [name for name in MNIST_MD5 if not (folder / name).is_file()]
    if missing and not download:
        raise DatasetError(f"Missing in {folder}: {', '.join(missing)}. {_mnist_hint(folder, data_dir)}")
    for name in missing:
        download_file([mirror + name for mirror in MNIST_MIRRORS], folder / name, MNIST_MD5[name],
                      _mnist_hint(folder, data_dir))
    digests = {name: _check_mnist_file(folder / name) for name in MNIST_MD5}
    return cached("mnist", digests, _MNIST_SHAPES, lambda: _decode_mnist(folder))

