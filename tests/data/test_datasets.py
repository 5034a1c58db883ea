"""Datasets: real MNIST / CIFAR-10 contents, every accepted file form, checksums, downloads, cache.

Runs on the real files of the data folder (conftest: ../../shared/data); nothing touches the network:
every download goes through a monkeypatched ``files.open_url``. The CIFAR-10 format tests run on a
synthetic set of 120 images written in each official form (the fast tier) and again on the real
60,000 images (``slow``), through the same code paths (the ``cifar`` fixture).
"""
import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import branchynet  # noqa: F401  (before chainer)
from branchynet.data import cifar10, datasets, files, mnist
from branchynet.data import split as data_split
from branchynet.data.files import DatasetError

DATA = files.resolve_data_dir()
pytestmark = pytest.mark.skipif(
    not (DATA / "mnist").is_dir() or not (DATA / "cifar10").is_dir(),
    reason=f"the real datasets are not in {DATA} (set BRANCHYNET_DATA)")

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ------------------------------------------------------------------------------------------ helpers

@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private, empty decode cache, so a test neither reads nor fills the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("BRANCHYNET_CACHE", str(cache))
    return cache


def copy_mnist(root):
    (root / "mnist").mkdir(parents=True)
    for name in mnist.MNIST_MD5:
        shutil.copyfile(DATA / "mnist" / name, root / "mnist" / name)
    return root / "mnist"


def flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


def assert_same_arrays(got, want):
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


class FakeResponse(io.BytesIO):
    """What ``open_url`` returns: a readable stream with headers."""

    def __init__(self, data):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def cifar_batches(raw):
    """(name, labels, pixels n x 3072) for each official batch, in order (five training batches of
    equal size, then the test batch)."""
    x_train, y_train, x_test, y_test = raw
    n = len(x_train) // 5
    for i, name in enumerate(cifar10.CIFAR10_BATCHES[:5]):
        rows = slice(n * i, n * (i + 1))
        yield name, y_train[rows], x_train[rows].reshape(n, -1)
    yield "test_batch", y_test, x_test.reshape(len(x_test), -1)


def bin_records(labels, pixels):
    return np.concatenate([labels[:, None], pixels], axis=1).tobytes()


def python_batch(name, labels, pixels):
    """A batch pickled in the python version's format (dict with bytes keys, ndarray data)."""
    return pickle.dumps({b"batch_label": f"{name} of CIFAR-10".encode(), b"labels": labels.tolist(),
                         b"data": pixels,
                         b"filenames": [f"{name}_{i}.png".encode() for i in range(len(labels))]},
                        protocol=2)


