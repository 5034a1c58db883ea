#!/usr/bin/env bash
# The GPU check: one script for a fresh GPU machine with no network (Python 3.12, numpy 2.x and
# cupy-cuda13x already installed there). It installs chainer from the wheel brought along in .whl/
# (`make gpu-wheel` builds it on a CPU machine), runs the GPU tests, and times B-LeNet per exit on
# the GPU against the baseline, writing everything to the folder given as its argument.
#
#   bash experiments/gpu_check.sh OUT_DIR
#
# Data: MNIST from $BRANCHYNET_DATA (default .gpudata/, filled by `make gpu-wheel` from the data folder).
# Weights: results/b-lenet/run/{main,branchy}.npz (committed).
set -euo pipefail
out=${1:?usage: bash experiments/gpu_check.sh OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out"
site=/tmp/branchynet-site
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/chainer-*.whl
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
export BRANCHYNET_DATA=${BRANCHYNET_DATA:-$PWD/.gpudata}
export CHAINER_CUDNN=0
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import sys, numpy, cupy, branchynet, chainer; print('python', sys.version.split()[0]); print('numpy', numpy.__version__); print('cupy', cupy.__version__); print('chainer', chainer.__version__); print('cuda available to chainer', chainer.backends.cuda.available)"
} 2>&1 | tee "$out/environment.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_fast_ops.py -k "gpu or Gpu or GPU or cupy" 2>&1 \
    | tee "$out/gpu_tests.txt"
python3 experiments/lenet_mnist.py --device @cupy:0 --results "$out/b-lenet" --no-progress \
    --timing-samples 1000 --repeats 3 2>&1 | tee "$out/lenet_gpu.txt"
