"""Lets Chainer 7.8.1 (2020) import on Python 3.11-3.13, numpy 2.x and setuptools >= 74/82.

Import this module before the first ``import chainer`` (``branchynet/__init__.py`` does, and so do
the tests' conftest and every script, through ``import branchynet``). It only *adds* what a modern
stack removed and Chainer still touches; it never replaces something that exists, and it patches no
file in site-packages. Each shim names the Chainer module that needs it:

* ``numpy.sctypes`` (removed in numpy 2.0): read at import time by
  ``chainer/functions/array/as_strided.py``.
* ``numpy.float`` (removed in numpy 1.24): used by ``F.resize_images`` when it runs.
* ``numpy.distutils.system_info`` (gone on Python 3.12 and with setuptools >= 74): imported by
  ``chainer/_environment_check.py``; its ``get_info`` is only called on macOS, so ``{}`` is enough.
* ``pkg_resources`` (removed in setuptools 82): imported by ``chainer/_environment_check.py`` and
  ``chainer/_version``-style probes, which only call ``get_distribution`` and ``require``.
* CuPy 14 removed cuDNN: Chainer then warns "cuDNN is not enabled" on import; ``CHAINER_CUDNN=0``
  states that we know, and Chainer's version check does not know the ``cupy-cuda13x`` name.
"""
import importlib.metadata
import importlib.util
import os
import sys
import types
import warnings

import numpy


def _add_numpy_aliases():
    if "float" not in numpy.__dict__:
        numpy.float = float
    if "sctypes" not in numpy.__dict__:
        numpy.sctypes = {
            "int": [numpy.int8, numpy.int16, numpy.int32, numpy.int64],
            "uint": [numpy.uint8, numpy.uint16, numpy.uint32, numpy.uint64],
            "float": [numpy.float16, numpy.float32, numpy.float64],
            "complex": [numpy.complex64, numpy.complex128],
            "others": [bool, object, bytes, str, numpy.void],
        }


def _module_importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _add_numpy_distutils_stub():
    if "numpy.distutils.system_info" in sys.modules:
        return
    try:
        with warnings.catch_warnings():  # numpy.distutils warns that it is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            import numpy.distutils.system_info  # noqa: F401  (still there with numpy < 2.5, Python 3.11)
        return
    except ImportError:
        pass
    distutils = types.ModuleType("numpy.distutils")
    system_info = types.ModuleType("numpy.distutils.system_info")
    system_info.get_info = lambda name, notfound_action=0: {}
    distutils.system_info = system_info
    sys.modules["numpy.distutils"] = distutils
    sys.modules["numpy.distutils.system_info"] = system_info


class _DistributionNotFound(Exception):
    pass


class _VersionConflict(Exception):
    pass


class _RequirementParseError(ValueError):
    pass


class _Distribution:
    def __init__(self, name):
        self.project_name = name
        self.key = name.lower()
        self.version = importlib.metadata.version(name)


def _get_distribution(name):
    try:
        return _Distribution(str(name))
    except importlib.metadata.PackageNotFoundError as err:
        raise _DistributionNotFound(str(name)) from err


def _require(spec):
    """Answers ``pkg_resources.require('name>=x')``: Chainer only probes whether a package exists."""
    name = str(spec)
    for sep in ("<", ">", "=", "!", "~", ";", "[", " "):
        name = name.split(sep, 1)[0]
    return [_get_distribution(name.strip())]


def _add_pkg_resources_stub():
    if "pkg_resources" in sys.modules:
        return
    if _module_importable("pkg_resources"):
        # setuptools 81 still has it but warns on import that it is deprecated; Chainer's import of it
        # is not ours to fix, so take the module once here with that one warning silenced.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            import pkg_resources  # noqa: F401
        return
    stub = types.ModuleType("pkg_resources")
    stub.DistributionNotFound = _DistributionNotFound
    stub.VersionConflict = _VersionConflict
    stub.RequirementParseError = _RequirementParseError
    stub.get_distribution = _get_distribution
    stub.require = _require
    sys.modules["pkg_resources"] = stub


def _quiet_chainer_cuda_notes():
    os.environ.setdefault("CHAINER_CUDNN", "0")
    os.environ.setdefault("CHAINER_WARN_VERSION_MISMATCH", "0")


def apply():
    """Installs every shim; idempotent, and a no-op for anything the stack still has."""
    _add_numpy_aliases()
    _add_numpy_distutils_stub()
    _add_pkg_resources_stub()
    _quiet_chainer_cuda_notes()


apply()
