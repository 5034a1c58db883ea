"""The one implementation behind experiments/lenet_mnist.py, alex_cifar10.py and resnet_cifar10.py.

For one network: load the trained weights of a run folder (or train them with the paper's
schedule through ``experiments/train.py``), measure the baseline (the main network saved after
pretraining, ``main.npz``, and the final exit of the jointly trained net, ``branchy.npz``), run
the paper's threshold sweep analytically (``branchynet.sweep``), time every exit at batch 1 on
the CPU (and the GPU with ``--device @cupy:0``; ``branchynet.timing``), check a few threshold
configurations with real early-exit runs, measure batched throughput against the MAC bound,
pick the frontier, the knee and thresholds on the validation split, write the results
(``branchynet.report``) and figures (``branchynet.plots``), and print the Table I rows.
"""
import argparse
import os
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy  # noqa: E402

import branchynet  # noqa: E402,F401  (compatibility shims before chainer)
import chainer  # noqa: E402
import networks  # noqa: E402
from branchynet import paper, plots, report, serialization, sweep, timing, training  # noqa: E402
from branchynet.data_split import load_split  # noqa: E402

import train as train_script  # noqa: E402  (experiments/train.py)

# The paper's schedule (reference section 4.1): pretraining epochs, joint epochs, batch size.
SCHEDULES = {
    "lenet": {"network": "b-lenet", "main_epochs": 100, "joint_epochs": 100, "batchsize": 512},
    "alexnet": {"network": "b-alexnet", "main_epochs": 50, "joint_epochs": 100, "batchsize": 512},
    "resnet110": {"network": "b-resnet110", "main_epochs": 100, "joint_epochs": 100,
                  "batchsize": 128},
}
DEFAULT_VAL_SIZE = 5000
ACCOUNTINGS = (("e2e", "end to end"), ("trunk", "trunk only (original's accounting)"))


