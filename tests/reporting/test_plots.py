"""Figures: each plot function draws on the Axes it is given (nothing saved by it), the caller's
``save`` writes a PNG, and importing the module leaves matplotlib's backend alone (a notebook's
inline backend must keep working after ``from branchynet.reporting import figures``)."""
import os
import subprocess
import sys

import numpy

from branchynet.reporting import figures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG


def test_every_plot_writes_a_png(tmp_path):
    rows = [{"accuracy": a, "ms": t} for a, t in ((0.90, 1.0), (0.95, 2.0), (0.97, 3.0))]
    log = [{"stage": "main", "epoch": 1, "train/loss": [None, 1.0], "train/accuracy": [None, 0.5],
            "val/loss": [2.3, 0.9], "val/accuracy": [0.1, 0.6]},
           {"stage": "joint", "epoch": 1, "train/loss": [0.8, 0.7], "train/accuracy": [0.7, 0.8],
            "val/loss": [0.8, 0.6], "val/accuracy": [0.7, 0.8]}]
    entropies = numpy.random.default_rng(0).uniform(0, 2.3, size=(2, 100))
    drawn = []
    fig, ax = figures.new_figure()
    assert figures.plot_tradeoff(ax, [r["ms"] for r in rows], [r["accuracy"] for r in rows],
                                 [0, 1, 2], 1, 2.5, 0.96) is ax
    drawn.append((fig, "t.png"))
    fig, axes = figures.new_figure(2)
    figures.plot_training_curves(axes, log)
    drawn.append((fig, "c.png"))
    for name, plot in (("e.png", lambda ax: figures.plot_entropies(ax, entropies)),
                       ("f.png", lambda ax: figures.plot_exit_fractions(ax, entropies, [0.01, 0.1, 1.0]))):
        fig, ax = figures.new_figure()
        plot(ax)
        drawn.append((fig, name))
    assert not list(tmp_path.iterdir())  # drawing saves nothing
    for fig, name in drawn:
        assert fig.axes[0].lines or fig.axes[0].collections or fig.axes[0].patches
        assert _is_png(figures.save(fig, str(tmp_path / "sub" / name)))


def test_the_tradeoff_draws_the_frontier_and_the_knee_where_told():
    fig, ax = figures.new_figure()
    figures.plot_tradeoff(ax, [1.0, 2.0, 3.0], [0.90, 0.95, 0.97], [0, 2], 2, 2.5, 0.96)
    frontier_line = next(line for line in ax.lines if line.get_label() == "B-net frontier")
    knee = next(line for line in ax.lines if line.get_label() == "knee")
    assert list(frontier_line.get_xdata()) == [1.0, 3.0] and list(frontier_line.get_ydata()) == [90.0, 97.0]
    assert list(knee.get_xdata()) == [3.0] and list(knee.get_ydata()) == [97.0]


def test_importing_plots_keeps_the_backend():
    code = ("import matplotlib.pyplot, matplotlib; from branchynet.reporting import figures; "
            "print(matplotlib.get_backend())")
    env = dict(os.environ, MPLBACKEND="svg")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "svg"
