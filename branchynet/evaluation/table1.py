"""Measuring a trained network: Table I's numbers and everything behind them.

``evaluate`` takes a network's trained nets (the branchy net and, if the run has one, the main
network saved after pretraining, ``main.npz``), its validation and test sets and a few
``Options``, and returns the ``results.Result`` written as ``results.json``:
accuracies, the paper's threshold sweep computed from one pass (``branchynet.evaluation.outputs``), every exit
timed at batch 1 on the CPU and, given GPU nets, the GPU (``branchynet.evaluation.timing``), a few threshold
configurations run for real (at batch 1 and batched, against the sweep and the MAC bound), the
frontier, the knee and the thresholds chosen on the validation split, and Table I's rows.
"""
import dataclasses

import numpy

import chainer

from branchynet.evaluation import costs, frontier, outputs, results, timing

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
        configs.append((name, tuple(test_rows[choice.knee].thresholds)))
    if val_choice is not None:
        configs.append(("knee (val)", tuple(test_rows[val_choice.knee].thresholds)))
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
    return dict(accuracy_real=accuracy, accuracy_analytic=analytic["accuracy"],
                exit_counts_real=counts, exit_counts_analytic=analytic["exit_counts"],
                mismatched_samples=int(((index != exits) | (predicted != labels)).sum()),
                agree=counts == analytic["exit_counts"] and int((labels == t).sum()) == analytic["correct"])


def measure_costs(dev, net, main, options, x_time, t_time, thresholds, echo=print):
    """(``ExitTimes``, ``Baselines``): per-exit timing at batch 1, each head deciding at
    ``thresholds`` (the paper's T), and the two baselines (main.npz; branchy.npz's final exit)."""
    progress = options.progress
    echo("[%s] timing every exit at batch 1 (%d samples x %d repeats)" % (dev, len(x_time), options.repeats))
    exits = timing.time_exits(net, x_time, options.repeats, options.warmup, progress,
                              "%s per-exit" % dev, thresholds=thresholds)
    exits = results.ExitTimes.from_json(exits)

    def baseline(model, what):
        run = timing.time_baseline(model, x_time, options.repeats, options.warmup, progress,
                                   "%s %s" % (dev, what))
        labels = run.pop("labels")
        accuracy = float((labels == t_time).mean())
        return results.BaselineRun.from_json(dict(run, accuracy_timed_samples=accuracy))

    main_run = baseline(main, "baseline main.npz") if main is not None else None
    return exits, results.Baselines(main=main_run, branchy_final=baseline(net, "final exit branchy.npz"))


def _check(dev, name, net, x_time, t_time, thresholds, exits, baseline_ms, time_outputs, options):
    """A real early-exit run at batch 1 against the sweep and the per-exit prediction."""
    real = timing.time_early_exit(net, x_time, thresholds, 1, options.repeats, options.warmup,
                                  options.progress, "%s real run %s" % (dev, name))
    row = time_outputs.evaluate(thresholds)
    e2e, trunk = costs.predicted_ms(row["reach_fractions"], exits.segment_ms, exits.head_ms)
    return results.Check.from_json(dict(
        name=name, thresholds=list(thresholds), samples=len(x_time), ms_measured=real["ms"],
        ms_measured_detail=real["detail"], ms_predicted_e2e=e2e, ms_predicted_trunk=trunk,
        measured_over_predicted=real["ms"] / e2e if e2e > 0 else None,
        gain_measured=baseline_ms / real["ms"],
        **_agreement(time_outputs, thresholds, real["labels"], real["exits"], t_time)))


def _batched(dev, name, net, x_tp, t_tp, thresholds, base_tp, tp_outputs, macs, options):
    """A real early-exit run batched: throughput against the baseline's and the MAC bound."""
    tp = timing.time_early_exit(net, x_tp, thresholds, options.throughput_batch, options.repeats,
                                options.warmup, options.progress, "%s batched %s" % (dev, name))
    tp_row = tp_outputs.evaluate(thresholds)
    work = costs.expected_cost(tp_row["exit_fractions"], costs.exit_costs(macs))
    return results.BatchedRun.from_json(dict(
        name=name, thresholds=list(thresholds), samples=len(x_tp),
        batchsize=options.throughput_batch, ms=tp["ms"], per_second=tp["per_second"],
        speedup=base_tp.ms / tp["ms"], macs_per_sample=work,
        mac_bound=costs.baseline_cost(macs) / work if work else None,
        **_agreement(tp_outputs, thresholds, tp["labels"], tp["exits"], t_tp)))


