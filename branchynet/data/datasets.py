"""MNIST and CIFAR-10 for the BranchyNet experiments, read from the official files and checked.

``get_mnist`` and ``get_cifar10`` return ``(train, test)`` as ``chainer.datasets.TupleDataset`` of
(float32 image N x C x H x W, int32 label), like ``chainer.datasets.get_mnist(ndim=3)``;
``load_mnist_raw`` and ``load_cifar10_raw`` return the undecorated uint8 arrays
``(x_train, y_train, x_test, y_test)`` (images N x C x H x W, labels N, both uint8).

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

Where the files are
-------------------
The data folder is, in this order: the ``data_dir`` argument (the scripts' ``--data-dir``), else the
environment variable ``BRANCHYNET_DATA``, else the per-user cache ``$XDG_CACHE_HOME/branchynet/data``
(``~/.cache/branchynet/data``), where missing files are downloaded and checksummed. Nothing else is
searched (no folder beside the checkout: the Makefile, CI and the tests set ``BRANCHYNET_DATA`` when
they want one). Errors say which folder was used and why. Inside it:

* ``mnist/``: the four official idx files, gzip-compressed as published
  (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
  ``t10k-labels-idx1-ubyte.gz``).
* ``cifar10/``: CIFAR-10 in any official form, looked for in this order: the extracted binary
  version ``cifar-10-batches-bin/`` (``data_batch_1.bin`` ... ``test_batch.bin``, each file also
  accepted gzip-compressed as ``.bin.gz``), the extracted python version ``cifar-10-batches-py/``
  (pickles ``data_batch_1`` ... ``test_batch``), ``cifar-10-binary.tar.gz``,
  ``cifar-10-python.tar.gz``.

Missing files are downloaded when ``download=True`` (MNIST from ossci-datasets, then the two usual
mirrors; CIFAR-10's python version from the University of Toronto), into a temporary file in the
same folder that replaces the target only once its md5 is the official one.

Checksum rule
-------------
Everything read is checked against published checksums, and any mismatch, truncation or
unreadable file raises ``DatasetError`` naming the file and what to do:

* MNIST: the md5 of each ``.gz`` file, on every load (it costs ~30 ms).
* CIFAR-10: the *content* of every batch, whatever form it comes in, is checked against the
  published sha1 of the uncompressed binary-version file (``data_batch_1.bin`` ...). A python-version
  pickle is checked by rebuilding the binary record layout from it (one label byte, then the
  3,072 pixel bytes, per image: the two versions hold the same rows in the same order) and hashing
  that, so no extra constants are needed. An archive's own md5 is checked when it is downloaded
  (that is where the bytes must be the official archive); a ``.tar.gz`` already on disk is accepted
  on its members' contents, because a re-packed archive of the official files is as good and its
  md5 cannot be known, while the member checks cover every byte that is used.

Cache rule
----------
Decoding costs seconds (CIFAR-10 ~2 s), so the decoded uint8 arrays are kept as ``.npy`` files in
``BRANCHYNET_CACHE``, else ``$XDG_CACHE_HOME/branchynet/decoded`` (``~/.cache/branchynet/decoded``),
never in the data folder (which may be read-only). The cache folder's name is a hash of the
checksums of the source files as they are on disk, so a changed source never meets a stale cache;
entries are written (atomically) only after the source passed the checks above. A cache that
cannot be written only costs a warning; one that cannot be read is rebuilt. Entries of sources
that changed are not removed: delete the folder to reclaim their space.
"""
import functools
import gzip
import hashlib
import io
import os
import pickle
import sys
import tarfile
import tempfile
import urllib.request
import warnings
import zlib
from http.client import HTTPException
from pathlib import Path

import numpy as np

from chainer.datasets import TupleDataset

from branchynet.data.zca import zca_statistics, zca_whiten


class DatasetError(Exception):
    """A data file is missing, unreadable or not the official one; the message says what to do."""


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

