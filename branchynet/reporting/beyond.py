"""The "beyond the paper" report of one network: confidence measures, threshold selection rules,
costs, and the field's evaluations, from per-exit outputs cached in one pass.

``run_report`` measures (the net runs once over the validation and test splits; everything else
is computed from the caches), ``write`` writes ``report.json``, ``report.md`` and the figures.
Thresholds are always fitted on the validation split and applied unchanged to the test set.
Costs are MACs per sample (``costs.count_macs``, every head on the way included); times are
batch-1 milliseconds on this machine (``timing.time_exits`` per exit, ``timing.time_early_exit``
for real early-exit runs), measured on a shared CPU, so read them as indicative.
"""
import json
import os

import numpy
from matplotlib.figure import Figure

from branchynet.data import split as data_split
from branchynet.evaluation import costs, frontier, metrics, outputs, selection, timing
from branchynet.model import measures
from branchynet.reporting import paper
from branchynet.reporting.figures import BASELINE_COLOR, EXIT_COLORS, _save

BUDGETS = (0.25, 0.5, 0.75, 1.0)
REPEATS = 3
EPSILONS = (0.0, 0.001, 0.005)
Q_VALUES = tuple(float(q) for q in numpy.geomspace(0.02, 50, 25))
MEASURE_COLORS = dict(zip(measures.NAMES, ("#5163d3", "#51c4d3", "#d3a251", "#9151d3", "#50d350")))


def load_caches(net, main, run_dir, dataset, val_size, data_dir=None, progress=None):
    """(val cache, test cache, baseline accuracies {"val", "test"}) of a run: its split, with the
    preprocessing statistics it was trained with."""
    split = data_split.load_split(dataset, val_size, data_dir,
                                  statistics=data_split.run_statistics(run_dir))
    _, (x_val, t_val), (x_test, t_test) = split
    val = outputs.ExitOutputs.from_net(net, x_val, t_val, progress=progress, desc="val exits")
    test = outputs.ExitOutputs.from_net(net, x_test, t_test, progress=progress, desc="test exits")
    base = {}
    if main is not None:
        for name, x, t in (("val", x_val, t_val), ("test", x_test, t_test)):
            labels = numpy.concatenate([main.predict_main(x[s:s + 1000])
                                        for s in range(0, len(x), 1000)])
            base[name] = float((labels == t).mean())
    return val, test, base, split, (x_test, t_test)


def _thin(front, most=300):
    """At most ``most`` frontier indices, evenly spread, the first and last kept (what the JSON
    and the figures keep of frontiers that can have thousands of points)."""
    return sorted(set(numpy.linspace(0, len(front) - 1, min(most, len(front))).round().astype(int).tolist()))


def _point(cache, frontier, i, label):
    row = cache.evaluate(frontier.thresholds[i], frontier.measure, frontier.exit_costs)
    row.update(rule=label, val_accuracy=float(frontier.accuracies[i]),
               val_cost=float(frontier.costs[i]))
    return row


def _rules(front, test, base_cost, base_val_acc):
    """The rules on a frontier fitted on val, applied to test: fastest within each eps of the
    baseline's val accuracy, most accurate within each budget."""
    picks = []
    for eps in EPSILONS:
        try:
            i = selection.fastest_within(front, base_val_acc, eps)
            picks.append(dict(_point(test, front, i, "fastest within %.1f pp" % (100 * eps)), eps=eps))
        except selection.Infeasible as err:
            picks.append({"rule": "fastest within %.1f pp" % (100 * eps), "eps": eps,
                          "infeasible": str(err)})
    return {"fastest_within": picks,
            "budgets": [{"fraction": b["fraction"], "row": b["row"]}
                        for b in metrics.at_budgets(front, test, base_cost, BUDGETS)]}


