"""Where the dataset files are, and how they are fetched, checked and cached: the data folder's
order, downloads that replace a file only once its md5 is the official one, checksums, and the
cache of decoded arrays. The datasets themselves: ``mnist``, ``cifar10``.

Where the files are
-------------------
The data folder is, in this order: the ``data_dir`` argument (the scripts' ``--data-dir``), else the
environment variable ``BRANCHYNET_DATA``, else the per-user cache ``$XDG_CACHE_HOME/branchynet/data``
(``~/.cache/branchynet/data``), where missing files are downloaded and checksummed. Nothing else is
searched (no folder beside the checkout: the Makefile, CI and the tests set ``BRANCHYNET_DATA`` when
they want one). Errors say which folder was used and why. Inside it, ``mnist/`` and ``cifar10/``
hold the official files (``mnist``, ``cifar10``).

Missing files are downloaded when ``download=True`` (MNIST from ossci-datasets, then the two usual
mirrors; CIFAR-10's python version from the University of Toronto), into a temporary file in the
same folder that replaces the target only once its md5 is the official one.

Cache rule
----------
Decoding costs seconds (CIFAR-10 ~2 s), so the decoded uint8 arrays are kept as ``.npy`` files in
``BRANCHYNET_CACHE``, else ``$XDG_CACHE_HOME/branchynet/decoded`` (``~/.cache/branchynet/decoded``),
never in the data folder (which may be read-only). The cache folder's name is a hash of the
checksums of the source files as they are on disk, so a changed source never meets a stale cache;
entries are written (atomically) only after the source passed the checks above, each array's
sha256 beside them (``sha256.json``, written last). An entry is used only when every array matches
its recorded checksum: one that does not (a flipped byte, zeroed images) is rebuilt with a
warning naming the file, one cut short (no ``sha256.json``) rebuilt quietly. A cache that cannot
be written only costs a warning. Entries of sources that changed are not removed: delete the
folder to reclaim their space.
"""
import hashlib
import json
import os
import sys
import tempfile
import urllib.request
import warnings
from http.client import HTTPException
from pathlib import Path

import numpy as np


class DatasetError(Exception):
    """A data file is missing, unreadable or not the official one; the message says what to do."""


_CACHE_VERSION = "2"  # bump when the layout of the decoded arrays changes
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


def folder_hint(folder, data_dir, subfolder):
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

def file_digest(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path, write):
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


def brief(err):
    """``err`` as a short text: some decoders put megabytes of the offending data in their message."""
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= 200 else text[:200] + "..."


def unreadable(what, err, remedy):
    return DatasetError(f"{what} cannot be read ({brief(err)}): it is truncated or corrupt. {remedy}")


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


def download_file(urls, dest, md5, hint):
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
            atomic_write(dest, lambda out, url=url: _fetch(url, out, md5))
            return
        except (OSError, HTTPException, DatasetError) as err:  # URLError is an OSError
            failures.append(f"{url}: {err}")
    raise DatasetError(f"Could not download {dest.name} ({'; '.join(failures)}). {hint}")


# ------------------------------------------------------------------------------------------- cache

def cached(dataset, source_digests, shapes, decode):
    """The four uint8 arrays of ``dataset``: from the cache entry keyed by ``source_digests`` (the
    checksums of the source files), else from ``decode()``, whose result is then cached."""
    key_text = repr((_CACHE_VERSION, dataset, sorted(source_digests.items())))
    folder = decoded_cache_dir() / f"{dataset}-{hashlib.sha1(key_text.encode()).hexdigest()[:20]}"
    arrays = _read_cache(folder, shapes)
    if arrays is None:
        arrays = decode()
        _write_cache(folder, arrays)
    return arrays


_CHECKSUMS = "sha256.json"


def _cache_paths(folder):
    return [folder / f"{name}.npy" for name in ("x_train", "y_train", "x_test", "y_test")]


def _read_cache(folder, shapes):
    """The cached arrays, or None when the entry is absent, incomplete or does not match its
    checksums (then with a warning naming the file)."""
    try:
        recorded = json.loads((folder / _CHECKSUMS).read_text())
        arrays = []
        for path, shape in zip(_cache_paths(folder), shapes):
            if file_digest(path, "sha256") != recorded.get(path.name):
                warnings.warn(f"the cached array {path} does not match its checksum in "
                              f"{folder / _CHECKSUMS} (damaged): decoding the dataset again")
                return None
            array = np.load(path, allow_pickle=False)
            if array.dtype != np.uint8 or array.shape != shape:
                return None
            arrays.append(array)
    except (OSError, ValueError, EOFError, AttributeError):
        return None
    return tuple(arrays)


def _write_cache(folder, arrays):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / _CHECKSUMS).unlink(missing_ok=True)
        digests = {}
        for path, array in zip(_cache_paths(folder), arrays):
            atomic_write(path, lambda f, array=array: np.save(f, array, allow_pickle=False))
            digests[path.name] = file_digest(path, "sha256")
        atomic_write(folder / _CHECKSUMS, lambda f: f.write(json.dumps(digests).encode()))
    except OSError as err:
        warnings.warn(f"could not cache decoded arrays in {folder} ({err}); the next load decodes again")
