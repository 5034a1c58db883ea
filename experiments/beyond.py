#!/usr/bin/env python
"""The "beyond the paper" report of a network: confidence measures, threshold selection rules,
costs, anytime/budgeted/oracle/overthinking/calibration, seeds, sample-dependent loss weights.

    python experiments/beyond.py --network b-lenet      # -> results/b-lenet/beyond/
    python experiments/beyond.py --network b-alexnet    # -> results/b-alexnet/beyond/

Thin: the library is branchynet.reporting.beyond (and confidence, selection, costs, evaluations); this
parses flags, loads the runs, calls it and prints where it wrote. The sample-weighting runs come
from experiments/beyond_train.py (their folders under OUT/runs/).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import branchynet  # noqa: E402,F401
import networks  # noqa: E402
from branchynet.evaluation import costs  # noqa: E402
from branchynet.model import serialization
from branchynet.reporting import beyond

DEFAULT_RUNS = {"b-lenet": "results/b-lenet/run", "b-alexnet": "results/b-alexnet/run",
                "b-resnet110": "results/b-resnet110/run-short"}
DEFAULT_SEEDS = {"b-lenet": ["results/b-lenet/run", "results/b-lenet/run-seed1",
                             "results/b-lenet/run-seed2"]}
TITLES = {"b-lenet": "B-LeNet", "b-alexnet": "B-AlexNet", "b-resnet110": "B-ResNet-110"}


def _caches(run_dir, dataset, data_dir):
    net, main = networks.load_run(run_dir)
    info = serialization.read_run_info(run_dir) or {}
    val, test, base, _, (x_test, _) = beyond.load_caches(net, main, run_dir, dataset,
                                                          info.get("val_size", 5000), data_dir)
    return net, val, test, base, x_test


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True, choices=sorted(DEFAULT_RUNS))
    p.add_argument("--run-dir", default=None)
    p.add_argument("--seed-runs", nargs="*", default=None, help="runs of other seeds (mean, spread)")
    p.add_argument("--weighting-runs", nargs="*", default=None,
                   help="run folders of experiments/beyond_train.py (default: OUT/runs/fixed, soft_exit)")
    p.add_argument("--out", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--timing-samples", type=int, default=300)
    p.add_argument("--measured-samples", type=int, default=500)
    p.add_argument("--rewrite", action="store_true",
                   help="only write report.md and the figures again from OUT/report.json")
    p.add_argument("--runs-only", action="store_true",
                   help="keep OUT/report.json's measurements of the run; compare the seed and "
                        "weighting runs again")
    args = p.parse_args(argv)
    name = args.network
    run_dir = args.run_dir or DEFAULT_RUNS[name]
    out = args.out or os.path.join("results", name.split("-paper")[0], "beyond")
    if args.rewrite:
        for path in beyond.rewrite(out, TITLES[name]):
            print("wrote", path)
        return
    dataset, family = networks.dataset_of(name), networks.family_of(name)
    info = serialization.read_run_info(run_dir) or {}
    command = "python experiments/beyond.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.runs_only:
        with open(os.path.join(out, "report.json")) as f:
            report = json.load(f)
        for key in ("seeds", "sample_weighting"):
            report.pop(key, None)
        commands = report.pop("commands", [])[:1] + [command.strip()]
    else:
        net, main_net = networks.load_run(run_dir)
        report = beyond.run_report(net, main_net, run_dir, dataset, family,
                                   val_size=info.get("val_size", 5000), data_dir=args.data_dir,
                                   timing_samples=args.timing_samples,
                                   measured_samples=args.measured_samples, progress=False)
        commands = [command.strip()]
    exit_cost = costs.exit_costs(report["macs"])

    def entries(dirs, label_of):
        for d in dirs:
            _, val, test, base, _ = _caches(d, dataset, args.data_dir)
            yield label_of(d), val, test, report["base_cost"], base["val"]

    seed_dirs = args.seed_runs if args.seed_runs is not None else DEFAULT_SEEDS.get(name, [])
    seeds = None
    if len(seed_dirs) > 1:
        seeds = beyond.compare_runs(list(entries(seed_dirs, lambda d: d)), lambda _: exit_cost)
    w_dirs = args.weighting_runs
    if w_dirs is None:
        w_dirs = [d for d in (os.path.join(out, "runs", "fixed"), os.path.join(out, "runs", "soft_exit"))
                  if os.path.exists(os.path.join(d, "branchy.npz"))]
    weighting = None
    if w_dirs:
        def label(d):
            with open(os.path.join(d, "sample_weighting.json")) as f:
                w = json.load(f)
            if w["scheme"] == "none":
                return "fixed (the paper's)"
            return w["scheme"] + ("" if "alpha" not in w else " (alpha %g)" % w["alpha"])
        weighting = beyond.compare_runs(list(entries(w_dirs, label)), lambda _: exit_cost)
        first = serialization.read_run_info(w_dirs[0])
        epochs = len([1 for _ in open(os.path.join(w_dirs[0], "log.jsonl"))])
        weighting["note"] = (
            "Both runs: %d joint epochs (the paper ran 100: a short schedule, so both are below "
            "the committed run) from the same pretrained trunk `%s`, seed %d, batch %d, loss "
            "weights %s (%s), Adam; the only difference is the per-sample weighting "
            "(branchynet.model.sample_weights.SoftExit: weight of sample n at exit k = (1 - alpha) + "
            "alpha q_kn / mean q_k, q_kn its soft probability of leaving at exit k from the "
            "detached max-softmax of exits up to k). Folders: %s."
            % (epochs, first["main_from"], first["seed"], first["batchsize"],
               first["loss_weights"]["values"], first["loss_weights"]["preset"],
               ", ".join("`%s`" % d for d in w_dirs)))
    paths = beyond.write(report, out, TITLES[name], seeds, weighting, commands=commands)
    for path in paths:
        print("wrote", path)
    for m, sec in report["measures"].items():
        pick = sec["fastest_within"][0]
        print("%-19s fastest at the baseline's val accuracy: %s" % (
            m, pick.get("infeasible") or "test %.2f %% at %.1f %% of the cost" % (
                100 * pick["accuracy"], 100 * pick["cost"] / report["base_cost"])))
    print("MACs per segment/head:", report["macs"], "baseline", costs.baseline_cost(report["macs"]))


if __name__ == "__main__":
    main()
