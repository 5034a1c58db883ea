#!/usr/bin/env python
"""The "beyond the paper" report of a network: confidence measures, threshold selection rules,
costs, anytime/budgeted/oracle/overthinking/calibration, seeds, sample-dependent loss weights.

    python experiments/beyond.py --network b-lenet      # -> results/b-lenet/beyond/
    python experiments/beyond.py --network b-alexnet    # -> results/b-alexnet/beyond/
    python experiments/beyond.py --network mypackage.nets:three_exits --dataset mnist \
        --run-dir runs/mine --out out/mine-beyond

Thin: the analysis is branchynet.evaluation.beyond, the rendering branchynet.reporting's
beyond_markdown and beyond_figures; this parses flags, loads the runs, calls them and writes
report.json, report.md and the figures. The sample-weighting runs come from
experiments/beyond_train.py (their folders under OUT/runs/).
"""
import argparse
import dataclasses
import json
import os
import sys

import numpy
from matplotlib.figure import Figure

import branchynet  # noqa: F401
import networks
from branchynet.data.split import VAL_SIZE
from branchynet.evaluation import beyond, costs
from branchynet.evaluation.beyond_report import BeyondReport
from branchynet.model import serialization
from branchynet.reporting import beyond_figures, beyond_markdown, figures, files

DEFAULT_RUNS = {"b-lenet": "results/b-lenet/run", "b-alexnet": "results/b-alexnet/run",
                "b-resnet110": "results/b-resnet110/run-short"}
DEFAULT_SEEDS = {"b-lenet": ["results/b-lenet/run", "results/b-lenet/run-seed1",
                             "results/b-lenet/run-seed2"]}
TITLES = {"b-lenet": "B-LeNet", "b-alexnet": "B-AlexNet", "b-resnet110": "B-ResNet-110"}


def _caches(run_dir, dataset, data_dir):
    net, main = networks.load_run(run_dir)
    info = serialization.read_run_info(run_dir) or {}
    val, test, base, _, (x_test, _), _ = beyond.load_caches(net, main, run_dir, dataset,
                                                          info.get("val_size", VAL_SIZE), data_dir)
    return net, val, test, base, x_test


def write_figures(report, out, title):
    """The report's figures into ``out``; returns the paths."""
    paths = []
    fig = Figure(figsize=(10, 4.2))
    for ax, zoomed in zip(fig.subplots(1, 2), (False, True)):
        beyond_figures.plot_frontiers(ax, report, title, zoomed)
    paths.append(figures.save(fig, os.path.join(out, "frontiers_by_measure.png")))
    names = [n for n in ("entropy", "max_prob") if n in report.measures]
    if names:
        fig = Figure(figsize=(4.5 * len(names), 3.8))
        axes = numpy.atleast_1d(fig.subplots(1, len(names), sharey=True))
        for ax, name in zip(axes, names):
            beyond_figures.plot_selection_rules(ax, report, name, title)
        axes[0].set_ylabel("test accuracy (%)")
        axes[-1].legend(fontsize=6, loc="lower right")
        paths.append(figures.save(fig, os.path.join(out, "selection_rules.png")))
    cal = report.calibration
    fig = Figure(figsize=(3.2 * len(cal), 3.2))
    beyond_figures.plot_reliability(numpy.atleast_1d(fig.subplots(1, len(cal))), cal)
    paths.append(figures.save(fig, os.path.join(out, "reliability.png")))
    if report.sample_weighting:
        fig = Figure(figsize=(6.4, 4.2))
        beyond_figures.plot_weighting(fig.subplots(), report, report.sample_weighting, title)
        paths.append(figures.save(fig, os.path.join(out, "sample_weighting.png")))
    return paths


def write(report, out, title, json_too=True):
    """report.json (unless ``json_too`` is false), report.md and the figures into ``out``;
    returns the paths."""
    os.makedirs(out, exist_ok=True)
    paths = []
    if json_too:
        report.save(os.path.join(out, "report.json"))
        paths.append(os.path.join(out, "report.json"))
    files.write_text(os.path.join(out, "report.md"), beyond_markdown.markdown(report, title))
    return paths + [os.path.join(out, "report.md")] + write_figures(report, out, title)


def rewrite(out, title):
    """report.md and the figures again from ``out``/report.json (no measuring)."""
    return write(BeyondReport.load(os.path.join(out, "report.json")), out, title, json_too=False)


def _weighting_label(d):
    with open(os.path.join(d, "sample_weighting.json")) as f:
        w = json.load(f)
    if w["scheme"] == "none":
        return "fixed (the paper's)"
    return w["scheme"] + ("" if "alpha" not in w else " (alpha %g)" % w["alpha"])


def _weighting_note(w_dirs):
    first = serialization.read_run_info(w_dirs[0])
    with open(os.path.join(w_dirs[0], "log.jsonl")) as f:
        epochs = sum(1 for _ in f)
    return ("Both runs: %d joint epochs (the paper ran 100: a short schedule, so both are below "
            "the committed run) from the same pretrained trunk `%s`, seed %d, batch %d, loss "
            "weights %s (%s), Adam; the only difference is the per-sample weighting "
            "(branchynet.model.sample_weights.SoftExit: weight of sample n at exit k = (1 - alpha) + "
            "alpha q_kn / mean q_k, q_kn its soft probability of leaving at exit k from the "
            "detached max-softmax of exits up to k). Folders: %s."
            % (epochs, first["main_from"], first["seed"], first["batchsize"],
               first["loss_weights"]["values"], first["loss_weights"]["preset"],
               ", ".join("`%s`" % d for d in w_dirs)))


