"""Saved models: the exit thresholds travel with them, and a damaged file is a clear error."""
import numpy
import pytest

import branchynet  # noqa: F401
import networks
from branchynet.model import serialization


@pytest.mark.parametrize("name, thresholds, expected", [
    ("b-lenet", 0.1, 0.1),
    ("b-lenet", numpy.array([0.25]), (0.25,)),
    ("b-alexnet", (0.0001, 0.05), (0.0001, 0.05)),
    ("b-alexnet", [float("inf"), 0.5], (float("inf"), 0.5)),
    ("b-lenet", None, None),
])
def test_thresholds_are_saved_and_restored(tmp_path, name, thresholds, expected):
    net = networks.build(name)
    net.thresholds = thresholds  # set after building: not a factory argument
    path = str(tmp_path / "m.npz")
    serialization.save(net, path)
    loaded = networks.load(path)
    assert loaded.thresholds == expected
    assert serialization.read_thresholds(path) == expected


def test_thresholds_given_when_loading_win_over_the_saved_ones(tmp_path):
    net = networks.build("b-lenet", thresholds=0.5)
    net.thresholds = 0.025
    path = str(tmp_path / "m.npz")
    serialization.save(net, path)
    assert networks.load(path).thresholds == 0.025  # the net's, not the factory argument's
    assert networks.load(path, thresholds=0.3).thresholds == 0.3


def test_a_loaded_net_predicts_at_its_saved_thresholds(tmp_path):
    net = networks.build("b-lenet")
    net.thresholds = 10.0  # every sample leaves at exit 1
    path = str(tmp_path / "m.npz")
    serialization.save(net, path)
    x = numpy.random.RandomState(0).rand(4, 1, 28, 28).astype(numpy.float32)
    _, exits = networks.load(path).predict(x)  # no thresholds passed
    assert list(exits) == [0, 0, 0, 0]


def test_a_file_saved_without_thresholds_keeps_the_factorys(tmp_path):
    net = networks.build("b-lenet", thresholds=0.2)
    path = str(tmp_path / "old.npz")
    serialization.save(net, path)
    with numpy.load(path) as data:  # as files written before thresholds were saved
        arrays = {k: data[k] for k in data.files if k != serialization.THRESHOLDS_KEY}
    numpy.savez(path, **arrays)
    assert serialization.read_thresholds(path) is None
    assert networks.load(path).thresholds == 0.2


def _saved(tmp_path):
    path = tmp_path / "branchy.npz"
    serialization.save(networks.build("b-lenet"), str(path))
    return path


@pytest.mark.parametrize("damage", ["truncated", "corrupt member", "not a zip", "empty"])
def test_a_damaged_file_is_an_error_naming_it_and_the_remedy(tmp_path, damage):
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "corrupt member":  # flip bytes inside the compressed parameters, not the zip directory
        start = len(data) // 3
        data[start:start + 64] = bytes(b ^ 0xFF for b in data[start:start + 64])
    elif damage == "not a zip":
        data = b"version https://git-lfs.github.com/spec/v1\noid sha256:0\n"
    else:
        data = b""
    path.write_bytes(bytes(data))
    with pytest.raises(serialization.ModelFileError) as info:
        networks.load(str(path))
    message = str(info.value)
    assert str(path) in message and "truncated or corrupt" in message
    assert "Copy it again" in message and "train it again" in message
    with pytest.raises(serialization.ModelFileError, match="truncated or corrupt"):
        networks.load_run(str(tmp_path))
