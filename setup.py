"""Installs the BranchyNet reproduction: the library (branchynet) and the network definitions (networks)."""
import os
import re
import sys
import sysconfig

from setuptools import find_packages, setup

# The .pth line that lets ``import chainer`` come before ``import branchynet`` (see
# _branchynet_chainer_hook.py), installed into site-packages for plain and editable installs alike.
# The version lives in branchynet/__init__.py (read as text: importing it needs chainer).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "branchynet", "__init__.py")) as f:
    VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)
SITE_PACKAGES = os.path.relpath(sysconfig.get_path("purelib"), sys.prefix)

setup(
    name="branchynet",
    version=VERSION,
    description="BranchyNet (ICPR 2016) early-exit networks on a modern Chainer stack",
    python_requires=">=3.11",
    packages=find_packages(include=["branchynet", "branchynet.*", "networks", "networks.*"]),
    py_modules=["_branchynet_chainer_hook"],
    data_files=[(SITE_PACKAGES, ["branchynet_chainer_hook.pth"])],
    install_requires=[
        "chainer==7.8.1",
        "numpy>=2.0,<3",
        "matplotlib>=3.8",
        # compiled CPU inference kernels for the small layers (branchynet/fast/jit.py); 0.68 is
        # the first release for numpy 2.4/2.5. Without it the numpy kernels run alone.
        "numba>=0.68",
    ],
    extras_require={
        # the linter `make test` runs first, and the notebook runner (nbclient on an ipykernel)
        "test": ["pytest>=8", "ruff>=0.6", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29",
                 "scipy>=1.11"],
        # fitting OpenMax exits (branchynet/model/openmax.py: Weibull maximum likelihood); a
        # loaded net with a fitted OpenMax runs without it
        "openmax": ["scipy>=1.11"],
        "gpu": ["cupy-cuda13x>=14"],
        # data parallel training (ChainerMN, part of chainer): mpi4py and MPICH's wheel, whose
        # mpiexec lands in the environment's bin/ (docs/distributed.md)
        "mpi": ["mpi4py>=4", "mpich>=4"],
    },
)
