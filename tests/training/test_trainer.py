"""Training loop (resume gives the same run as no interruption) and save/load round trips."""
import glob
import json
import os
import subprocess
import sys

import numpy
import pytest

import chainer

import networks
from branchynet.model import serialization
from branchynet.training import snapshots, trainer, updater
from branchynet.training.optimizers import adam

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def small_run(out, main_epochs, joint_epochs, data, echo=lambda s: None):
    numpy.random.seed(0)
    net = networks.build("b-lenet")
    x, t = data
    log = trainer.fit(net, (x[:600], t[:600]), (x[1600:2000], t[1600:2000]), out,
                       main_epochs, joint_epochs, batchsize=128, seed=3, echo=echo)
    return net, log


def params(net):
    return {name: p.array.copy() for name, p in net.namedparams()}


def snapshot_names(folder):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(str(folder), "snapshot_*")))


def assert_same_params(net_a, net_b):
    for name, value in params(net_a).items():
        numpy.testing.assert_array_equal(value, params(net_b)[name], err_msg=name)


def strip_times(log):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in log]


def test_resumed_run_equals_uninterrupted_run(tmp_path, mnist_subset):
    net_a, log_a = small_run(str(tmp_path / "a"), 1, 2, mnist_subset)
    # the same schedule, stopped after one epoch of each stage, then resumed by a new process' worth
    # of objects (a new net built from scratch, a new Trainer autoloading the snapshot)
    small_run(str(tmp_path / "b"), 1, 0, mnist_subset)
    lines = []
    small_run(str(tmp_path / "b"), 1, 1, mnist_subset, lines.append)
    net_b, log_b = small_run(str(tmp_path / "b"), 1, 2, mnist_subset, lines.append)
    resumed = [line for line in lines if line.startswith("resumed from")]
    assert len(resumed) == 2 and "snapshot_epoch_0001.npz: stage main, 1 epochs" in resumed[0]
    assert "snapshot_epoch_0002.npz: stage joint, 1 epochs" in resumed[1]
    assert_same_params(net_a, net_b)
    assert strip_times(log_a) == strip_times(log_b)
    assert strip_times(trainer.read_log(str(tmp_path / "b"))) == strip_times(log_a)
    assert [(e["stage"], e["epoch"]) for e in trainer.read_log(str(tmp_path / "b"))] == \
        [("main", 1), ("joint", 1), ("joint", 2)]
    for name in ("main.npz", "branchy.npz"):
        assert os.path.exists(tmp_path / "b" / name)
    # the last two snapshots are kept
    assert snapshot_names(tmp_path / "b") == ["snapshot_epoch_0002.npz", "snapshot_epoch_0003.npz"]


def test_data_order_is_seeded_and_restored_by_the_snapshot():
    from branchynet.training.updater import SeededOrder
    order = SeededOrder(7)
    first = order(numpy.arange(10), 0)
    numpy.testing.assert_array_equal(first, numpy.random.default_rng(7).permutation(10))
    saved = chainer.serializers.DictionarySerializer()
    order.serialize(saved)
    expected = [order(numpy.arange(10), 0) for _ in range(3)]
    restored = SeededOrder(123)
    restored.serialize(chainer.serializers.NpzDeserializer(saved.target))
    numpy.testing.assert_array_equal([restored(numpy.arange(10), 0) for _ in range(3)], expected)
    assert not numpy.array_equal(expected[0], first)


def test_every_sample_once_per_epoch_last_batch_partial():
    from branchynet.training.updater import EpochIterator, SeededOrder
    x = numpy.arange(10, dtype=numpy.float32)[:, None]
    it = EpochIterator((x, numpy.arange(10, dtype=numpy.int32)), 4, SeededOrder(0))
    sizes, seen = [], []
    while it.epoch < 2:
        batch = it.next()
        sizes.append(len(batch.t))
        seen.extend(batch.t.tolist())
    assert sizes == [4, 4, 2, 4, 4, 2]
    assert sorted(seen[:10]) == sorted(seen[10:]) == list(range(10))
    assert seen[:10] != seen[10:]
    # two processes: each takes its consecutive part of every global batch
    parts = [EpochIterator((x, numpy.arange(10, dtype=numpy.int32)), 4, SeededOrder(0), r, 2)
             for r in range(2)]
    joined = []
    for _ in range(3):
        batches = [p.next() for p in parts]
        assert [b.total for b in batches] == [len(batches[0].t) + len(batches[1].t)] * 2
        joined.extend(batches[0].t.tolist() + batches[1].t.tolist())
    assert joined == seen[:10]


