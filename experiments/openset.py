#!/usr/bin/env python
"""Open-set evaluation of early exits with OpenMax: train a network on some classes (known), fit
OpenMax on every exit from the training images, and test on all classes.

    python experiments/openset.py --network b-lenet --known 0-5 --main-epochs 2 --joint-epochs 2 \
        --out results/b-lenet/openset
    python experiments/openset.py --network b-alexnet --known 0-2 --main-epochs 3 --joint-epochs 2 \
        --train-subset 6000 --out results/b-alexnet/openset

The network is the registered one unchanged (10 outputs), trained only on the known classes'
images; OpenMax models the known classes' logit columns. Per exit and per measure (entropy,
max_prob, margin, OpenMax): AUROC of known against unknown test images; accuracy on the known test
images at matched cost (budgets as fractions of the baseline's MACs); and, at those settings, the
fraction of known and unknown images leaving at each exit. The folder receives run/ (the trained
net, its fitted OpenMax saved with it: branchy.npz), results.json, report.md and two figures.
Run it again with the same --out to reuse the trained net.
"""
import argparse
import json
import os
import shlex
import sys

import numpy

import branchynet  # noqa: F401
import networks
from branchynet.data.split import load_split
from branchynet.evaluation import costs, openset
from branchynet.evaluation.outputs import ExitOutputs
from branchynet.model import openmax, serialization
from branchynet.training import trainer

MEASURES = ("entropy", "max_prob", "margin")


def class_list(text):
    """"0-5" or "0,3,7" as a sorted list of class indices."""
    out = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        try:
            out.update(range(int(low), int(high or low) + 1))
        except ValueError:
            raise argparse.ArgumentTypeError("classes as 0-5 or 0,3,7, got %r" % text) from None
    return sorted(out)


def fractions(text):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated numbers, got %r" % text) from None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True, help="a registered network (b-lenet, b-alexnet, ...)")
    p.add_argument("--known", type=class_list, required=True, help="known classes, e.g. 0-5")
    p.add_argument("--main-epochs", type=int, required=True)
    p.add_argument("--joint-epochs", type=int, required=True)
    p.add_argument("--batchsize", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-size", type=int, default=5000, help="validation images held out of training")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on the first N known-class training images only")
    p.add_argument("--tailsize", type=int, default=openmax.DEFAULT_TAILSIZE)
    p.add_argument("--alpharank", type=int, default=None,
                   help="default: the original's 10, or the number of known classes if fewer")
    p.add_argument("--budgets", type=fractions, default=[0.25, 0.5, 0.75, 1.0],
                   help="matched-cost budgets as fractions of the baseline's MACs")
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def known_data(args):
    """((x, t) known training images, (x, t) known validation images, (x, t) all test images)."""
    (x, t), (xv, tv), test = load_split(networks.dataset_of(args.network), args.val_size)
    keep, keep_v = numpy.isin(t, args.known), numpy.isin(tv, args.known)
    x, t = x[keep][:args.train_subset], t[keep][:args.train_subset]
    return (x, t.astype(numpy.int32)), (xv[keep_v], tv[keep_v].astype(numpy.int32)), test


def trained_net(args, train, val):
    """The net trained on the known classes (reused where the run folder holds one)."""
    run = os.path.join(args.out, "run")
    if serialization.has_weights(run):
        return networks.load_run(run)[0]
    numpy.random.seed(args.seed)
    net = networks.build(args.network)
    trainer.fit(net, train, val, run, args.main_epochs, args.joint_epochs, args.batchsize,
                seed=args.seed, progress=False)
    return net


def real_equals_simulation(net, cache, x, thresholds, fitted, n=500):
    """Whether BranchyNet.predict with the fitted OpenMax gives the cached simulation's exits and
    labels on the first n test images (batched)."""
    labels, exits = net.predict(x[:n], thresholds, measure=fitted)
    sim_labels, sim_exits = cache.subset(slice(0, n)).simulate(thresholds, fitted)
    return bool(numpy.array_equal(exits, sim_exits) and numpy.array_equal(labels, sim_labels))


def evaluate(args, net, train, test):
    x_train, t_train = train
    x_test, t_test = test
    train_cache = ExitOutputs.from_net(net, x_train, t_train, progress=False)
    alpharank = args.alpharank or min(openmax.DEFAULT_ALPHARANK, len(args.known))
    fitted = openmax.fit(train_cache.logits, t_train, args.tailsize, alpharank, columns=args.known)
    net.openmax = fitted
    serialization.save(net, os.path.join(args.out, "run", serialization.BRANCHY))
    cache = ExitOutputs.from_net(net, x_test, t_test, progress=False)
    known = numpy.isin(t_test, args.known)
    parts = costs.count_macs(net, x_test[:1])
    exit_costs, baseline = costs.exit_costs(parts), costs.baseline_cost(parts)
    named = dict({m: m for m in MEASURES}, OpenMax=fitted)
    per_measure = openset.report(cache, known, named, exit_costs, [f * baseline for f in args.budgets])
    middle = per_measure["OpenMax"]["matched"][len(args.budgets) // 2]
    known_cache = cache.subset(numpy.flatnonzero(known))
    return {
        "known": args.known, "openmax": {"tailsize": args.tailsize, "alpharank": alpharank,
                                         "distance": fitted.distance},
        "test_images": {"known": int(known.sum()), "unknown": int((~known).sum())},
        "exit_accuracy_known": known_cache.exit_accuracy(),
        "predicted_unknown_column": [float(numpy.mean(~numpy.isin(p, args.known)))
                                     for p in cache.predictions],
        "exit_costs_macs": exit_costs.tolist(), "baseline_macs": baseline,
        "budget_fractions": args.budgets, "measures": per_measure,
        "openmax_rejections": openset.openmax_rejections(cache, fitted, known),
        "real_equals_simulation": None if middle is None else
        real_equals_simulation(net, cache, x_test, middle["thresholds"], fitted),
    }


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    train, val, test = known_data(args)
    net = trained_net(args, train, val)
    results = evaluate(args, net, train, test)
    results.update(network=args.network, command="python experiments/openset.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        schedule={"main_epochs": args.main_epochs, "joint_epochs": args.joint_epochs,
                  "batchsize": args.batchsize, "seed": args.seed,
                  "train_images": len(train[0]), "val_images": len(val[0])})
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    write_report(results, args.out)
    draw(results, args.out)
    print(open(os.path.join(args.out, "report.md")).read())


