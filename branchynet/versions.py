"""The versions of Python and the libraries a result or a training run was made with."""
import importlib.util
import platform
import sys

import numpy


def _version(module_name):
    if importlib.util.find_spec(module_name) is None:
        return None
    try:
        module = __import__(module_name)
    except Exception as err:  # a broken install (e.g. cupy without CUDA) is reported, not raised
        return "unimportable (%s)" % type(err).__name__
    return getattr(module, "__version__", "unknown")


def versions(gpu=None):
    """Python's and the libraries' versions (CuPy's where a GPU is used or CuPy is imported)."""
    return {"python": platform.python_version(), "numpy": numpy.__version__,
            "chainer": _version("chainer"), "matplotlib": _version("matplotlib"),
            "cupy": _version("cupy") if (gpu is not None or "cupy" in sys.modules) else None}
