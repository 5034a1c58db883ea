# Sourced by the GPU scripts on a fresh GPU machine with no network (Python 3.12, numpy 2.x and
# cupy-cuda13x already there): installs chainer from the wheel carried in .whl/ (`make gpu-wheel`),
# points the package at the carried data in .gpudata/ and, when the CIFAR-10 chunks carried in
# .gpucifar1/ ... .gpucifarN/ are all there (`make gpu-cifar`; one call cannot carry all of CIFAR-10),
# joins them into .gpudata/cifar10/.
site=/tmp/branchynet-site
if [ ! -d "$site/chainer" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/chainer-*.whl
fi
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1 CHAINER_CUDNN=0
export BRANCHYNET_DATA=${BRANCHYNET_DATA:-$PWD/.gpudata}
# CIFAR-10 chunks: .gpucifarK/cifar10.tar.K-of-N.part, joined once all N are here
parts=$(ls .gpucifar[0-9]*/cifar10.tar.*-of-*.part 2>/dev/null)
if [ ! -d .gpudata/cifar10 ] && [ -n "$parts" ]; then
    total=$(basename "$(echo "$parts" | head -n 1)" .part); total=${total##*-of-}
    if [ "$(echo "$parts" | wc -l)" = "$total" ]; then
        for k in $(seq 1 "$total"); do cat ".gpucifar$k/cifar10.tar.$k-of-$total.part"; done \
            | tar -x -C .gpudata && echo "CIFAR-10 joined from $total carried chunks into .gpudata/cifar10"
    else
        echo "CIFAR-10: $(echo "$parts" | wc -l) of $total chunks here so far"
    fi
fi