def measure_section(val, test, name, exit_cost, base_cost, base_val_acc):
    """One measure: its validation frontier applied to test, the rules' picks, budgets, MSDNet's
    geometric exit distributions."""
    front = frontier.exact_frontier(val, name, exit_cost)
    thin = _thin(front)
    rows = front.rows()
    out = {"measure": name, "frontier_size": len(front),
           "frontier_val": [rows[i] for i in thin],
           "frontier_test": [test.evaluate(front.thresholds[i], name, exit_cost) for i in thin]}
    out.update(_rules(front, test, base_cost, base_val_acc))
    geo = []
    for q in Q_VALUES:
        f = selection.geometric_fractions(q, val.num_exits)
        t = selection.distribution_thresholds(val, name, f)
        row = test.evaluate(t, name, exit_cost)
        row.update(q=q, target_fractions=f.tolist())
        geo.append(row)
    out["geometric"] = geo
    return out, front


def run_report(net, main, run_dir, dataset, family, val_size=paper.DEFAULT_VAL_SIZE,
               data_dir=None, timing_samples=300, measured_samples=500, progress=None,
               measures=measures.NAMES):
    """The report of one run (a JSON-able dict); see the module docstring."""
    val, test, base, split, (x_test, _) = load_caches(net, main, run_dir, dataset, val_size,
                                                      data_dir, progress)
    macs = costs.count_macs(net, x_test[:1])
    exit_cost = costs.exit_costs(macs)
    base_cost = costs.baseline_cost(macs)
    report = {"run": run_dir, "split": split.description, "baseline_accuracy": base,
              "macs": macs, "cost_table": costs.cost_table(macs),
              "anytime": metrics.anytime(test, exit_cost),
              "oracle": {"val": metrics.oracle(val, exit_cost),
                         "test": metrics.oracle(test, exit_cost)},
              "overthinking": metrics.overthinking(test),
              "calibration": metrics.calibration(test), "measures": {}}
    fronts = {}
    for name in measures:
        report["measures"][name], fronts[name] = measure_section(
            val, test, name, exit_cost, base_cost, base.get("val", 1.0))
    grid = frontier.paper_grid(family, net.numexits())
    front, at = selection.paper_knee(val, grid, exit_cost, base.get("val", 1.0))
    knee_t = front.thresholds[at].tolist()
    report["paper_knee"] = {"grid_size": len(grid), "thresholds": knee_t,
                            "val": val.evaluate(knee_t, "entropy", exit_cost),
                            "test": test.evaluate(knee_t, "entropy", exit_cost),
                            "grid_test": [test.evaluate(t, "entropy", exit_cost) for t in grid]}
    # the same rules restricted to the paper's grid: what searching every setting adds
    report["paper_grid_rules"] = _rules(frontier.grid_frontier(val, "entropy", grid, exit_cost),
                                        test, base_cost, base.get("val", 1.0))
    # time: per-exit batch-1 ms, the rules with a time budget, and real runs beside predictions
    x_time = x_test[:timing_samples]
    # (the CPU is shared: each time is the fastest of REPEATS passes, the least disturbed)
    per_exit = timing.time_exits(net, x_time, repeats=REPEATS, warmup=10,
                                 thresholds=report["paper_knee"]["thresholds"], progress=progress)
    parts = {"segment_ms": [s["min"] for s in per_exit["segments"]],
             "head_ms": [h["min"] for h in per_exit["heads"]]}
    ms_cost = costs.exit_costs(parts)
    base_ms = timing.time_baseline(main if main is not None else net, x_time, repeats=REPEATS,
                                   warmup=10, progress=progress)["detail"]["min"]
    timed = dict(parts, exit_ms=ms_cost.tolist(), baseline_ms=base_ms, samples=timing_samples,
                 repeats=REPEATS, budgets={}, measured=[])
    for name in ("entropy", "max_prob"):
        if name not in fronts:
            continue
        front_ms = frontier.exact_frontier(val, name, ms_cost)
        timed["budgets"][name] = [{"fraction": b["fraction"], "row": b["row"]} for b in
                                  metrics.at_budgets(front_ms, test, base_ms, (0.5, 0.75))]
    for name in measures:
        pick = next((p for p in report["measures"][name]["fastest_within"]
                     if "infeasible" not in p), None)
        if pick is None:
            continue
        real = timing.time_early_exit(net, x_test[:measured_samples], pick["thresholds"], 1,
                                      REPEATS, 10, progress, "early exit (%s)" % name, name)
        fractions = numpy.bincount(real["exits"], minlength=net.numexits()) / len(real["exits"])
        timed["measured"].append({"measure": name, "rule": pick["rule"],
                                  "thresholds": pick["thresholds"],
                                  "measured_ms": real["detail"]["min"],
                                  "predicted_ms": costs.expected_cost(fractions, ms_cost),
                                  "samples": measured_samples})
    report["time"] = timed
    curve_c, curve_a = metrics.oracle_curve(test, exit_cost)
    step = max(1, len(curve_c) // 400)
    report["oracle_curve_test"] = {"cost": curve_c[::step].tolist() + [float(curve_c[-1])],
                                   "accuracy": curve_a[::step].tolist() + [float(curve_a[-1])]}
    report["base_cost"] = base_cost
    return report


def compare_runs(entries, exit_cost_of, fractions=BUDGETS, measures=("entropy", "max_prob")):
    """Accuracy at fractions of the baseline's cost for several runs: ``entries`` is a list of
    (label, val cache, test cache, base cost, baseline val accuracy); returns per run and measure
    the test rows, and mean and spread over the runs."""
    per_run, summary = [], {}
    for label, val, test, base_cost, base_val in entries:
        exit_cost = exit_cost_of(label)
        row = {"run": label, "anytime": metrics.anytime(test, exit_cost),
               "ece": [c["ece"] for c in metrics.calibration(test)], "measures": {}}
        for name in measures:
            front = frontier.exact_frontier(val, name, exit_cost)
            budgets = metrics.at_budgets(front, test, base_cost, fractions)
            try:
                at_base = _point(test, front, selection.fastest_within(front, base_val, 0.0),
                                 "fastest within 0.0 pp")
            except selection.Infeasible as err:
                at_base = {"infeasible": str(err)}
            row["measures"][name] = {"budgets": [{"fraction": b["fraction"], "row": b["row"]}
                                                 for b in budgets], "at_baseline": at_base,
                                     "frontier_test": [test.evaluate(front.thresholds[i], name, exit_cost)
                                                       for i in _thin(front)]}
        per_run.append(row)
    for name in measures:
        summary[name] = []
        for i, f in enumerate(fractions):
            accs = [r["measures"][name]["budgets"][i]["row"] and
                    r["measures"][name]["budgets"][i]["row"]["accuracy"] for r in per_run]
            summary[name].append(dict(metrics.mean_spread(accs), fraction=f))
    return {"runs": per_run, "summary": summary}


# ------------------------------------------------------------------ writing
def _pct(v, digits=2):
    return "–" if v is None else "%.*f" % (digits, 100 * v)


def _fracs(row):
    return ", ".join("%.1f" % (100 * f) for f in row["exit_fractions"])


def _thr(values):
    return ", ".join("%.4g" % v for v in values)


def markdown(report, title, seeds=None, weighting=None, commands=()):
    base = report["baseline_accuracy"]
    bc = report["base_cost"]
    report = {k: v for k, v in report.items() if k != "commands"}
    lines = ["# %s: beyond the paper" % title, ""]
    lines += ["Written by `%s`." % c for c in commands] + [""]
    lines += ["Run `%s`; thresholds fitted on the validation split (%d images), applied unchanged "
              "to the test set (%d). Baseline (main network): %s %% val, %s %% test. Costs are "
              "MACs per sample, every head on the way included; %% of cost is of the baseline's "
              "%d MACs." % (report["run"], report["split"]["val_images"],
                            report["split"]["test_images"], _pct(base.get("val")),
                            _pct(base.get("test")), bc), ""]
    lines += ["## Costs per exit", "", "| exit | segment MACs | head MACs | leaving here | % of baseline | ms (batch 1, cumulative) |",
              "|---|---|---|---|---|---|"]
    for r, ms in zip(report["cost_table"]["exits"], report["time"]["exit_ms"]):
        lines.append("| %d | %d | %d | %d | %.1f | %.3f |" % (r["exit"], r["segment"], r["head"],
                                                              r["exit_cost"], 100 * r["of_baseline"], ms))
    lines += ["", "Heads before the last cost %.1f %% of the baseline. Baseline measured %.3f ms."
              % (100 * report["cost_table"]["head_overhead"], report["time"]["baseline_ms"]), ""]
    lines += ["## Anytime prediction (each exit alone, test)", "", "| exit | accuracy % | % of cost | ECE % |", "|---|---|---|---|"]
    for a, c in zip(report["anytime"], report["calibration"]):
        lines.append("| %d | %s | %.1f | %.2f |" % (a["exit"], _pct(a["accuracy"]), 100 * a["cost"] / bc, 100 * c["ece"]))
    o, ov = report["oracle"]["test"], report["overthinking"]
    lines += ["", "Oracle (each sample out at its earliest correct exit; never-right ones at the "
              "first): %s %% at %.1f %% of the cost (exits %s %%). Overthinking (test): wasteful "
              "%s %%, destructive %s %% of all samples (%s %% of the last exit's errors were right "
              "earlier)." % (_pct(o["accuracy"]), 100 * o["cost"] / bc, _fracs(o), _pct(ov["wasteful"]),
                              _pct(ov["destructive"]), _pct(ov["destructive_of_last_errors"], 1)), ""]
    lines += ["## At the baseline's accuracy: each measure's fastest setting (fitted on val)", "",
              "| measure | rule | T | val acc % | test acc % | % of cost | speed-up (MACs) | exits % | accuracy of leavers % |",
              "|---|---|---|---|---|---|---|---|---|"]
    pk = report["paper_knee"]
    lines.append("| entropy | paper grid (%d) + knee | %s | %s | %s | %.1f | %.2fx | %s | %s |" % (
        pk["grid_size"], _thr(pk["thresholds"]), _pct(pk["val"]["accuracy"]), _pct(pk["test"]["accuracy"]),
        100 * pk["test"]["cost"] / bc, bc / pk["test"]["cost"], _fracs(pk["test"]),
        ", ".join(_pct(a, 1) for a in pk["test"]["exit_accuracy"])))
    sections = [("entropy (paper grid)", report["paper_grid_rules"])] if "paper_grid_rules" in report else []
    sections += list(report["measures"].items())
    for name, sec in sections:
        for p in sec["fastest_within"]:
            if "infeasible" in p:
                lines.append("| %s | %s | – | – | – | – | – | – | no setting on val |" % (name, p["rule"]))
                continue
            lines.append("| %s | %s | %s | %s | %s | %.1f | %.2fx | %s | %s |" % (
                name, p["rule"], _thr(p["thresholds"]), _pct(p["val_accuracy"]), _pct(p["accuracy"]),
                100 * p["cost"] / bc, bc / p["cost"], _fracs(p),
                ", ".join(_pct(a, 1) for a in p["exit_accuracy"])))
    lines += ["", "## Accuracy within a cost budget (most accurate setting on val, test %)", "",
              "| measure | " + " | ".join("%d %%" % (100 * f) for f in BUDGETS) + " |",
              "|---|" + "---|" * len(BUDGETS)]
    for name, sec in sections:
        lines.append("| %s | %s |" % (name, " | ".join(
            "–" if b["row"] is None else "%s (%.0f %%)" % (_pct(b["row"]["accuracy"]), 100 * b["row"]["cost"] / bc)
            for b in sec["budgets"])))
    lines += ["", "In parentheses: the cost reached on test. –: the budget is below the cheapest "
              "setting (every sample out at the first exit)."]
    t = report["time"]
    if t["budgets"]:
        lines += ["", "Time budgets (cumulative batch-1 ms per exit above, fitted on val, test %):", ""]
        for name, rows in t["budgets"].items():
            lines.append("* %s: " % name + "; ".join(
                "%d %% of %.3f ms: %s" % (100 * b["fraction"], t["baseline_ms"],
                                          "–" if b["row"] is None else "%s %% at %.3f ms predicted"
                                          % (_pct(b["row"]["accuracy"]), b["row"]["cost"]))
                for b in rows))
    if t["measured"]:
        lines += ["", "Measured beside predicted (batch 1, %d test samples, fastest of %d passes, shared CPU):"
                  % (t["measured"][0]["samples"], t.get("repeats", 1)), "", "| measure | rule | T | measured ms | predicted ms |", "|---|---|---|---|---|"]
        for m in t["measured"]:
            lines.append("| %s | %s | %s | %.3f | %.3f |" % (m["measure"], m["rule"], _thr(m["thresholds"]),
                                                           m["measured_ms"], m["predicted_ms"]))
    lines += ["", "## MSDNet's geometric exit distributions (q swept, fitted on val, test)", "",
              "| measure | q | test acc % | % of cost | exits % |", "|---|---|---|---|---|"]
    for name, sec in report["measures"].items():
        for row in sec["geometric"][::6]:
            lines.append("| %s | %.3g | %s | %.1f | %s |" % (name, row["q"], _pct(row["accuracy"]),
                                                            100 * row["cost"] / bc, _fracs(row)))
    if seeds:
        lines += ["", "## Over seeds (%s)" % ", ".join(r["run"] for r in seeds["runs"]), "",
                  "Accuracy on test at a fraction of the baseline's cost, mean ± std (min–max):", "",
                  "| measure | " + " | ".join("%d %%" % (100 * f) for f in BUDGETS) + " |",
                  "|---|" + "---|" * len(BUDGETS)]
        for name, rows in seeds["summary"].items():
            lines.append("| %s | %s |" % (name, " | ".join(
                "–" if r["mean"] is None else "%.2f ± %.2f (%.2f–%.2f), n=%d" % (
                    100 * r["mean"], 100 * r["std"], 100 * r["min"], 100 * r["max"], r["n"])
                for r in rows)))
    if weighting:
        lines += ["", "## Sample-dependent loss weights against the paper's fixed weights", "",
                  weighting["note"], "",
                  "| scheme | test acc per exit % | ECE per exit % | fastest at baseline acc (entropy): test acc %, % of cost | (max_prob) | "
                  + " | ".join("entropy @ %d %%" % (100 * f) for f in BUDGETS) + " |",
                  "|---|---|---|---|---|" + "---|" * len(BUDGETS)]
        for r in weighting["runs"]:
            def at(name):
                a = r["measures"][name]["at_baseline"]
                return "none on val" if "infeasible" in a else "%s, %.1f" % (_pct(a["accuracy"]), 100 * a["cost"] / bc)
            lines.append("| %s | %s | %s | %s | %s | %s |" % (
                r["run"], ", ".join(_pct(a["accuracy"]) for a in r["anytime"]),
                ", ".join("%.2f" % (100 * e) for e in r["ece"]), at("entropy"), at("max_prob"),
                " | ".join("–" if b["row"] is None else _pct(b["row"]["accuracy"])
                           for b in r["measures"]["entropy"]["budgets"])))
    lines += ["", "Figures: [frontiers per measure](frontiers_by_measure.png), "
              "[selection rules](selection_rules.png), [reliability](reliability.png)"
              + (", [sample weighting](sample_weighting.png)" if weighting else "") + ".", ""]
    return "\n".join(lines)


def _frontier_xy(rows, bc):
    rows = sorted(rows, key=lambda r: r["cost"])
    return [100 * r["cost"] / bc for r in rows], [100 * r["accuracy"] for r in rows]


def figures(report, out, title, weighting=None):
    bc = report["base_cost"]
    paths = []
    base_acc = report["baseline_accuracy"].get("test")
    oc = report["oracle_curve_test"]
    # 1. frontiers per measure (val-fitted, on test) with the oracle's bound and the exits alone
    fig = Figure(figsize=(10, 4.2))
    first = 100 * report["anytime"][0]["cost"] / bc
    for ax, zoomed in zip(fig.subplots(1, 2), (False, True)):
        ax.plot(100 * numpy.array(oc["cost"]) / bc, 100 * numpy.array(oc["accuracy"]),
                color="0.2", ls=":", label="oracle bound")
        for name, sec in report["measures"].items():
            x, y = _frontier_xy(sec["frontier_test"], bc)
            ax.step(x, y, where="post", color=MEASURE_COLORS[name], label=name, lw=1.2)
        ax.scatter([100 * a["cost"] / bc for a in report["anytime"]],
                   [100 * a["accuracy"] for a in report["anytime"]], marker="s", color="k", s=18,
                   zorder=5, label="exits alone (anytime)")
        if base_acc is not None:
            ax.scatter([100], [100 * base_acc], marker="D", color=BASELINE_COLOR, s=30, zorder=6,
                       label="baseline")
        _zoom(ax, report, base_acc)
        if zoomed:
            ax.set_xlim(first - 2, min(110, 2 * first + 10))
            ax.set_title("zoomed on the cheap end", fontsize=9)
        else:
            ax.set_title("%s: val-fitted frontiers on test" % title, fontsize=9)
            ax.set_ylabel("test accuracy (%)")
            ax.legend(fontsize=7, loc="upper left")
        ax.set_xlabel("mean cost (% of baseline MACs)")
    paths.append(_save(fig, os.path.join(out, "frontiers_by_measure.png")))
    # 2. selection rules for entropy and max_prob
    fig = Figure(figsize=(9, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, name in zip(axes, ("entropy", "max_prob")):
        sec = report["measures"].get(name)
        if sec is None:
            continue
        x, y = _frontier_xy(sec["frontier_test"], bc)
        ax.step(x, y, where="post", color=MEASURE_COLORS[name], label="exact frontier (val-fitted)")
        g = sec["geometric"]
        ax.plot([100 * r["cost"] / bc for r in g], [100 * r["accuracy"] for r in g], "o-", ms=3,
                color="0.45", lw=0.8, label="geometric exit distributions (MSDNet)")
        if name == "entropy":
            gt = report["paper_knee"]["grid_test"]
            ax.scatter([100 * r["cost"] / bc for r in gt], [100 * r["accuracy"] for r in gt], s=6,
                       color="0.7", label="paper grid")
            k = report["paper_knee"]["test"]
            ax.scatter([100 * k["cost"] / bc], [100 * k["accuracy"]], marker="*", s=120,
                       color="#50d350", zorder=6, label="paper knee")
        for p in sec["fastest_within"]:
            if "infeasible" not in p:
                ax.scatter([100 * p["cost"] / bc], [100 * p["accuracy"]], marker="^", s=40,
                           zorder=6, label=p["rule"])
        bud = [b["row"] for b in sec["budgets"] if b["row"] is not None]
        ax.scatter([100 * r["cost"] / bc for r in bud], [100 * r["accuracy"] for r in bud],
                   marker="x", color="k", s=30, zorder=6, label="most accurate within 25/50/75/100 %")
        ax.plot(100 * numpy.array(oc["cost"]) / bc, 100 * numpy.array(oc["accuracy"]), color="0.2",
                ls=":", label="oracle bound")
        if base_acc is not None:
            ax.scatter([100], [100 * base_acc], marker="D", color=BASELINE_COLOR, s=30, zorder=6,
                       label="baseline")
        _zoom(ax, report, base_acc)
        ax.set_title("%s: %s" % (title, name), fontsize=9)
        ax.set_xlabel("mean cost (% of baseline MACs)")
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend(fontsize=6, loc="lower right")
    paths.append(_save(fig, os.path.join(out, "selection_rules.png")))
    # 3. reliability diagrams
    cal = report["calibration"]
    fig = Figure(figsize=(3.2 * len(cal), 3.2))
    axes = numpy.atleast_1d(fig.subplots(1, len(cal)))
    for ax, c, color in zip(axes, cal, EXIT_COLORS):
        bins = [b for b in c["bins"] if b["count"]]
        ax.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["accuracy"] for b in bins],
               width=1.0 / len(c["bins"]), color=color, alpha=0.7, edgecolor="k", lw=0.3)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_title("exit %d: ECE %.2f %%" % (c["exit"], 100 * c["ece"]), fontsize=9)
        ax.set_xlabel("confidence (max p)")
    axes[0].set_ylabel("accuracy")
    paths.append(_save(fig, os.path.join(out, "reliability.png")))
    if weighting:
        fig = Figure(figsize=(6.4, 4.2))
        ax = fig.subplots()
        first = 100 * report["anytime"][0]["cost"] / bc
        for r, ls in zip(weighting["runs"], ("-", "--", ":")):
            for name in ("entropy", "max_prob"):
                x, y = _frontier_xy(r["measures"][name]["frontier_test"], bc)
                ax.step(x, y, where="post", ls=ls, color=MEASURE_COLORS[name],
                        label="%s, %s" % (r["run"], name))
        if base_acc is not None:
            ax.scatter([100], [100 * base_acc], marker="D", color=BASELINE_COLOR, s=30, zorder=6,
                       label="baseline")
        _zoom(ax, report, base_acc)
        ax.set_xlim(first - 2, min(110, 2 * first + 10) if net_is_cheap(report) else 110)
        ax.set_xlabel("mean cost (% of baseline MACs)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("%s: fixed vs sample-dependent loss weights (val-fitted, on test)" % title,
                     fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        paths.append(_save(fig, os.path.join(out, "sample_weighting.png")))
    return paths


def net_is_cheap(report):
    """Whether the first exit costs under a third of the baseline (then the action is there)."""
    return report["anytime"][0]["cost"] < report["base_cost"] / 3


def _zoom(ax, report, base_acc):
    """Accuracy axis from a little below the first exit's accuracy to above the oracle's."""
    low = min(a["accuracy"] for a in report["anytime"])
    high = report["oracle"]["test"]["accuracy"]
    if base_acc is not None:
        low = min(low, base_acc)
    pad = 0.15 * (high - low) + 0.002
    ax.set_ylim(100 * (low - pad), 100 * (high + pad))
    ax.set_xlim(0, 110)
    ax.grid(alpha=0.3)


def rewrite(out, title, commands=()):
    """report.md and the figures again from ``out``/report.json (no measuring)."""
    with open(os.path.join(out, "report.json")) as f:
        full = json.load(f)
    seeds, weighting = full.pop("seeds", None), full.pop("sample_weighting", None)
    return write(full, out, title, seeds, weighting, commands or full.get("commands", ()))


def write(report, out, title, seeds=None, weighting=None, commands=()):
    """report.json, report.md and the figures into ``out``; returns the paths."""
    os.makedirs(out, exist_ok=True)
    full = dict(report, seeds=seeds, sample_weighting=weighting, commands=list(commands))
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(full, f, indent=1, allow_nan=False)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(markdown(report, title, seeds, weighting, commands))
    return [os.path.join(out, "report.json"), os.path.join(out, "report.md")] + \
        figures(report, out, title, weighting)