CIFAR10_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_PYTHON_TAR = "cifar-10-python.tar.gz"
CIFAR10_BINARY_TAR = "cifar-10-binary.tar.gz"
CIFAR10_PYTHON_URLS = (
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "http://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
)
# Official md5 of cifar-10-python.tar.gz, checked on download. (cifar-10-binary.tar.gz, accepted but
# never downloaded, has md5 c32a1d4ab5d03f1284b67883e8d87530; on disk, archives are checked by content.)
CIFAR10_PYTHON_MD5 = "c58f30108f718f92721af3b95e74349a"
# Published sha1 of each uncompressed binary-version batch file (cifar-10-binary.tar.gz).
CIFAR10_BIN_SHA1 = {
    "data_batch_1": "aadd24acce27caa71bf4b10992e9e7b2d74c2540",
    "data_batch_2": "c0ba65cce70568cd57b4e03e9ac8d2a5367c1795",
    "data_batch_3": "1dd00a74ab1d17a6e7d73e185b69dbf31242f295",
    "data_batch_4": "aab85764eb3584312d3c7f65fd2fd016e36a258e",
    "data_batch_5": "26e2849e66a845b7f1e4614ae70f4889ae604628",
    "test_batch": "67eb016db431130d61cd03c7ad570b013799c88c",
}
CIFAR10_BATCHES = tuple(CIFAR10_BIN_SHA1)
_CIFAR10_RECORD = 1 + 3 * 32 * 32
_CIFAR10_SHAPES = ((50000, 3, 32, 32), (50000,), (10000, 3, 32, 32), (10000,))
_CIFAR10_FORMS = (
    "cifar-10-python.tar.gz or cifar-10-binary.tar.gz (from " + CIFAR10_PAGE + "), or either one "
    "extracted (cifar-10-batches-py/ or cifar-10-batches-bin/, whose .bin files may be gzipped as .bin.gz)"
)

PREPROCESSINGS = ("gcn", "scale", "standardize", "zca")
_GCN_MIN_DIVISOR = 1e-8
_CACHE_VERSION = "1"  # bump when the layout of the decoded arrays changes
_CHUNK = 1 << 20


# ----------------------------------------------------------------------------------------- folders

def _user_cache_base():
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "branchynet"


def resolve_data_dir(data_dir=None):
    """The data folder: ``data_dir``, else ``$BRANCHYNET_DATA``, else the per-user cache's ``data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get("BRANCHYNET_DATA"):
        return Path(os.environ["BRANCHYNET_DATA"]).expanduser()
    return _user_cache_base() / "data"


def data_dir_source(data_dir=None):
    """Why ``resolve_data_dir(data_dir)`` is the folder it is, in words for error messages."""
    if data_dir is not None:
        return "given by --data-dir"
    if os.environ.get("BRANCHYNET_DATA"):
        return "from BRANCHYNET_DATA"
    return "the user cache: neither --data-dir nor BRANCHYNET_DATA was given"


def _where(folder, data_dir, subfolder):
    """The sentence of an error that says where data are looked for and how to point elsewhere."""
    return (f"This run looked in {folder.parent} ({data_dir_source(data_dir)}); data are looked for "
            f"in --data-dir FOLDER, else $BRANCHYNET_DATA, else {_user_cache_base() / 'data'}. Give "
            f"the scripts --data-dir or set BRANCHYNET_DATA to a folder whose {subfolder}/ holds them.")


def decoded_cache_dir():
    """Where decoded arrays are cached: ``$BRANCHYNET_CACHE``, else the per-user cache's ``decoded``."""
    if os.environ.get("BRANCHYNET_CACHE"):
        return Path(os.environ["BRANCHYNET_CACHE"]).expanduser()
    return _user_cache_base() / "decoded"


# ------------------------------------------------------------------------------ files and checksums

