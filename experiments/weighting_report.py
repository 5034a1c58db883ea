#!/usr/bin/env python
"""Compares groups of training runs that differ in one setting, each group over seeds: B-LeNet's
fixed loss weights against SoftExit's sample-dependent ones (issue 24, item 4), for one.

    python experiments/weighting_report.py \\
        --group fixed results/b-lenet/weighting/fixed-seed0 results/b-lenet/weighting/fixed-seed1 \\
            results/b-lenet/weighting/fixed-seed2 \\
        --group soft_exit results/b-lenet/weighting/soft_exit-seed0 \\
            results/b-lenet/weighting/soft_exit-seed1 results/b-lenet/weighting/soft_exit-seed2 \\
        --out results/b-lenet/weighting/report

Each run folder's branchy.npz is measured against its main.npz on the validation split its
run.json records and on the test set (``branchynet.evaluation.run_groups``: each exit's accuracy,
early exit at the paper's thresholds, the test frontier at matched costs and at the baseline's
accuracy, thresholds fitted on validation); the groups are summarised and each is compared with
the first, the verdicts derived from the numbers. Writes OUT.json (every number), OUT.md (rendered
from it, the command at its top) and OUT.png (each group's test frontier, mean ± sd).
"""
import argparse
import json
import os
import shlex
import sys

from matplotlib.figure import Figure

import branchynet  # noqa: F401  (compatibility shims before chainer)
import networks
from branchynet.data.split import VAL_SIZE
from branchynet.evaluation import frontier, run_folder, run_groups
from branchynet.model import serialization
from branchynet.reporting import figures, files
from branchynet.reporting import run_groups as render
from branchynet.training import trainer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "RUN"),
                   help="a group's name and its run folders; repeat per group (the first is the "
                        "reference the others are compared with)")
    p.add_argument("--out", required=True, metavar="PREFIX",
                   help="writes PREFIX.json, PREFIX.md and PREFIX.png")
    p.add_argument("--thresholds", default=None, metavar="T1,...",
                   help="the fixed setting, one per non-final exit (default: the paper's)")
    p.add_argument("--costs", default=",".join("%g" % f for f in run_groups.COST_FRACTIONS),
                   help="fractions of the baseline's MACs where accuracies are matched "
                        "(default %(default)s)")
    p.add_argument("--test-subset", type=int, default=0,
                   help="the first N test images only (0: all; for quick tries)")
    p.add_argument("--title", default=None, help="the report's title")
    p.add_argument("--data-dir", default=None, help="dataset folder (default $BRANCHYNET_DATA)")
    args = p.parse_args(argv)
    args.groups = {}
    for name, *dirs in args.group:
        if not dirs or name in args.groups:
            p.error("--group %s: %s" % (name, "repeated" if dirs else "no run folders"))
        args.groups[name] = dirs
    for d in (d for dirs in args.groups.values() for d in dirs):
        if not serialization.has_weights(d) or serialization.weight_paths(d)[1] is None:
            p.error("%s: no branchy.npz and main.npz (an unfinished or mistyped run)" % d)
    held = {run_folder.network_in(d) for dirs in args.groups.values() for d in dirs}
    if len(held) != 1:
        p.error("the runs hold different networks: %s" % ", ".join(sorted(map(str, held))))
    args.network = held.pop()
    args.costs = [float(v) for v in args.costs.split(",")]
    family = networks.family_of(args.network)
    if args.thresholds is None and family is None:
        p.error("--thresholds is needed: %s is none of the paper's networks" % args.network)
    args.thresholds = (frontier.paper_thresholds(family) if args.thresholds is None
                       else [float(v) for v in args.thresholds.split(",")])
    names = list(args.groups)
    against = "%s against %s" % (", ".join(names[1:]), names[0]) if len(names) > 1 else names[0]
    args.title = args.title or "%s: %s" % (args.network, against)
    return args


def measure(run_dir, args):
    """One run's numbers (``run_groups.measure_run``) with what it was (``describe_run``)."""
    info = serialization.read_run_info(run_dir) or {}
    dataset = networks.dataset_of(args.network) or info["dataset"]
    net, main = networks.load_run(run_dir)
    val, test, _ = run_folder.run_split(dataset, info.get("val_size", VAL_SIZE), run_dir,
                                        args.data_dir)
    if args.test_subset:
        test = tuple(a[:args.test_subset] for a in test)
    measured = run_groups.measure_run(net, main, val, test, args.thresholds, args.costs)
    log = trainer.read_log(run_dir) if os.path.exists(os.path.join(run_dir, trainer.LOG)) else []
    return dict(run=run_dir, description=run_groups.describe_run(info, log, measured), **measured)


def report(args, command):
    """The report dict: every run measured, the groups summarised and compared."""
    runs = {}
    for name, dirs in args.groups.items():
        runs[name] = []
        for d in dirs:
            print("measuring %s (%s)" % (d, name), flush=True)
            runs[name].append(measure(d, args))
    names = list(runs)
    return {"title": args.title, "command": command, "network": args.network,
            "measure": run_groups.MEASURE, "thresholds": list(args.thresholds),
            "cost_fractions": args.costs, "names": names, "runs": runs,
            "summary": run_groups.summary(runs), "comparisons": run_groups.compare(runs, names),
            "curves": run_groups.curves(runs)}


def write(result, prefix):
    """PREFIX.json, then PREFIX.md and PREFIX.png from what it holds; returns the paths."""
    files.write_json(prefix + ".json", result)
    with open(prefix + ".json") as f:
        result = json.load(f)
    fig = Figure(figsize=(10, 4.2))
    for ax, zoomed in zip(fig.subplots(1, 2), (False, True)):
        render.plot_frontier_bands(ax, result, zoomed)
    png = figures.save(fig, prefix + ".png")
    files.write_text(prefix + ".md", render.markdown(result, os.path.basename(png)))
    return [prefix + ".json", prefix + ".md", png]


def main(argv=None):
    args = parse_args(argv)
    shown = sys.argv[1:] if argv is None else [str(a) for a in argv]
    result = report(args, "python experiments/weighting_report.py " + shlex.join(shown))
    for path in write(result, args.out):
        print("wrote", path)
    for c in result["comparisons"]:
        print(c["conclusion"])


if __name__ == "__main__":
    main()
