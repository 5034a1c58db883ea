"""Groups of training runs that differ in one setting (fixed against sample-dependent loss weights,
say), every run measured alike, summarised per group and compared with the first group.

Per run (``measure_run``), on its validation split and on the test set: each exit's accuracy
alone; the entropy rule at fixed thresholds (the paper's); the exact entropy frontier of the test
set (``frontier.exact_frontier``: the best any threshold setting does on the test images, found
alike for every run, so it describes the trained nets, not a selection rule), its accuracy within
fractions of the baseline's MACs and its least cost at the baseline's test accuracy; and the
library's protocol, thresholds fitted on the validation split and applied unchanged to the test
set (``selection.fastest_within`` at the baseline's validation accuracy, ``metrics.at_budgets``).
Costs are MACs per sample with every head on the way (``costs``), as fractions of the baseline's
(the main network alone).

``compare`` sets each metric of a group against the first group's: the difference of the means
beside the per-seed spread. A difference is *beyond the seed spread* when it exceeds twice its
standard error sqrt(s_a^2 / n_a + s_b^2 / n_b) (s: the groups' sample standard deviations) and the
two groups' ranges do not overlap (with three runs a side, the chance of that under no effect is
2 in 20); it then helps or hurts according to the metric's direction. A group of fewer than two
runs has no spread, and gets no verdict.
"""
import math

import numpy

from branchynet.evaluation import costs, frontier, metrics, outputs, selection

MEASURE = "entropy"
COST_FRACTIONS = (0.2, 0.21, 0.22, 0.25, 0.3)  # B-LeNet: exit 1 alone costs 19.3 %
NO_DIFFERENCE = "no difference beyond the seed spread"


def baseline_accuracy(main, x, t, batchsize=1000):
    """Accuracy of the main network alone (its last exit) on (x, t)."""
    labels = numpy.concatenate([main.predict_main(x[s:s + batchsize])
                                for s in range(0, len(x), batchsize)])
    return float((labels == t).mean())


def _row(cache, thresholds, exit_cost, base_cost):
    r = cache.evaluate(thresholds, MEASURE, exit_cost)
    return {"accuracy": r["accuracy"], "cost": r["cost"] / base_cost,
            "exit_fractions": r["exit_fractions"]}


def _test_frontier(front, base_cost, base_test, fractions):
    """The exact test frontier (cheapest first), its best accuracy within each fraction of the
    baseline's cost, and its cheapest point at the baseline's test accuracy (None: none)."""
    at = []
    for f in fractions:
        try:
            i = selection.most_accurate_within(front, f * base_cost)
            at.append({"fraction": f, "accuracy": float(front.accuracies[i]),
                       "cost": float(front.costs[i] / base_cost)})
        except selection.Infeasible:
            at.append({"fraction": f, "accuracy": None, "cost": None})
    try:
        i = selection.fastest_within(front, base_test)
        reach = {"accuracy": float(front.accuracies[i]), "cost": float(front.costs[i] / base_cost)}
    except selection.Infeasible:
        reach = None
    return {"size": len(front), "cost": (front.costs / base_cost).tolist(),
            "accuracy": front.accuracies.tolist(), "at_costs": at, "at_baseline": reach}


def _val_fitted(front, test, base_cost, base_val, fractions):
    """Thresholds fitted on the validation frontier ``front``, applied to ``test``: the cheapest
    at the baseline's validation accuracy (None: none reaches it) and the most accurate within
    each fraction of the baseline's cost."""
    at = [{"fraction": b["fraction"], "accuracy": b["row"] and b["row"]["accuracy"],
           "cost": b["row"] and b["row"]["cost"] / base_cost}
          for b in metrics.at_budgets(front, test, base_cost, fractions)]
    try:
        i = selection.fastest_within(front, base_val)
    except selection.Infeasible:
        return {"at_costs": at, "at_baseline": None}
    row = _row(test, front.thresholds[i], front.exit_costs, base_cost)
    return {"at_costs": at, "at_baseline": dict(
        row, thresholds=front.thresholds[i].tolist(), val_accuracy=float(front.accuracies[i]),
        val_cost=float(front.costs[i] / base_cost))}


