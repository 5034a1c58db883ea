#!/usr/bin/env python
"""The Trainer-based training against the earlier hand-written loop, epoch by epoch.

Both ran B-LeNet's committed schedule shortened to 2 + 2 epochs, same seed (0), full data (55,000
training images, 5,000 held out), batch 512, on this project's 2-core CPU:

    git worktree add /tmp/oldloop-i16 71ead2e          # the loop before the Trainer
    (cd /tmp/oldloop-i16 && python experiments/train.py --network b-lenet --main-epochs 2 \
        --joint-epochs 2 --batchsize 512 --seed 0 --out /tmp/i16-compare/oldloop --no-progress)
    python experiments/train.py --network b-lenet --main-epochs 2 --joint-epochs 2 \
        --batchsize 512 --seed 0 --out /tmp/i16-compare/trainer --no-progress
    python results/trainer_vs_oldloop/compare.py /tmp/i16-compare/oldloop /tmp/i16-compare/trainer

It copies both log.jsonl files here (oldloop_log.jsonl, trainer_log.jsonl), compares every per-exit
value of every epoch (train and validation loss and accuracy) and both runs' branchy.npz and
main.npz parameter by parameter, and prints the largest differences (comparison.txt).
"""
import os
import shutil
import sys

import numpy

import networks
from branchynet.training import trainer

HERE = os.path.dirname(os.path.abspath(__file__))

KEYS = ("train/loss", "train/accuracy", "val/loss", "val/accuracy")


def main(old_dir, new_dir):
    old, new = trainer.read_log(old_dir), trainer.read_log(new_dir)
    shutil.copyfile(os.path.join(old_dir, "log.jsonl"), os.path.join(HERE, "oldloop_log.jsonl"))
    shutil.copyfile(os.path.join(new_dir, "log.jsonl"), os.path.join(HERE, "trainer_log.jsonl"))
    lines = ["%-5s %5s  %-14s %-48s %-48s %s" % ("stage", "epoch", "value", "earlier loop",
                                                  "Trainer", "max |difference|")]
    worst = 0.0
    assert [(e["stage"], e["epoch"]) for e in old] == [(e["stage"], e["epoch"]) for e in new]
    for a, b in zip(old, new):
        for key in KEYS:
            diff = max((abs(x - y) for x, y in zip(a[key], b[key]) if x is not None), default=0.0)
            assert [x is None for x in a[key]] == [y is None for y in b[key]]
            worst = max(worst, diff)
            fmt = lambda v: "/".join("-" if x is None else repr(x) for x in v)  # noqa: E731
            lines.append("%-5s %5d  %-14s %-48s %-48s %.3g" % (a["stage"], a["epoch"], key, fmt(a[key]),
                                                               fmt(b[key]), diff))
    lines.append("largest difference in the per-epoch logs: %.3g (%s)"
                 % (worst, "bit-identical" if worst == 0 else "not identical"))
    for name in ("main.npz", "branchy.npz"):
        pa = dict(networks.load(os.path.join(old_dir, name)).namedparams())
        pb = dict(networks.load(os.path.join(new_dir, name)).namedparams())
        diff = max(float(numpy.abs(pa[k].array - pb[k].array).max()) for k in pa)
        lines.append("%s: largest parameter difference %.3g over %d arrays" % (name, diff, len(pa)))
    lines.append("seconds per epoch (train + validation; a shared 2-core machine): earlier loop %s, "
                 "Trainer %s" % (", ".join("%.1f" % e["seconds"] for e in old),
                                 ", ".join("%.1f" % e["seconds"] for e in new)))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    with open(os.path.join(HERE, "comparison.txt"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main(*sys.argv[1:3])