def write_tar(path, member_dir, members):
    """A tar.gz laid out like the official archives: a folder member, then its files (gzip level 0:
    a valid gzip stream, written fast)."""
    with tarfile.open(path, "w:gz", compresslevel=0) as tar:
        folder = tarfile.TarInfo(member_dir)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in members.items():
            info = tarfile.TarInfo(f"{member_dir}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def link_files(root, source):
    """``root/cifar10/<source's name>`` holding links to the files of the extracted folder ``source``."""
    folder = root / "cifar10" / source.name
    folder.mkdir(parents=True)
    for file in source.iterdir():
        (folder / file.name).symlink_to(file)
    return folder


def link_shared_cifar(root):
    """``root/cifar10/cifar-10-batches-bin`` holding links to the shared ``.bin.gz`` files."""
    return link_files(root, DATA / "cifar10" / "cifar-10-batches-bin")


def replace_with_copy(path, data):
    """Replaces the link ``path`` by a file holding ``data``."""
    path.unlink()
    path.write_bytes(data)


@pytest.fixture(scope="module")
def mnist_raw():
    return mnist.load_mnist_raw(download=False)


@pytest.fixture(scope="module")
def cifar_raw():
    return cifar10.load_cifar10_raw(download=False)


def build_form(root, raw, form):
    """Writes CIFAR-10 ``raw`` into ``root/cifar10`` in one official form: extracted python or
    binary batches ("py", "bin", "bin-gz": gzipped binary, as the shared folder holds them) or an
    official-layout archive ("py-tar", "bin-tar"); returns ``root``."""
    folder = root / "cifar10"
    batches = list(cifar_batches(raw))
    if form in ("bin", "bin-gz"):
        (folder / "cifar-10-batches-bin").mkdir(parents=True)
        for name, labels, pixels in batches:
            data = bin_records(labels, pixels)
            suffix = ".bin.gz" if form == "bin-gz" else ".bin"
            data = gzip.compress(data, compresslevel=1) if form == "bin-gz" else data
            (folder / "cifar-10-batches-bin" / f"{name}{suffix}").write_bytes(data)
    elif form == "py":
        (folder / "cifar-10-batches-py").mkdir(parents=True)
        for name, labels, pixels in batches:
            (folder / "cifar-10-batches-py" / name).write_bytes(python_batch(name, labels, pixels))
    elif form == "bin-tar":
        folder.mkdir()
        members = {f"{n}.bin": bin_records(labels, pixels) for n, labels, pixels in batches}
        members["batches.meta.txt"] = b"airplane\n"
        write_tar(folder / cifar10.CIFAR10_BINARY_TAR, "cifar-10-batches-bin", members)
    elif form == "py-tar":
        folder.mkdir()
        members = {n: python_batch(n, labels, pixels) for n, labels, pixels in batches}
        members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
        write_tar(folder / cifar10.CIFAR10_PYTHON_TAR, "cifar-10-batches-py", members)
    return root


def synthetic_cifar(per_batch=20, seed=3):
    """A CIFAR-10 stand-in of 5 x ``per_batch`` training and ``per_batch`` test images (uint8,
    uneven brightness), and the sha1 of each batch's binary records, as the official table."""
    rng = np.random.RandomState(seed)
    n = 6 * per_batch
    x = (rng.randint(0, 156, (n, 1, 1, 1)) + rng.randint(0, 100, (n, 3, 32, 32))).astype(np.uint8)
    y = rng.randint(0, 10, n).astype(np.uint8)
    raw = (x[:5 * per_batch], y[:5 * per_batch], x[5 * per_batch:], y[5 * per_batch:])
    sha1 = {name: hashlib.sha1(bin_records(labels, pixels)).hexdigest()
            for name, labels, pixels in cifar_batches(raw)}
    return raw, sha1


class CifarSource:
    """CIFAR-10 ``raw`` arrays and ``forms(form)``: a data folder holding them in ``form``
    (``build_form``; "bin-gz" of the real set is the shared data folder itself)."""

    def __init__(self, raw, forms):
        self.raw, self.forms = raw, forms


@pytest.fixture(scope="module")
def _real_cifar(tmp_path_factory):
    raw = cifar10.load_cifar10_raw(download=False)
    built = {"bin-gz": DATA}

    def forms(form):
        if form not in built:
            built[form] = build_form(tmp_path_factory.mktemp(form), raw, form)
        return built[form]
    return CifarSource(raw, forms)


@pytest.fixture(params=["synthetic", pytest.param("real", marks=pytest.mark.slow)])
def cifar(request, tmp_path_factory, monkeypatch):
    """The CIFAR-10 format tests' data, twice: a synthetic set of 120 images in every official
    form (the fast tier; the checksum table and shapes patched to its own), and the real one
    (``slow``: each form of 60,000 images takes seconds to write and read)."""
    if request.param == "real":
        return request.getfixturevalue("_real_cifar")
    raw, sha1 = synthetic_cifar()
    monkeypatch.setattr(cifar10, "CIFAR10_BIN_SHA1", sha1)
    monkeypatch.setattr(cifar10, "_CIFAR10_SHAPES", tuple(a.shape for a in raw))
    built = {}

    def forms(form):
        if form not in built:
            built[form] = build_form(tmp_path_factory.mktemp(form), raw, form)
        return built[form]
    return CifarSource(raw, forms)


# ------------------------------------------------------------------------------------------- MNIST

def test_mnist_contents(mnist_raw):
    train, test = datasets.get_mnist(download=False)
    assert (len(train), len(test)) == (60000, 10000)
    x_test, y_test = datasets.arrays(test)
    for x, y in (datasets.arrays(train), datasets.arrays(test)):
        assert x.dtype == np.float32 and x.shape[1:] == (1, 28, 28)
        assert y.dtype == np.int32
        assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y_test).tolist() == MNIST_TEST_COUNTS
    np.testing.assert_array_equal(x_test, mnist_raw[2] / np.float32(255))  # x / 255 and nothing else
    x_raw, y_raw, x_raw_test, _ = mnist_raw
    assert (x_raw.dtype, x_raw.shape, y_raw.shape, x_raw_test.shape) == \
        (np.uint8, (60000, 1, 28, 28), (60000,), (10000, 1, 28, 28))


