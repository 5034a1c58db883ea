"""A researcher's own network through every path: a 3-exit MNIST network declared here (no one in
the project wrote it, no registry knows it), with lazily sized heads, goes through predict on a
fresh net (fast CPU path against stock Chainer), ``fit``, save and reload, another confidence
measure, and ``experiments/train.py --network tests.test_user_network:three_exits``."""
import json
import os
import subprocess
import sys

import numpy
import pytest

import chainer
import chainer.functions as F
import chainer.links as L

import branchynet  # noqa: F401  (compatibility shims before chainer)
import networks
from branchynet import Branch, BranchyNet
from branchynet.model import serialization
from branchynet.model.layers import MaxPool
from branchynet.training import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = "tests.test_user_network:three_exits"


def three_exits(width=4):
    """Three exits on 1x28x28; every head sized lazily (``L.Linear(None, 10)``), a lazily sized
    convolution in the trunk, and a tanh the fast path has no kernel for."""
    return BranchyNet([
        L.Convolution2D(None, width, 3, pad=1),
        Branch([MaxPool(4, 4), F.relu, L.Linear(None, 10)]),
        MaxPool(2, 2), F.relu,
        L.Convolution2D(None, 2 * width, 3, pad=1),
        Branch([MaxPool(2, 2), F.tanh, L.Linear(None, 10)], weight=0.5),
        MaxPool(2, 2), F.relu, L.Linear(None, 32), F.relu,
        Branch([L.Linear(None, 10)]),
    ])


def _fresh(seed=0):
    numpy.random.seed(seed)  # the lazily sized layers draw their weights at the first forward
    return three_exits()


def _first_exit(probs, thresholds, leaves):
    """Brute force: (labels, exits) of the first exit whose softmax lets a sample out."""
    k, n = len(probs), len(probs[0])
    labels, exits = numpy.empty(n, int), numpy.empty(n, int)
    for i in range(n):
        for e in range(k):
            if e == k - 1 or leaves(probs[e][i], thresholds[e]):
                labels[i], exits[i] = probs[e][i].argmax(), e
                break
    return labels, exits


def _midpoints(values):
    """Thresholds halfway between observed values, so that rounding cannot flip a decision."""
    v = numpy.sort(values)
    return (v[len(v) // 3] + v[len(v) // 3 + 1]) / 2


def _entropy(p):
    return -(p * numpy.log(numpy.maximum(p, 1e-30))).sum(axis=-1)


@pytest.mark.parametrize("batch", [1, 20])
def test_a_fresh_net_predicts_as_stock_chainer(mnist_subset, batch):
    x = mnist_subset[0][:20]
    fast = _fresh()
    fast_probs = fast.exit_probs(x[:batch])
    stock = _fresh()  # its weights drawn alike: at its first forward, from the same seed
    with chainer.using_config("branchynet_fast_cpu", False):
        stock_probs = stock.exit_probs(x[:batch])
    for a, b in zip(fast_probs, stock_probs):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    probs = stock.exit_probs(x)
    thresholds = [_midpoints(_entropy(probs[0])), _midpoints(_entropy(probs[1]))]
    expected = _first_exit(probs, thresholds, lambda p, t: _entropy(p) < t)
    for net, config in ((fast, True), (stock, False)):
        with chainer.using_config("branchynet_fast_cpu", config):
            got = [net.predict(x[s:s + batch], thresholds) for s in range(0, len(x), batch)]
        numpy.testing.assert_array_equal(numpy.concatenate([g[1] for g in got]), expected[1])
        numpy.testing.assert_array_equal(numpy.concatenate([g[0] for g in got]), expected[0])
    assert set(expected[1]) == {0, 1, 2}


def _fit(net, out, mnist_subset):
    x, t = mnist_subset
    return trainer.fit(net, (x[:256], t[:256]), (x[1800:2000], t[1800:2000]), str(out), 1, 1,
                       batchsize=64, seed=1, echo=lambda line: None)


def test_fit_save_reload_and_another_measure(tmp_path, mnist_subset):
    numpy.random.seed(0)
    net = networks.build(SPEC, width=3)
    log = _fit(net, tmp_path / "run", mnist_subset)
    assert [(e["stage"], e["epoch"]) for e in log] == [("main", 1), ("joint", 1)]
    assert all(0 < a <= 1 for a in log[1]["val/accuracy"])
    for name in ("main.npz", "branchy.npz", "snapshot_epoch_0002.npz"):
        assert (tmp_path / "run" / name).exists(), name
    loaded = networks.load(str(tmp_path / "run" / "branchy.npz"))
    assert loaded.segments[0][0].out_channels == 3
    x = mnist_subset[0][1800:2000]
    probs = net.exit_probs(x)
    for a, b in zip(probs, loaded.exit_probs(x)):
        numpy.testing.assert_array_equal(a, b)
    thresholds = [_midpoints(probs[0].max(axis=1)), _midpoints(probs[1].max(axis=1))]
    expected = _first_exit(probs, thresholds, lambda p, t: p.max() >= t)
    for model in (net, loaded):
        labels, exits = model.predict(x, thresholds, measure="max_prob")
        numpy.testing.assert_array_equal(exits, expected[1])
        numpy.testing.assert_array_equal(labels, expected[0])
    assert len(set(expected[1])) > 1


def test_a_net_built_by_hand_trains_saves_and_loads_back(tmp_path, mnist_subset):
    """No factory at all: fit trains it and saves its weights; load says how to read them back,
    and load_into does it."""
    net = _fresh()
    _fit(net, tmp_path / "run", mnist_subset)
    path = str(tmp_path / "run" / "branchy.npz")
    assert os.path.exists(tmp_path / "run" / "main.npz")
    with pytest.raises(serialization.NoFactoryError, match="load_into"):
        networks.load(path)
    again = serialization.load_into(three_exits(), path)
    x = mnist_subset[0][:50]
    numpy.testing.assert_array_equal(again.predict(x, 0.5)[0], net.predict(x, 0.5)[0])


def _train_cli(out, *extra):
    command = [sys.executable, os.path.join(ROOT, "experiments", "train.py"), "--network", SPEC,
               "--dataset", "mnist", "--net-arg", "width=2", "--main-epochs", "1",
               "--joint-epochs", "1", "--batchsize", "64", "--train-subset", "192",
               "--val-size", "100", "--out", str(out), "--no-progress"] + list(extra)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_train_script_trains_records_and_resumes_a_factory_by_import_path(tmp_path):
    out = tmp_path / "run"
    proc = _train_cli(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert (info["network"], info["net_kwargs"], info["dataset"]) == (SPEC, {"width": 2}, "mnist")
    assert info["family"] is None
    assert info["loss_weights"] == {"preset": None, "values": [1.0, 0.5, 1.0]}
    net = networks.load(str(out / "branchy.npz"))
    assert net.config == {"network": SPEC, "kwargs": {"width": 2}}
    again = _train_cli(out)  # the same command: resumes, nothing left to train
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.startswith("finished: %s already holds all 2 epochs" % out), again.stdout
    assert [(e["stage"], e["epoch"]) for e in trainer.read_log(str(out))] == [("main", 1),
                                                                              ("joint", 1)]
