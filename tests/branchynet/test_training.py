"""Training loop (resume gives the same run as no interruption) and save/load round trips."""
import json
import os
import subprocess
import sys

import numpy
import pytest

import networks
from branchynet import serialization, training

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def small_run(out, main_epochs, joint_epochs, data):
    numpy.random.seed(0)
    net = networks.build("b-lenet")
    x, t = data
    log = training.fit(net, (x[:600], t[:600]), (x[1600:2000], t[1600:2000]), out,
                       main_epochs, joint_epochs, batchsize=128, seed=3, echo=lambda s: None)
    return net, log


def params(net):
    return {name: p.array.copy() for name, p in net.namedparams()}


def test_resumed_run_equals_uninterrupted_run(tmp_path, mnist_subset):
    net_a, log_a = small_run(str(tmp_path / "a"), 1, 2, mnist_subset)
    # the same schedule, stopped after one epoch of each stage, then resumed by a new process' worth
    # of objects (a new net built from scratch, loading the checkpoint)
    small_run(str(tmp_path / "b"), 1, 0, mnist_subset)
    small_run(str(tmp_path / "b"), 1, 1, mnist_subset)
    net_b, log_b = small_run(str(tmp_path / "b"), 1, 2, mnist_subset)
    for name, value in params(net_a).items():
        numpy.testing.assert_array_equal(value, params(net_b)[name], err_msg=name)
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in log_a]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"} for e in log_b]
    assert [(e["stage"], e["epoch"]) for e in training.read_log(str(tmp_path / "b"))] == \
        [("main", 1), ("joint", 1), ("joint", 2)]
    for name in ("main.npz", "branchy.npz", "checkpoint.npz", "optimizer.npz"):
        assert os.path.exists(tmp_path / "b" / name)


def _rewrite_npz(path, arrays):
    numpy.savez_compressed(str(path)[:-len(".npz")], **arrays)


def test_single_file_checkpoint_of_earlier_runs_resumes_the_same(tmp_path, mnist_subset):
    net_a, _ = small_run(str(tmp_path / "a"), 1, 1, mnist_subset)
    small_run(str(tmp_path / "b"), 1, 0, mnist_subset)
    folder = tmp_path / "b"
    with numpy.load(folder / "checkpoint.npz") as model, numpy.load(folder / "optimizer.npz") as opt:
        merged = dict(model)
        merged.update({k: v for k, v in opt.items() if k != "state"})
    _rewrite_npz(folder / "checkpoint.npz", merged)  # the layout before optimizer.npz existed
    os.remove(folder / "optimizer.npz")
    net_b, _ = small_run(str(folder), 1, 1, mnist_subset)
    for name, value in params(net_a).items():
        numpy.testing.assert_array_equal(value, params(net_b)[name], err_msg=name)


def test_checkpoint_files_from_different_epochs_are_refused(tmp_path, mnist_subset):
    small_run(str(tmp_path), 1, 1, mnist_subset)
    with numpy.load(tmp_path / "optimizer.npz") as opt:
        arrays = dict(opt)
    state = json.loads(str(arrays["state"]))
    state["epoch"] = 0
    arrays["state"] = numpy.array(json.dumps(state))
    _rewrite_npz(tmp_path / "optimizer.npz", arrays)
    with pytest.raises(RuntimeError, match="different epochs"):
        small_run(str(tmp_path), 1, 2, mnist_subset)


def test_log_entries_are_complete(tmp_path, mnist_subset):
    _, log = small_run(str(tmp_path), 1, 1, mnist_subset)
    main, joint = log
    assert main["train/loss"][0] is None and main["train/loss"][1] is not None
    assert all(v is not None for v in joint["train/loss"] + joint["val/accuracy"])
    assert 0 < joint["val/accuracy"][1] <= 1


def test_saved_model_predicts_identically_in_a_fresh_process(tmp_path, mnist_subset):
    numpy.random.seed(5)
    net = networks.build("b-lenet", weights="code")
    x = mnist_subset[0][:64]
    net.train(x, mnist_subset[1][:64])
    path = str(tmp_path / "model.npz")
    serialization.save(net, path)
    numpy.save(tmp_path / "x.npy", x)
    labels, exits = net.predict(x, 0.1)
    probs = net.exit_probs(x)
    script = (
        "import sys, numpy, json; sys.path.insert(0, %r)\n"
        "import networks\n"
        "net = networks.load(%r)\n"
        "x = numpy.load(%r)\n"
        "l, e = net.predict(x, 0.1)\n"
        "p = net.exit_probs(x)\n"
        "numpy.savez(%r, l=l, e=e, p0=p[0], p1=p[1], w=numpy.array(net.weights))\n"
    ) % (REPO, path, str(tmp_path / "x.npy"), str(tmp_path / "out.npz"))
    subprocess.run([sys.executable, "-c", script], check=True, cwd=str(tmp_path))
    out = numpy.load(tmp_path / "out.npz")
    numpy.testing.assert_array_equal(out["l"], labels)
    numpy.testing.assert_array_equal(out["e"], exits)
    numpy.testing.assert_array_equal(out["p0"], probs[0])
    numpy.testing.assert_array_equal(out["p1"], probs[1])
    assert out["w"].tolist() == [1.0, 1.0]