def test_second_mnist_load_uses_the_cache(tmp_cache, mnist_raw, monkeypatch):
    mnist.load_mnist_raw(download=False)
    (entry,) = tmp_cache.iterdir()
    assert sorted(p.name for p in entry.iterdir()) == [
        "sha256.json", "x_test.npy", "x_train.npy", "y_test.npy", "y_train.npy"]

    def decode(folder):
        raise AssertionError("decoded again instead of read from the cache")
    monkeypatch.setattr(mnist, "_decode_mnist", decode)
    train, _ = datasets.get_mnist(download=False)
    np.testing.assert_array_equal(datasets.arrays(train)[1], mnist_raw[1])


def test_damaged_cache_entry_is_rebuilt(tmp_cache, mnist_raw):
    mnist.load_mnist_raw(download=False)
    (entry,) = tmp_cache.iterdir()
    truncate(entry / "x_train.npy", 1000)
    with pytest.warns(UserWarning, match=str(entry / "x_train.npy")):
        assert_same_arrays(mnist.load_mnist_raw(download=False), mnist_raw)
    assert_same_arrays(mnist.load_mnist_raw(download=False), mnist_raw)  # and rewritten


def test_unwritable_cache_only_warns(tmp_path, monkeypatch, mnist_raw):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("BRANCHYNET_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.warns(UserWarning, match="could not cache"):
        assert_same_arrays(mnist.load_mnist_raw(download=False), mnist_raw)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_mnist_file_is_a_clear_error(tmp_path, tmp_cache, damage):
    folder = copy_mnist(tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    truncate(path, 5000) if damage == "truncate" else flip_byte(path, 1000)
    with pytest.raises(DatasetError, match="md5") as err:
        datasets.get_mnist(tmp_path, download=False)
    assert str(path) in str(err.value) and "Delete it" in str(err.value)


def test_missing_mnist_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError) as err:
        datasets.get_mnist(tmp_path / "nowhere", download=False)
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "mnist") in message
    assert all(name in message for name in mnist.MNIST_MD5)


# ------------------------------------------------------------------------------------ MNIST download

def serve_mnist(urls, failing_prefixes=(), corrupt=False):
    """An ``open_url`` that serves the real MNIST files, recording the urls it is asked for."""
    def open_url(url):
        urls.append(url)
        if url.startswith(failing_prefixes):
            raise urllib.error.URLError("unreachable")
        data = (DATA / "mnist" / url.rsplit("/", 1)[1]).read_bytes()
        return FakeResponse(data[:-1] + b"\0" if corrupt else data)
    return open_url


def test_download_falls_back_to_a_mirror_and_writes_checked_files(tmp_path, tmp_cache, monkeypatch, capsys,
                                                                 mnist_raw):
    urls = []
    monkeypatch.setattr(files, "open_url", serve_mnist(urls, failing_prefixes=mnist.MNIST_MIRRORS[0]))
    assert_same_arrays(mnist.load_mnist_raw(tmp_path), mnist_raw)
    name = "train-images-idx3-ubyte.gz"
    assert urls[:2] == [mnist.MNIST_MIRRORS[0] + name, mnist.MNIST_MIRRORS[1] + name]
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(mnist.MNIST_MD5)  # no temporary files left
    for file in mnist.MNIST_MD5:
        assert (tmp_path / "mnist" / file).read_bytes() == (DATA / "mnist" / file).read_bytes()
    assert "#" * 30 in capsys.readouterr().err  # a completed progress bar
    urls.clear()
    mnist.load_mnist_raw(tmp_path)
    assert urls == []  # present files are not fetched again


