"""Figures: each plot function writes a PNG, and importing the module leaves matplotlib's backend
alone (a notebook's inline backend must keep working after ``from branchynet.reporting import figures``)."""
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
    paths = [figures.tradeoff(rows, "ms", [0, 1, 2], 1, 2.5, 0.96, str(tmp_path / "t.png")),
             figures.training_curves(log, str(tmp_path / "c.png")),
             figures.entropy_distributions(entropies, str(tmp_path / "e.png")),
             figures.exit_fractions(entropies, [0.01, 0.1, 1.0], str(tmp_path / "f.png"))]
    assert all(_is_png(p) for p in paths)


def test_importing_plots_keeps_the_backend():
    code = ("import matplotlib.pyplot, matplotlib; from branchynet.reporting import figures; "
            "print(matplotlib.get_backend())")
    env = dict(os.environ, MPLBACKEND="svg")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "svg"