def _file_digest(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path, write):
    """Calls ``write(file)`` on a temporary file next to ``path`` and renames it to ``path`` only if
    that succeeds, so an interrupted or failed write never leaves a file that a later run trusts."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide shared data files from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _brief(err):
    """``err`` as a short text: some decoders put megabytes of the offending data in their message."""
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= 200 else text[:200] + "..."


def _unreadable(what, err, remedy):
    return DatasetError(f"{what} cannot be read ({_brief(err)}): it is truncated or corrupt. {remedy}")


# ---------------------------------------------------------------------------------------- download

def open_url(url):
    """Opens ``url`` for reading; a module-level function so that tests can replace it."""
    return urllib.request.urlopen(url, timeout=60)


def _show_progress(name, done, total):
    if total:
        filled = 30 * done // total
        bar = "#" * filled + "." * (30 - filled)
        sys.stderr.write(f"\r{name} [{bar}] {done / 1e6:.1f}/{total / 1e6:.1f} MB")
    else:
        sys.stderr.write(f"\r{name} {done / 1e6:.1f} MB")
    sys.stderr.flush()


def _fetch(url, out, md5):
    """Streams ``url`` into ``out`` with a progress bar; raises DatasetError unless its md5 is ``md5``."""
    name = url.rsplit("/", 1)[-1]
    digest = hashlib.md5()
    done = 0
    try:
        with open_url(url) as response:
            headers = getattr(response, "headers", None)
            total = int(headers.get("Content-Length") or 0) if headers is not None else 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                _show_progress(name, done, total)
    finally:
        if done:
            sys.stderr.write("\n")
    if digest.hexdigest() != md5:
        raise DatasetError(f"served {done} bytes with md5 {digest.hexdigest()}, not the official {md5}")


def _download(urls, dest, md5, hint):
    """Downloads ``dest`` from the first of ``urls`` that serves the official bytes."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DatasetError(f"Cannot create the data folder {dest.parent} ({err}). {hint}") from err
    if not os.access(dest.parent, os.W_OK):
        raise DatasetError(f"{dest.name} is missing and {dest.parent} is not writable, so it cannot be "
                           f"downloaded there. {hint}")
    failures = []
    for url in urls:
        sys.stderr.write(f"Downloading {url} to {dest.parent}\n")
        try:
            _atomic_write(dest, lambda out, url=url: _fetch(url, out, md5))
            return
        except (OSError, HTTPException, DatasetError) as err:  # URLError is an OSError
            failures.append(f"{url}: {err}")
    raise DatasetError(f"Could not download {dest.name} ({'; '.join(failures)}). {hint}")


# ------------------------------------------------------------------------------------------- cache

def _cached(dataset, source_digests, shapes, decode):
    """The four uint8 arrays of ``dataset``: from the cache entry keyed by ``source_digests`` (the
    checksums of the source files), else from ``decode()``, whose result is then cached."""
    key_text = repr((_CACHE_VERSION, dataset, sorted(source_digests.items())))
    folder = decoded_cache_dir() / f"{dataset}-{hashlib.sha1(key_text.encode()).hexdigest()[:20]}"
    arrays = _read_cache(folder, shapes)
    if arrays is None:
        arrays = decode()
        _write_cache(folder, arrays)
    return arrays


def _cache_paths(folder):
    return [folder / f"{name}.npy" for name in ("x_train", "y_train", "x_test", "y_test")]


def _read_cache(folder, shapes):
    """The cached arrays, or None when the entry is absent, incomplete or damaged."""
    try:
        arrays = tuple(np.load(path, allow_pickle=False) for path in _cache_paths(folder))
    except (OSError, ValueError, EOFError):
        return None
    if any(a.dtype != np.uint8 or a.shape != shape for a, shape in zip(arrays, shapes)):
        return None
    return arrays


def _write_cache(folder, arrays):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, array in zip(_cache_paths(folder), arrays):
            _atomic_write(path, lambda f, array=array: np.save(f, array, allow_pickle=False))
    except OSError as err:
        warnings.warn(f"could not cache decoded arrays in {folder} ({err}); the next load decodes again")


# ------------------------------------------------------------------------------------------- MNIST

def _mnist_hint(folder, data_dir=None):
    return (f"Put the official files {', '.join(MNIST_MD5)} (from {MNIST_MIRRORS[0]}) in {folder}. "
            + _where(folder, data_dir, "mnist"))


