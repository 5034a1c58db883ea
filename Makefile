# Two commands do all set-up on a fresh machine:
#   make reproduce   train (or load the committed weights of) B-LeNet on MNIST and print its Table I rows
#   make test        run the test suite
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

.PHONY: reproduce test venv clean-venv gpu-wheel gpu-cifar

venv: $(STAMP)

# Chainer 7.8.1 ships only an sdist whose setup.py imports pkg_resources, which setuptools 82 removed:
# build it without isolation against a setuptools that still has it (see branchynet/_compat.py).
$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "setuptools>=70.1,<82" wheel
	$(PY) -m pip install --quiet --no-build-isolation "chainer==7.8.1"
	$(PY) -m pip install --quiet --no-build-isolation -e ".[test]"
	touch $(STAMP)

reproduce: $(STAMP)
	$(PY) experiments/lenet_mnist.py

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

clean-venv:
	rm -rf $(VENV)

# What the GPU check carries to a GPU machine (see experiments/gpu_check.sh): the chainer wheel
# (pure Python, built here) and MNIST. Both folders are git-ignored.
gpu-wheel: $(STAMP)
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation "chainer==7.8.1" -w .whl
	mkdir -p .gpudata/mnist && cp $(BRANCHYNET_DATA)/mnist/*.gz .gpudata/mnist/

# CIFAR-10 for GPU training: 170 MB of gzipped batches, more than one device call carries (64 MiB with
# the working tree), so it goes as one tar cut into four chunks, .gpucifar1/ (32 MiB, to travel with
# .whl/ and .gpudata/) to .gpucifar4/, one carried per call; experiments/gpu_env.sh joins them there.
gpu-cifar:
	rm -rf .gpucifar .gpucifar1 .gpucifar2 .gpucifar3 .gpucifar4
	mkdir -p .gpucifar .gpucifar1 .gpucifar2 .gpucifar3 .gpucifar4
	tar -C $(BRANCHYNET_DATA) -cf .gpucifar/cifar10.tar cifar10
	dd if=.gpucifar/cifar10.tar of=.gpucifar1/cifar10.tar.1.part bs=1M count=32 status=none
	dd if=.gpucifar/cifar10.tar of=.gpucifar2/cifar10.tar.2.part bs=1M skip=32 count=44 status=none
	dd if=.gpucifar/cifar10.tar of=.gpucifar3/cifar10.tar.3.part bs=1M skip=76 count=44 status=none
	dd if=.gpucifar/cifar10.tar of=.gpucifar4/cifar10.tar.4.part bs=1M skip=120 status=none
	rm -rf .gpucifar
