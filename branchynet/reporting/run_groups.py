"""A comparison of groups of runs (``branchynet.evaluation.run_groups``) as Markdown and as a figure
of each group's test frontier (mean and standard deviation over its runs). Everything shown is
read from the report dict that experiments/weighting_report.py writes as JSON; accuracies in %,
costs in % of the baseline's MACs, differences in percentage points."""
import numpy

from branchynet.evaluation import run_groups
from branchynet.reporting.figures import BASELINE_COLOR, EXIT_COLORS


def _pct(v, digits=2):
    return "–" if v is None else "%.*f" % (digits, 100 * v)


def _ms(s, digits=2):
    """A ``metrics.mean_spread`` dict as "mean ± sd" in % (the value alone for one run)."""
    if s["mean"] is None:
        return "–"
    if s["n"] == 1:
        return _pct(s["mean"], digits)
    return "%s ± %s" % (_pct(s["mean"], digits), _pct(s["std"], digits))


def _all_runs(report):
    return [(name, r) for name in report["names"] for r in report["runs"][name]]


def _header(report):
    first = _all_runs(report)[0][1]
    n_runs = ", ".join("%s: %d" % (n, len(report["runs"][n])) for n in report["names"])
    return ["# %s" % report["title"], "", "Written by `%s`." % report["command"], "",
            "Runs of %s per group (%s). Each run's jointly trained net (branchy.npz) against its "
            "baseline, the main network alone (main.npz), on its validation split (%d images, the "
            "one its run.json records) and on the test set (%d images). Early exit by %s; costs are "
            "MACs per sample with every head on the way, in %% of the baseline's %d MACs (leaving "
            "at each exit: %s %%). Mean ± sample standard deviation over a group's runs."
            % (report["network"], n_runs, first["n"]["val"], first["n"]["test"],
               run_groups.MEASURE, sum(first["macs"]["segments"]) + first["macs"]["heads"][-1],
               ", ".join(_pct(c, 1) for c in first["exit_cost"])), ""]


def _runs_table(report):
    lines = ["## Runs", "", "| group | run | seed | sample weighting | subnormals | loss weights | "
             "epochs logged (main + joint) / scheduled | started from | val accuracy = log.jsonl's "
             "last epoch |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in _all_runs(report):
        d = r["description"]
        sched = d["schedule"] or {}
        lines.append("| %s | `%s` | %s | %s | %s | %s | %d + %d / %s + %s | %s | %s |" % (
            name, r["run"], d["seed"], d["sample_weighting"] or "none (fixed)",
            "flushed" if d.get("flush_denormals") else "kept",
            ", ".join("%g" % w for w in (d["loss_weights"] or {}).get("values", [])),
            d["epochs"]["main"], d["epochs"]["joint"], sched.get("main_epochs", "?"),
            sched.get("joint_epochs", "?"), "`%s`" % d["main_from"] if d["main_from"] else "–",
            "yes" if d["val_matches_log"] else "**no**"))
    return lines + [""]


def _groups_tables(report):
    s, names = report["summary"], report["names"]
    exits = len(_all_runs(report)[0][1]["exit_accuracy"]["test"])
    fr = report["cost_fractions"]
    lines = ["## Each exit alone", "", "| group | runs | baseline test % | " + " | ".join(
        "test exit %d %%" % (k + 1) for k in range(exits)) + " | baseline val % | " + " | ".join(
        "val exit %d %%" % (k + 1) for k in range(exits)) + " |", "|---|---|" + "---|" * (2 * exits + 2)]
    for n in names:
        lines.append("| %s | %d | %s | %s | %s | %s |" % (
            n, len(report["runs"][n]), _ms(s[n]["baseline_test"]),
            " | ".join(_ms(s[n]["test_exit%d_accuracy" % (k + 1)]) for k in range(exits)),
            _ms(s[n]["baseline_val"]),
            " | ".join(_ms(s[n]["val_exit%d_accuracy" % (k + 1)]) for k in range(exits))))
    t = ", ".join("%g" % v for v in report["thresholds"])
    lines += ["", "## Early exit on test", "",
              "The test frontier is the exact %s frontier of the test set (the best any threshold "
              "setting does there, found alike for every run); val-fitted thresholds are fitted "
              "on the validation split and applied unchanged to the test set (there a setting "
              "fitted within a cost may cost a little more or less: the JSON holds its test cost)."
              % run_groups.MEASURE,
              "", "| group | T = %s: acc %% | cost %% | " % t + " | ".join(
                  "frontier acc %% within %g %%" % (100 * f) for f in fr)
              + " | frontier cost % at baseline acc | val-fitted at baseline val acc: test cost % "
              "| test acc % |", "|---|---|---|" + "---|" * (len(fr) + 3)]
    for n in names:
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            n, _ms(s[n]["at_thresholds_accuracy"]), _ms(s[n]["at_thresholds_cost"]),
            " | ".join(_ms(s[n]["frontier_accuracy_at_%g" % f]) for f in fr),
            _ms(s[n]["frontier_cost_at_baseline"]), _ms(s[n]["val_fitted_cost_at_baseline"]),
            _ms(s[n]["val_fitted_accuracy_at_baseline"])))
    return lines + [""]


