"""Each experiment script end to end in a tiny configuration, and Table I from their outputs.

Like Chainer's example tests, the numbers are only checked against plausible ranges: one short
epoch on a few hundred images teaches the nets little.
"""
import csv
import json
import math
import os
import subprocess
import sys

import numpy
import pytest

import branchynet  # noqa: F401
import networks
from branchynet.evaluation.results import PaperEntry, Result
from branchynet.model import serialization
from branchynet.reporting import paper, table1
from branchynet.training import runs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPTS = {
    "b-lenet": ("experiments/measure.py", ["--network", "b-lenet"], 17, 2),
    "b-alexnet": ("experiments/measure.py", ["--network", "b-alexnet"], 121, 3),
    "b-resnet110": ("experiments/measure.py", ["--network", "b-resnet110", "--net-arg", "n=1"], 289, 3),
}
TINY = ["--main-epochs", "1", "--joint-epochs", "1", "--batchsize", "128", "--train-subset", "256",
        "--val-size", "100", "--test-subset", "200", "--timing-samples", "20", "--repeats", "1",
        "--warmup", "2", "--throughput-batch", "100", "--no-progress"]


def run_script(script, args):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script)] + args, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def results_root(tmp_path_factory):
    return tmp_path_factory.mktemp("results")


_RUNS = {}


def run_network(network, results_root):
    """Runs a network's script once per test session (trains into results_root/<network>/run)."""
    if network not in _RUNS:
        script, extra, _, _ = SCRIPTS[network]
        out = results_root / network
        stdout = run_script(script, TINY + extra + ["--results", str(out), "--run-dir",
                                                     str(out / "run"), "--train-if-missing"])
        _RUNS[network] = (stdout, Result.load(out / "results.json"), out)
    return _RUNS[network]


def in_unit(value):
    return value is not None and 0.0 <= value <= 1.0


