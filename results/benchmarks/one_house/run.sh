#!/bin/bash
# before/after, alternating: inference (B-LeNet + B-AlexNet, fewer repeats), training one core
export BRANCHYNET_DATA=/work/shared/data
PY=/work/main/.venv/bin/python
for round in 1 2; do
  for side in before main; do
    cd /work/$side
    OPENBLAS_NUM_THREADS=1 $PY benchmarks/bench_inference.py --repeats 5 --lenet-samples 300 --real-samples 500 --real-repeats 3 --alexnet-samples 30 --alexnet-repeats 3 --text-out /tmp/bench/inference_${side}_$round.txt > /tmp/bench/inference_${side}_$round.log 2>&1
    $PY benchmarks/bench_training.py --cores 1 --lenet-repeats 5 --alexnet-repeats 2 --text-out /tmp/bench/training_${side}_$round.txt > /tmp/bench/training_${side}_$round.log 2>&1
  done
done
echo done > /tmp/bench/finished
