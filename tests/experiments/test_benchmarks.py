"""The benchmark scripts run end to end in a tiny configuration and write well-formed results
(their numbers are not checked: benchmarks are not tests, see benchmarks/)."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    # Every benchmark's output names the CPU and the kernels it ran (timing off under the tests).
    kernels = summary["kernels"]
    assert kernels["threads"] == cores and kernels["calibration"] is False
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                     None)
    if model:
        assert kernels["cpu"].startswith(model)
    assert "kernels on %s: fast path on, %d thread(s)" % (kernels["cpu"], cores) in text
    assert "choices run: default rules (timing off)" in text


def test_bench_training_rows_from_scripted_timings(monkeypatch):
    """bench_network in-process, its clock replaced by fixed times: every step runs in its mode
    (fast kernels on or off), and each derived number is checked against a hand computation."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    try:
        import bench_training
    finally:
        sys.path.remove(os.path.join(REPO, "benchmarks"))
    import chainer

    from branchynet import BranchyNet, benchmark
    times = {("fast", "main"): (2.0, 3.0), ("fast", "joint"): (4.0, 5.0),
             ("stock", "main"): (10.0, 9.0), ("stock", "joint"): (12.0, 30.0)}
    steps, modes = [], {}
    for method, step in (("train_main", "main"), ("train", "joint")):
        real = getattr(BranchyNet, method)
        monkeypatch.setattr(BranchyNet, method, lambda self, x, t, opt, real=real, step=step: (
            steps.append((step, chainer.config.branchynet_fast_cpu)), real(self, x, t, opt))[1])

    def scripted(fns, repeats, warmup=1, inner=1):
        out = {}
        for key, fn in fns.items():
            del steps[:]
            fn()
            modes[key] = list(steps)
            out[key] = {"wall_ms": times[key][0], "cpu_ms": times[key][1]}
        return out
    monkeypatch.setattr(benchmark, "time_interleaved", scripted)
    result = bench_training.bench_network("b-lenet", {}, 8, 1, 0, 0,
                                          {"wall_gflops": 10.0, "cpu_gflops": 20.0}, [])
    assert modes == {("fast", "main"): [("main", True)], ("fast", "joint"): [("joint", True)],
                     ("stock", "main"): [("main", False)], ("stock", "joint"): [("joint", False)]}
    main, joint = result["rows"]
    # B-LeNet's MACs per sample (test_timing.lenet_macs_by_hand): segments 112,500 + 1,026,730,
    # heads 107,650 + 840
    assert (main["step"], main["macs_per_sample"]) == ("main", 112500 + 1026730 + 840)
    assert (joint["step"], joint["macs_per_sample"]) == ("joint", 112500 + 1026730 + 107650 + 840)
    assert main["flop_per_step"] == 6 * 1140070 * 8
    assert main["speedup_wall"] == pytest.approx(5.0) and main["speedup_cpu"] == pytest.approx(3.0)
    assert joint["speedup_wall"] == pytest.approx(3.0) and joint["speedup_cpu"] == pytest.approx(6.0)
    assert main["fast"]["epoch_s_wall"] == pytest.approx(2e-3 * 55000 / 8)
    assert main["fast"]["gflops_wall"] == pytest.approx(6 * 1140070 * 8 / 2e-3 / 1e9)
    assert main["stock"]["pct_sgemm_cpu"] == pytest.approx(
        100 * 6 * 1140070 * 8 / 9e-3 / 1e9 / 20.0)
    assert result["joint_over_main"]["fast"] == {"wall": 2.0, "cpu": pytest.approx(5.0 / 3.0)}


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
    assert "forward" in text and "input gradient" in text and "weight gradient" in text
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 12 and set(rows[0]["weight gradient"]) >= {"per_sample", "per_chunk"}


def test_bench_batch1_stages_runs(tmp_path):
    out, plot = tmp_path / "stages.json", tmp_path / "stages.png"
    text = _run("bench_batch1_stages.py", "--repeats", "1", "--calls", "3", "--out", str(out),
                "--plot", str(plot))
    summary = json.loads(out.read_text())
    assert "MAC bound (a = 0)" in text and plot.stat().st_size > 0
    assert summary["paths"]["exit 1"]["macs"] == 220150  # segment 1 + head 1: 112,500 + 107,650
    assert summary["gains"]["MAC bound (a = 0)"] == pytest.approx(4.09, abs=0.01)


def _peer_module():
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    try:
        import bench_peer_pytorch
    finally:
        sys.path.remove(os.path.join(REPO, "benchmarks"))
    return bench_peer_pytorch


def test_bench_peer_pytorch_plans_the_cases():
    """--cases picks cases by name, in the benchmark's order; --skip-alexnet drops B-AlexNet's;
    an unknown name is refused."""
    peer = _peer_module()
    names = [c["name"] for c in peer.plan(peer._parse([]))]
    assert names == ["lenet-main", "lenet-joint", "alexnet-main", "alexnet-joint", "lenet-batch1",
                     "alexnet-batch1"]
    cases = peer.plan(peer._parse(["--cases", "alexnet-batch1,lenet-joint", "--alexnet-rounds", "2",
                                   "--rounds", "5", "--steps", "4"]))
    assert [(c["name"], c["kind"], c["batch"], c["repeat"], c["rounds"]) for c in cases] == [
        ("lenet-joint", "joint", 512, 4, 5), ("alexnet-batch1", "batch1", 1, 1, 5)]
    assert [c["name"] for c in peer.plan(peer._parse(["--skip-alexnet"]))] == [
        "lenet-main", "lenet-joint", "lenet-batch1"]
    with pytest.raises(SystemExit):
        peer._parse(["--cases", "lenet-main,resnet-main"])