def measure_run(net, main, val, test, thresholds, fractions=COST_FRACTIONS):
    """The numbers of one run, a JSON-able dict: ``net`` its jointly trained net, ``main`` its
    baseline, ``val`` and ``test`` (x, t) arrays, ``thresholds`` a fixed setting (one per non-final
    exit), ``fractions`` the costs (of the baseline's MACs) where accuracies are matched."""
    caches = {name: outputs.ExitOutputs.from_net(net, x, t, progress=False)
              for name, (x, t) in (("val", val), ("test", test))}
    base = {name: baseline_accuracy(main, x, t) for name, (x, t) in (("val", val), ("test", test))}
    macs = costs.count_macs(net, test[0][:1])
    exit_cost, base_cost = costs.exit_costs(macs), costs.baseline_cost(macs)
    fronts = {name: frontier.exact_frontier(c, MEASURE, exit_cost) for name, c in caches.items()}
    return {"n": {name: c.num_samples for name, c in caches.items()}, "macs": macs,
            "exit_cost": (exit_cost / base_cost).tolist(), "baseline": base,
            "exit_accuracy": {name: c.exit_accuracy() for name, c in caches.items()},
            "at_thresholds": dict({name: _row(c, thresholds, exit_cost, base_cost)
                                   for name, c in caches.items()}, thresholds=list(thresholds)),
            "test_frontier": _test_frontier(fronts["test"], base_cost, base["test"], fractions),
            "val_fitted": _val_fitted(fronts["val"], caches["test"], base_cost, base["val"],
                                      fractions)}


def metric_values(run):
    """The compared metrics of a measured run, in order: (key, label, direction, value);
    direction +1 where higher is better, -1 where lower is, 0 where neither (a fixed threshold
    trades accuracy for cost); accuracies and costs are fractions, None where there is none."""
    out = [("test_exit%d_accuracy" % (k + 1), "test accuracy, exit %d alone" % (k + 1), 1, a)
           for k, a in enumerate(run["exit_accuracy"]["test"])]
    at = run["at_thresholds"]
    t = ", ".join("%g" % v for v in at["thresholds"])
    out += [("at_thresholds_accuracy", "test accuracy at T = %s" % t, 0, at["test"]["accuracy"]),
            ("at_thresholds_cost", "test cost at T = %s" % t, 0, at["test"]["cost"])]
    tf, vf = run["test_frontier"], run["val_fitted"]
    out += [("frontier_accuracy_at_%g" % p["fraction"],
             "test frontier: accuracy within %g %% of the cost" % (100 * p["fraction"]), 1,
             p["accuracy"]) for p in tf["at_costs"]]
    out.append(("frontier_cost_at_baseline", "test frontier: cost at the baseline's accuracy", -1,
                tf["at_baseline"] and tf["at_baseline"]["cost"]))
    out.append(("val_fitted_cost_at_baseline",
                "val-fitted at the baseline's val accuracy: test cost", -1,
                vf["at_baseline"] and vf["at_baseline"]["cost"]))
    out.append(("val_fitted_accuracy_at_baseline",
                "val-fitted at the baseline's val accuracy: test accuracy", 0,
                vf["at_baseline"] and vf["at_baseline"]["accuracy"]))
    out += [("val_fitted_accuracy_at_%g" % p["fraction"],
             "val-fitted within %g %% of the cost: test accuracy" % (100 * p["fraction"]), 1,
             p["accuracy"]) for p in vf["at_costs"]]
    return out


def verdict(reference, other, direction):
    """One metric of two groups (lists of per-run values, None where a run has none): their means
    and spreads, the difference of means, its standard error, whether the ranges overlap, and
    the verdict (see the module docstring)."""
    a, b = ([v for v in values if v is not None] for values in (reference, other))
    out = {"reference": metrics.mean_spread(reference), "group": metrics.mean_spread(other),
           "difference": None, "se": None, "overlap": None}
    if len(a) < len(reference) or len(b) < len(other):
        return dict(out, verdict="undetermined: %d of %d runs have no value"
                    % (len(reference) + len(other) - len(a) - len(b), len(reference) + len(other)))
    diff = float(numpy.mean(b) - numpy.mean(a))
    out.update(difference=diff)
    if len(a) < 2 or len(b) < 2:
        return dict(out, verdict="undetermined: a group of one run has no spread")
    se = math.sqrt(numpy.var(a, ddof=1) / len(a) + numpy.var(b, ddof=1) / len(b))
    overlap = bool(max(a) >= min(b) and max(b) >= min(a))
    out.update(se=se, overlap=overlap)
    if overlap or abs(diff) <= 2 * se:
        return dict(out, verdict=NO_DIFFERENCE)
    if direction == 0:
        return dict(out, verdict="higher" if diff > 0 else "lower")
    return dict(out, verdict="helps" if diff * direction > 0 else "hurts")