def test_save_needs_a_registered_network(tmp_path):
    import chainer.links as L
    from branchynet import Branch, BranchyNet
    net = BranchyNet([L.Linear(4, 3), Branch([L.Linear(3, 2)])])
    with pytest.raises(ValueError, match="networks.build"):
        serialization.save(net, str(tmp_path / "m.npz"))


def test_load_of_a_missing_or_foreign_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved model"):
        networks.load(str(tmp_path / "nothing.npz"))
    numpy.savez(tmp_path / "foreign.npz", a=numpy.zeros(3))
    with pytest.raises(ValueError, match="branchynet_config"):
        networks.load(str(tmp_path / "foreign.npz"))


def test_config_records_factory_arguments(tmp_path):
    net = networks.build("b-lenet", weights="code", beta1=0.99)
    path = str(tmp_path / "m.npz")
    serialization.save(net, path)
    assert serialization.read_config(path) == {"network": "b-lenet",
                                               "kwargs": {"weights": "code", "beta1": 0.99}}
    assert json.dumps(net.config)


# ---------------------------------------------------------------- the GPU's dropout generator
class _DeviceGenerator:
    """Stands for CuPy's generator: a stream that is not in the checkpoint and, like a new
    process's, starts from an unknown state unless seeded."""

    def __init__(self):
        self.rng = numpy.random.RandomState(int.from_bytes(os.urandom(4), "little"))
        self.seeds = []

    def seed(self, value):
        self.seeds.append(value)
        self.rng = numpy.random.RandomState(value)


def _alexnet_run(out, main_epochs, joint_epochs, monkeypatch):
    """A tiny B-AlexNet run whose dropout draws from a fresh _DeviceGenerator (a new process on a
    GPU), seeded through training.device_seeder as a CuPy device's would be."""
    from branchynet import layers
    generator = _DeviceGenerator()

    def dropout(self, x):
        mask = (generator.rng.rand(*x.shape) >= self.ratio) / (1 - self.ratio)
        return x * mask.astype(numpy.float32)
    monkeypatch.setattr(layers.Dropout, "__call__", dropout)
    monkeypatch.setattr(training, "device_seeder", lambda net: generator.seed)
    numpy.random.seed(0)
    net = networks.build("b-alexnet")
    data = numpy.random.RandomState(1)
    x = data.randn(48, 3, 32, 32).astype(numpy.float32)
    t = data.randint(0, 10, 48).astype(numpy.int32)
    training.fit(net, (x[:32], t[:32]), (x[32:], t[32:]), out, main_epochs, joint_epochs,
                 batchsize=16, seed=3, echo=lambda s: None)
    return net, generator.seeds


def test_resumed_gpu_run_draws_the_same_dropout_masks(tmp_path, monkeypatch):
    net_a, seeds_a = _alexnet_run(str(tmp_path / "a"), 1, 2, monkeypatch)
    _, seeds_1 = _alexnet_run(str(tmp_path / "b"), 1, 0, monkeypatch)
    _, seeds_2 = _alexnet_run(str(tmp_path / "b"), 1, 1, monkeypatch)
    net_b, seeds_3 = _alexnet_run(str(tmp_path / "b"), 1, 2, monkeypatch)
    expected = [training.epoch_seed(3, "main", 1), training.epoch_seed(3, "joint", 1),
                training.epoch_seed(3, "joint", 2)]
    assert seeds_a == seeds_1 + seeds_2 + seeds_3 == expected
    assert len(set(expected)) == 3
    for name, value in params(net_a).items():
        numpy.testing.assert_array_equal(value, params(net_b)[name], err_msg=name)


def test_device_seeder_seeds_cupy_on_the_net_device(monkeypatch):
    import sys
    import types
    import chainer
    events = []

    class FakeCudaDevice:
        def __enter__(self):
            events.append("enter")

        def __exit__(self, *exc):
            events.append("exit")

    class FakeGpuDevice:
        device = FakeCudaDevice()
    fake_cupy = types.SimpleNamespace(random=types.SimpleNamespace(
        seed=lambda value: events.append(("seed", value))))
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(chainer.backend, "GpuDevice", FakeGpuDevice)
    seed = training.device_seeder(types.SimpleNamespace(device=FakeGpuDevice()))
    seed(123)
    assert events == ["enter", ("seed", 123), "exit"]


def test_cpu_training_does_not_import_cupy(tmp_path, monkeypatch, mnist_subset):
    import sys
    monkeypatch.setitem(sys.modules, "cupy", None)  # any import of cupy now raises ImportError
    net, _ = small_run(str(tmp_path), 1, 1, mnist_subset)
    assert training.device_seeder(net) is None
