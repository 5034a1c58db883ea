#!/usr/bin/env python
"""B-AlexNet on CIFAR-10: Table I's AlexNet rows.

    python experiments/alex_cifar10.py [--network b-alexnet-paper]

loads results/<network>/run/{branchy,main}.npz, or first trains them with the paper's schedule
(50 pretraining + 100 joint epochs, batch 512; resumable), then sweeps the paper's 11 x 11
thresholds, times every exit at batch 1 on the CPU (and the GPU with --device @cupy:0), checks
real early-exit runs against the sweep, and writes out/<network>/ (results.json, sweep.csv,
table.md, figures; --results results/<network> regenerates the committed ones). The printed table puts the baseline and B-AlexNet at the paper's
T = (0.0001, 0.05) beside Table I.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import measure  # noqa: E402  (experiments/measure.py)


def main(argv=None):
    return measure.main("alexnet", __file__, argv, __doc__)


if __name__ == "__main__":
    main()
