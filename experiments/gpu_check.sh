#!/usr/bin/env bash
# The GPU check: one script for a fresh GPU machine with no network. It installs chainer from the
# wheel brought along (see experiments/gpu_env.sh), runs the GPU tests, times B-LeNet per exit on the
# GPU against the baseline (both accountings), the same for B-AlexNet when CIFAR-10 has been carried,
# and times whole training steps of the three networks on the GPU to plan the schedules. Everything
# lands in OUT_DIR: the logs as text, each results folder as one tar (the device tool brings back at
# most 8 files).
#
#   make gpu-wheel                       # on a CPU machine: .whl/ and .gpudata/ (git-ignored)
#   bash experiments/gpu_check.sh OUT_DIR
#
# Weights: results/b-lenet/run/{main,branchy}.npz (committed).
set -uo pipefail
out=${1:?usage: bash experiments/gpu_check.sh OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out"
source experiments/gpu_env.sh
status=0
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import sys, numpy, cupy, branchynet, chainer; print('python', sys.version.split()[0]); print('numpy', numpy.__version__); print('cupy', cupy.__version__); print('chainer', chainer.__version__); print('cuda available to chainer', chainer.backends.cuda.available); print('cudnn enabled', chainer.backends.cuda.cudnn_enabled)"
} 2>&1 | tee "$out/environment.txt" || status=1
python3 -m pytest -q -p no:cacheprovider tests/branchynet/test_gpu.py tests/fast/test_kernels.py -k "gpu or cupy" 2>&1 \
    | tee "$out/gpu_tests.txt" || status=1
python3 experiments/measure.py --network b-lenet --device @cupy:0 --results /tmp/gpu_check/b-lenet --no-progress \
    --timing-samples 1000 --repeats 7 2>&1 | tee "$out/lenet_gpu.txt" || status=1
tar -cf "$out/b-lenet-gpu.tar" -C /tmp/gpu_check b-lenet 2>/dev/null || status=1
if [ -d .gpudata/cifar10 ]; then  # CIFAR-10 carried (make gpu-cifar): B-AlexNet's GPU rows too
    python3 experiments/measure.py --network b-alexnet --device @cupy:0 --results /tmp/gpu_check/b-alexnet \
        --no-progress 2>&1 | tee "$out/alexnet_gpu.txt" || status=1
    tar -cf "$out/b-alexnet-gpu.tar" -C /tmp/gpu_check b-alexnet 2>/dev/null || status=1
fi
python3 benchmarks/bench_gpu_training.py --device @cupy:0 --out "$out/training_gpu.json" 2>&1 \
    | tee "$out/training_gpu.txt" || status=1
exit $status