def test_corrupt_download_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "open_url", serve_mnist([], corrupt=True))
    with pytest.raises(DatasetError, match="not the official") as err:
        mnist.load_mnist_raw(tmp_path)
    assert all(mirror in str(err.value) for mirror in mnist.MNIST_MIRRORS)
    assert os.listdir(tmp_path / "mnist") == []


def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch):
    class Broken(FakeResponse):
        def read(self, size=-1):
            if self.tell():
                raise ConnectionResetError("connection reset")
            return super().read(size)

    monkeypatch.setattr(files, "open_url", lambda url: Broken(b"x" * (3 << 20)))
    with pytest.raises(DatasetError, match="connection reset"):
        mnist.load_mnist_raw(tmp_path)
    assert os.listdir(tmp_path / "mnist") == []


def test_no_network_names_the_folder_and_the_files(tmp_path, monkeypatch):
    def offline(url):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(files, "open_url", offline)
    with pytest.raises(DatasetError) as err:
        mnist.load_mnist_raw(tmp_path)
    message = str(err.value)
    assert "no network" in message and str(tmp_path / "mnist") in message
    assert all(name in message for name in mnist.MNIST_MD5)
    with pytest.raises(DatasetError) as err:
        cifar10.load_cifar10_raw(tmp_path)
    assert str(tmp_path / "cifar10") in str(err.value) and cifar10.CIFAR10_PYTHON_TAR in str(err.value)
    assert os.listdir(tmp_path / "cifar10") == []


# ---------------------------------------------------------------------------------------- CIFAR-10

def test_cifar10_raw_contents(cifar_raw):
    x_train, y_train, x_test, y_test = cifar_raw
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == \
        ((50000, 3, 32, 32), (50000,), (10000, 3, 32, 32), (10000,))
    assert all(a.dtype == np.uint8 for a in cifar_raw)
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert np.bincount(y_train).tolist() == [5000] * 10
    channel_mean = x_train.mean(axis=(0, 2, 3)) / 255
    np.testing.assert_allclose(channel_mean, [0.4914, 0.4822, 0.4465], atol=5e-4)


