#!/usr/bin/env bash
# Trains on the GPU machine for at most SECONDS, resumably, and brings the run folder back as one tar.
# The run stops cleanly between epochs' checkpoints (each epoch writes one atomically); run it again
# with the run folder brought back, here or on a CPU machine, to go on (experiments/train.py resumes).
#
#   bash experiments/gpu_train.sh OUT_DIR RUN_DIR SECONDS [train.py arguments ...]
# DEVICE (default @cupy:0) picks another Chainer device.
#   e.g. bash experiments/gpu_train.sh $OUT runs/b-alexnet 300 --network b-alexnet \
#            --main-epochs 50 --joint-epochs 100 --batchsize 512
set -uo pipefail
out=${1:?usage: gpu_train.sh OUT_DIR RUN_DIR SECONDS [train.py arguments]}
run=${2:?RUN_DIR}
seconds=${3:?SECONDS}
shift 3
cd "$(dirname "$0")/.."
mkdir -p "$out" "$run"
source experiments/gpu_env.sh
timeout "$seconds" python3 experiments/train.py --device "${DEVICE:-@cupy:0}" --out "$run" --no-progress "$@" 2>&1 \
    | tee -a "$run/train.out"
status=${PIPESTATUS[0]}
[ "$status" = 124 ] && echo "stopped after $seconds s (resume with the same RUN_DIR)" | tee -a "$run/train.out"
tar -cf "$out/$(basename "$run")-run.tar" -C "$(dirname "$run")" "$(basename "$run")"
exit $([ "$status" = 124 ] && echo 0 || echo "$status")