def test_bench_peer_pytorch_plans_single_layers():
    """Single layers run only when named, after the network cases; their MACs per timed block are
    counted by hand: forward, weight gradient and (but for a network's first layer) input
    gradient, each batch x O x C x k x k x output pixels."""
    peer = _peer_module()
    cases = peer.plan(peer._parse(["--cases", "gemm,alexnet-conv2,lenet-main,lenet-conv1",
                                   "--steps", "2", "--alexnet-rounds", "3", "--rounds", "5"]))
    assert [(c["name"], c["kind"], c["repeat"], c["rounds"]) for c in cases] == [
        ("lenet-main", "main", 2, 5), ("lenet-conv1", "conv", 2, 5),
        ("alexnet-conv2", "conv", 1, 3), ("gemm", "gemm", 2, 5)]
    lenet_conv1, alexnet_conv2, gemm = cases[1:]
    assert lenet_conv1["macs"] == 512 * 5 * 1 * 25 * 30 * 30 * 2  # 1->5, 5x5, pad 3: 30x30 out
    assert alexnet_conv2["macs"] == 512 * 64 * 32 * 25 * 16 * 16 * 3
    assert gemm["macs"] == 64 * 800 * 4608
    assert "no input gradient" in lenet_conv1["label"]
    assert "no input gradient" not in alexnet_conv2["label"]
    assert [c["name"] for c in peer.plan(peer._parse(["--cases", "alexnet-pool1,lenet-pool1",
                                                      "--skip-alexnet"]))] == ["lenet-pool1"]


def _torch_python():
    """A Python that imports torch: the checkout's .peer/venv, else this one; None if neither."""
    for python in (os.path.join(REPO, ".peer", "venv", "bin", "python"), sys.executable):
        if os.path.exists(python) and subprocess.run([python, "-c", "import torch"],
                                                     capture_output=True).returncode == 0:
            return python
    return None


def test_bench_peer_pytorch_tiny(tmp_path):
    python = _torch_python()
    if python is None:
        pytest.skip("no PyTorch (benchmarks/bench_peer_pytorch.py --install makes .peer/venv)")
    out = tmp_path / "peer.json"
    text = _run("bench_peer_pytorch.py", "--torch-python", python, "--lenet-batch", "8",
                "--alexnet-batch", "8", "--rounds", "1", "--alexnet-rounds", "1", "--steps", "1",
                "--infer-samples", "2", "--out", str(out))
    summary = json.loads(out.read_text())
    assert [c["name"] for c in summary["cases"]] == list(_peer_module().CASES)
    assert "CPU: %s" % summary["environment"]["hardware"]["cpu"] in text
    layers = tmp_path / "layers.json"
    _run("bench_peer_pytorch.py", "--torch-python", python, "--lenet-batch", "4",
         "--alexnet-batch", "2", "--rounds", "1", "--alexnet-rounds", "1", "--steps", "1",
         "--cases", ",".join(_peer_module().LAYERS), "--out", str(layers))
    by_name = {c["name"]: c for c in json.loads(layers.read_text())["cases"]}
    assert list(by_name) == list(_peer_module().LAYERS)
    assert by_name["alexnet-conv2"]["params"] == 32 * 64 * 25 + 64  # equal on both sides
    for c in by_name.values():
        assert c["ours_ms"] > 0 and c["pytorch_ms"] > 0
        assert ("ours_gmacs" in c) == (c["kind"] != "pool")
    assert summary["kernels"]["threads"] == 2 and "jit" in summary["kernels"]
    params = {c["net"]: c["params"] for c in summary["cases"]}  # equal on both sides, or an error
    assert params == {"b-lenet": 74694, "b-alexnet": 605886}
    for c in summary["cases"]:
        assert c["ours_ms"] > 0 and c["pytorch_ms"] > 0


def test_bench_gpu_early_exit_runs_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_early_exit.json"
    text = _run("bench_gpu_early_exit.py", "--device", "@numpy", "--networks", "B-LeNet",
                "--samples", "4", "--repeats", "1", "--batches", "1,4", "--batch-samples", "8",
                "--batch-repeats", "1", "--out", str(out))
    summary = json.loads(out.read_text())
    [row] = summary["batch1"]
    assert row["agree"] == {"main": True, "early": True} and row["graphs_captured"] is False
    assert [r["batch"] for r in summary["batched"][0]["rows"]] == [1, 4]
    assert "MAC bound" in text and "device @numpy" in text


def test_bench_denormals_tiny(tmp_path):
    out = tmp_path / "denormals.json"
    text = _run("bench_denormals.py", "--batch", "16", "--steps", "1", "--repeats", "1",
                "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [r["net"].split(" (")[1] for r in rows] == ["main.npz)", "branchy.npz)"]
    assert all(r["keep_ms"] > 0 and r["flush_ms"] > 0 for r in rows) and "keep" in text
    assert 0 < rows[1]["subnormal_share"]["softmax"][1] < 1  # the trained net's exit 2 makes them


def test_bench_freed_memory_tiny(tmp_path):
    out = tmp_path / "freed.json"
    text = _run("bench_freed_memory.py", "--networks", "b-lenet", "--threads", "1", "--rounds", "1",
                "--steps", "1", "--warmup", "1", "--batchsize", "8", "--out", str(out))
    assert "faults kept" in text
    row, = json.loads(out.read_text())["rows"]
    assert row["network"] == "b-lenet" and row["kept_ms"] > 0 and row["defaults_ms"] > 0