def test_each_exit_reported_with_chainer_report(tmp_path, mnist_subset):
    """The updater reports every exit's loss and accuracy (the last one only in pretraining), the
    evaluator every exit on the validation split; the log's means are per sample."""
    from branchynet.training.updater import BranchyUpdater, EpochIterator, SeededOrder
    numpy.random.seed(0)
    net = networks.build("b-lenet")
    x, t = mnist_subset[0][:100], mnist_subset[1][:100]
    updater = BranchyUpdater(EpochIterator((x, t), 64, SeededOrder(0)), net, adam(), main_epochs=1)
    observed = []
    reporter = chainer.Reporter()
    for _ in range(4):
        observation = {}
        with reporter.scope(observation):
            updater.update()
        observed.append(observation)
    assert sorted(observed[0]) == ["main/exit2/accuracy", "main/exit2/loss"]
    assert [o["main/exit2/loss"][1] for o in observed[:2]] == [64, 36]  # weighted per sample
    assert sorted(observed[2]) == ["main/exit1/accuracy", "main/exit1/loss",
                                   "main/exit2/accuracy", "main/exit2/loss"]
    observation = {}
    with reporter.scope(observation):
        trainer.ExitEvaluator((x, t), net, 30)()
    loss_sum, correct = trainer.exit_sums(net, x, t)
    for k in range(2):
        assert observation["validation/main/exit%d/loss" % (k + 1)] == pytest.approx(loss_sum[k] / 100)
        assert observation["validation/main/exit%d/accuracy" % (k + 1)] == correct[k] / 100


# The earlier hand-written loop (commit 71ead2e) on small_run(out, 1, 2): its log.jsonl, less the
# times, made with that commit's trainer.fit in a temporary worktree (see OLD_LOOP_LOG's note).
OLD_LOOP_LOG = os.path.join(os.path.dirname(__file__), "data", "oldloop_small_run.json")


def test_trainer_reproduces_the_earlier_loop(tmp_path, mnist_subset):
    with open(OLD_LOOP_LOG) as f:
        reference = json.load(f)["log"]
    _, log = small_run(str(tmp_path), 1, 2, mnist_subset)
    assert [(e["stage"], e["epoch"]) for e in log] == [(e["stage"], e["epoch"]) for e in reference]
    for entry, old in zip(log, reference):
        for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy"):
            assert [v is None for v in entry[key]] == [v is None for v in old[key]], key
            numpy.testing.assert_allclose([v for v in entry[key] if v is not None],
                                          [v for v in old[key] if v is not None],
                                          rtol=1e-5, err_msg=key)


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_resume_skips_an_unreadable_snapshot(tmp_path, mnist_subset):
    net_a, log_a = small_run(str(tmp_path / "a"), 1, 2, mnist_subset)
    folder = tmp_path / "b"
    small_run(str(folder), 1, 1, mnist_subset)
    _truncate(folder / "snapshot_epoch_0002.npz")  # the newest, cut short
    lines = []
    numpy.random.seed(0)
    net_b = networks.build("b-lenet")
    x, t = mnist_subset
    log_b = trainer.fit(net_b, (x[:600], t[:600]), (x[1600:2000], t[1600:2000]), str(folder),
                         1, 2, batchsize=128, seed=3, echo=lines.append)
    assert_same_params(net_a, net_b)
    assert strip_times(log_a) == strip_times(log_b)
    assert any("snapshot_epoch_0002.npz" in line and "unreadable" in line for line in lines)
    assert any(line.startswith("resumed from") and "snapshot_epoch_0001.npz" in line
               for line in lines)
    assert os.path.exists(folder / "snapshot_epoch_0002.npz.unreadable")  # set aside, not deleted