def test_cifar10_gcn(cifar, tmp_cache):
    raw = cifar.raw
    n_train, n_test = len(raw[0]), len(raw[2])
    train, test = datasets.get_cifar10(cifar.forms("bin-gz"), download=False)
    assert (len(train), len(test)) == (n_train, n_test)
    for x, y in (datasets.arrays(train), datasets.arrays(test)):
        assert x.dtype == np.float32 and x.shape[1:] == (3, 32, 32) and y.dtype == np.int32
    x_test = datasets.arrays(test)[0].reshape(n_test, -1)
    np.testing.assert_allclose(x_test.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(x_test.std(axis=1, ddof=1), 1, atol=1e-4)
    np.testing.assert_array_equal(datasets.arrays(test)[1], raw[3])
    # independently, in float64: minus the *training* pixel mean, then per-image GCN
    train_mean = raw[0].mean(axis=0, dtype=np.float64).reshape(-1) / 255
    for i in (0, 1, n_test // 2, n_test - 1):
        image = raw[2][i].reshape(-1) / 255.0 - train_mean
        image -= image.mean()
        np.testing.assert_allclose(x_test[i], image / image.std(ddof=1), atol=2e-5)


def test_cifar10_scale_and_standardize(cifar, tmp_cache):
    raw, folder = cifar.raw, cifar.forms("bin-gz")
    _, test = datasets.get_cifar10(folder, preprocessing="scale", download=False)
    np.testing.assert_array_equal(datasets.arrays(test)[0], raw[2] / np.float32(255))
    del test
    train, test = datasets.get_cifar10(folder, preprocessing="standardize", download=False)
    # independently, exactly: the training set's per-channel statistics from histograms of its bytes
    values = np.arange(256) / 255
    mean, std = np.empty(3), np.empty(3)
    for c in range(3):
        p = np.bincount(raw[0][:, c].ravel(), minlength=256) / raw[0][:, c].size
        mean[c] = p @ values
        std[c] = np.sqrt(p @ (values - mean[c]) ** 2)
    for x_raw, x in ((raw[0], datasets.arrays(train)[0]), (raw[2], datasets.arrays(test)[0])):
        for i in (0, len(x_raw) // 2, len(x_raw) - 1):  # the test set too uses the training statistics
            want = (x_raw[i] / 255 - mean[:, None, None]) / std[:, None, None]
            np.testing.assert_allclose(x[i], want, atol=1e-5)


def test_unknown_preprocessing_is_refused_before_loading(tmp_path):
    with pytest.raises(ValueError, match="standardize"):
        datasets.get_cifar10(tmp_path / "nowhere", preprocessing="whiten")


@pytest.mark.parametrize("form", ["bin", "bin-gz", "py", "bin-tar", "py-tar"])
def test_every_official_form_gives_the_same_arrays(form, cifar, tmp_cache):
    assert_same_arrays(cifar10.load_cifar10_raw(cifar.forms(form), download=False), cifar.raw)


def test_mixed_bin_and_bin_gz_files_and_a_changed_source(tmp_path, tmp_cache, cifar):
    """``.bin`` and ``.bin.gz`` files may be mixed; and once a source file changes, its cache entry,
    keyed by the source's checksums, is no longer used: the changed file is read and refused."""
    folder = link_files(tmp_path, cifar.forms("bin-gz") / "cifar10" / "cifar-10-batches-bin")
    (folder / "test_batch.bin.gz").unlink()
    test_batch = (cifar.forms("bin") / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(test_batch)
    assert_same_arrays(cifar10.load_cifar10_raw(tmp_path, download=False), cifar.raw)
    assert len(list(tmp_cache.iterdir())) == 1
    flip_byte(folder / "test_batch.bin", 5000)
    with pytest.raises(DatasetError, match=cifar10.CIFAR10_BIN_SHA1["test_batch"]) as err:
        cifar10.load_cifar10_raw(tmp_path, download=False)
    assert str(folder / "test_batch.bin") in str(err.value)


def test_cifar10_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError) as err:
        cifar10.load_cifar10_raw(tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "cifar10") in message
    assert all(name in message for name in ("cifar-10-python.tar.gz", "cifar-10-binary.tar.gz",
                                            "cifar-10-batches-py", "cifar-10-batches-bin"))


def test_incomplete_extracted_folder_is_a_clear_error(tmp_path):
    folder = link_shared_cifar(tmp_path)
    (folder / "test_batch.bin.gz").unlink()
    with pytest.raises(DatasetError, match="test_batch.bin or test_batch.bin.gz") as err:
        cifar10.load_cifar10_raw(tmp_path, download=False)
    assert str(folder) in str(err.value)


def test_truncated_bin_gz_is_a_clear_error(tmp_path, tmp_cache):
    folder = link_shared_cifar(tmp_path)
    path = folder / "data_batch_1.bin.gz"
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated or corrupt") as err:
        cifar10.load_cifar10_raw(tmp_path, download=False)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("damage", ["bin: flipped byte", "py: changed pixel", "py: flipped byte"])
def test_damaged_batch_is_a_clear_error(damage, tmp_path, cifar):
    form = damage[:damage.index(":")]
    source = cifar.forms(form) / "cifar10" / f"cifar-10-batches-{form}"
    folder = link_files(tmp_path, source)
    path = folder / ("data_batch_1.bin" if form == "bin" else "data_batch_1")
    if damage == "py: changed pixel":
        name, labels, pixels = next(cifar_batches(cifar.raw))
        pixels = pixels.copy()
        pixels[7, 77] ^= 1
        replace_with_copy(path, python_batch(name, labels, pixels))
    else:
        replace_with_copy(path, path.read_bytes())
        flip_byte(path, path.stat().st_size // 2)
    # a flipped byte in a pickle may break its decoding, or only change a value
    expected = "not a readable CIFAR-10 python batch|" if damage == "py: flipped byte" else ""
    with pytest.raises(DatasetError, match=expected + cifar10.CIFAR10_BIN_SHA1["data_batch_1"]) as err:
        cifar10.load_cifar10_raw(tmp_path, download=False)
    assert str(path) in str(err.value) and len(str(err.value)) < 1000


def test_truncated_tar_is_a_clear_error(tmp_path, tmp_cache, cifar):
    path = tmp_path / "cifar10" / cifar10.CIFAR10_BINARY_TAR
    path.parent.mkdir()
    data = (cifar.forms("bin-tar") / "cifar10" / cifar10.CIFAR10_BINARY_TAR).read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match="truncated or corrupt") as err:
        cifar10.load_cifar10_raw(tmp_path, download=False)
    assert str(path) in str(err.value)


def test_pickle_that_would_run_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in cifar10.CIFAR10_BATCHES:
        (folder / name).write_bytes(pickle.dumps({b"data": Payload(), b"labels": []}, protocol=2))
    with pytest.raises(DatasetError, match="unexpected global .*print") as err:
        cifar10.load_cifar10_raw(tmp_path, download=False)
    assert str(folder / "data_batch_1") in str(err.value)


def test_cifar10_download_checks_the_archive_md5(tmp_path, tmp_cache, monkeypatch, cifar):
    """The download path end to end, serving a re-packed python archive whose md5 stands in for the
    official one (a test cannot hold the official archive's bytes)."""
    archive = (cifar.forms("py-tar") / "cifar10" / cifar10.CIFAR10_PYTHON_TAR).read_bytes()
    urls = []

    def open_url(url):
        urls.append(url)
        if url != cifar10.CIFAR10_PYTHON_URLS[0]:
            raise urllib.error.URLError("unreachable")
        return FakeResponse(archive)

    monkeypatch.setattr(files, "open_url", open_url)
    with pytest.raises(DatasetError, match=cifar10.CIFAR10_PYTHON_MD5):
        cifar10.load_cifar10_raw(tmp_path)  # the re-packed archive's md5 is not the official one
    assert urls == list(cifar10.CIFAR10_PYTHON_URLS)
    assert os.listdir(tmp_path / "cifar10") == []
    monkeypatch.setattr(cifar10, "CIFAR10_PYTHON_MD5", hashlib.md5(archive).hexdigest())
    urls.clear()
    assert_same_arrays(cifar10.load_cifar10_raw(tmp_path), cifar.raw)
    assert urls == [cifar10.CIFAR10_PYTHON_URLS[0]]
    assert os.listdir(tmp_path / "cifar10") == [cifar10.CIFAR10_PYTHON_TAR]


# ------------------------------------------------------------------------------------------ folders

def test_folder_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("BRANCHYNET_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("BRANCHYNET_CACHE", raising=False)
    assert files.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert files.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("BRANCHYNET_DATA")
    assert files.resolve_data_dir() == tmp_path / "xdg" / "branchynet" / "data"
    assert files.decoded_cache_dir() == tmp_path / "xdg" / "branchynet" / "decoded"
    monkeypatch.setenv("BRANCHYNET_CACHE", str(tmp_path / "cache"))
    assert files.decoded_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BRANCHYNET_CACHE")
    assert files.resolve_data_dir() == tmp_path / "home" / ".cache" / "branchynet" / "data"


def test_download_into_a_read_only_data_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root ignores directory permissions
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DatasetError, match="not writable") as err:
        mnist.load_mnist_raw(tmp_path)
    assert str(tmp_path / "mnist") in str(err.value)


# ------------------------------------------------------------------------- validation split (CIFAR-10)

@pytest.fixture
def small_cifar(monkeypatch):
    """A 200 + 40 image stand-in for CIFAR-10's raw arrays (uneven brightness, so that the means of
    different subsets differ clearly)."""
    rng = np.random.RandomState(7)
    bright = rng.randint(0, 156, (240, 1, 1, 1))
    x = (bright + rng.randint(0, 100, (240, 3, 32, 32))).astype(np.uint8)
    y = rng.randint(0, 10, 240).astype(np.uint8)
    raw = (x[:200], y[:200], x[200:], y[200:])
    monkeypatch.setattr(cifar10, "load_cifar10_raw", lambda data_dir=None, download=True: raw)
    return raw


def _split_index(n, val_size, seed=0):
    order = np.random.RandomState(seed).permutation(n)
    return np.sort(order[:val_size]), np.sort(order[val_size:])


def _gcn64(image, pixel_mean):
    v = image.reshape(-1) / 255.0 - pixel_mean.reshape(-1)
    v -= v.mean()
    return v / v.std(ddof=1)


def test_split_takes_gcn_statistics_from_the_training_part_only(small_cifar):
    x_raw, y_raw, x_test_raw, _ = small_cifar
    (x, t), (xv, tv), (xt, tt) = data_split.load_split("cifar10", 50, statistics="train")
    val, keep = _split_index(200, 50)
    np.testing.assert_array_equal(t, y_raw[keep])
    np.testing.assert_array_equal(tv, y_raw[val])
    assert t.dtype == tv.dtype == tt.dtype == np.int32
    train_mean = x_raw[keep].mean(axis=0, dtype=np.float64) / 255
    all_mean = x_raw.mean(axis=0, dtype=np.float64) / 255
    assert np.abs(train_mean - all_mean).max() > 0.01  # the two candidates differ here
    for images, raw in ((x, x_raw[keep]), (xv, x_raw[val]), (xt, x_test_raw)):
        for i in (0, len(raw) - 1):
            np.testing.assert_allclose(images[i].reshape(-1), _gcn64(raw[i], train_mean), atol=2e-5)


def test_split_with_all_statistics_is_the_earlier_preprocessing(small_cifar):
    """statistics="all": what runs trained before the option used, bit for bit (get_cifar10 on
    all 50,000 training images, then the split). "zca" (whose 3,072 features need more than these
    200 images) is checked the same way in tests/data/test_zca.py."""
    for preprocessing in set(datasets.PREPROCESSINGS) - {"zca"}:
        train, test = datasets.get_cifar10(preprocessing=preprocessing)
        split = data_split.load_split("cifar10", 50, statistics="all", preprocessing=preprocessing)
        val, keep = _split_index(200, 50)
        np.testing.assert_array_equal(split[0][0], datasets.arrays(train)[0][keep])
        np.testing.assert_array_equal(split[1][0], datasets.arrays(train)[0][val])
        np.testing.assert_array_equal(split[2][0], datasets.arrays(test)[0])


def test_split_standardizes_with_the_training_part(small_cifar):
    x_raw = small_cifar[0]
    _, (xv, _), _ = data_split.load_split("cifar10", 50, preprocessing="standardize")
    val, keep = _split_index(200, 50)
    part = x_raw[keep] / 255.0
    mean = part.mean(axis=(0, 2, 3))[:, None, None]
    std = part.std(axis=(0, 2, 3))[:, None, None]
    np.testing.assert_allclose(xv[3], (x_raw[val][3] / 255.0 - mean) / std, atol=1e-5)


def test_split_description(small_cifar):
    split = data_split.load_split("cifar10", 50)
    assert split.description == {
        "dataset": "cifar10", "val_size": 50, "split_seed": 0, "train_images": 150,
        "val_images": 50, "test_images": 40, "preprocessing": "gcn", "statistics": "train",
        "statistics_images": 150}
    assert data_split.load_split("cifar10", 50, statistics="all").description[
        "statistics_images"] == 200
    assert data_split.load_split("cifar10", 50, preprocessing="scale").description[
        "statistics"] is None
    with pytest.raises(ValueError, match="statistics"):
        data_split.load_split("cifar10", 50, statistics="val")


def test_run_statistics_reads_run_json(tmp_path):
    with pytest.raises(ValueError, match="run.json is missing"):
        data_split.run_statistics(str(tmp_path))
    for recorded, statistics in (("train", "train"), ("all", "all"), (None, "train")):
        (tmp_path / "run.json").write_text(json.dumps({"split": {"statistics": recorded}}))
        assert data_split.run_statistics(str(tmp_path)) == statistics
    for bad, message in (({}, "records no split.statistics"), ({"split": {"statistics": "test"}}, "one of")):
        (tmp_path / "run.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            data_split.run_statistics(str(tmp_path))


def test_every_committed_run_folder_records_its_statistics():
    """The committed runs' run.json state the split they were trained on (CIFAR-10's before the
    option: statistics of all 50,000 training images)."""
    root = Path(__file__).resolve().parents[2] / "results"
    folders = sorted(p.parent for p in root.glob("**/run.json"))
    assert len(folders) >= 10
    for folder in folders:
        info = json.loads((folder / "run.json").read_text())
        assert info["split"]["dataset"] == info["dataset"] and info["split"]["val_size"] == info["val_size"]
        want = {"mnist": (None,), "cifar10": ("all", "train")}[info["dataset"]]
        assert info["split"]["statistics"] in want, folder
        assert not (folder / "checkpoint.npz").exists(), folder


def test_mnist_split_description():
    split = data_split.load_split("mnist", 100)
    assert split.description["statistics"] is None and split.description["train_images"] == 59900
    (x, _), (xv, _), _ = split
    assert len(xv) == 100 and x.dtype == np.float32 and x.max() <= 1


def test_nothing_beside_the_checkout_is_searched(tmp_path, monkeypatch):
    """No BRANCHYNET_DATA, no argument: the user cache, even where a shared/data folder sits
    beside the checkout (as on this project's machines) or beside the working directory."""
    monkeypatch.delenv("BRANCHYNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "shared" / "data" / "mnist").mkdir(parents=True)
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    assert files.resolve_data_dir() == tmp_path / "xdg" / "branchynet" / "data"
    assert files.data_dir_source().startswith("the user cache")


def test_only_the_makefile_ci_and_tests_point_at_a_shared_folder():
    root = Path(__file__).resolve().parents[2]
    files = [*root.glob("branchynet/**/*.py"), *root.glob("networks/*.py"), *root.glob("experiments/*.py"),
             *root.glob("benchmarks/*.py"), *root.glob("notebooks/*.ipynb")]
    assert len(files) > 20
    for path in files:
        text = path.read_text()
        assert '"shared"' not in text and "shared/data" not in text, path


@pytest.mark.parametrize("how", ["argument", "env", "cache"])
def test_missing_data_errors_name_the_flag_the_variable_and_the_folder_used(tmp_path, monkeypatch, how):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("BRANCHYNET_DATA", raising=False)
    arg = None
    if how == "argument":
        arg, folder, source = tmp_path / "arg", tmp_path / "arg", "given by --data-dir"
    elif how == "env":
        monkeypatch.setenv("BRANCHYNET_DATA", str(tmp_path / "env"))
        folder, source = tmp_path / "env", "from BRANCHYNET_DATA"
    else:
        folder, source = tmp_path / "xdg" / "branchynet" / "data", "the user cache"
    for load, sub in ((mnist.load_mnist_raw, "mnist"), (cifar10.load_cifar10_raw, "cifar10")):
        with pytest.raises(DatasetError) as err:
            load(arg, download=False)
        message = str(err.value)
        assert str(folder / sub) in message and f"looked in {folder} ({source}" in message
        assert "--data-dir" in message and "BRANCHYNET_DATA" in message
        assert "data_dir=" not in message and "download=True" not in message


def test_damaged_file_errors_name_no_python_keywords(tmp_path, tmp_cache):
    folder = copy_mnist(tmp_path)
    truncate(folder / "t10k-labels-idx1-ubyte.gz", 100)
    with pytest.raises(DatasetError) as err:
        mnist.load_mnist_raw(tmp_path, download=False)
    assert "Delete it and rerun" in str(err.value)
    assert "download=True" not in str(err.value) and "get_mnist(" not in str(err.value)