@pytest.mark.parametrize("network", list(SCRIPTS))
def test_script_writes_well_formed_results(network, results_root):
    stdout, result, out = run_network(network, results_root)
    _, _, num_rows, num_exits = SCRIPTS[network]
    assert "no trained weights" in stdout  # so it trained first
    for name in ("results.json", "sweep.csv", "table.md", "tradeoff_cpu_e2e.png",
                 "tradeoff_cpu_trunk.png", "training_curves.png", "entropy.png",
                 "exit_fractions.png", "run/branchy.npz", "run/main.npz", "run/log.jsonl"):
        assert (out / name).stat().st_size > 0, name

    assert result.network == network
    if network == "b-resnet110":
        assert result.net_config["kwargs"]["n"] == 1  # --net-arg reached the factory
    assert len(result.rows) == num_rows and len(result.val_rows) == num_rows
    with open(out / "sweep.csv") as f:
        sweep = list(csv.DictReader(f))
    assert len(sweep) == num_rows
    assert result.settings.test_samples == 200 and result.settings.val_samples == 100
    # the split the run was measured on: MNIST scaled, CIFAR-10 by its default recipe
    assert result.settings.preprocessing == ("x / 255" if network == "b-lenet" else "gcn")
    cpu = result.devices["cpu"]
    assert len(cpu.row_times) == num_rows and len(cpu.val_times) == num_rows
    for row, times in zip(result.rows + [result.paper_row], cpu.row_times + [cpu.paper_times]):
        assert len(row.thresholds) == num_exits - 1
        assert in_unit(row.accuracy)
        assert math.isclose(sum(row.exit_fractions), 1.0, rel_tol=1e-9)
        assert sum(row.exit_counts) == 200
        assert times.ms_e2e >= times.ms_trunk > 0
    assert float(sweep[0]["cpu_ms_e2e"]) == cpu.row_times[0].ms_e2e  # each device's columns
    assert result.paper_row.thresholds == list(result.paper_thresholds)
    assert in_unit(result.accuracy.main) and in_unit(result.accuracy.branchy_final)
    assert len(result.accuracy.per_exit) == num_exits

    assert len(cpu.exits.segment_ms) == num_exits
    assert all(v > 0 for v in cpu.exits.segment_ms + cpu.exits.head_ms)
    assert cpu.baselines.main.ms > 0 and cpu.baselines.branchy_final.ms > 0
    assert cpu.checks and cpu.batched
    for check in cpu.checks + cpu.batched:
        assert check.agree, check  # real early-exit runs == the analytic sweep
        assert check.mismatched_samples == 0
    for check in cpu.checks:
        assert check.ms_measured > 0 and check.ms_predicted_e2e >= check.ms_predicted_trunk
    for entry in cpu.batched:
        assert entry.per_second > 0 and entry.mac_bound > 0

    macs = result.macs
    assert len(macs.segments) == len(macs.heads) == num_exits
    assert all(v > 0 for v in macs.segments[:1] + macs.heads)

    sel = cpu.selection
    assert sel.test.knee in sel.test.frontier and sel.val.knee in sel.val.frontier

    env = result.environment
    assert env.hardware.cpu and env.versions["chainer"] == "7.8.1"
    assert "--test-subset 200" in env.command and env.date

    table = result.table
    assert [r.row for r in table] == ["baseline (main.npz)", "final exit (branchy.npz)",
                                      "paper T", "knee (test)", "knee (val)"]
    assert table[2].thresholds == list(result.paper_thresholds)
    # each row's numbers are the measurements it names, beside its own family's Table I entry
    paper_cpu = paper.TABLE1[networks.family_of(network)]["cpu"]
    assert table[0].accuracy == pytest.approx(100 * result.accuracy.main)
    assert table[0].ms_measured == cpu.baselines.main.ms
    assert table[0].paper == PaperEntry(**paper_cpu["baseline"])
    assert table[1].accuracy == pytest.approx(100 * result.accuracy.per_exit[-1])
    assert table[2].accuracy == pytest.approx(100 * result.paper_row.accuracy)
    assert table[2].exits == pytest.approx([100 * f for f in result.paper_row.exit_fractions])
    assert table[2].ms_e2e == cpu.paper_times.ms_e2e
    paper_t_check = [c for c in cpu.checks if c.thresholds == table[2].thresholds]
    assert table[2].ms_measured == paper_t_check[0].ms_measured
    assert table[2].gain_measured == pytest.approx(table[0].ms_measured / table[2].ms_measured)
    knee = result.rows[sel.test.knee]
    assert table[3].thresholds == knee.thresholds
    assert table[3].accuracy == pytest.approx(100 * knee.accuracy)
    assert table[4].thresholds == result.val_rows[sel.val.knee].thresholds
    for row in table[2:]:
        assert row.paper.accuracy == paper_cpu["branchy"]["accuracy"]
        assert row.paper.exits == list(paper.TABLE1[networks.family_of(network)]["exits"])
    with open(out / "table.md") as f:
        md = f.read()
    assert "| Dev | Network |" in md and "paper T" in md
    assert "paper T" in stdout and "Paper acc %" in stdout  # the printed table


def test_second_run_loads_the_weights_instead_of_training(results_root):
    _, first, out = run_network("b-lenet", results_root)
    stdout = run_script("experiments/measure.py",
                        ["--network", "b-lenet", "--run-dir", str(out / "run"),
                         "--results", str(results_root / "again"),
                         "--test-subset", "50", "--timing-samples", "5", "--repeats", "1",
                         "--warmup", "1", "--no-progress", "--stock-chainer"])
    assert "no trained weights" not in stdout
    again = Result.load(results_root / "again" / "results.json")
    assert again.settings.val_size == 100  # read back from the run's run.json
    assert again.settings.test_samples == 50 and len(again.rows) == 17
    assert again.net_config == first.net_config
    assert again.settings.stock_chainer and not again.settings.fast_cpu


