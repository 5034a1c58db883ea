"""Where and how a result was made: date, command line, hardware, thread settings, library versions."""
import datetime
import importlib.util
import os
import platform
import shlex
import sys

import numpy

from branchynet.evaluation import timing


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


def environment(argv=None, gpu=None):
    """Where and how a result was made: date, command line, hardware, thread settings, versions.

    ``gpu``: a CuPy ``chainer.backend.Device`` whose name to record, or None.
    """
    argv = sys.argv if argv is None else argv
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in argv),
        "cwd": os.getcwd(),
        "hardware": {"cpu": timing.cpu_model(), "machine": platform.machine(),
                     "cpu_threads": timing.cpu_threads(), "gpu": None},
        "platform": platform.platform(),
        "versions": versions(gpu),
    }
    try:
        info["numpy_blas"] = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:
        info["numpy_blas"] = None
    if gpu is not None:
        info["hardware"]["gpu"] = timing.gpu_name(gpu)
    return info

