"""Chainer 7.8.1 imports through the package on this stack, with no warning from our own modules."""
import subprocess
import sys

import numpy
import pytest


def run_python(code, *flags):
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True)


def test_chainer_imports_through_the_package_with_warnings_as_errors():
    code = ("import branchynet, chainer, networks, chainer.functions as F, chainer.links as L\n"
            "import branchynet.training.trainer, branchynet.model.serialization, branchynet.model.layers\n"
            "assert chainer.__version__ == '7.8.1', chainer.__version__\n"
            "x = F.max_pooling_2d(__import__('numpy').ones((1, 1, 4, 4), 'f'), 2)\n"
            "print('ok')\n")
    # every warning is an error, from any module: a shim of ours that warns fails this
    result = run_python(code, "-W", "error")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_shims_only_add_what_is_missing():
    from branchynet import _compat
    before = numpy.sctypes
    _compat.apply()
    assert numpy.sctypes is before
    assert numpy.float is float
    assert {"int", "uint", "float", "complex", "others"} <= set(numpy.sctypes)


def test_pkg_resources_stand_in_answers_what_chainer_asks():
    from branchynet import _compat
    assert _compat._get_distribution("numpy").version == numpy.__version__
    assert _compat._require("numpy>=1.0")[0].project_name == "numpy"
    with pytest.raises(_compat._DistributionNotFound):
        _compat._require("surely-not-an-installed-package-xyz")


def test_resize_images_runs_despite_numpy_float_removal():
    import chainer.functions as F
    y = F.resize_images(numpy.ones((1, 1, 4, 4), numpy.float32), (2, 2))
    assert y.shape == (1, 1, 2, 2)