def _check_mnist_file(path):
    """The md5 of ``path``, after checking that it is the official one."""
    digest = _file_digest(path, "md5")
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
        _download([mirror + name for mirror in MNIST_MIRRORS], folder / name, MNIST_MD5[name],
                  _mnist_hint(folder, data_dir))
    digests = {name: _check_mnist_file(folder / name) for name in MNIST_MD5}
    return _cached("mnist", digests, _MNIST_SHAPES, lambda: _decode_mnist(folder))


def get_mnist(data_dir=None, download=True):
    """MNIST ``(train, test)`` TupleDatasets of float32 N x 1 x 28 x 28 images in [0, 1] (x / 255)
    and int32 labels, as the original BranchyNet code prepared them."""
    x_train, y_train, x_test, y_test = load_mnist_raw(data_dir, download)
    return (TupleDataset(_scaled(x_train), y_train.astype(np.int32)),
            TupleDataset(_scaled(x_test), y_test.astype(np.int32)))


# ---------------------------------------------------------------------------------------- CIFAR-10

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10 python batches while refusing any global but numpy's array rebuilders, so
    that a tampered pickle cannot run code."""

    _ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("_codecs", "encode")}  # the last: bytes in protocol-2 pickles written by Python 3

    def find_class(self, module, name):
        if module.startswith("numpy.core."):  # numpy 2 moved numpy.core, named in the official pickles
            module = "numpy._core." + module[len("numpy.core."):]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
        return super().find_class(module, name)


def _pickle_records(data, where, remedy):
    """A python-version batch rebuilt as the binary version's records (label byte + 3,072 pixels)."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
        pixels = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.uint8)
        return np.concatenate([labels[:, None], pixels], axis=1).tobytes()
    except Exception as err:  # a damaged pickle can fail with almost any exception type
        raise DatasetError(f"{where} is not a readable CIFAR-10 python batch ({_brief(err)}). "
                           f"{remedy}") from err


def _bin_records(data, where, remedy):
    """A binary-version file already is the records (same signature as ``_pickle_records``)."""
    return data


def _batch_files(folder, suffixes, remedy):
    """Each batch's file in an extracted folder: the first of its names with ``suffixes`` that exists."""
    files = []
    for batch in CIFAR10_BATCHES:
        path = next((folder / (batch + s) for s in suffixes if (folder / (batch + s)).is_file()), None)
        if path is None:
            names = " or ".join(batch + s for s in suffixes)
            raise DatasetError(f"{folder} has no {names}: it is incomplete. {remedy}")
        files.append(path)
    return files


def _read_files(files, to_records, remedy):
    """[(batch, where, records)] from the files of an extracted folder, gunzipping ``.gz`` ones."""
    found = []
    for batch, path in zip(CIFAR10_BATCHES, files):
        try:
            data = path.read_bytes()
            data = gzip.decompress(data) if path.suffix == ".gz" else data
        except (OSError, EOFError, zlib.error) as err:
            raise _unreadable(path, err, remedy) from err
        found.append((batch, str(path), to_records(data, str(path), remedy)))
    return found


def _read_tar(path, member_dir, suffix, to_records, remedy):
    """[(batch, where, records)] from an official-layout tar.gz, reading it once, in member order."""
    wanted = {f"{member_dir}/{batch}{suffix}": batch for batch in CIFAR10_BATCHES}
    found = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                batch = wanted.pop(member.name.removeprefix("./"), None)
                if batch is not None:
                    where = f"{path} (member {member.name})"
                    found.append((batch, where, to_records(tar.extractfile(member).read(), where, remedy)))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise _unreadable(path, err, remedy) from err
    if wanted:
        raise DatasetError(f"{path} lacks the members {', '.join(wanted)}. {remedy}")
    return found


