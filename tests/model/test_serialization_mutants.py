"""Saving and loading round trips of every entry (arrays, thresholds, input shape, factory), the
run-folder helpers and the refusals, written to kill the mutants of ``serialization`` that the
older tests let through (docs/mutation.md)."""
import json
import os

import numpy
import pytest

import chainer.functions as F
import chainer.links as L

import branchynet  # noqa: F401
from branchynet import Branch, BranchyNet
from branchynet.model import serialization


def _net(width=3, seed=0):
    numpy.random.seed(seed)
    return BranchyNet([L.Linear(4, width), F.relu, Branch([L.Linear(width, 2)]),
                       L.Linear(width, 5), Branch([L.Linear(5, 2)])])


def _arrays(net):
    return {name: numpy.array(p.array) for name, p in sorted(net.namedparams())}


def test_round_trip_of_arrays_thresholds_and_input_shape(tmp_path):
    net = _net()
    net.thresholds = numpy.array([0.25])
    net.input_shape = (4,)
    net.config = {"network": "pkg.mod:make", "kwargs": {"width": 3}}
    path = str(tmp_path / "sub" / "net.npz")  # a folder that does not exist yet
    serialization.save(net, path)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["net.npz"]  # no temporary left
    assert serialization.read_config(path) == net.config
    with numpy.load(path) as data:
        assert json.loads(str(data[serialization.THRESHOLDS_KEY])) == [0.25]
        assert json.loads(str(data[serialization.INPUT_SHAPE_KEY])) == [4]
    again = serialization.load_into(_net(seed=1), path)
    assert again.thresholds == (0.25,) and again.input_shape == (4,)
    for (name, a), (_, b) in zip(_arrays(net).items(), _arrays(again).items()):
        numpy.testing.assert_array_equal(a, b, err_msg=name)


def test_entries_of_scalar_and_absent_thresholds_and_shapes():
    net = _net()
    net.thresholds = 0.5
    e = serialization.entries(net)
    assert json.loads(e[serialization.THRESHOLDS_KEY]) == 0.5
    assert json.loads(e[serialization.INPUT_SHAPE_KEY]) is None
    assert json.loads(e[serialization.CONFIG_KEY]) is None
    net.thresholds = None
    net.input_shape = numpy.array([1, 28, 28])
    e = serialization.entries(net)
    assert json.loads(e[serialization.THRESHOLDS_KEY]) is None
    assert json.loads(e[serialization.INPUT_SHAPE_KEY]) == [1, 28, 28]
    assert serialization._plain_thresholds([0.1, 0.2]) == [0.1, 0.2]


def test_load_rebuilds_with_the_factory_and_overrides(tmp_path):
    net = _net()
    net.config = {"network": "pkg.mod:make", "kwargs": {"width": 3}}
    net.thresholds = [0.125]
    path = str(tmp_path / "net.npz")
    serialization.save(net, path)
    calls = []

    def build(name, **kwargs):
        calls.append((name, kwargs))
        fresh = _net(width=kwargs["width"], seed=5)
        fresh.thresholds = kwargs.get("thresholds")
        return fresh

    loaded = serialization.load(path, build)
    assert calls == [("pkg.mod:make", {"width": 3})] and loaded.thresholds == (0.125,)
    for a, b in zip(_arrays(net).values(), _arrays(loaded).values()):
        numpy.testing.assert_array_equal(a, b)
    loaded = serialization.load(path, build, thresholds=0.75)
    assert calls[-1] == ("pkg.mod:make", {"width": 3, "thresholds": 0.75}) and loaded.thresholds == 0.75


def test_a_file_missing_or_not_ours_or_not_fitting_is_named(tmp_path):
    missing = str(tmp_path / "none.npz")
    with pytest.raises(FileNotFoundError, match="no saved model at .*none.npz"):
        serialization.read_config(missing)
    other = str(tmp_path / "other.npz")
    numpy.savez(other, a=numpy.zeros(2))
    with pytest.raises(serialization.ModelFileError, match="other.npz has no 'branchynet_config' entry"):
        serialization.load_into(_net(), other)
    path = str(tmp_path / "wide.npz")
    serialization.save(_net(width=6), path)
    fits = r"wide.npz does not fit this net: heads/0/0/W: saved \(2, 6\), this net \(2, 3\)"
    with pytest.raises(ValueError, match=fits):
        serialization.load_into(_net(width=3), path)
    assert serialization._mismatch(path, _net(width=6)) is None


def test_run_folder_helpers(tmp_path):
    run = str(tmp_path / "run")
    assert serialization.read_run_info(run) is None and not serialization.has_weights(run)
    serialization.write_run_info(run, {"seed": 3, "epochs": [1, 2]})
    assert serialization.read_run_info(run) == {"seed": 3, "epochs": [1, 2]}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.json"]
    assert open(tmp_path / "run" / "run.json").read().endswith("}\n")
    branchy, main = serialization.weight_paths(run)
    assert branchy == str(tmp_path / "run" / "branchy.npz") and main is None
    net = _net()
    net.config = {"network": "pkg.mod:make", "kwargs": {}}
    serialization.save(net, branchy)
    assert serialization.has_weights(run) and serialization.weight_paths(run)[1] is None
    serialization.save(net, str(tmp_path / "run" / "main.npz"))
    assert serialization.weight_paths(run)[1] == str(tmp_path / "run" / "main.npz")
    built = []
    nets = serialization.load_run(run, lambda name, **kw: built.append(name) or _net(seed=len(built)))
    assert len(nets) == 2 and built == ["pkg.mod:make"] * 2
    for loaded in nets:
        for a, b in zip(_arrays(net).values(), _arrays(loaded).values()):
            numpy.testing.assert_array_equal(a, b)


def test_save_closes_its_temporary_and_removes_it_on_failure(tmp_path, monkeypatch):
    net = _net()
    before = len(os.listdir("/proc/self/fd"))
    serialization.save(net, str(tmp_path / "a.npz"))
    assert len(os.listdir("/proc/self/fd")) == before

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(numpy, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        serialization.save(net, str(tmp_path / "b.npz"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_run_info_rewrites_and_a_run_without_baseline_loads(tmp_path):
    run = str(tmp_path / "run")
    serialization.write_run_info(run, {"seed": 1})
    serialization.write_run_info(run, {"seed": 2, "done": True})  # the folder exists: rewritten
    assert serialization.read_run_info(run) == {"seed": 2, "done": True}
    assert open(os.path.join(run, "run.json")).read().splitlines()[1] == ' "seed": 2,'
    net = _net()
    net.config = {"network": "pkg.mod:make", "kwargs": {}}
    serialization.save(net, os.path.join(run, "branchy.npz"))
    branchy, main = serialization.load_run(run, lambda name, **kw: _net(seed=9))
    assert main is None and branchy is not None
    with pytest.raises(Exception, match="nowhere"):  # the device is applied to every net loaded
        serialization.load_run(run, lambda name, **kw: _net(seed=9), device="@nowhere")
