"""Installs the BranchyNet reproduction: the library (branchynet) and the network definitions (networks)."""
from setuptools import find_packages, setup

setup(
    name="branchynet",
    version="0.1.0",
    description="BranchyNet (ICPR 2016) early-exit networks on a modern Chainer stack",
    python_requires=">=3.11",
    packages=find_packages(include=["branchynet", "branchynet.*", "networks", "networks.*"]),
    install_requires=[
        "chainer==7.8.1",
        "numpy>=2.0,<3",
        "matplotlib>=3.8",
    ],
    extras_require={
        "test": ["pytest>=8"],
        "gpu": ["cupy-cuda13x>=14"],
    },
)