def measure_runs(dev, exits, baseline_ms, net, main, options, timed, outputs, configs, macs,
                 echo=print):
    """Real early-exit runs of ``configs`` at batch 1 (against the predictions) and batched
    (throughput against the baseline's and the MAC bound): ``(checks, batched baseline,
    batched runs)``; ``timed``: the batch-1 and the batched (x, t)."""
    (x_time, t_time), (x_tp, t_tp) = timed
    time_outputs = outputs.subset(slice(0, len(x_time)))
    tp_outputs = outputs.subset(slice(0, len(x_tp)))
    model = main if main is not None else net
    base = timing.time_calls(model.predict_main, x_tp, options.throughput_batch, options.repeats,
                             options.warmup, model.xp, options.progress, "%s batched baseline" % dev)
    base.pop("outputs")
    base_tp = results.TimedRun.from_json(base)
    checks, batched = [], []
    for name, thresholds in configs:
        check = _check(dev, name, net, x_time, t_time, thresholds, exits, baseline_ms,
                       time_outputs, options)
        checks.append(check)
        if not check.agree:
            echo("warning: [%s] real batch-1 run at T=%s differs from the analytic sweep in %d "
                 "samples" % (dev, list(thresholds), check.mismatched_samples))
        entry = _batched(dev, name, net, x_tp, t_tp, thresholds, base_tp, tp_outputs, macs,
                         options)
        batched.append(entry)
        if not entry.agree:
            echo("warning: [%s] batched run at T=%s differs from the analytic sweep in %d samples"
                 % (dev, list(thresholds), entry.mismatched_samples))
    return checks, base_tp, batched


def _choice(points, baseline_acc):
    """The paper's frontier and knee of the grid's settings, as indices into the grid."""
    front, at = frontier.paper_frontier(points, baseline_acc)
    return results.Choice(frontier=front.index.tolist(), knee=int(front.index[at]))


def _select(points, val_points, exits, baseline_acc, val_baseline_acc):
    """Frontier and knee on test by both accountings, and the knee chosen on validation (applied
    to test: the same grid); ``points``/``val_points``: the grid's settings on test and
    validation (``frontier.grid``)."""
    e2e, trunk = costs.exit_costs(exits.costs()), costs.exit_costs(exits.costs(heads=False))
    val = (_choice(val_points.with_costs(e2e), val_baseline_acc) if val_points is not None else None)
    return results.Selection(test=_choice(points.with_costs(e2e), baseline_acc),
                             test_trunk=_choice(points.with_costs(trunk), baseline_acc), val=val)


def row_times(rows, exits, baseline_ms):
    """The ms per sample of each row (``Row``) predicted from ``exits`` (``ExitTimes``), end to
    end and trunk-only, and the gains against ``baseline_ms``."""
    out = []
    for row in rows:
        e2e, trunk = costs.predicted_ms(row.reach_fractions, exits.segment_ms, exits.head_ms)
        out.append(results.RowTimes(ms_e2e=e2e, ms_trunk=trunk,
                                    gain_e2e=baseline_ms / e2e if e2e > 0 else None,
                                    gain_trunk=baseline_ms / trunk if trunk > 0 else None))
    return out


