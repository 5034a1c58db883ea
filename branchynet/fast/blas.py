"""numpy's bundled OpenBLAS, asked and told its thread count through ctypes (no new dependency).

Why: when the fast kernels split a batch over worker threads (threads.py), each worker's GEMMs
must run on one BLAS thread, else two workers each start OpenBLAS's threads and the cores are
oversubscribed (measured: slower than not splitting). Where numpy's BLAS is not an OpenBLAS found
here, nothing is changed and ``threads`` reports None.
"""
import contextlib
import ctypes
import glob
import os
import threading

import numpy

__all__ = ["threads", "set_threads", "config", "one_thread"]

_lock = threading.Lock()


def _load():
    """(get, set, config) functions of numpy's bundled OpenBLAS, or Nones."""
    folder = os.path.join(os.path.dirname(numpy.__file__), "..", "numpy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
            get = getattr(lib, "%s_get_num_threads%s" % (prefix, suffix), None)
            put = getattr(lib, "%s_set_num_threads%s" % (prefix, suffix), None)
            if get is None or put is None:
                continue
            put.argtypes = [ctypes.c_int]
            put.restype = None
            conf = getattr(lib, "%s_get_config%s" % (prefix, suffix), None)
            if conf is not None:
                conf.restype = ctypes.c_char_p
            return get, put, conf
    return None, None, None


_get, _set, _config = _load()


def threads():
    """OpenBLAS's current thread count, or None where it cannot be asked."""
    return None if _get is None else int(_get())


def set_threads(n):
    """Sets OpenBLAS's thread count (benchmarks compare 1 and all cores in one process); returns
    the previous count, or None (and changes nothing) where it cannot be told."""
    if _get is None:
        return None
    previous = int(_get())
    _set(int(n))
    return previous


def config():
    """OpenBLAS's build description (version, kernel), or None."""
    return None if _config is None else _config().decode(errors="replace")


_depth = 0
_saved = None


@contextlib.contextmanager
def one_thread():
    """BLAS on one thread inside the block (nestable, thread-safe); restored after."""
    global _depth, _saved
    if _get is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = int(_get())
            if _saved != 1:
                _set(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved != 1:
                _set(_saved)