def conclusion(rows, name, reference):
    """One sentence from the verdicts of a comparison's rows (``compare``)."""
    judged = [r for r in rows if r["direction"] != 0]
    helps = [r["label"] for r in judged if r["verdict"] == "helps"]
    hurts = [r["label"] for r in judged if r["verdict"] == "hurts"]
    open_ = [r["label"] for r in judged if r["verdict"].startswith("undetermined")]
    if helps or hurts:
        parts = (["helps (%s)" % "; ".join(helps)] if helps else []) + \
                (["hurts (%s)" % "; ".join(hurts)] if hurts else [])
        word = "mixed: " if helps and hurts else ""
        return "%s against %s: %s%s; %s on the other %d of %d metrics with a direction." % (
            name, reference, word, ", ".join(parts), NO_DIFFERENCE,
            len(judged) - len(helps) - len(hurts) - len(open_), len(judged))
    if len(open_) == len(judged):
        return "%s against %s: undetermined on every metric (no seed spread, or runs without a " \
               "value)." % (name, reference)
    return "%s against %s: %s on any of the %d metrics with a direction%s." % (
        name, reference, NO_DIFFERENCE, len(judged) - len(open_),
        "" if not open_ else " (%d undetermined)" % len(open_))


def compare(groups, names):
    """Each group after the first against the first: ``groups`` maps a name to its measured runs;
    returns one comparison per group (rows per metric, and the conclusion)."""
    reference = names[0]
    spec = metric_values(groups[reference][0])
    values = {n: [[v for *_, v in metric_values(r)] for r in groups[n]] for n in names}
    out = []
    for name in names[1:]:
        rows = [dict(verdict([run[i] for run in values[reference]], [run[i] for run in values[name]],
                             direction), key=key, label=label, direction=direction)
                for i, (key, label, direction, _) in enumerate(spec)]
        out.append({"group": name, "reference": reference, "rows": rows,
                    "conclusion": conclusion(rows, name, reference)})
    return out


def summary(groups):
    """Mean and spread (``metrics.mean_spread``) of every metric per group, of the baseline's
    accuracies and of each exit's validation accuracy."""
    out = {}
    for name, runs in groups.items():
        values = [metric_values(r) for r in runs]
        per = {key: metrics.mean_spread([v[i][3] for v in values])
               for i, (key, *_) in enumerate(values[0])}
        for split in ("test", "val"):
            per["baseline_" + split] = metrics.mean_spread([r["baseline"][split] for r in runs])
        for k in range(len(runs[0]["exit_accuracy"]["val"])):
            per["val_exit%d_accuracy" % (k + 1)] = metrics.mean_spread(
                [r["exit_accuracy"]["val"][k] for r in runs])
        out[name] = per
    return out


def curves(groups):
    """Each group's test frontier, mean and sample standard deviation over its runs, on every cost
    (a fraction of the baseline's) where some run's frontier steps, and the last exit's: a run's
    accuracy at cost c is its frontier's best within c (None below its cheapest point)."""
    runs = [r for rs in groups.values() for r in rs]
    grid = numpy.unique(numpy.concatenate([r["test_frontier"]["cost"] for r in runs]
                                          + [[max(r["exit_cost"][-1] for r in runs)]]))
    out = {"cost": grid.tolist(), "groups": {}}
    for name, rs in groups.items():
        acc = numpy.array([_step(r["test_frontier"], grid) for r in rs])
        std = acc.std(axis=0, ddof=1) if len(rs) > 1 else numpy.zeros(len(grid))
        out["groups"][name] = {"mean": acc.mean(axis=0).tolist(), "std": std.tolist()}
    return out


def _step(front, grid):
    cost, acc = numpy.asarray(front["cost"]), numpy.asarray(front["accuracy"])
    i = numpy.searchsorted(cost, grid * (1 + 1e-12), side="right") - 1
    return numpy.where(i >= 0, acc[numpy.maximum(i, 0)], numpy.nan)


def describe_run(info, log, measured):
    """What a run was (from its run.json ``info`` and log.jsonl entries ``log``) and whether the
    validation accuracies measured now (``measured``, ``measure_run``'s) are those its training
    logged after its last epoch (the same weights and split)."""
    epochs = {stage: sum(1 for e in log if e["stage"] == stage) for stage in ("main", "joint")}
    logged = log[-1]["val/accuracy"] if log else None
    return {"seed": info.get("seed"), "sample_weighting": info.get("sample_weighting"),
            "flush_denormals": bool(info.get("flush_denormals", False)),
            "loss_weights": info.get("loss_weights"), "main_from": info.get("main_from"),
            "epochs": epochs, "schedule": info.get("schedule"), "logged_val_accuracy": logged,
            "val_matches_log": logged is not None and None not in logged and bool(numpy.allclose(
                logged, measured["exit_accuracy"]["val"], rtol=0, atol=1e-9))}
