#!/usr/bin/env python
"""B-LeNet on MNIST: Table I's LeNet rows (the project's `make reproduce`).

    python experiments/lenet_mnist.py

loads results/b-lenet/run/{branchy,main}.npz, or first trains them with the paper's schedule
(100 pretraining + 100 joint epochs, batch 512; resumable), then sweeps the paper's 17 thresholds,
times every exit at batch 1 on the CPU (and the GPU with --device @cupy:0), checks real early-exit
runs against the sweep, and writes out/b-lenet/ (results.json, sweep.csv, table.md, figures;
`make results`, i.e. --results results/b-lenet, regenerates the committed ones). `make reproduce`
runs this, then experiments/compare.py: out/b-lenet against results/b-lenet and the paper.
The printed table puts the baseline and B-LeNet at the paper's T = 0.025 beside Table I.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import measure  # noqa: E402  (experiments/measure.py)


def main(argv=None):
    return measure.main("lenet", __file__, argv, __doc__)


if __name__ == "__main__":
    main()
