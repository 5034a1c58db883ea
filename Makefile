# Two commands do all set-up on a fresh machine:
#   make reproduce   load the committed weights of B-LeNet (or train them), measure it into out/b-lenet
#                    (git-ignored) and compare its numbers with results/b-lenet and the paper: a verdict
#   make test        run the test suite
# `make results` regenerates the committed results/b-lenet/ instead (an explicit, separate step).
# Both create or reuse the virtual environment .venv/ and install into it; nothing goes system-wide.

PYTHON ?= python3
VENV := .venv
# The datasets: $BRANCHYNET_DATA if set, else a shared/data folder beside the checkout, else the
# per-user cache (downloaded there on first use).
ifeq ($(BRANCHYNET_DATA),)
  ifneq ($(wildcard ../shared/data/mnist),)
    export BRANCHYNET_DATA := $(abspath ../shared/data)
  endif
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: reproduce results notebooks test venv clean-venv

venv: $(STAMP)

# Chainer 7.8.1 ships only an sdist whose setup.py imports pkg_resources, which setuptools 82 removed:
# build it without isolation against a setuptools that still has it (see branchynet/_compat.py).
# Extras: test, and mpi (mpi4py and MPICH's wheel with its mpiexec: the ChainerMN tests run under
# mpiexec -n 2). An editable install leaves out data files: the .pth line that lets
# `import chainer` come first (_branchynet_chainer_hook.py) is copied into site-packages by hand.
$(STAMP): setup.py branchynet_chainer_hook.pth
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "setuptools>=70.1,<82" wheel
	$(PY) -m pip install --quiet --no-build-isolation "chainer==7.8.1"
	$(PY) -m pip install --quiet --no-build-isolation -e ".[test,mpi]"
	$(PY) -c "import shutil, sysconfig; shutil.copy('branchynet_chainer_hook.pth', sysconfig.get_path('purelib'))"
	touch $(STAMP)

REPRODUCE_OUT := out/b-lenet

reproduce: $(STAMP)
	$(PY) experiments/measure.py --network b-lenet --results $(REPRODUCE_OUT)
	$(PY) experiments/compare.py $(REPRODUCE_OUT)/results.json results/b-lenet/results.json

results: $(STAMP)
	$(PY) experiments/measure.py --network b-lenet --results results/b-lenet

# Runs every notebook top to bottom in a fresh Jupyter kernel (nbclient, ipykernel), started in
# notebooks/, and writes its outputs (text, figures) into the .ipynb files: the outputs the notebook
# test compares with a fresh run (tests/experiments/test_notebooks.py).
notebooks: $(STAMP)
	$(VENV)/bin/jupyter-execute --inplace --kernel_name=python3 --timeout=900 notebooks/*.ipynb

# The linter (ruff.toml) first, then the fast tier of the tests (-m slow runs the rest).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow" tests

clean-venv:
	rm -rf $(VENV)