def parse_args(family, argv=None, description=None):
    schedule = SCHEDULES[family]
    choices = [n for n in networks.names() if paper.family_of(n) == family]
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", default=schedule["network"], choices=choices,
                   help="which variant (default %(default)s)")
    p.add_argument("--run-dir", default=None,
                   help="run folder with branchy.npz and main.npz (default results/<network>/run); "
                        "trained there first if branchy.npz is absent")
    p.add_argument("--results", default=None, help="output folder (default results/<network>)")
    p.add_argument("--data-dir", default=None,
                   help="dataset folder (default $BRANCHYNET_DATA, then the cache)")
    p.add_argument("--device", default="@numpy",
                   help="Chainer device for the sweep and, if a GPU (@cupy:0), GPU timing too; "
                        "CPU timing is done too unless --gpu-only (default %(default)s)")
    p.add_argument("--gpu-only", action="store_true",
                   help="with a GPU --device, time on the GPU only (on the GPU machine, where the "
                        "CPU rows would take long and are measured on a CPU machine instead)")
    p.add_argument("--stock-chainer", action="store_true",
                   help="stock Chainer kernels, not the fast CPU path")
    p.add_argument("--timing-samples", type=int, default=1000,
                   help="test samples timed at batch 1 (default %(default)s)")
    p.add_argument("--repeats", type=int, default=7,
                   help="timing repeats, the median is reported (default %(default)s: a shared "
                        "machine's stalls of tens of ms spoil some repeats' means)")
    p.add_argument("--warmup", type=int, default=20,
                   help="warm-up calls before each timing (default %(default)s)")
    p.add_argument("--throughput-batch", type=int, default=1000,
                   help="batch size of the batched runs (default %(default)s)")
    p.add_argument("--throughput-samples", type=int, default=0,
                   help="test samples of the batched runs (default: the whole test set)")
    p.add_argument("--test-subset", type=int, default=0,
                   help="use the first N test images only (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("training (only if the run folder has no branchy.npz)")
    g.add_argument("--main-epochs", type=int, default=schedule["main_epochs"],
                   help="pretraining epochs (default %(default)s, the paper's)")
    g.add_argument("--joint-epochs", type=int, default=schedule["joint_epochs"],
                   help="joint training epochs (default %(default)s, the paper's)")
    g.add_argument("--batchsize", type=int, default=schedule["batchsize"],
                   help="training batch size (default %(default)s, the paper's)")
    g.add_argument("--train-subset", type=int, default=0,
                   help="train on the first N images only (default: all)")
    g.add_argument("--val-size", type=int, default=None,
                   help="held-out validation images (default: the run's, else %d)" % DEFAULT_VAL_SIZE)
    g.add_argument("--seed", type=int, default=0, help="training seed (default %(default)s)")
    g.add_argument("--weights", default="slides",
                   help="loss-weight preset: slides (1..1, 0.3; the default) or code (all 1)")
    g.add_argument("--beta1", type=float, default=0.9,
                   help="Adam beta1 (default %(default)s, the code's; the paper's text says 0.99)")
    g.add_argument("--net-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="network factory argument, e.g. n=1 (ResNet blocks per stage); repeatable")
    args = p.parse_args(argv)
    if args.gpu_only and chainer.get_device(args.device).xp is numpy:
        p.error("--gpu-only needs a GPU --device such as @cupy:0, not %s" % args.device)
    args.family = family
    args.run_dir = args.run_dir or os.path.join(ROOT, "results", args.network, "run")
    args.results = args.results or os.path.join(ROOT, "results", args.network)
    args.progress = False if args.no_progress else None
    return args


# ------------------------------------------------------------------ weights
def training_args(run_dir):
    """The experiments/train.py options the run folder was last trained with (the last line of its
    command.txt, parsed by train.py's own parser), or None."""
    path = os.path.join(run_dir, "command.txt")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    if not lines:
        return None
    tokens = shlex.split(lines[-1])
    if len(tokens) < 2 or not tokens[1].endswith("train.py"):
        return None
    try:
        return train_script.parse_args(tokens[2:])
    except SystemExit:
        return None


def result_training_args(result):
    """training_args of the run folder a results.json (``result``) was measured on."""
    return training_args(os.path.join(ROOT, result["settings"]["run_dir"]))


def _run_val_size(run_dir):
    """The --val-size the run folder was trained with, or None."""
    trained = training_args(run_dir)
    return None if trained is None else trained.val_size


def ensure_weights(args, echo=print):
    """Trains the run folder with ``experiments/train.py`` if it has no branchy.npz (a stopped
    training resumes from its checkpoint); returns the validation size to use."""
    trained_with = _run_val_size(args.run_dir)
    if os.path.exists(os.path.join(args.run_dir, "branchy.npz")):
        val_size = args.val_size if args.val_size is not None else trained_with
        if val_size is None:
            val_size = DEFAULT_VAL_SIZE
        if trained_with is not None and val_size != trained_with:
            echo("warning: %s was trained with --val-size %d; a validation split of %d overlaps "
                 "its training images" % (args.run_dir, trained_with, val_size))
        return val_size
    val_size = args.val_size if args.val_size is not None else DEFAULT_VAL_SIZE
    echo("no trained weights in %s: training %s (%d + %d epochs, batch %d%s); this takes long"
         % (args.run_dir, args.network, args.main_epochs, args.joint_epochs, args.batchsize,
            ", %d training images" % args.train_subset if args.train_subset else ""))
    argv = ["--network", args.network, "--main-epochs", str(args.main_epochs),
            "--joint-epochs", str(args.joint_epochs), "--batchsize", str(args.batchsize),
            "--out", args.run_dir, "--val-size", str(val_size), "--seed", str(args.seed),
            "--weights", args.weights, "--beta1", str(args.beta1), "--device", args.device]
    if args.train_subset:
        argv += ["--train-subset", str(args.train_subset)]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.stock_chainer:
        argv.append("--stock-chainer")
    if args.no_progress:
        argv.append("--no-progress")
    for pair in args.net_arg:
        argv += ["--net-arg", pair]
    train_script.main(argv)
    return val_size


def load_nets(run_dir, device):
    """(branchy net, main net or None) from the run folder, on ``device``."""
    branchy = serialization.load(os.path.join(run_dir, "branchy.npz"))
    branchy.to_device(device)
    main_path = os.path.join(run_dir, "main.npz")
    main = None
    if os.path.exists(main_path):
        main = serialization.load(main_path)
        main.to_device(device)
    return branchy, main


# ------------------------------------------------------------------ measurements
def _batched_accuracy(net, x, t, batchsize=1000):
    labels = numpy.concatenate([net.predict_main(x[s:s + batchsize])
                                for s in range(0, len(x), batchsize)])
    return float((labels == t).mean())


def _check_configs(grid, test_rows, choices, val_choice, paper_t):
    """Threshold tuples to run for real: the paper's, the knees and the grid's two ends."""
    configs = [("paper T", tuple(paper_t))]
    for name, choice in choices:
        configs.append((name, tuple(test_rows[choice["knee"]]["thresholds"])))
    if val_choice is not None:
        configs.append(("knee (val)", tuple(val_choice["thresholds"])))
    configs += [("smallest T", tuple(grid[0])), ("largest T", tuple(grid[-1]))]
    seen, unique = {}, []
    for name, t in configs:
        if t in seen:
            unique[seen[t]] = (unique[seen[t]][0] + " = " + name, t)
        else:
            seen[t] = len(unique)
            unique.append((name, t))
    return unique


def _agreement(outputs, thresholds, labels, exits, t):
    """Real run against the analytic sweep on the same samples."""
    analytic = outputs.evaluate(thresholds)
    index = outputs.exit_index(numpy.asarray(thresholds, dtype=numpy.float64))[0]
    predicted = outputs.predictions[index, numpy.arange(outputs.num_samples)]
    counts = numpy.bincount(exits, minlength=outputs.num_exits).tolist()
    accuracy = float((labels == t).mean())
    return {"accuracy_real": accuracy, "accuracy_analytic": analytic["accuracy"],
            "exit_counts_real": counts, "exit_counts_analytic": analytic["exit_counts"],
            "mismatched_samples": int(((index != exits) | (predicted != labels)).sum()),
            "agree": counts == analytic["exit_counts"] and int((labels == t).sum()) == analytic["correct"]}


def measure_costs(dev, net, main, args, x_time, t_time, echo=print):
    """Per-exit timing at batch 1 and the two baselines (main.npz; branchy.npz's final exit)."""
    progress = args.progress
    result = {"device": dev}
    echo("[%s] timing every exit at batch 1 (%d samples x %d repeats)" % (dev, len(x_time), args.repeats))
    result["exits"] = timing.time_exits(net, x_time, args.repeats, args.warmup, progress,
                                        "%s per-exit" % dev)
    base = {}
    if main is not None:
        base["main"] = timing.time_baseline(main, x_time, args.repeats, args.warmup, progress,
                                            "%s baseline main.npz" % dev)
    base["branchy_final"] = timing.time_baseline(net, x_time, args.repeats, args.warmup, progress,
                                                 "%s final exit branchy.npz" % dev)
    for b in base.values():
        b["accuracy_timed_samples"] = float((b.pop("labels") == t_time).mean())
    result["baseline"] = base
    result["baseline_ms"] = (base.get("main") or base["branchy_final"])["ms"]
    return result


def measure_runs(result, net, main, args, x_time, t_time, x_tp, t_tp, outputs, configs, macs,
                 echo=print):
    """Real early-exit runs of ``configs`` at batch 1 (against the predictions) and batched
    (throughput against the baseline's and the MAC bound); added to ``result``."""
    dev, progress = result["device"], args.progress
    baseline_ms = result["baseline_ms"]
    time_outputs = outputs.subset(slice(0, len(x_time)))
    tp_outputs = outputs.subset(slice(0, len(x_tp)))
    seg, head = result["exits"]["segment_ms"], result["exits"]["head_ms"]
    checks, batched = [], []
    if main is not None:
        base_tp = timing.time_calls(main.predict_main, x_tp, args.throughput_batch, args.repeats,
                                    args.warmup, main.xp, progress, "%s batched baseline" % dev)
    else:
        base_tp = timing.time_calls(net.predict_main, x_tp, args.throughput_batch, args.repeats,
                                    args.warmup, net.xp, progress, "%s batched baseline" % dev)
    base_tp.pop("outputs")
    result["batched_baseline"] = base_tp
    for name, thresholds in configs:
        real = timing.time_early_exit(net, x_time, thresholds, 1, args.repeats, args.warmup,
                                      progress, "%s real run %s" % (dev, name))
        row = time_outputs.evaluate(thresholds)
        e2e, trunk = timing.predicted_ms(row["reach_fractions"], seg, head)
        check = {"name": name, "thresholds": list(thresholds), "samples": len(x_time),
                 "ms_measured": real["ms"], "ms_measured_detail": real["detail"],
                 "ms_predicted_e2e": e2e, "ms_predicted_trunk": trunk,
                 "measured_over_predicted": real["ms"] / e2e if e2e > 0 else None,
                 "gain_measured": baseline_ms / real["ms"]}
        check.update(_agreement(time_outputs, thresholds, real["labels"], real["exits"], t_time))
        checks.append(check)
        if not check["agree"]:
            echo("warning: [%s] real batch-1 run at T=%s differs from the analytic sweep in %d "
                 "samples" % (dev, list(thresholds), check["mismatched_samples"]))

        tp = timing.time_early_exit(net, x_tp, thresholds, args.throughput_batch, args.repeats,
                                    args.warmup, progress, "%s batched %s" % (dev, name))
        tp_row = tp_outputs.evaluate(thresholds)
        work = timing.macs_of(tp_row["reach_fractions"], macs)
        entry = {"name": name, "thresholds": list(thresholds), "samples": len(x_tp),
                 "batchsize": args.throughput_batch, "ms": tp["ms"], "per_second": tp["per_second"],
                 "speedup": base_tp["ms"] / tp["ms"], "macs_per_sample": work,
                 "mac_bound": timing.baseline_macs(macs) / work if work else None}
        entry.update(_agreement(tp_outputs, thresholds, tp["labels"], tp["exits"], t_tp))
        batched.append(entry)
        if not entry["agree"]:
            echo("warning: [%s] batched run at T=%s differs from the analytic sweep in %d samples"
                 % (dev, list(thresholds), entry["mismatched_samples"]))
    result["checks"] = checks
    result["batched"] = batched
    return result


def _select(test_rows, val_rows, dev, baseline_acc, val_baseline_acc):
    return {"test": sweep.choose(test_rows, "%s_ms_e2e" % dev, baseline_acc),
            "test_trunk": sweep.choose(test_rows, "%s_ms_trunk" % dev, baseline_acc),
            "val": (sweep.select_on_validation(val_rows, test_rows, "%s_ms_e2e" % dev,
                                               val_baseline_acc) if val_rows else None)}


def _add_times(rows, dev, measured, baseline_ms):
    seg, head = measured["exits"]["segment_ms"], measured["exits"]["head_ms"]
    for row in rows:
        e2e, trunk = timing.predicted_ms(row["reach_fractions"], seg, head)
        row["%s_ms_e2e" % dev], row["%s_ms_trunk" % dev] = e2e, trunk
        row["%s_gain_e2e" % dev] = baseline_ms / e2e if e2e > 0 else None
        row["%s_gain_trunk" % dev] = baseline_ms / trunk if trunk > 0 else None


def _table_rows(args, dev, measured, acc, test_rows, paper_row, selection):
    names = paper.DISPLAY_NAMES[args.family]
    base = measured["baseline"]
    baseline_ms = measured["baseline_ms"]
    check_ms = {tuple(c["thresholds"]): c["ms_measured"] for c in measured["checks"]}
    rows = []
    if "main" in base:
        rows.append({"device": dev, "network": names[0], "row": "baseline (main.npz)",
                     "accuracy": 100 * acc["main"], "ms_measured": base["main"]["ms"],
                     "paper": report.paper_entry(args.network, dev, False)})
    rows.append({"device": dev, "network": names[0], "row": "final exit (branchy.npz)",
                 "accuracy": 100 * acc["branchy_final"], "ms_measured": base["branchy_final"]["ms"],
                 "gain_measured": baseline_ms / base["branchy_final"]["ms"],
                 "paper": None if "main" in base else report.paper_entry(args.network, dev, False)})
    picks = [("paper T", paper_row), ("knee (test)", test_rows[selection[dev]["test"]["knee"]])]
    if selection[dev].get("val") is not None:
        picks.append(("knee (val)", selection[dev]["val"]["test_row"]))
    for label, row in picks:
        ms = check_ms.get(tuple(row["thresholds"]))
        rows.append({"device": dev, "network": names[1], "row": label,
                     "thresholds": row["thresholds"], "accuracy": 100 * row["accuracy"],
                     "ms_measured": ms, "ms_e2e": row["%s_ms_e2e" % dev],
                     "ms_trunk": row["%s_ms_trunk" % dev],
                     "gain_measured": baseline_ms / ms if ms else None,
                     "gain_e2e": row["%s_gain_e2e" % dev], "gain_trunk": row["%s_gain_trunk" % dev],
                     "exits": [100 * f for f in row["exit_fractions"]],
                     "paper": report.paper_entry(args.network, dev, True)})
    return rows


# ------------------------------------------------------------------ outputs
def _details_markdown(result):
    lines = []
    macs = result["macs"]
    ref = paper.MACS_M[result["family"]]
    lines += ["", "## MACs per sample (millions)", "",
              "| | " + " | ".join("exit %d" % (k + 1) for k in range(len(macs["segments"]))) + " |",
              "|---|" + "---|" * len(macs["segments"])]
    for part in ("segments", "heads"):
        lines.append("| %s (ours) | %s |" % (part, " | ".join("%.3f" % (v / 1e6) for v in macs[part])))
        lines.append("| %s (reference §2.7) | %s |" % (part, " | ".join("%g" % v for v in ref[part])))
    for dev, m in result["devices"].items():
        lines += ["", "## %s: per-exit time at batch 1 (ms per sample, median of %d)"
                  % (dev.upper(), m["exits"]["repeats"]), "",
                  "| exit | segment | head (incl. softmax, entropy, decision) |", "|---|---|---|"]
        for k, (s, h) in enumerate(zip(m["exits"]["segment_ms"], m["exits"]["head_ms"])):
            lines.append("| %d | %.4f | %.4f |" % (k + 1, s, h))
        lines += ["", "## %s: real early-exit runs at batch 1 (first %d test samples)"
                  % (dev.upper(), m["exits"]["samples"]), "",
                  "| config | T | ms measured | ms predicted e2e | ms trunk-only | measured/predicted "
                  "| acc real | acc analytic | exits real | exits analytic | agree |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in m["checks"]:
            lines.append("| %s | %s | %.4f | %.4f | %.4f | %.3f | %.4f | %.4f | %s | %s | %s |" % (
                c["name"], ", ".join("%g" % v for v in c["thresholds"]), c["ms_measured"],
                c["ms_predicted_e2e"], c["ms_predicted_trunk"], c["measured_over_predicted"] or 0,
                c["accuracy_real"], c["accuracy_analytic"], c["exit_counts_real"],
                c["exit_counts_analytic"], c["agree"]))
        b = m["batched_baseline"]
        lines += ["", "## %s: batched runs (%d samples, batch %d; baseline %.1f samples/s)"
                  % (dev.upper(), b["samples"], b["batchsize"], b["per_second"]), "",
                  "| config | T | samples/s | speed-up | MAC bound | agree |", "|---|---|---|---|---|---|"]
        for e in m["batched"]:
            lines.append("| %s | %s | %.1f | %.2fx | %.2fx | %s |" % (
                e["name"], ", ".join("%g" % v for v in e["thresholds"]), e["per_second"],
                e["speedup"], e["mac_bound"] or 0, e["agree"]))
    return "\n".join(lines) + "\n"


def _threads_text(threads):
    parts = ["%d CPUs" % threads["cpu_count"]]
    if threads.get("affinity") is not None:
        parts.append("%d usable" % threads["affinity"])
    parts += ["%s=%s" % (k, threads.get(k) or "unset")
              for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")]
    for key, what in (("openblas_threads", "OpenBLAS threads"),
                      ("fast_kernel_threads", "fast-kernel threads")):
        if threads.get(key) is not None:
            parts.append("%s %s" % (threads[key], what))
    for pool in threads.get("threadpoolctl") or []:
        parts.append("%s %s threads" % (pool.get("internal_api"), pool.get("num_threads")))
    return ", ".join(parts)


def write_outputs(result, args, test_outputs, log, echo=print):
    out = args.results
    os.makedirs(out, exist_ok=True)
    report.write_json(os.path.join(out, "results.json"), result)
    report.write_csv(os.path.join(out, "sweep.csv"), result["rows"])
    head = ["# %s on %s" % (result["network"], result["dataset"]), "",
            "Weights: `%s`. %d test samples, %d validation samples; timing on %d test samples, "
            "%d repeats. CPU: %s. %s" % (
                result["settings"]["run_dir"], result["settings"]["test_samples"],
                result["settings"]["val_samples"], result["settings"]["timing_samples"],
                result["settings"]["repeats"], result["environment"]["hardware"]["cpu"],
                ("GPU: %s." % result["environment"]["hardware"]["gpu"])
                if result["environment"]["hardware"]["gpu"] else ""), "",
            "CPU threads: %s." % _threads_text(result["environment"]["hardware"]["cpu_threads"]),
            "", report.LEGEND]
    text = "\n".join(head) + "\n" + report.markdown_table(result["table"]) + _details_markdown(result)
    report.write_text(os.path.join(out, "table.md"), text)

    rows = result["rows"]
    figures = []
    for dev, sel in result["selection"].items():
        m = result["devices"][dev]
        for key, label in ACCOUNTINGS:
            choice = sel["test"] if key == "e2e" else sel["test_trunk"]
            time_key = "%s_ms_%s" % (dev, key)
            pr = result["paper_row"]
            figures.append(plots.tradeoff(
                rows, time_key, choice["frontier"], choice["knee"], m["baseline_ms"],
                result["accuracy"]["main"] if result["accuracy"]["main"] is not None
                else result["accuracy"]["branchy_final"],
                os.path.join(out, "tradeoff_%s_%s.png" % (dev, key)),
                title="%s, %s, %s" % (result["network"], dev.upper(), label),
                xlabel="Runtime per sample, batch 1 (ms)",
                marks=[("paper T", pr[time_key], pr["accuracy"])]))
    figures.append(plots.training_curves(log, os.path.join(out, "training_curves.png"),
                                         title=result["network"]))
    figures.append(plots.entropy_distributions(test_outputs.entropies,
                                               os.path.join(out, "entropy.png"),
                                               title="%s: entropy per exit (test)" % result["network"]))
    if test_outputs.num_exits > 1:
        figures.append(plots.exit_fractions(test_outputs.entropies,
                                            sweep.THRESHOLD_LISTS[result["family"]],
                                            os.path.join(out, "exit_fractions.png"),
                                            title="%s: exits against T (test)" % result["network"]))
    echo("results in %s: results.json, sweep.csv, table.md, %s"
         % (out, ", ".join(os.path.basename(f) for f in figures)))


# ------------------------------------------------------------------ the experiment
def run(family, argv=None, description=None, echo=print):
    """Runs the whole experiment for one network family; returns the result dict."""
    args = parse_args(family, argv, description)
    chainer.global_config.branchynet_fast_cpu = not args.stock_chainer
    val_size = ensure_weights(args, echo)

    dataset = networks.dataset_of(args.network)
    # the split's own seed (0), as experiments/train.py uses: the same held-out images
    _, (x_val, t_val), (x_test, t_test) = load_split(dataset, val_size, args.data_dir)
    if args.test_subset:
        x_test, t_test = x_test[:args.test_subset], t_test[:args.test_subset]
    n_time = min(args.timing_samples, len(x_test))
    n_tp = min(args.throughput_samples or len(x_test), len(x_test))
    x_time, t_time = x_test[:n_time], t_test[:n_time]
    x_tp, t_tp = x_test[:n_tp], t_test[:n_tp]

    device = chainer.get_device(args.device)
    gpu = device if device.xp is not numpy else None
    branchy_cpu, main_cpu = load_nets(args.run_dir, "@numpy")
    branchy, main = load_nets(args.run_dir, device) if gpu is not None else (branchy_cpu, main_cpu)
    k = branchy.numexits()
    echo("%s: %d exits, %d test / %d validation samples, weights from %s"
         % (args.network, k, len(x_test), len(x_val), args.run_dir))

    test_out = sweep.ExitOutputs.from_net(branchy, x_test, t_test, progress=args.progress,
                                          desc="test set, every exit")
    val_out = (sweep.ExitOutputs.from_net(branchy, x_val, t_val, progress=args.progress,
                                          desc="validation set, every exit") if len(x_val) else None)
    acc = {"main": _batched_accuracy(main, x_test, t_test) if main is not None else None,
           "branchy_final": test_out.exit_accuracy()[-1],
           "per_exit": test_out.exit_accuracy()}
    base_key = "main" if main is not None else "branchy_final"
    val_base_acc = None
    if val_out is not None:
        val_base_acc = (_batched_accuracy(main, x_val, t_val) if main is not None
                        else val_out.exit_accuracy()[-1])

    grid = sweep.paper_grid(args.network, k)
    paper_t = paper.paper_thresholds(args.network)
    test_rows = test_out.sweep(grid)
    paper_row = test_out.evaluate(paper_t)
    paper_row["in_grid"] = tuple(paper_t) in set(grid)
    val_rows = val_out.sweep(grid) if val_out is not None else None

    macs = timing.count_macs(branchy_cpu, x_test[:1])

    devices = [("cpu", branchy_cpu, main_cpu)] + ([("gpu", branchy, main)] if gpu is not None else [])
    if args.gpu_only:
        devices = devices[1:]
    measured, selection = {}, {}
    for dev, net, main_net in devices:
        measured[dev] = measure_costs(dev, net, main_net, args, x_time, t_time, echo)
        for rows in (test_rows, [paper_row]) + ((val_rows,) if val_rows else ()):
            _add_times(rows, dev, measured[dev], measured[dev]["baseline_ms"])
        selection[dev] = _select(test_rows, val_rows, dev, acc[base_key], val_base_acc)
        configs = _check_configs(grid, test_rows,
                                 [("knee (test)", selection[dev]["test"]),
                                  ("knee (test, trunk-only)", selection[dev]["test_trunk"])],
                                 selection[dev]["val"], paper_t)
        measure_runs(measured[dev], net, main_net, args, x_time, t_time, x_tp, t_tp, test_out,
                     configs, macs, echo)

    table = []
    for dev in measured:
        table += _table_rows(args, dev, measured[dev], acc, test_rows, paper_row, selection)

    log = training.read_log(args.run_dir) if os.path.exists(os.path.join(args.run_dir, "log.jsonl")) else []
    result = {
        "network": args.network, "family": family, "dataset": dataset,
        "net_config": getattr(branchy, "config", None),
        "environment": report.environment(gpu=gpu),
        "settings": {"run_dir": os.path.relpath(args.run_dir, ROOT), "device": args.device,
                     "stock_chainer": args.stock_chainer, "gpu_only": args.gpu_only,
                     "fast_cpu": bool(chainer.config.branchynet_fast_cpu),
                     "test_samples": len(x_test), "val_samples": len(x_val), "val_size": val_size,
                     "timing_samples": n_time, "throughput_samples": n_tp,
                     "throughput_batch": args.throughput_batch, "repeats": args.repeats,
                     "warmup": args.warmup, "inc_amt": sweep.INC_AMT,
                     "threshold_list": list(sweep.THRESHOLD_LISTS[family]),
                     "knee_rule": "fastest frontier point with accuracy >= the baseline's "
                                  "(main.npz); else the most accurate frontier point"},
        "accuracy": acc, "val_baseline_accuracy": val_base_acc,
        "macs": macs, "macs_reference_M": paper.MACS_M[family],
        "paper_thresholds": list(paper_t), "paper_row": paper_row,
        "rows": test_rows, "val_rows": val_rows,
        "selection": selection, "devices": measured, "table": table,
    }
    write_outputs(result, args, test_out, log, echo)
    echo("")
    echo("Table I rows, %s: ours (CPU %s%s; batch 1, ms per sample) beside the paper's "
         "(details in %s)" % (args.network, result["environment"]["hardware"]["cpu"],
                              ", GPU %s" % result["environment"]["hardware"]["gpu"] if gpu else "",
                              os.path.join(args.results, "table.md")))
    echo(report.text_table(table))
    if any(not c["agree"] for m in measured.values() for c in m["checks"] + m["batched"]):
        echo("note: some real runs differ from the analytic sweep (see table.md)")
    return result
