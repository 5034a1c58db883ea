"""Measuring a trained network: Table I's numbers and everything behind them.

``evaluate`` takes a network's trained nets (the branchy net and, if the run has one, the main
network saved after pretraining, ``main.npz``), its validation and test sets and a few
``Options``, and returns the result dict of ``results.json``:
accuracies, the paper's threshold sweep computed from one pass (``branchynet.evaluation.outputs``), every exit
timed at batch 1 on the CPU and, given GPU nets, the GPU (``branchynet.evaluation.timing``), a few threshold
configurations run for real (at batch 1 and batched, against the sweep and the MAC bound), the
frontier, the knee and the thresholds chosen on the validation split, and Table I's rows.
"""
import dataclasses

import numpy

import chainer

from branchynet.evaluation import costs, frontier, outputs, timing

MAX_CANDIDATES = 300  # settings swept for a net with no paper grid
PAPER_GRID = "paper grid"
KNEE_RULE = ("fastest frontier point with accuracy >= the baseline's (main.npz); else the most "
             "accurate frontier point")


@dataclasses.dataclass
class Options:
    """How much to measure (the experiment scripts' flags of the same names)."""
    timing_samples: int = 1000  # test samples timed at batch 1
    repeats: int = 7  # timing repeats; the median is reported
    warmup: int = 20  # warm-up calls before each timing
    throughput_batch: int = 1000  # batch size of the batched runs
    throughput_samples: int = 0  # test samples of the batched runs (0: the whole test set)
    gpu_only: bool = False  # with GPU nets, time on the GPU only
    progress: bool = None  # progress bars (None: where the output is a terminal)


def _batched_accuracy(net, x, t, batchsize=1000):
    labels = numpy.concatenate([net.predict_main(x[s:s + batchsize])
                                for s in range(0, len(x), batchsize)])
    return float((labels == t).mean())


def _check_configs(grid, test_rows, choices, val_choice, paper_t):
    """Threshold tuples to run for real: the paper's, the knees and the grid's two ends."""
    configs = [("paper T", tuple(paper_t))] if paper_t is not None else []
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


def measure_costs(dev, net, main, options, x_time, t_time, thresholds, echo=print):
    """Per-exit timing at batch 1, each head deciding at ``thresholds`` (the paper's T), and the
    two baselines (main.npz; branchy.npz's final exit)."""
    progress = options.progress
    result = {"device": dev}
    echo("[%s] timing every exit at batch 1 (%d samples x %d repeats)" % (dev, len(x_time), options.repeats))
    result["exits"] = timing.time_exits(net, x_time, options.repeats, options.warmup, progress,
                                        "%s per-exit" % dev, thresholds=thresholds)
    base = {}
    if main is not None:
        base["main"] = timing.time_baseline(main, x_time, options.repeats, options.warmup, progress,
                                            "%s baseline main.npz" % dev)
    base["branchy_final"] = timing.time_baseline(net, x_time, options.repeats, options.warmup, progress,
                                                 "%s final exit branchy.npz" % dev)
    for b in base.values():
        b["accuracy_timed_samples"] = float((b.pop("labels") == t_time).mean())
    result["baseline"] = base
    result["baseline_ms"] = (base.get("main") or base["branchy_final"])["ms"]
    return result


def measure_runs(result, net, main, options, x_time, t_time, x_tp, t_tp, outputs, configs, macs,
                 echo=print):
    """Real early-exit runs of ``configs`` at batch 1 (against the predictions) and batched
    (throughput against the baseline's and the MAC bound); added to ``result``."""
    dev, progress = result["device"], options.progress
    baseline_ms = result["baseline_ms"]
    time_outputs = outputs.subset(slice(0, len(x_time)))
    tp_outputs = outputs.subset(slice(0, len(x_tp)))
    seg, head = result["exits"]["segment_ms"], result["exits"]["head_ms"]
    checks, batched = [], []
    if main is not None:
        base_tp = timing.time_calls(main.predict_main, x_tp, options.throughput_batch, options.repeats,
                                    options.warmup, main.xp, progress, "%s batched baseline" % dev)
    else:
        base_tp = timing.time_calls(net.predict_main, x_tp, options.throughput_batch, options.repeats,
                                    options.warmup, net.xp, progress, "%s batched baseline" % dev)
    base_tp.pop("outputs")
    result["batched_baseline"] = base_tp
    for name, thresholds in configs:
        real = timing.time_early_exit(net, x_time, thresholds, 1, options.repeats, options.warmup,
                                      progress, "%s real run %s" % (dev, name))
        row = time_outputs.evaluate(thresholds)
        e2e, trunk = costs.predicted_ms(row["reach_fractions"], seg, head)
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

        tp = timing.time_early_exit(net, x_tp, thresholds, options.throughput_batch, options.repeats,
                                    options.warmup, progress, "%s batched %s" % (dev, name))
        tp_row = tp_outputs.evaluate(thresholds)
        work = costs.expected_cost(tp_row["exit_fractions"], costs.exit_costs(macs))
        entry = {"name": name, "thresholds": list(thresholds), "samples": len(x_tp),
                 "batchsize": options.throughput_batch, "ms": tp["ms"], "per_second": tp["per_second"],
                 "speedup": base_tp["ms"] / tp["ms"], "macs_per_sample": work,
                 "mac_bound": costs.baseline_cost(macs) / work if work else None}
        entry.update(_agreement(tp_outputs, thresholds, tp["labels"], tp["exits"], t_tp))
        batched.append(entry)
        if not entry["agree"]:
            echo("warning: [%s] batched run at T=%s differs from the analytic sweep in %d samples"
                 % (dev, list(thresholds), entry["mismatched_samples"]))
    result["checks"] = checks
    result["batched"] = batched
    return result