def _locate_cifar10(folder):
    """``(path, files, read)`` for the first CIFAR-10 form in ``folder`` (extracted folders first:
    they are the fastest to read), or None. ``files`` are what the cache key hashes; ``read()``
    returns each batch's records, not yet checked."""
    extracted = (
        ("cifar-10-batches-bin", (".bin", ".bin.gz"), _bin_records),
        ("cifar-10-batches-py", ("",), _pickle_records),
    )
    for name, suffixes, to_records in extracted:
        path = folder / name
        if path.is_dir():
            remedy = (f"Replace it with the official file, or delete {path} and rerun (CIFAR-10 is "
                      f"downloaded again and checked), or put another official form of CIFAR-10 in {folder}.")
            files = _batch_files(path, suffixes, remedy)
            return path, files, functools.partial(_read_files, files, to_records, remedy)
    archives = (
        (CIFAR10_BINARY_TAR, "cifar-10-batches-bin", ".bin", _bin_records),
        (CIFAR10_PYTHON_TAR, "cifar-10-batches-py", "", _pickle_records),
    )
    for name, member_dir, suffix, to_records in archives:
        path = folder / name
        if path.is_file():
            remedy = (f"Delete {path} and rerun (it is downloaded again and checked), "
                      "or put an official copy there.")
            return path, [path], functools.partial(_read_tar, path, member_dir, suffix, to_records, remedy)
    return None


def _checked_records(batch, records, where, path):
    if hashlib.sha1(records).hexdigest() != CIFAR10_BIN_SHA1[batch]:
        raise DatasetError(
            f"{where}: the content of {batch} ({len(records)} bytes as binary records; the official "
            f"has {10000 * _CIFAR10_RECORD}) does not have the official sha1 {CIFAR10_BIN_SHA1[batch]}: "
            f"the file is truncated, corrupt or not the official CIFAR-10. Delete {path} and rerun (it is "
            f"downloaded again and checked), or put an official copy of CIFAR-10 there.")
    return np.frombuffer(records, np.uint8).reshape(-1, _CIFAR10_RECORD)


def _decode_cifar10(path, read):
    records = {batch: _checked_records(batch, data, where, path) for batch, where, data in read()}
    train = np.concatenate([records[b] for b in CIFAR10_BATCHES[:5]])
    test = records["test_batch"]
    # copies: contiguous arrays that do not keep the record buffers alive
    return (train[:, 1:].reshape(-1, 3, 32, 32).copy(), train[:, 0].copy(),
            test[:, 1:].reshape(-1, 3, 32, 32).copy(), test[:, 0].copy())


def load_cifar10_raw(data_dir=None, download=True):
    """CIFAR-10 as uint8 ``(x_train N x 3 x 32 x 32, y_train, x_test, y_test)``, every batch checked
    against the published sha1 of the binary version."""
    folder = resolve_data_dir(data_dir) / "cifar10"
    source = _locate_cifar10(folder)
    if source is None:
        hint = f"Put {_CIFAR10_FORMS} in {folder}. " + _where(folder, data_dir, "cifar10")
        if not download:
            raise DatasetError(f"No CIFAR-10 in {folder}. {hint}")
        _download(CIFAR10_PYTHON_URLS, folder / CIFAR10_PYTHON_TAR, CIFAR10_PYTHON_MD5, hint)
        source = _locate_cifar10(folder)
    path, files, read = source
    digests = {str(f.relative_to(folder)): _file_digest(f, "sha1") for f in files}
    return _cached("cifar10", digests, _CIFAR10_SHAPES, lambda: _decode_cifar10(path, read))


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
    x_train, y_train, x_test, y_test = load_cifar10_raw(data_dir, download)
    train, test = _preprocess_cifar10(x_train, x_test, preprocessing)
    return TupleDataset(train, y_train.astype(np.int32)), TupleDataset(test, y_test.astype(np.int32))


def arrays(dataset):
    """(x, t) numpy arrays of a loaded dataset (a TupleDataset), or of an (x, t) pair."""
    if isinstance(dataset, tuple) and len(dataset) == 2:
        return dataset
    x, t = dataset._datasets
    return x, t
