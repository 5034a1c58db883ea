"""Head times of B-LeNet (results/b-lenet/run/branchy.npz) at batch 1 with the exit decision made
at T = 0 (what timing.time_exits did before) and at the paper's T, on the first 1000 MNIST test
digits; with how many of them leave exit_rule.leaves_one's float64 path for the float32 rule.

    BRANCHYNET_DATA=... python results/b-lenet/decision_threshold.py \
        > results/b-lenet/decision_threshold.txt
"""
import os

import numpy

import networks
from branchynet.data import datasets
from branchynet.evaluation import frontier, timing
from branchynet.fast import calibration
from branchynet.model import exit_rule

RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run", "branchy.npz")


def main(n=1000, repeats=5):
    net = networks.load(RUN)
    _, test = datasets.get_mnist(download=False)
    x = datasets.arrays(test)[0][:n]
    paper_t = frontier.paper_thresholds("lenet")[0]
    segment, head, context = net.inference_steps(x)
    with context:
        logits = head(0, segment(0, x))
    calls = []
    slow = exit_rule.leaves

    def counting(logits, threshold):
        calls.append(1)
        return slow(logits, threshold)

    print("B-LeNet %s, first %d MNIST test digits, batch 1, %s" % (os.path.relpath(RUN), n,
                                                                      calibration.cpu_model()))
    for t in (0.0, paper_t):
        calls.clear()
        exit_rule.leaves = counting
        try:
            for row in logits:
                exit_rule.leaves_one(row[None], t)
        finally:
            exit_rule.leaves = slow
        print("T = %-6g: %4d of %d samples (%.1f %%) decided by the float32 fallback at head 1"
              % (t, len(calls), n, 100.0 * len(calls) / n))
    rows = {}
    rows_1 = [row[None].copy() for row in logits]
    for t in (0.0, paper_t):
        best = []
        for _ in range(7):
            start = timing.clock()
            for row in rows_1:
                exit_rule.leaves_one(row, t)
            best.append((timing.clock() - start) / n * 1e6)
        print("the decision alone (leaves_one on head 1's logits) at T = %-6g: %.2f us per sample "
              "(median of 7 passes)" % (t, sorted(best)[3]))
    for turn in range(3):  # alternate, so that a slow phase of the machine hits both
        for t in (0.0, paper_t):
            r = timing.time_exits(net, x, repeats=repeats, warmup=50, thresholds=t)
            rows.setdefault(t, []).append(r)
    print("time_exits, median of %d passes, three alternating runs each (ms per sample):" % repeats)
    for t, runs in rows.items():
        print("  decide at T = %-6g: head 1 %s  segment 1 %s  head 2 %s" % (
            t, " / ".join("%.4f" % r["head_ms"][0] for r in runs),
            " / ".join("%.4f" % r["segment_ms"][0] for r in runs),
            " / ".join("%.4f" % r["head_ms"][1] for r in runs)))
    h0 = numpy.median([r["head_ms"][0] for r in rows[0.0]])
    hp = numpy.median([r["head_ms"][0] for r in rows[paper_t]])
    print("head 1 at T = 0 minus at T = %g (medians of the runs): %.1f us per sample "
          "(%.0f %% of head 1 at the paper's T)"
          % (paper_t, 1000 * (h0 - hp), 100 * (h0 - hp) / hp))


if __name__ == "__main__":
    main()
