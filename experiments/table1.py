#!/usr/bin/env python
"""Assembles Table I from the per-network results (experiments/measure.py), ours beside the
authors' (``branchynet.reporting.table1``).

    python experiments/table1.py [--results-root results] [--out results/table1.md]

reads <results-root>/<network>/results.json for each network (and <results-root>/gpu/<network>)
and writes table1.md, table1.json and table1_runs.md (each run's accuracy rows where a network has
several comparable runs).
"""
import argparse
import os

import branchynet  # noqa: F401
from branchynet.reporting import files, table1

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-root", default=os.path.join(ROOT, "results"))
    p.add_argument("--networks", nargs="+", default=list(table1.NETWORKS),
                   help="network result folders to read, in order")
    p.add_argument("--out", default=None, help="Markdown output (default <results-root>/table1.md)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = args.out or os.path.join(args.results_root, "table1.md")
    table = table1.assemble(args.results_root, args.networks)
    text, runs_text = table1.render(table)
    base = os.path.splitext(out)[0]
    files.write_text(out, text)
    files.write_text(base + "_runs.md", runs_text)
    files.write_json(base + ".json", table)
    print(text)
    print("written: %s, %s, %s" % (out, base + ".json", base + "_runs.md"))
    return table


if __name__ == "__main__":
    main()