def _choice(points, time_key, baseline_acc):
    """The paper's frontier and knee of the grid's settings, as indices into the grid."""
    front, at = frontier.paper_frontier(points, baseline_acc)
    return {"time_key": time_key, "frontier": front.index.tolist(), "knee": int(front.index[at])}


def _select(points, val_points, val_rows, test_rows, dev, measured, baseline_acc, val_baseline_acc):
    """Frontier and knee on test by both accountings, and the knee chosen on validation applied to
    test; ``points``/``val_points``: the grid's settings on test and validation (``frontier.grid``)."""
    seg, head = measured["exits"]["segment_ms"], measured["exits"]["head_ms"]
    e2e = costs.exit_costs({"segment_ms": seg, "head_ms": head})
    trunk = costs.exit_costs({"segment_ms": seg, "head_ms": [0.0] * len(head)})
    chosen = {"test": _choice(points.with_costs(e2e), "%s_ms_e2e" % dev, baseline_acc),
              "test_trunk": _choice(points.with_costs(trunk), "%s_ms_trunk" % dev, baseline_acc),
              "val": None}
    if val_points is not None:
        val = _choice(val_points.with_costs(e2e), "%s_ms_e2e" % dev, val_baseline_acc)
        val.update(val_row=val_rows[val["knee"]], test_row=test_rows[val["knee"]],
                   thresholds=val_rows[val["knee"]]["thresholds"])
        chosen["val"] = val
    return chosen


def _add_times(rows, dev, measured, baseline_ms):
    seg, head = measured["exits"]["segment_ms"], measured["exits"]["head_ms"]
    for row in rows:
        e2e, trunk = costs.predicted_ms(row["reach_fractions"], seg, head)
        row["%s_ms_e2e" % dev], row["%s_ms_trunk" % dev] = e2e, trunk
        row["%s_gain_e2e" % dev] = baseline_ms / e2e if e2e > 0 else None
        row["%s_gain_trunk" % dev] = baseline_ms / trunk if trunk > 0 else None


