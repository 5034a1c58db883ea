#!/usr/bin/env python
"""B-ResNet-110 on CIFAR-10: Table I's ResNet-110 rows.

    python experiments/resnet_cifar10.py [--network b-resnet110-paper]

loads results/<network>/run/{branchy,main}.npz, or first trains them with the paper's schedule
(100 pretraining + 100 joint epochs, batch 128; resumable), then sweeps the paper's 17 x 17
thresholds (plus Table I's T = (0.3, 0.2), which is not among them), times every exit at batch 1
on the CPU (and the GPU with --device @cupy:0), checks real early-exit runs against the sweep,
and writes out/<network>/ (results.json, sweep.csv, table.md, figures; --results
results/<network> regenerates the committed ones).
`--net-arg n=1` builds a shallow variant (1 block per stage) for quick trials.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import measure  # noqa: E402  (experiments/measure.py)


def main(argv=None):
    return measure.main("resnet110", __file__, argv, __doc__)


if __name__ == "__main__":
    main()