def _pct(v):
    return "-" if v is None else "%.1f" % (100 * v)


def write_report(r, out):
    k = len(r["exit_costs_macs"])
    lines = ["# Open-set early exit: %s, known classes %s" % (r["network"], r["known"]), "",
             "Command: `%s`" % r["command"], "",
             "Schedule: %(main_epochs)d pretraining + %(joint_epochs)d joint epochs, batch "
             "%(batchsize)d, seed %(seed)d, on %(train_images)d known-class training images "
             "(validation: %(val_images)d)." % r["schedule"],
             "Test: %(known)d known and %(unknown)d unknown images." % r["test_images"],
             "OpenMax: tail size %(tailsize)d, alpha rank %(alpharank)d, distance %(distance)s."
             % r["openmax"], "",
             "Per-exit accuracy on the known test images: %s %%; predictions falling on an "
             "untrained (unknown-class) output: %s %% of all test images."
             % (" / ".join(_pct(a) for a in r["exit_accuracy_known"]),
                " / ".join(_pct(a) for a in r["predicted_unknown_column"])), "",
             "## AUROC, known against unknown, per exit", "",
             "| measure | " + " | ".join("exit %d" % (j + 1) for j in range(k)) + " |",
             "|---" * (k + 1) + "|"]
    for name, m in r["measures"].items():
        lines.append("| %s | " % name + " | ".join("%.3f" % a for a in m["auroc"]) + " |")
    lines += ["", "OpenMax's own rejection (unknown most probable), known / unknown test images, "
              "per exit: " + "; ".join("exit %d: %s / %s %%" % (j + 1, _pct(a), _pct(b)) for j, (a, b)
                                       in enumerate(zip(r["openmax_rejections"]["known"],
                                                        r["openmax_rejections"]["unknown"])))]
    lines += _matched_lines(r, k)
    lines += ["", "Real early exit (BranchyNet.predict with the fitted OpenMax) equals the cached "
              "simulation on 500 test images: %s." % r["real_equals_simulation"], "",
              "Figures: auroc.png, leave.png."]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _matched_lines(r, k):
    lines = ["", "## Matched cost: accuracy on the known classes, and who leaves at each exit", "",
             "Most accurate setting on the known test images within each budget (exact frontier); "
             "leave %: the fraction of known (K) and unknown (U) test images leaving at each exit.", "",
             "| budget | measure | cost | known acc. % | " + " | ".join(
                 "exit %d K / U" % (j + 1) for j in range(k)) + " |", "|---" * (k + 4) + "|"]
    for i, fraction in enumerate(r["budget_fractions"]):
        for name, m in r["measures"].items():
            row = m["matched"][i]
            if row is None:
                lines.append("| %.0f %% | %s | infeasible |" % (100 * fraction, name))
                continue
            leave = row["leave_fractions"]
            lines.append("| %.0f %% | %s | %.1f %% | %.2f | %s |" % (
                100 * fraction, name, 100 * row["cost"] / r["baseline_macs"], 100 * row["accuracy"],
                " | ".join("%s / %s" % (_pct(a), _pct(b))
                           for a, b in zip(leave["known"], leave["unknown"]))))
    return lines


def draw(r, out):
    """auroc.png: AUROC per exit and measure; leave.png: known and unknown images leaving at the
    first exit at each budget, per measure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(r["measures"])
    k = len(r["exit_costs_macs"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(numpy.arange(k) + i * width, r["measures"][name]["auroc"], width, label=name)
    ax.set_xticks(numpy.arange(k) + 0.4 - width / 2, ["exit %d" % (j + 1) for j in range(k)])
    ax.set_ylim(0.4, 1.0)
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_ylabel("AUROC known vs unknown")
    ax.set_title("%s, known %s" % (r["network"], r["known"]))
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "auroc.png"), dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    budgets = numpy.array(r["budget_fractions"]) * 100
    for i, name in enumerate(names):
        rows = r["measures"][name]["matched"]
        for group, style in (("known", "-"), ("unknown", "--")):
            ax.plot(budgets, [numpy.nan if row is None else row["leave_fractions"][group][0] * 100
                              for row in rows], style, color="C%d" % i, marker="o",
                    label="%s, %s" % (name, group))
    ax.set_title("known (solid) and unknown (dashed) test images leaving at exit 1", fontsize=9)
    ax.set_xlabel("budget, % of the baseline's MACs")
    ax.set_ylabel("% leaving at exit 1")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "leave.png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