def _timing_thresholds(net, paper_t, grid):
    """The thresholds the heads decide at while each exit is timed: the paper's T, else the net's
    own, else the middle candidate (a decision costs the same whatever the threshold)."""
    if paper_t is not None:
        return paper_t
    own = getattr(net, "thresholds", None)
    return own if own is not None else grid[len(grid) // 2]


def _per_device(devices, options, timed, test_out, grid, tables, points, baselines, paper_t, macs,
                echo):
    """On each (name, branchy net, main net) of ``devices``: per-exit times, the sweep rows' times,
    the frontiers and knees, and the real runs of the configurations they pick."""
    (x_time, t_time), (x_tp, t_tp) = timed
    test_rows, paper_row, val_rows = tables
    measured, selection = {}, {}
    for dev, net, main_net in devices:
        measured[dev] = measure_costs(dev, net, main_net, options, x_time, t_time,
                                      _timing_thresholds(net, paper_t, grid), echo)
        for rows in (test_rows, [paper_row] if paper_row else []) + ((val_rows,) if val_rows else ()):
            _add_times(rows, dev, measured[dev], measured[dev]["baseline_ms"])
        selection[dev] = _select(points[0], points[1], val_rows, test_rows, dev, measured[dev],
                                 *baselines)
        configs = _check_configs(grid, test_rows,
                                 [("knee (test)", selection[dev]["test"]),
                                  ("knee (test, trunk-only)", selection[dev]["test_trunk"])],
                                 selection[dev]["val"], paper_t)
        measure_runs(measured[dev], net, main_net, options, x_time, t_time, x_tp, t_tp, test_out,
                     configs, macs, echo)
    return measured, selection


def _accuracies(main, test_out, val_out, test, val):
    """Test accuracies (main network, last exit, every exit) and the baseline's on validation."""
    acc = {"main": _batched_accuracy(main, *test) if main is not None else None,
           "branchy_final": test_out.exit_accuracy()[-1],
           "per_exit": test_out.exit_accuracy()}
    val_base_acc = None
    if val_out is not None:
        val_base_acc = (_batched_accuracy(main, *val) if main is not None
                        else val_out.exit_accuracy()[-1])
    return acc, val_base_acc


def _options_record(options, family, candidates):
    record = dict(throughput_batch=options.throughput_batch, repeats=options.repeats,
                  warmup=options.warmup, inc_amt=frontier.INC_AMT)
    if candidates == PAPER_GRID:
        record["threshold_list"] = list(frontier.THRESHOLD_LISTS[family])
    else:
        record["candidates"] = candidates
    record["knee_rule"] = KNEE_RULE
    return record


def exact_candidates(cache, exit_costs, most=MAX_CANDIDATES):
    """Threshold settings to sweep for a net with no paper grid: the exact entropy frontier of
    ``cache`` (the validation split's outputs) under ``exit_costs``, at most ``most`` settings
    spread evenly along it."""
    front = frontier.exact_frontier(cache, "entropy", exit_costs)
    keep = numpy.unique(numpy.linspace(0, len(front) - 1, min(most, len(front))).round().astype(int))
    return [tuple(float(v) for v in front.thresholds[i]) for i in keep]


def _candidates(family, grid, k, fit_out, macs):
    """(threshold settings to sweep, what they are): the given grid, else the paper's, else the
    exact frontier on ``fit_out``."""
    if grid is not None:
        return [tuple(float(v) for v in t) for t in grid], "given grid"
    if family is not None:
        return frontier.paper_grid(family, k), PAPER_GRID
    return (exact_candidates(fit_out, costs.exit_costs(macs)),
            "exact entropy frontier (validation split, MACs), at most %d settings" % MAX_CANDIDATES)


def evaluate(network, family, dataset, cpu_nets, val, test, options, gpu_nets=None,
             settings=None, environment=None, grid=None, echo=print):
    """Measures a network; returns ``(result, test_outputs)``: the result dict (the schema of
    ``results.json``) and the test set's per-exit outputs (``outputs.ExitOutputs``, for figures).
    ``network``, ``family``, ``dataset``: the registered name and its paper family and dataset;
    ``cpu_nets`` and ``gpu_nets`` (or None): (branchy net, main net or None) on the CPU and a GPU;
    ``val``, ``test``: (x, t) arrays (the validation set may be empty); ``settings``: what the
    caller records first in ``result["settings"]`` (run folder, device flags, validation size);
    ``environment``: where and how it ran (``branchynet.reporting.environment``), recorded as is;
    ``grid``: the threshold settings to sweep (default: the paper's grid of ``family``; for a net
    of no paper family (``family`` None) the exact frontier on validation, and no paper T row).
    """
    (x_val, t_val), (x_test, t_test) = val, test
    n_time = min(options.timing_samples, len(x_test))
    n_tp = min(options.throughput_samples or len(x_test), len(x_test))
    timed = ((x_test[:n_time], t_test[:n_time]), (x_test[:n_tp], t_test[:n_tp]))
    branchy_cpu, main_cpu = cpu_nets
    branchy, main = gpu_nets if gpu_nets is not None else cpu_nets
    k = branchy.numexits()
    test_out = outputs.ExitOutputs.from_net(branchy, x_test, t_test, progress=options.progress,
                                            desc="test set, every exit")
    val_out = (outputs.ExitOutputs.from_net(branchy, x_val, t_val, progress=options.progress,
                                            desc="validation set, every exit") if len(x_val) else None)
    acc, val_base_acc = _accuracies(main, test_out, val_out, test, val)
    base_key = "main" if main is not None else "branchy_final"

    macs = costs.count_macs(branchy_cpu, x_test[:1])
    grid, candidates = _candidates(family, grid, k, val_out if val_out is not None else test_out,
                                  macs)
    paper_t = frontier.paper_thresholds(family) if family is not None else None
    test_rows = test_out.sweep(grid)
    paper_row = None
    if paper_t is not None:
        paper_row = test_out.evaluate(paper_t)
        paper_row["in_grid"] = tuple(paper_t) in set(grid)
    val_rows = val_out.sweep(grid) if val_out is not None else None
    points = frontier.grid(test_out, grid, [1.0] * k)  # priced per device in _select
    val_points = frontier.grid(val_out, grid, [1.0] * k) if val_out is not None else None

    devices = [] if gpu_nets is not None and options.gpu_only else [("cpu", branchy_cpu, main_cpu)]
    if gpu_nets is not None:
        devices.append(("gpu", branchy, main))
    measured, selection = _per_device(devices, options, timed, test_out,
                                      grid, (test_rows, paper_row, val_rows), (points, val_points),
                                      (acc[base_key], val_base_acc), paper_t, macs, echo)
    result = {
        "network": network, "family": family, "dataset": dataset,
        "net_config": getattr(branchy, "config", None),
        "environment": environment,
        "settings": dict(settings or {}, fast_cpu=bool(chainer.config.branchynet_fast_cpu),
                         test_samples=len(x_test), val_samples=len(x_val),
                         timing_samples=n_time, throughput_samples=n_tp,
                         **_options_record(options, family, candidates)),
        "accuracy": acc, "val_baseline_accuracy": val_base_acc,
        "macs": macs,
        "paper_thresholds": list(paper_t) if paper_t is not None else None, "paper_row": paper_row,
        "rows": test_rows, "val_rows": val_rows,
        "selection": selection, "devices": measured,
    }
    return result, test_out
