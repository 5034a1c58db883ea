"""Saved models: the exit thresholds travel with them, a net built by hand saves its weights and
loads into a net built again, and a damaged file is a clear error."""
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


def _by_hand():
    """A 2-exit net with lazily sized layers, built without networks.build (no .config)."""
    import chainer.functions as F
    import chainer.links as L

    from branchynet import Branch, BranchyNet
    return BranchyNet([L.Convolution2D(None, 3, 3), F.relu,
                       Branch([L.Linear(None, 10)]), L.Linear(None, 16), F.relu,
                       Branch([L.Linear(None, 10)])])


def test_a_net_built_by_hand_saves_and_loads_into_a_net_built_again(tmp_path):
    x = numpy.random.RandomState(0).rand(6, 1, 28, 28).astype(numpy.float32)
    net = _by_hand()
    net.thresholds = 0.5
    probs = net.exit_probs(x)  # sizes the lazy layers
    path = str(tmp_path / "mine.npz")
    serialization.save(net, path)
    with pytest.raises(serialization.NoFactoryError) as info:
        networks.load(path)
    message = str(info.value)
    assert "built by hand" in message and "load_into(net, %r)" % path in message
    again = serialization.load_into(_by_hand(), path)  # fresh and unsized: takes the saved sizes
    assert again.thresholds == 0.5
    for a, b in zip(probs, again.exit_probs(x)):
        numpy.testing.assert_array_equal(a, b)


def test_a_config_that_is_not_json_is_refused_before_anything_is_written(tmp_path):
    net = _by_hand()
    net.config = {"network": "m:f", "kwargs": {"activation": len}}
    with pytest.raises(ValueError, match="cannot be saved as JSON"):
        serialization.save(net, str(tmp_path / "m.npz"))
    assert not list(tmp_path.iterdir())


def test_a_damaged_array_header_is_a_model_file_error(tmp_path):
    """A flipped bit in an array's header is read before the member's checksum: numpy raises
    tokenize's or the parser's errors, which must be named as damage like the others."""
    import io
    import zipfile

    import networks
    from branchynet.training import snapshots
    path = tmp_path / "m.npz"
    serialization.save(networks.build("b-lenet"), str(path))
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    name = next(n for n in members if n.endswith("W.npy"))
    buffer = io.BytesIO(members[name])
    header = bytearray(buffer.getvalue())
    start = header.index(b"'shape': (") + len(b"'shape': (")
    header[start + 3:start + 40] = b"\xbd=" * 18 + b"\xe2"  # an unclosed tuple of junk
    members[name] = bytes(header)
    with zipfile.ZipFile(path, "w") as z:
        for member, data in members.items():
            z.writestr(member, data)
    with pytest.raises(serialization.ModelFileError, match=str(path)):
        serialization.load(str(path), networks.build)
    assert not snapshots.readable(str(path))


def test_a_damaged_member_name_is_a_model_file_error(tmp_path):
    import zipfile

    import networks
    path = tmp_path / "m.npz"
    serialization.save(networks.build("b-lenet"), str(path))
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    name = next(n for n in members if n.endswith("W.npy"))
    with zipfile.ZipFile(path, "w") as z:
        for member, data in members.items():
            z.writestr(member.replace("W.npy", "X.npy") if member == name else member, data)
    with pytest.raises(serialization.ModelFileError, match=str(path)):
        serialization.load(str(path), networks.build)
