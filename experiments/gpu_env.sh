# Sourced by the GPU scripts on a fresh GPU machine with no network (Python 3.12, numpy 2.x and
# cupy-cuda13x already there): installs chainer from the wheel carried in .whl/ (`make gpu-wheel`),
# points the package at the carried data in .gpudata/ and, when the CIFAR-10 chunks carried in
# .gpucifar1/ ... .gpucifar4/ are all there (`make gpu-cifar`; one call cannot carry all of CIFAR-10),
# joins them into .gpudata/cifar10/.
site=/tmp/branchynet-site
if [ ! -d "$site/chainer" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/chainer-*.whl
fi
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1 CHAINER_CUDNN=0
export BRANCHYNET_DATA=${BRANCHYNET_DATA:-$PWD/.gpudata}
if [ ! -d .gpudata/cifar10 ] && ls .gpucifar1/*.part >/dev/null 2>&1; then
    if ls .gpucifar2/*.part .gpucifar3/*.part .gpucifar4/*.part >/dev/null 2>&1; then
        cat .gpucifar1/*.part .gpucifar2/*.part .gpucifar3/*.part .gpucifar4/*.part | tar -x -C .gpudata
        echo "CIFAR-10 joined from the carried chunks into .gpudata/cifar10"
    else
        echo "CIFAR-10: $(ls -d .gpucifar?/ 2>/dev/null | tr '\n' ' ')here so far, of .gpucifar1-4"
    fi
fi
