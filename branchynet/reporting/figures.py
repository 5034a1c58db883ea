"""Figures in the original's style (docs/original.md#frontier-and-knee): 4.5 x 3.5 inch, runtime (ms)
against accuracy (%), the frontier as a blue line, the baseline as a red diamond, the knee as a green
star.

Each ``plot_*`` function draws on a matplotlib Axes it is given (ChainerCV's ``vis_*`` style) and
returns it; the caller makes the figure and saves it (``new_figure``, ``save``). Nothing here uses
pyplot: no window opens, and the backend of a session that imports this module (a notebook's
inline one, say) is left as it is.
"""
import os

import numpy
from matplotlib.figure import Figure

FIGSIZE = (4.5, 3.5)
FRONTIER_COLOR = "#5163d3"
BASELINE_COLOR = "#d3515a"
KNEE_COLOR = "#50d350"
EXIT_COLORS = ("#5163d3", "#50d350", "#d3515a", "#d3a251", "#9151d3", "#51c4d3")


def new_figure(ncols=1, width=1):
    """A Figure of ``ncols`` side-by-side Axes (the original's size per Axes, ``width`` times as
    wide); returns (figure, axes), axes an array when ``ncols`` > 1."""
    fig = Figure(figsize=(width * FIGSIZE[0] * ncols, FIGSIZE[1]))
    return fig, fig.subplots(1, ncols)


def save(fig, path):
    """Writes ``fig`` as a 150-dpi PNG at ``path`` (folders made); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    return path


def plot_tradeoff(ax, times, accuracies, frontier, knee, baseline_ms, baseline_accuracy, title=None,
                  xlabel="Runtime (ms)", marks=()):
    """Accuracy against runtime (Fig. 3): every configuration as a faint dot, the frontier as a
    line, the baseline as a red diamond and the knee as a green star.

    ``times`` (ms) and ``accuracies`` (fractions): one per configuration; ``frontier``: indices in
    runtime order; ``knee``: an index or None; ``marks``: extra (label, ms, accuracy) points drawn
    as black crosses (e.g. the paper's thresholds)."""
    times = numpy.asarray(times, dtype=float)
    accs = 100.0 * numpy.asarray(accuracies, dtype=float)
    ax.scatter(times, accs, s=6, color="0.75", zorder=1, label="configurations")
    ax.plot(times[frontier], accs[frontier], "-o", color=FRONTIER_COLOR, markersize=3, zorder=2,
            label="B-net frontier")
    if baseline_ms is not None and baseline_accuracy is not None:
        ax.plot([baseline_ms], [100.0 * baseline_accuracy], "D", color=BASELINE_COLOR,
                markersize=8, zorder=3, label="baseline")
    if knee is not None:
        ax.plot([times[knee]], [accs[knee]], "*", color=KNEE_COLOR, markersize=14, zorder=4,
                markeredgecolor="k", markeredgewidth=0.5, label="knee")
    for label, ms, acc in marks:
        ax.plot([ms], [100.0 * acc], "x", color="k", markersize=7, zorder=5, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Classification accuracy (%)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    ax.grid(alpha=0.3)
    return ax


def _stage_offsets(log):
    x, offset, boundary, last_stage = [], 0, None, None
    count = {}
    for entry in log:
        if last_stage is not None and entry["stage"] != last_stage:
            offset = count[last_stage]
            boundary = offset + 0.5
        x.append(offset + entry["epoch"])
        count[entry["stage"]] = offset + entry["epoch"]
        last_stage = entry["stage"]
    return numpy.array(x), boundary


def plot_training_curves(axes, log, title=None):
    """Loss (``axes[0]``) and accuracy (``axes[1]``) per exit against epoch, pretraining then joint
    training (a dotted line between the stages); training set solid, validation set dashed.
    ``log``: the entries of ``trainer.read_log``. Returns the axes."""
    if not log:
        for ax in axes:
            ax.text(0.5, 0.5, "no training log", ha="center", va="center")
        return axes
    x, boundary = _stage_offsets(log)
    num_exits = len(log[0]["train/loss"])
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for k in range(num_exits):
            color = EXIT_COLORS[k % len(EXIT_COLORS)]
            for split, style in (("train", "-"), ("val", "--")):
                values = [e.get("%s/%s" % (split, metric)) for e in log]
                y = numpy.array([numpy.nan if v is None or v[k] is None else v[k] for v in values],
                                dtype=float)
                ax.plot(x, y, style, color=color, marker="." if len(x) < 5 else None,
                        label="exit %d %s" % (k + 1, split))
        if boundary is not None:
            ax.axvline(boundary, color="0.5", linestyle=":", linewidth=1)
        ax.set_xlabel("Epoch (pretraining, then joint)")
        ax.set_ylabel(metric.capitalize())
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6)
    if title:
        axes[0].figure.suptitle(title, fontsize=9)
    return axes


def plot_entropies(ax, entropies, title=None, floor=1e-8):
    """Histogram of each exit's softmax entropy (nats) over a set, log-spaced bins from the
    smallest entropy (at least ``floor``; smaller ones, zeros included, count in the first bin)
    to the largest."""
    entropies = numpy.asarray(entropies, dtype=float)
    top = max(float(entropies.max()) if entropies.size else 1.0, floor * 10)
    positive = entropies[entropies > 0]
    bottom = min(max(floor, float(positive.min()) if positive.size else floor), top / 10)
    bins = numpy.logspace(numpy.log10(bottom), numpy.log10(top * 1.01), 50)
    floor = bottom
    for k, ent in enumerate(entropies):
        ax.hist(numpy.clip(ent, floor, None), bins=bins, histtype="step",
                color=EXIT_COLORS[k % len(EXIT_COLORS)], label="exit %d" % (k + 1))
    ax.set_xscale("log")
    ax.set_xlabel("Entropy (nats)")
    ax.set_ylabel("Samples")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return ax


def plot_exit_fractions(ax, entropies, thresholds, title=None):
    """Fraction of samples that would leave at each non-final exit against that exit's threshold,
    if every sample reached it (entropy < T): each exit's share with only that exit open. The
    swept threshold values are marked."""
    entropies = numpy.asarray(entropies, dtype=float)
    thresholds = numpy.asarray(sorted(thresholds), dtype=float)
    dense = numpy.logspace(numpy.log10(thresholds.min()), numpy.log10(thresholds.max()), 200)
    for k, ent in enumerate(entropies[:-1]):
        color = EXIT_COLORS[k % len(EXIT_COLORS)]
        ax.plot(dense, 100.0 * (ent[None, :] < dense[:, None]).mean(axis=1), "-", color=color,
                label="exit %d" % (k + 1))
        ax.plot(thresholds, 100.0 * (ent[None, :] < thresholds[:, None]).mean(axis=1), "o",
                color=color, markersize=3)
    ax.set_xscale("log")
    ax.set_xlabel("Threshold T (nats)")
    ax.set_ylabel("Samples exiting (%)")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return ax