def test_a_given_grid_replaces_the_papers(results_root):
    _, _, out = run_network("b-lenet", results_root)
    run_script("experiments/measure.py",
               ["--network", "b-lenet", "--run-dir", str(out / "run"), "--results",
                str(results_root / "grid"), "--grid", "0.01,1", "--test-subset", "50",
                "--timing-samples", "5", "--repeats", "1", "--warmup", "1", "--no-progress"])
    result = Result.load(results_root / "grid" / "results.json")
    assert [r.thresholds for r in result.rows] == [[0.01], [1.0]]
    assert result.settings.candidates == "given grid" and result.settings.threshold_list is None
    assert result.paper_row.thresholds == [0.025] and result.paper_row_in_grid is False


def test_joint_training_from_another_runs_main_network(results_root, tmp_path):
    """--main-from: no pretraining; the given main.npz becomes the run's baseline."""
    _, _, out = run_network("b-lenet", results_root)
    source = out / "run" / "main.npz"
    run = tmp_path / "joint-only"
    run_script("experiments/train.py", ["--network", "b-lenet", "--main-epochs", "0",
                                        "--joint-epochs", "1", "--batchsize", "128",
                                        "--train-subset", "256", "--val-size", "100",
                                        "--weights", "code", "--main-from", str(source),
                                        "--out", str(run), "--no-progress"])
    assert (run / "main.npz").read_bytes() == source.read_bytes()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in log] == ["joint"]
    # with no joint epochs the saved net is the given main network, parameter for parameter
    run_script("experiments/train.py", ["--network", "b-lenet", "--main-epochs", "0",
                                        "--joint-epochs", "0", "--main-from", str(source),
                                        "--out", str(tmp_path / "loaded"), "--no-progress"])
    with numpy.load(source) as a, numpy.load(tmp_path / "loaded" / "branchy.npz") as b:
        params = [k for k in a.files if k.endswith("/W") or k.endswith("/b")]
        assert params and all(numpy.array_equal(a[k], b[k]) for k in params)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments/train.py"),
                           "--network", "b-lenet", "--main-epochs", "5", "--joint-epochs", "1",
                           "--main-from", str(source), "--out", str(tmp_path / "refused")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "give --main-epochs 0" in proc.stderr
    assert not os.path.exists(tmp_path / "refused")


