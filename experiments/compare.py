#!/usr/bin/env python
"""Compares a fresh measurement with the committed results and the paper (the end of `make reproduce`).

    python experiments/compare.py out/b-lenet/results.json [results/b-lenet/results.json]

Prints one line per number (ours now, committed, the paper's) and a verdict: accuracies and exit
shares must equal the committed ones (they depend on the weights and the test set only); timings
and the knees chosen by time are this machine's and only shown (``branchynet.reporting.compare``). Exits 0
when reproduced, 1 when a judged number differs, 2 when the two are not comparable (another test
subset or network).
"""
import argparse
import json
import os
import sys

from branchynet.reporting import compare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("new", help="results.json of this run (e.g. out/b-lenet/results.json)")
    p.add_argument("committed", nargs="?", default=None,
                   help="committed results.json (default results/<network>/results.json)")
    p.add_argument("--tolerance", type=float, default=compare.DEFAULT_TOLERANCE,
                   help="largest accepted difference in percentage points (default %(default)s)")
    args = p.parse_args(argv)
    with open(args.new) as f:
        new = json.load(f)
    committed_path = args.committed or os.path.join(ROOT, "results", new["network"], "results.json")
    if os.path.abspath(committed_path) == os.path.abspath(args.new):
        p.error("%s is compared with itself" % args.new)
    with open(committed_path) as f:
        committed = json.load(f)
    result = compare.compare(new, committed, args.tolerance)
    print("\n%s: %s against %s (and the paper's Table I)\n"
          % (new["network"], os.path.relpath(args.new), os.path.relpath(committed_path)))
    print(compare.text(result), end="")
    return {compare.REPRODUCED: 0, compare.DIFFERS: 1, compare.NOT_COMPARABLE: 2}[result.verdict]


if __name__ == "__main__":
    sys.exit(main())