def compare_other_runs(args, report, dataset, out):
    """(seeds, weighting): the seed runs' and sample-weighting runs' comparisons, or None."""
    exit_cost = costs.exit_costs(report.macs.to_json())

    def entries(dirs, label_of):
        for d in dirs:
            _, val, test, base, _ = _caches(d, dataset, args.data_dir)
            yield label_of(d), val, test, report.base_cost, base["val"]

    seed_dirs = args.seed_runs if args.seed_runs is not None else DEFAULT_SEEDS.get(args.network, [])
    seeds = None
    if len(seed_dirs) > 1:
        seeds = beyond.compare_runs(list(entries(seed_dirs, lambda d: d)), lambda _: exit_cost)
    w_dirs = args.weighting_runs
    if w_dirs is None:
        w_dirs = [d for d in (os.path.join(out, "runs", "fixed"), os.path.join(out, "runs", "soft_exit"))
                  if os.path.exists(os.path.join(d, "branchy.npz"))]
    weighting = None
    if w_dirs:
        weighting = beyond.compare_runs(list(entries(w_dirs, _weighting_label)), lambda _: exit_cost)
        weighting.note = _weighting_note(w_dirs)
    return seeds, weighting


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True,
                   help="a registered network or a factory as package.module:function")
    p.add_argument("--dataset", default=None, help="its dataset where the network names none")
    p.add_argument("--run-dir", default=None,
                   help="run folder (default for the paper's networks: %s)"
                        % ", ".join("%s: %s" % kv for kv in sorted(DEFAULT_RUNS.items())))
    p.add_argument("--seed-runs", nargs="*", default=None, help="runs of other seeds (mean, spread)")
    p.add_argument("--weighting-runs", nargs="*", default=None,
                   help="run folders of experiments/beyond_train.py (default: OUT/runs/fixed, soft_exit)")
    p.add_argument("--out", default=None, help="default results/<network>/beyond for the paper's networks")
    p.add_argument("--title", default=None, help="the report's title (default: the network's name)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--timing-samples", type=int, default=300)
    p.add_argument("--measured-samples", type=int, default=500)
    p.add_argument("--rewrite", action="store_true",
                   help="only write report.md and the figures again from OUT/report.json")
    p.add_argument("--runs-only", action="store_true",
                   help="keep OUT/report.json's measurements of the run; compare the seed and "
                        "weighting runs again")
    args = p.parse_args(argv)
    args.run_dir = args.run_dir or DEFAULT_RUNS.get(args.network)
    args.out = args.out or (os.path.join("results", args.network.split("-paper")[0], "beyond")
                            if args.network in DEFAULT_RUNS else None)
    if args.run_dir is None or args.out is None:
        p.error("--run-dir and --out are needed for %s" % args.network)
    args.title = args.title or TITLES.get(args.network, args.network)
    if not args.rewrite:
        args.dataset = networks.dataset_of(args.network) or args.dataset
        if args.dataset is None:
            p.error("--dataset is needed: %s names no dataset" % args.network)
    return args


def measure(args, command):
    """The report: the run measured now, or with --runs-only the report.json's (its seed and
    weighting comparisons left to be made again)."""
    if args.runs_only:
        report = BeyondReport.load(os.path.join(args.out, "report.json"))
        return dataclasses.replace(report, seeds=None, sample_weighting=None,
                                   commands=report.commands[:1] + [command])
    info = serialization.read_run_info(args.run_dir) or {}
    net, main_net = networks.load_run(args.run_dir)
    report = beyond.run_report(net, main_net, args.run_dir, args.dataset,
                               networks.family_of(args.network),
                               val_size=info.get("val_size", VAL_SIZE), data_dir=args.data_dir,
                               timing_samples=args.timing_samples,
                               measured_samples=args.measured_samples, progress=False)
    report.commands = [command]
    return report


def main(argv=None):
    args = parse_args(argv)
    if args.rewrite:
        for path in rewrite(args.out, args.title):
            print("wrote", path)
        return
    command = ("python experiments/beyond.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    report = measure(args, command)
    report.seeds, report.sample_weighting = compare_other_runs(args, report, args.dataset, args.out)
    for path in write(report, args.out, args.title):
        print("wrote", path)
    for m, sec in report.measures.items():
        for pick in sec.fastest_within[:1] + sec.generalising:
            print("%-19s %-36s %s" % (m, pick.rule, pick.infeasible or (
                "test %.2f %%, cost %.1f %% on val, %.1f %% on test" % (
                    100 * pick.accuracy, 100 * pick.val_cost / report.base_cost,
                    100 * pick.cost / report.base_cost))))
    macs = report.macs.to_json()
    print("MACs per segment/head:", macs, "baseline", costs.baseline_cost(macs))


if __name__ == "__main__":
    main()
