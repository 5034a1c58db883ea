"""CIFAR-10 from any official form (``cifar10/`` in the data folder), every batch checked;
``load_cifar10_raw`` returns the uint8 arrays ``(x_train N x 3 x 32 x 32, y_train, x_test, y_test)``.

The folder holds CIFAR-10 in any official form, looked for in this order: the extracted binary
version ``cifar-10-batches-bin/`` (``data_batch_1.bin`` ... ``test_batch.bin``, each file also
accepted gzip-compressed as ``.bin.gz``), the extracted python version ``cifar-10-batches-py/``
(pickles ``data_batch_1`` ... ``test_batch``), ``cifar-10-binary.tar.gz``, ``cifar-10-python.tar.gz``.

Checksum rule: the *content* of every batch, whatever form it comes in, is checked against the
published sha1 of the uncompressed binary-version file (``data_batch_1.bin`` ...); any mismatch,
truncation or unreadable file raises ``DatasetError`` naming the file and what to do. A
python-version pickle is checked by rebuilding the binary record layout from it (one label byte,
then the 3,072 pixel bytes, per image: the two versions hold the same rows in the same order) and
hashing that, so no extra constants are needed. An archive's own md5 is checked when it is
downloaded (that is where the bytes must be the official archive); a ``.tar.gz`` already on disk is
accepted on its members' contents, because a re-packed archive of the official files is as good and
its md5 cannot be known, while the member checks cover every byte that is used. Unpickling refuses
any global but numpy's array rebuilders, so that a tampered pickle cannot run code.
"""
import functools
import gzip
import hashlib
import io
import pickle
import tarfile
import zlib

import numpy as np

from branchynet.data.files import (
    DatasetError,
    brief,
    cached,
    download_file,
    file_digest,
    folder_hint,
    resolve_data_dir,
    unreadable,
)

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
        raise DatasetError(f"{where} is not a readable CIFAR-10 python batch ({brief(err)}). "
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
            raise unreadable(path, err, remedy) from err
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
        raise unreadable(path, err, remedy) from err
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
        hint = f"Put {_CIFAR10_FORMS} in {folder}. " + folder_hint(folder, data_dir, "cifar10")
        if not download:
            raise DatasetError(f"No CIFAR-10 in {folder}. {hint}")
        download_file(CIFAR10_PYTHON_URLS, folder / CIFAR10_PYTHON_TAR, CIFAR10_PYTHON_MD5, hint)
        source = _locate_cifar10(folder)
    path, files, read = source
    digests = {str(f.relative_to(folder)): file_digest(f, "sha1") for f in files}
    return cached("cifar10", digests, _CIFAR10_SHAPES, lambda: _decode_cifar10(path, read))