def _timing_thresholds(net, paper_t, grid):
    """The thresholds the heads decide at while each exit is timed: the paper's T, else the net's
    own, else the middle candidate (a decision costs the same whatever the threshold)."""
    if paper_t is not None:
        return paper_t
    own = getattr(net, "thresholds", None)
    return own if own is not None else grid[len(grid) // 2]


def _per_device(devices, options, timed, test_out, grid, tables, points, baselines, paper_t, macs,
                echo):
    """On each (name, branchy net, main net) of ``devices``: per-exit times, the rows' times, the
    frontiers and knees, and the real runs of the configurations they pick; {name: DeviceResult}."""
    (x_time, t_time), _ = timed
    test_rows, paper_row, val_rows = tables
    measured = {}
    for dev, net, main_net in devices:
        exits, base = measure_costs(dev, net, main_net, options, x_time, t_time,
                                    _timing_thresholds(net, paper_t, grid), echo)
        baseline_ms = base.reference().ms
        selection = _select(points[0], points[1], exits, *baselines)
        configs = _check_configs(grid, test_rows, [("knee (test)", selection.test),
                                                   ("knee (test, trunk-only)", selection.test_trunk)],
                                 selection.val, paper_t)
        checks, base_tp, batched = measure_runs(dev, exits, baseline_ms, net, main_net, options,
                                                timed, test_out, configs, macs, echo)
        measured[dev] = results.DeviceResult(
            device=dev, exits=exits, baselines=base, baseline_ms=baseline_ms,
            row_times=row_times(test_rows, exits, baseline_ms),
            val_times=row_times(val_rows, exits, baseline_ms) if val_rows is not None else None,
            paper_times=row_times([paper_row], exits, baseline_ms)[0] if paper_row else None,
            selection=selection, checks=checks, batched_baseline=base_tp, batched=batched)
    return measured


def _accuracies(main, test_out, val_out, test, val):
    """Test accuracies (main network, last exit, every exit) and the baseline's on validation."""
    acc = results.Accuracy(main=_batched_accuracy(main, *test) if main is not None else None,
                           branchy_final=test_out.exit_accuracy()[-1], per_exit=test_out.exit_accuracy())
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
    """Measures a network; returns ``(result, test_outputs)``: the ``results.Result`` (written as
    ``results.json``) and the test set's per-exit outputs (``outputs.ExitOutputs``, for figures).
    ``network``, ``family``, ``dataset``: the registered name and its paper family and dataset;
    ``cpu_nets`` and ``gpu_nets`` (or None): (branchy net, main net or None) on the CPU and a GPU;
    ``val``, ``test``: (x, t) arrays (the validation set may be empty); ``settings``: what the
    caller records in ``result.settings`` (``results.Settings`` fields: run folder, device flags,
    validation size); ``environment``: where and how it ran (``branchynet.reporting.environment``);
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

    macs = costs.count_macs(branchy_cpu, x_test[:1])
    grid, candidates = _candidates(family, grid, k, val_out if val_out is not None else test_out,
                                  macs)
    paper_t = frontier.paper_thresholds(family) if family is not None else None
    test_rows = [results.Row.from_json(r) for r in test_out.sweep(grid)]
    paper_row = results.Row.from_json(test_out.evaluate(paper_t)) if paper_t is not None else None
    val_rows = [results.Row.from_json(r) for r in val_out.sweep(grid)] if val_out is not None else None
    points = frontier.grid(test_out, grid, [1.0] * k)  # priced per device in _select
    val_points = frontier.grid(val_out, grid, [1.0] * k) if val_out is not None else None

    devices = [] if gpu_nets is not None and options.gpu_only else [("cpu", branchy_cpu, main_cpu)]
    if gpu_nets is not None:
        devices.append(("gpu", branchy, main))
    measured = _per_device(devices, options, timed, test_out, grid, (test_rows, paper_row, val_rows),
                           (points, val_points), (acc.baseline(), val_base_acc), paper_t, macs, echo)
    graphs = bool(chainer.config.branchynet_cuda_graphs) if gpu_nets is not None else None
    recorded = dict(settings or {}, fast_cpu=bool(chainer.config.branchynet_fast_cpu), cuda_graphs=graphs,
                    test_samples=len(x_test), val_samples=len(x_val), timing_samples=n_time,
                    throughput_samples=n_tp, **_options_record(options, family, candidates))
    result = results.Result(
        network=network, family=family, dataset=dataset,
        net_config=getattr(branchy, "config", None),
        environment=results.Environment.from_json(environment) if environment is not None else None,
        settings=results.Settings.from_json(recorded), accuracy=acc, val_baseline_accuracy=val_base_acc,
        macs=results.Macs.from_json(macs), paper_thresholds=list(paper_t) if paper_t is not None else None,
        paper_row=paper_row, paper_row_in_grid=tuple(paper_t) in set(grid) if paper_t is not None else None,
        rows=test_rows, val_rows=val_rows, devices=measured)
    return result, test_out

