#!/usr/bin/env python
"""Writes the README's results block (between ``<!-- results:begin -->`` and
``<!-- results:end -->``) from the committed result files, so that no number there is typed by hand.

    python experiments/readme_results.py [--readme README.md] [--results-root results] [--check]

The block is Table I as experiments/table1.py assembles it from <results-root>/*/results.json
(and results/gpu/*), the hardware and thread settings those files record, and the prose that reads
the table, every number in it taken from the same files. ``--check`` writes nothing and exits 1
if the README's block differs from what the files give (``branchynet.reporting.readme``;
tests/experiments/test_readme_results.py runs the same comparison).
"""
import argparse
import os
import sys

import branchynet  # noqa: F401
from branchynet.reporting import readme

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    p.add_argument("--results-root", default=os.path.join(ROOT, "results"))
    p.add_argument("--check", action="store_true",
                   help="compare only: exit 1 if the README's block is not what the files give")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with open(args.readme) as f:
        text = f.read()
    new = readme.block(args.results_root)
    if args.check:
        if readme.current_block(text) != new:
            print("%s: the results block differs from the result files; run python "
                  "experiments/readme_results.py" % args.readme)
            return 1
        print("%s: the results block agrees with the result files" % args.readme)
        return 0
    updated = readme.replace_block(text, new)
    if updated != text:
        with open(args.readme, "w") as f:
            f.write(updated)
    print("%s: results block %s" % (args.readme, "rewritten" if updated != text else "unchanged"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
