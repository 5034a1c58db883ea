"""Figures of the "beyond the paper" report (``branchynet.evaluation.beyond_report.BeyondReport``): each
``plot_*`` draws on the matplotlib Axes it is given and returns it; the caller makes the figure and
saves it (``branchynet.reporting.figures.save``). Costs are in % of the baseline's MACs."""
import numpy

from branchynet.model import measures
from branchynet.reporting.figures import BASELINE_COLOR, EXIT_COLORS

MEASURE_COLORS = dict(zip(measures.NAMES, ("#5163d3", "#51c4d3", "#d3a251", "#9151d3", "#50d350")))
COST_LABEL = "mean cost (% of baseline MACs)"


def _frontier_xy(rows, bc):
    rows = sorted(rows, key=lambda r: r.cost)
    return [100 * r.cost / bc for r in rows], [100 * r.accuracy for r in rows]


def net_is_cheap(report):
    """Whether the first exit costs under a third of the baseline (then the action is there)."""
    return report.anytime[0].cost < report.base_cost / 3


def _zoom(ax, report, base_acc):
    """Accuracy axis from a little below the first exit's accuracy to above the oracle's."""
    low = min(a.accuracy for a in report.anytime)
    high = report.oracle.test.accuracy
    if base_acc is not None:
        low = min(low, base_acc)
    pad = 0.15 * (high - low) + 0.002
    ax.set_ylim(100 * (low - pad), 100 * (high + pad))
    ax.set_xlim(0, 110)
    ax.grid(alpha=0.3)


def _oracle_and_baseline(ax, report):
    bc, oc = report.base_cost, report.oracle_curve_test
    ax.plot(100 * numpy.array(oc.cost) / bc, 100 * numpy.array(oc.accuracy), color="0.2",
            ls=":", label="oracle bound")
    base_acc = report.baseline_accuracy.test
    if base_acc is not None:
        ax.scatter([100], [100 * base_acc], marker="D", color=BASELINE_COLOR, s=30, zorder=6,
                   label="baseline")
    _zoom(ax, report, base_acc)


def plot_frontiers(ax, report, title, zoomed=False):
    """Each measure's val-fitted exact frontier on test, the oracle's bound, the exits alone and
    the baseline; ``zoomed``: on the cheap end."""
    bc = report.base_cost
    for name, sec in report.measures.items():
        x, y = _frontier_xy(sec.frontier_test, bc)
        ax.step(x, y, where="post", color=MEASURE_COLORS[name], label=name, lw=1.2)
    ax.scatter([100 * a.cost / bc for a in report.anytime],
               [100 * a.accuracy for a in report.anytime], marker="s", color="k", s=18,
               zorder=5, label="exits alone (anytime)")
    _oracle_and_baseline(ax, report)
    if zoomed:
        first = 100 * report.anytime[0].cost / bc
        ax.set_xlim(first - 2, min(110, 2 * first + 10))
        ax.set_title("zoomed on the cheap end", fontsize=9)
    else:
        ax.set_title("%s: val-fitted frontiers on test" % title, fontsize=9)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7, loc="upper left")
    ax.set_xlabel(COST_LABEL)
    return ax


def _paper_grid(ax, report, bc):
    pk = report.paper_knee
    if not pk:
        return
    gt = pk.grid_test
    ax.scatter([100 * r.cost / bc for r in gt], [100 * r.accuracy for r in gt], s=6,
               color="0.7", label="paper grid")
    ax.scatter([100 * pk.test.cost / bc], [100 * pk.test.accuracy], marker="*", s=120,
               color="#50d350", zorder=6, label="paper knee")


def plot_selection_rules(ax, report, name, title):
    """One measure's frontier with the rules' picks (fastest within eps, those that generalise,
    budgets), MSDNet's geometric distributions and, for entropy on a paper network, the paper's
    grid and knee."""
    bc, sec = report.base_cost, report.measures[name]
    x, y = _frontier_xy(sec.frontier_test, bc)
    ax.step(x, y, where="post", color=MEASURE_COLORS[name], label="exact frontier (val-fitted)")
    g = sec.geometric
    ax.plot([100 * r.cost / bc for r in g], [100 * r.accuracy for r in g], "o-", ms=3,
            color="0.45", lw=0.8, label="geometric exit distributions (MSDNet)")
    if name == "entropy":
        _paper_grid(ax, report, bc)
    for p, marker in [(p, "^") for p in sec.fastest_within] + [(p, "P") for p in sec.generalising]:
        if p.infeasible is None:
            ax.scatter([100 * p.cost / bc], [100 * p.accuracy], marker=marker, s=40, zorder=6,
                       label=p.rule)
    bud = [b.row for b in sec.budgets if b.row is not None]
    ax.scatter([100 * r.cost / bc for r in bud], [100 * r.accuracy for r in bud],
               marker="x", color="k", s=30, zorder=6, label="most accurate within 25/50/75/100 %")
    _oracle_and_baseline(ax, report)
    ax.set_title("%s: %s" % (title, name), fontsize=9)
    ax.set_xlabel(COST_LABEL)
    return ax


def plot_reliability(axes, calibration):
    """One reliability diagram per exit (``report.calibration``), on as many Axes."""
    for ax, c, color in zip(axes, calibration, EXIT_COLORS):
        bins = [b for b in c.bins if b.count]
        ax.bar([(b.low + b.high) / 2 for b in bins], [b.accuracy for b in bins],
               width=1.0 / len(c.bins), color=color, alpha=0.7, edgecolor="k", lw=0.3)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_title("exit %d: ECE %.2f %%" % (c.exit, 100 * c.ece), fontsize=9)
        ax.set_xlabel("confidence (max p)")
    axes[0].set_ylabel("accuracy")
    return axes


def plot_weighting(ax, report, weighting, title):
    """Fixed against sample-dependent loss weights: each run's entropy and max_prob frontiers."""
    bc = report.base_cost
    for r, ls in zip(weighting.runs, ("-", "--", ":")):
        for name in ("entropy", "max_prob"):
            x, y = _frontier_xy(r.measures[name].frontier_test, bc)
            ax.step(x, y, where="post", ls=ls, color=MEASURE_COLORS[name],
                    label="%s, %s" % (r.run, name))
    base_acc = report.baseline_accuracy.test
    if base_acc is not None:
        ax.scatter([100], [100 * base_acc], marker="D", color=BASELINE_COLOR, s=30, zorder=6,
                   label="baseline")
    _zoom(ax, report, base_acc)
    first = 100 * report.anytime[0].cost / bc
    ax.set_xlim(first - 2, min(110, 2 * first + 10) if net_is_cheap(report) else 110)
    ax.set_xlabel(COST_LABEL)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("%s: fixed vs sample-dependent loss weights (val-fitted, on test)" % title,
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax
