#!/usr/bin/env python
"""Compares several training runs of one network: accuracy of the baseline, of the last exit and of
the early-exit network at the paper's thresholds and at the thresholds chosen on the validation split,
read from each results folder's results.json (the network's experiment script writes it), with the
mean and spread of "early-exit network minus baseline" across the runs.

    python experiments/runs_summary.py results/b-lenet results/b-lenet-gpu-trained \\
        results/b-lenet-seed1 results/b-lenet-seed2 --out results/b-lenet/runs.md

Why: the paper's B-LeNet beats its baseline by 0.05 points (five test digits); whether a
reproduction does depends on the run, and only several runs say by how much.
"""
import argparse
import os
import statistics
import sys

from branchynet.evaluation.results import Result
from branchynet.model import serialization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="results folders, each with a results.json")
    p.add_argument("--out", default=None, help="also write the Markdown table to this file")
    return p.parse_args(argv)


def summarize(folder):
    result = Result.load(os.path.join(folder, "results.json"))
    run_dir = result.settings.run_dir
    trained = serialization.read_run_info(os.path.join(ROOT, run_dir))  # its run.json
    val_knee = result.devices["cpu"].selection.val
    val_row = result.rows[val_knee.knee] if val_knee is not None else None
    baseline = 100 * result.accuracy.main
    paper_row = result.paper_row
    return {"results": folder, "run": run_dir, "seed": trained["seed"] if trained else None,
            "device": trained["device"] if trained else None,
            "weights": trained["loss_weights"]["preset"] if trained else None,
            "pretrained": (trained["main_from"] or "here") if trained else None,
            "baseline": baseline,
            "last_exit": 100 * result.accuracy.branchy_final,
            "paper_t": paper_row.thresholds, "paper_t_acc": 100 * paper_row.accuracy,
            "paper_t_early": 100 * (1 - paper_row.exit_fractions[-1]),
            "val_t": None if val_row is None else val_row.thresholds,
            "val_t_acc": None if val_row is None else 100 * val_row.accuracy}


def markdown(rows):
    lines = ["| results | run | seed | trained on | loss weights | pretrained | baseline % | last exit % | "
             "T (paper) | acc % | early % | Δ vs baseline (pp) | T (val) | acc % | Δ vs baseline (pp) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        val_t = "–" if r["val_t"] is None else ", ".join("%g" % v for v in r["val_t"])
        val_acc = "–" if r["val_t_acc"] is None else "%.2f" % r["val_t_acc"]
        val_delta = "–" if r["val_t_acc"] is None else "%+.2f" % (r["val_t_acc"] - r["baseline"])
        device = "?" if r["device"] is None else "GPU" if "cupy" in r["device"] else "CPU"
        lines.append("| %s | %s | %s | %s | %s | %s | %.2f | %.2f | %s | %.2f | %.1f | %+.2f "
                     "| %s | %s | %s |" % (
            r["results"], r["run"], "?" if r["seed"] is None else r["seed"], device,
            r["weights"] or "?", r["pretrained"] or "?", r["baseline"],
            r["last_exit"], ", ".join("%g" % v for v in r["paper_t"]), r["paper_t_acc"],
            r["paper_t_early"], r["paper_t_acc"] - r["baseline"], val_t, val_acc, val_delta))
    deltas = [r["paper_t_acc"] - r["baseline"] for r in rows]
    spread = statistics.stdev(deltas) if len(deltas) > 1 else float("nan")
    lines += ["", "Early-exit network at the paper's T minus baseline, over %d runs: mean %+.3f pp, "
              "standard deviation %.3f pp, range %+.2f to %+.2f pp."
              % (len(deltas), statistics.mean(deltas), spread, min(deltas), max(deltas))]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    missing = [f for f in args.results if not os.path.exists(os.path.join(f, "results.json"))]
    if missing:
        raise SystemExit("no results.json in %s: run the network's experiment script with --results "
                         "there first" % ", ".join(missing))
    text = markdown([summarize(folder) for folder in args.results])
    print(text, end="")
    if args.out:
        shown = sys.argv[1:] if argv is None else list(argv)
        with open(args.out, "w") as f:
            f.write("# Runs compared\n\nWritten by `python experiments/runs_summary.py %s`.\n\n"
                    % " ".join(shown) + text)


if __name__ == "__main__":
    main()