def _comparison(c):
    lines = ["## %s against %s" % (c["group"], c["reference"]), "",
             "| metric | %s | %s | difference (pp) | 2 × SE (pp) | ranges overlap | verdict |"
             % (c["reference"], c["group"]), "|---|---|---|---|---|---|---|"]
    for r in c["rows"]:
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            r["label"], _ms(r["reference"], 3), _ms(r["group"], 3),
            "–" if r["difference"] is None else "%+.3f" % (100 * r["difference"]),
            "–" if r["se"] is None else "%.3f" % (200 * r["se"]),
            "–" if r["overlap"] is None else ("yes" if r["overlap"] else "no"), r["verdict"]))
    lines += ["", "Accuracies in %%, costs in %% of the baseline's MACs; difference: %s minus %s. "
              "A difference is beyond the seed spread when it exceeds 2 × SE (SE = sqrt(s1²/n1 + "
              "s2²/n2), the groups' sample standard deviations) and the groups' ranges do not "
              "overlap; then it helps or hurts by the metric's direction (higher accuracy at a "
              "matched cost, lower cost at a matched accuracy). The metrics at a fixed T trade "
              "accuracy for cost and have no direction (higher / lower)."
              % (c["group"], c["reference"]), "", "**Conclusion:** %s" % c["conclusion"], ""]
    return lines


def _per_run(report):
    runs = _all_runs(report)
    lines = ["## Per run", "", "| metric | " + " | ".join("%s `%s`" % (n, r["run"]) for n, r in runs)
             + " |", "|---|" + "---|" * len(runs)]
    values = [run_groups.metric_values(r) for _, r in runs]
    for i, (_, label, _, _) in enumerate(values[0]):
        lines.append("| %s | %s |" % (label, " | ".join(_pct(v[i][3]) for v in values)))
    return lines + [""]


def markdown(report, figure=None):
    """The report's Markdown text; ``figure``: the figure's file name, linked at the end."""
    lines = _header(report) + _runs_table(report) + _groups_tables(report)
    for c in report["comparisons"]:
        lines += _comparison(c)
    lines += _per_run(report)
    if figure:
        lines += ["![test frontiers, mean ± sd per group](%s)" % figure, ""]
    return "\n".join(lines)


def _zoom(x, means, report):
    """The cost range of the cheap end: up to where every group's mean frontier is at its best,
    and its points at the fixed thresholds."""
    top = [x[numpy.flatnonzero(m >= numpy.nanmax(m))[0]] for m in means]
    top += [100 * report["summary"][n]["at_thresholds_cost"]["mean"] for n in report["names"]]
    return x[0] - 0.5, x[0] + 1.2 * (max(top) - x[0]) + 0.5


def plot_frontier_bands(ax, report, zoomed=False):
    """Each group's test frontier, mean ± sd over its runs as a band, its mean point at the fixed
    thresholds (± sd both ways), and the baseline; ``zoomed``: on the cheap end."""
    cv = report["curves"]
    x = 100 * numpy.asarray(cv["cost"], dtype=float)
    means, high = [], []
    for color, name in zip(EXIT_COLORS, report["names"]):
        g, n = cv["groups"][name], len(report["runs"][name])
        mean = 100 * numpy.asarray(g["mean"], dtype=float)
        std = 100 * numpy.asarray(g["std"], dtype=float)
        ax.step(x, mean, where="post", color=color, lw=1.2,
                label="%s (%d run%s)" % (name, n, "s" if n > 1 else ""))
        ax.fill_between(x, mean - std, mean + std, step="post", color=color, alpha=0.25, lw=0)
        cost, acc = (report["summary"][name]["at_thresholds_" + k] for k in ("cost", "accuracy"))
        ax.errorbar([100 * cost["mean"]], [100 * acc["mean"]], xerr=[100 * cost["std"]],
                    yerr=[100 * acc["std"]], fmt="o", color=color, markeredgecolor="k", ms=5,
                    capsize=2, zorder=5)
        means.append(mean)
        high.append(numpy.nanmax(mean + std))
    base = [100 * r["baseline"]["test"] for _, r in _all_runs(report)]
    ax.scatter([100], [numpy.mean(base)], marker="D", color=BASELINE_COLOR, s=30, zorder=6,
               label="baseline")
    ax.axhline(numpy.mean(base), color=BASELINE_COLOR, ls="--", lw=0.8)
    low = [numpy.nanmin(m) for m in means] + base
    pad = 0.1 * (max(high + base) - min(low)) + 0.02
    ax.set_ylim(min(low) - pad, max(high + base) + pad)
    if zoomed:
        ax.set_xlim(*_zoom(x, means, report))
        ax.set_title("zoomed on the cheap end", fontsize=9)
    else:
        ax.set_xlim(x[0] - 2, max(x[-1], 100) + 2)
        ax.set_title("%s: test frontiers (dots: T = %s)" % (report["title"], ", ".join(
            "%g" % v for v in report["thresholds"])), fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("mean cost (% of baseline MACs)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    return ax
