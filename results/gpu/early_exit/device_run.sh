#!/bin/bash
# One device call: install Chainer, GPU tests, the GPU early-exit benchmark, B-LeNet's GPU rows.
cd "$(dirname "$0")/.."
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile .gpu/chainer-7.8.1-py3-none-any.whl 2>&1 | tail -2
SP=$(python3 -c 'import site; print(site.getsitepackages()[0])')
cp _branchynet_chainer_hook.py branchynet_chainer_hook.pth "$SP"/
export PYTHONPATH=$PWD BRANCHYNET_DATA=$PWD/.gpu/data PYTHONUNBUFFERED=1 BRANCHYNET_CALIBRATE=0
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "
import platform, numpy, cupy, branchynet, chainer
print('python', platform.python_version()); print('numpy', numpy.__version__); print('cupy', cupy.__version__)
print('chainer', chainer.__version__); print('cuda available to chainer', chainer.backends.cuda.available)
print('cudnn enabled', chainer.backends.cuda.cudnn_enabled)
print('cuda runtime', cupy.cuda.runtime.runtimeGetVersion(), 'driver', cupy.cuda.runtime.driverGetVersion())"
  grep -m1 "model name" /proc/cpuinfo; } > $OUT/environment.txt 2>&1
cat $OUT/environment.txt
echo "=== setup $(( $(date +%s) - T0 )) s"
{ timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_gpu_switch.py
  timeout 60 python3 -m pytest -q -p no:cacheprovider tests/fast/test_kernels.py -k "gpu or cupy"; } > $OUT/gpu_tests.txt 2>&1
tail -15 $OUT/gpu_tests.txt
echo "=== tests $(( $(date +%s) - T0 )) s"
(cd benchmarks && timeout 240 python3 bench_gpu_early_exit.py --device @cupy:0 \
    --cifar-images ../.gpu/cifar_test_1024.npz --out $OUT/gpu_early_exit.json \
    --text-out $OUT/gpu_early_exit.txt --plot $OUT/gain_batch_gpu.png) > $OUT/bench.log 2>&1
tail -40 $OUT/bench.log
echo "=== bench $(( $(date +%s) - T0 )) s"
if [ $(( $(date +%s) - T0 )) -lt 330 ]; then
  timeout 150 python3 experiments/measure.py --network b-lenet --device @cupy:0 --gpu-only \
      --timing-samples 1000 --repeats 7 --results /tmp/m/b-lenet --no-progress > /tmp/m_lenet.txt 2>&1
  echo "measure rc=$?" >> /tmp/m_lenet.txt; cp /tmp/m_lenet.txt /tmp/m/ 2>/dev/null
  tar czf $OUT/measure_lenet.tgz -C /tmp m; tail -12 /tmp/m_lenet.txt
fi
echo "=== all $(( $(date +%s) - T0 )) s"
