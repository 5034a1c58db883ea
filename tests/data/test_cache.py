"""The cache of decoded arrays is used only where it matches the checksums written beside it: a
flipped byte or zeroed images are noticed, named, and decoded again."""
import numpy
import pytest

from branchynet.data import files

SHAPES = ((6, 4, 4), (6,), (3, 4, 4), (3,))


def arrays():
    rng = numpy.random.RandomState(0)
    return tuple(rng.randint(0, 255, size=s).astype(numpy.uint8) for s in SHAPES)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BRANCHYNET_CACHE", str(tmp_path))
    decoded = []

    def load():
        def decode():
            decoded.append(1)
            return arrays()
        return files.cached("toy", {"a.bin": "00ff"}, SHAPES, decode)
    load.decoded = decoded
    return load


def entry(tmp_path):
    (folder,) = tmp_path.glob("toy-*")
    return folder


def test_an_intact_cache_is_used(cache, tmp_path):
    cache()
    again = cache()
    assert len(cache.decoded) == 1
    for got, want in zip(again, arrays()):
        numpy.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("damage", ["flip", "zero"])
def test_a_damaged_cache_is_named_and_rebuilt(cache, tmp_path, damage):
    cache()
    path = entry(tmp_path) / "x_train.npy"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-5] ^= 0x10
    else:
        data[-16:] = bytes(16)
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=str(path)):
        got = cache()
    assert len(cache.decoded) == 2
    for a, want in zip(got, arrays()):
        numpy.testing.assert_array_equal(a, want)
    cache()  # rebuilt: intact again
    assert len(cache.decoded) == 2


def test_an_entry_cut_short_is_rebuilt(cache, tmp_path):
    cache()
    (entry(tmp_path) / "sha256.json").unlink()
    cache()
    assert len(cache.decoded) == 2