def test_gpu_only_without_a_gpu_is_refused_before_any_work(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments/measure.py"),
                           "--network", "b-lenet", "--gpu-only", "--run-dir", str(tmp_path / "run"),
                           "--results", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--gpu-only needs a GPU --device" in proc.stderr
    assert not os.path.exists(tmp_path / "run") and not os.path.exists(tmp_path / "out")


def test_table1_from_the_tiny_results(results_root, tmp_path):
    for network in SCRIPTS:
        run_network(network, results_root)
    stdout = run_script("experiments/table1.py", ["--results-root", str(results_root)])
    with open(results_root / "table1.json") as f:
        table = table1.Table1.from_json(json.load(f))
    assert table == table1.assemble(str(results_root), list(table1.NETWORKS))
    assert all(s.found for s in table.networks.values())
    ours = [r for r in table.time_rows if r.device == "cpu"]
    assert {r.network for r in ours} == {"LeNet", "B-LeNet", "AlexNet", "B-AlexNet",
                                         "ResNet-110", "B-ResNet"}
    assert {r.network for r in table.accuracy_rows} == {r.network for r in ours}
    gpu = [r for r in table.time_rows if r.device == "gpu"]
    assert gpu and all(r.row == "no GPU run" for r in gpu)  # the authors' GPU rows, ours absent
    md = (results_root / "table1.md").read_text()
    assert "B-ResNet" in md and "99.25" in md and "no GPU results" in md
    assert "B-AlexNet" in stdout
    assert ("b-lenet: trained 1 + 1 epochs, batch 128, 256 training images, NOT the paper's "
            "schedule (100 + 100 epochs, batch 512)") in md

    # a missing network is said plainly
    run_script("experiments/table1.py", ["--results-root", str(results_root),
                                         "--networks", "b-lenet", "b-alexnet-paper",
                                         "--out", str(tmp_path / "t1.md")])
    md = (tmp_path / "t1.md").read_text()
    assert "b-alexnet-paper: no results" in md and "--network b-alexnet-paper" in md
    assert "not run" in md

    # GPU rows from a GPU-machine run in <root>/gpu/<network>/ (its CPU rows stay unused)
    gpu_result = Result.load(results_root / "b-lenet" / "results.json")
    gpu_result.devices = {"gpu": gpu_result.devices["cpu"]}
    gpu_result.devices["gpu"].device = "gpu"
    gpu_result.devices["gpu"].baseline_ms = 12.34
    gpu_result.environment.hardware.gpu = "Some GPU"
    (results_root / "gpu" / "b-lenet").mkdir(parents=True)
    with open(results_root / "gpu" / "b-lenet" / "results.json", "w") as f:
        json.dump(gpu_result.to_json(), f)
    run_script("experiments/table1.py", ["--results-root", str(results_root),
                                         "--out", str(tmp_path / "t2.md")])
    with open(tmp_path / "t2.json") as f:
        rows = table1.Table1.from_json(json.load(f)).time_rows
    lenet_gpu = [r for r in rows if r.device == "gpu" and r.network == "B-LeNet"]
    assert lenet_gpu and all(r.timed.gain_measured == pytest.approx(12.34 / r.ms_measured)
                             for r in lenet_gpu)
    assert all(r.timed is None or r.timed.gain_measured is None
               or r.timed.gain_measured < 12.34 / r.ms_measured
               for r in rows if r.device == "cpu" and r.network == "B-LeNet")
    assert "b-lenet, GPU rows" in (tmp_path / "t2.md").read_text()


def test_table1_names_each_runs_schedule_against_the_papers(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert table1.schedule_of("resnet110", str(run))["trained"] is None
    for epochs, subset, matches in ((100, 0, True), (2, 0, False), (100, 500, False)):
        serialization.write_run_info(run, {"schedule": {"main_epochs": epochs, "joint_epochs": 100},
                                           "batchsize": 128, "train_subset": subset})
        schedule = table1.schedule_of("resnet110", str(run))
        assert schedule["paper"] == "100 + 100 epochs, batch 128"
        assert schedule["trained"] == ("%d + 100 epochs, batch 128" % epochs
                                       + (", 500 training images" if subset else ""))
        assert schedule["matches"] is matches


def test_runs_summary_compares_runs(results_root, tmp_path):
    _, result, out = run_network("b-lenet", results_root)
    # a second, different run: its own run folder (another seed, loss weights and trunk) and
    # results, whose accuracies differ from the first's
    other_run = tmp_path / "other-run"
    info = serialization.read_run_info(out / "run")
    serialization.write_run_info(other_run, dict(info, seed=7, device="@cupy:0",
                                                 loss_weights={"preset": "code", "values": [1, 1]},
                                                 main_from="elsewhere/main.npz"))
    other = Result.from_json(result.to_json())
    other.settings.run_dir = str(other_run)
    other.accuracy.main = result.accuracy.main - 0.01
    other.paper_row.accuracy = result.paper_row.accuracy + 0.005
    (tmp_path / "other").mkdir()
    with open(tmp_path / "other" / "results.json", "w") as f:
        json.dump(other.to_json(), f)

    out_md = tmp_path / "runs.md"
    stdout = run_script("experiments/runs_summary.py",
                        [str(out), str(tmp_path / "other"), "--out", str(out_md)])
    deltas = [100 * (r.paper_row.accuracy - r.accuracy.main) for r in (result, other)]
    mean, spread = (deltas[0] + deltas[1]) / 2, abs(deltas[0] - deltas[1]) / math.sqrt(2)
    assert ("over 2 runs: mean %+.3f pp, standard deviation %.3f pp, range %+.2f to %+.2f pp"
            % (mean, spread, min(deltas), max(deltas))) in stdout
    lines = out_md.read_text().splitlines()
    first = [line for line in lines if line.startswith("| %s " % out)]
    second = [line for line in lines if line.startswith("| %s " % (tmp_path / "other"))]
    # seed, device, loss weights and where pretraining ran, from each run's run.json
    assert len(first) == 1 and "| 0 | CPU | slides | here |" in first[0]
    assert len(second) == 1 and "| 7 | GPU | code | elsewhere/main.npz |" in second[0]
    assert "| %+.2f |" % deltas[1] in second[0]

    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments/runs_summary.py"),
                           str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert proc.returncode != 0 and "no results.json in" in proc.stderr


def test_training_writes_run_json_and_the_scripts_read_it(results_root):
    _, result, out = run_network("b-lenet", results_root)
    info = serialization.read_run_info(out / "run")
    assert runs.RunSettings.from_info(info) == runs.RunSettings(
        network="b-lenet", main_epochs=1, joint_epochs=1, batchsize=128, weights="slides",
        beta1=0.9, seed=0, val_size=100, train_subset=256, main_from=None, net_kwargs={})
    assert info["dataset"] == "mnist" and info["family"] == "lenet"
    assert info["loss_weights"]["values"] == [1.0, 0.3]
    assert info["optimizer"]["opt"] == "Adam" and info["optimizer"]["beta1"] == 0.9
    assert info["device"] == "@numpy" and info["stock_chainer"] is False
    assert info["versions"]["chainer"] == "7.8.1" and info["resumes"] == []
    assert info["git_commit"] is None or len(info["git_commit"].split("+")[0]) == 40
    assert "experiments/measure.py" in info["command"] and "--network b-lenet" in info["command"]
    assert "--train-subset 256" in info["command"]
    assert info["command"] in (out / "run" / "command.txt").read_text()  # the human record too
    assert result.settings.val_size == info["val_size"]
    _, resnet, resnet_out = run_network("b-resnet110", results_root)
    assert serialization.read_run_info(resnet_out / "run")["net_kwargs"] == {"n": 1}


def test_a_resume_with_other_settings_is_refused(tmp_path, results_root):
    _, _, out = run_network("b-lenet", results_root)
    run = tmp_path / "joint"
    common = ["--network", "b-lenet", "--main-epochs", "0", "--batchsize", "128",
              "--train-subset", "256", "--val-size", "100", "--main-from", str(out / "run" / "main.npz"),
              "--out", str(run), "--no-progress"]
    run_script("experiments/train.py", common + ["--joint-epochs", "0"])
    first = serialization.read_run_info(run)
    assert first["schedule"] == {"main_epochs": 0, "joint_epochs": 0}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments/train.py")] + common
                          + ["--joint-epochs", "2", "--seed", "3", "--weights", "code"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    for name in ("joint_epochs: 0 -> 2", "seed: 0 -> 3", "weights: 'slides' -> 'code'"):
        assert name in proc.stderr
    assert "batchsize" not in proc.stderr  # only the differing settings are named
    assert serialization.read_run_info(run) == first
    # the same settings resume, on another device flag too, and the launch is recorded
    run_script("experiments/train.py", common + ["--joint-epochs", "0", "--stock-chainer"])
    resumed = serialization.read_run_info(run)
    assert len(resumed["resumes"]) == 1 and resumed["resumes"][0]["stock_chainer"] is True
    assert dict(resumed, resumes=[]) == first


def test_a_net_of_no_paper_family_has_no_paper_schedule(tmp_path):
    run = tmp_path / "run"
    serialization.write_run_info(run, {"schedule": {"main_epochs": 3, "joint_epochs": 2},
                                       "batchsize": 64, "train_subset": 0})
    schedule = table1.schedule_of(None, str(run))
    assert schedule == {"paper": None, "trained": "3 + 2 epochs, batch 64", "matches": None}
