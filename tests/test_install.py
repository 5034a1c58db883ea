"""The package as users get it: `import chainer` before `import branchynet`, and a plain pip
install into a fresh virtual environment."""
import os
import subprocess
import sys
import venv

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAINER_FIRST = ("import chainer, numpy\n"
                 "import chainer.functions as F\n"
                 "from branchynet import BranchyNet\n"
                 "print(chainer.__version__, float(F.relu(numpy.ones(1, 'f')).array[0]))\n")


def test_chainer_imports_before_the_package():
    """In the environment `make` builds: the .pth hook applies the shims when chainer comes first."""
    result = subprocess.run([sys.executable, "-c", CHAINER_FIRST], capture_output=True, text=True,
                            cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7.8.1", "1.0"]


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv(tmp_path):
    """The README's one-command install, with no pip cache; then chainer imported first."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    env = dict(os.environ, PIP_CONSTRAINT=os.path.join(ROOT, "build-constraints.txt"),
               PIP_NO_CACHE_DIR="1")
    install = subprocess.run([python, "-m", "pip", "install", "-q", ROOT], capture_output=True,
                             text=True, env=env)
    assert install.returncode == 0, install.stderr[-3000:]
    result = subprocess.run([python, "-c", CHAINER_FIRST], capture_output=True, text=True,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7.8.1", "1.0"]


def test_the_package_version_is_the_installed_distributions():
    """One version: setup.py reads branchynet.__version__."""
    import importlib.metadata

    import branchynet
    assert branchynet.__version__ == importlib.metadata.version("branchynet")
