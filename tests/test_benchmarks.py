"""The benchmark scripts run end to end in a tiny configuration and write well-formed results
(their numbers are not checked: benchmarks are not tests, see benchmarks/)."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", script)] + list(args),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("cores", [1, 2])
def test_bench_training_tiny(tmp_path, cores):
    out = tmp_path / "training.json"
    text = _run("bench_training.py", "--cores", str(cores), "--skip-alexnet", "--lenet-batch", "8",
                "--lenet-repeats", "1", "--warmup", "0", "--sgemm-n", "64", "--sgemm-repeats", "1",
                "--out", str(out))
    assert "cores: %d" % cores in text
    summary = json.loads(out.read_text())
    assert summary["settings"]["cores"] == cores
    rows = summary["results"][0]["rows"]
    assert [r["step"] for r in rows] == ["main", "joint"]
    for r in rows:
        assert r["fast"]["wall_ms"] > 0 and r["stock"]["wall_ms"] > 0
        assert r["speedup_wall"] == pytest.approx(r["stock"]["wall_ms"] / r["fast"]["wall_ms"])


def test_bench_training_refuses_zero_cores():
    done = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "bench_training.py"),
                           "--cores", "0", "--skip-alexnet"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "--cores must be at least 1" in done.stderr


def test_bench_inference_tiny(tmp_path):
    out = tmp_path / "inference.json"
    text = _run("bench_inference.py", "--skip-alexnet", "--lenet-samples", "4", "--repeats", "1",
                "--warmup", "0", "--real-samples", "4", "--real-repeats", "1", "--out", str(out))
    assert "MAC bound" in text
    assert json.loads(out.read_text())


def test_bench_conv_paths_runs(tmp_path):
    out = tmp_path / "conv_paths.json"
    text = _run("bench_conv_paths.py", "--repeats", "1", "--out", str(out))
    assert "input gradient" in text and "weight gradient" in text
    assert len(json.loads(out.read_text())["rows"]) == 11


def test_bench_batch1_stages_runs(tmp_path):
    out, plot = tmp_path / "stages.json", tmp_path / "stages.png"
    text = _run("bench_batch1_stages.py", "--repeats", "1", "--calls", "3", "--out", str(out),
                "--plot", str(plot))
    summary = json.loads(out.read_text())
    assert "MAC bound (a = 0)" in text and plot.stat().st_size > 0
    assert summary["paths"]["exit 1"]["macs"] == 220150  # reference §2.7: 112,500 + 107,650
    assert summary["gains"]["MAC bound (a = 0)"] == pytest.approx(4.09, abs=0.01)