def test_interrupted_save_leaves_the_previous_snapshot(tmp_path, mnist_subset, monkeypatch):
    """Ctrl-C in the middle of writing a snapshot: the snapshot before it stays, and resuming from
    it gives the uninterrupted run."""
    from chainer.training.extensions import snapshot_writers
    net_a, log_a = small_run(str(tmp_path / "a"), 1, 1, mnist_subset)
    folder = tmp_path / "b"
    real = chainer.serializers.save_npz
    calls = []

    def interrupted(path, target, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04 half")
            raise KeyboardInterrupt
        return real(path, target, *args, **kwargs)
    monkeypatch.setattr(snapshot_writers.SimpleWriter, "__init__",
                        lambda self, savefun=None, **kw: (snapshot_writers.Writer.__init__(self),
                                                          setattr(self, "_savefun", interrupted),
                                                          setattr(self, "_kwds", kw))[0])
    with pytest.raises(KeyboardInterrupt):
        small_run(str(folder), 1, 1, mnist_subset)
    monkeypatch.undo()
    assert snapshot_names(folder) == ["snapshot_epoch_0001.npz"]
    assert snapshots.latest(str(folder)).endswith("snapshot_epoch_0001.npz")
    net_b, log_b = small_run(str(folder), 1, 1, mnist_subset)
    assert_same_params(net_a, net_b)
    assert strip_times(log_a) == strip_times(log_b)


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
    net.train(x, mnist_subset[1][:64], adam()(net))
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


def test_load_of_a_missing_or_foreign_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved model"):
        networks.load(str(tmp_path / "nothing.npz"))
    numpy.savez(tmp_path / "foreign.npz", a=numpy.zeros(3))
    with pytest.raises(ValueError, match="branchynet_config"):
        networks.load(str(tmp_path / "foreign.npz"))


def test_config_records_factory_arguments(tmp_path):
    net = networks.build("b-lenet", weights="code", thresholds=0.2)
    path = str(tmp_path / "m.npz")
    serialization.save(net, path)
    assert serialization.read_config(path) == {"network": "b-lenet",
                                               "kwargs": {"weights": "code", "thresholds": 0.2}}
    assert json.dumps(net.config)


def test_a_net_that_cannot_be_saved_is_refused_before_the_first_epoch(tmp_path, mnist_subset):
    """A factory argument that is not JSON would fail the save of main.npz after pretraining: fit
    refuses at once and writes nothing."""
    net = networks.build("b-lenet")
    net.config = dict(net.config, kwargs={"activation": len})
    with pytest.raises(ValueError, match="cannot be saved as JSON"):
        trainer.fit(net, mnist_subset, mnist_subset, str(tmp_path / "run"), 1, 1, batchsize=128,
                    echo=lambda s: None)
    assert not (tmp_path / "run").exists()


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
    GPU), seeded through trainer.device_seeder as a CuPy device's would be."""
    from branchynet.model import layers
    generator = _DeviceGenerator()

    def dropout(self, x):
        mask = (generator.rng.rand(*x.shape) >= self.ratio) / (1 - self.ratio)
        return x * mask.astype(numpy.float32)
    monkeypatch.setattr(layers.Dropout, "__call__", dropout)
    monkeypatch.setattr(trainer, "device_seeder", lambda net: generator.seed)
    numpy.random.seed(0)
    net = networks.build("b-alexnet")
    data = numpy.random.RandomState(1)
    x = data.randn(48, 3, 32, 32).astype(numpy.float32)
    t = data.randint(0, 10, 48).astype(numpy.int32)
    trainer.fit(net, (x[:32], t[:32]), (x[32:], t[32:]), out, main_epochs, joint_epochs,
                 batchsize=16, seed=3, echo=lambda s: None)
    return net, generator.seeds


def test_resumed_gpu_run_draws_the_same_dropout_masks(tmp_path, monkeypatch):
    net_a, seeds_a = _alexnet_run(str(tmp_path / "a"), 1, 2, monkeypatch)
    _, seeds_1 = _alexnet_run(str(tmp_path / "b"), 1, 0, monkeypatch)
    _, seeds_2 = _alexnet_run(str(tmp_path / "b"), 1, 1, monkeypatch)
    net_b, seeds_3 = _alexnet_run(str(tmp_path / "b"), 1, 2, monkeypatch)
    expected = [updater.epoch_seed(3, "main", 1), updater.epoch_seed(3, "joint", 1),
                updater.epoch_seed(3, "joint", 2)]
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
    seed = trainer.device_seeder(types.SimpleNamespace(device=FakeGpuDevice()))
    seed(123)
    assert events == ["enter", ("seed", 123), "exit"]


def test_cpu_training_does_not_import_cupy(tmp_path, monkeypatch, mnist_subset):
    import sys
    monkeypatch.setitem(sys.modules, "cupy", None)  # any import of cupy now raises ImportError
    net, _ = small_run(str(tmp_path), 1, 1, mnist_subset)
    assert trainer.device_seeder(net) is None
