"""Makes ``import chainer`` apply branchynet's compatibility shims first, in any import order.

Installed with the package as a one-line .pth file, so it runs at interpreter start-up: it only
puts a finder on ``sys.meta_path`` (no import of numpy or chainer then). The first time anything
imports chainer, the finder removes itself and runs ``branchynet/_compat.py`` (stdlib and numpy
only) before Chainer's own import goes on.
"""
import importlib.util
import os
import sys


class _ShimsBeforeChainer:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "chainer" and cls in sys.meta_path:
            sys.meta_path.remove(cls)
            _apply_shims()
        return None


def _apply_shims():
    package = importlib.util.find_spec("branchynet")  # locates it without running it
    if package is None or package.origin is None:
        return
    path = os.path.join(os.path.dirname(package.origin), "_compat.py")
    spec = importlib.util.spec_from_file_location("_branchynet_compat_early", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def install():
    if "chainer" not in sys.modules and _ShimsBeforeChainer not in sys.meta_path:
        sys.meta_path.insert(0, _ShimsBeforeChainer)
