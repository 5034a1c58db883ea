"""ZCA whitening (branchynet.data.zca and the "zca" preprocessing) against an independent float64
computation on small synthetic images (3 x 4 x 4 = 48 features, so that the tests stay fast)."""
import numpy as np
import pytest

from branchynet.data import cifar10, datasets, zca
from branchynet.data import split as data_split


def _images(n, seed):
    """uint8 n x 3 x 4 x 4 images with correlated pixels (8 shared factors) plus pixel noise."""
    rng = np.random.RandomState(seed)
    mixing = np.random.RandomState(99).randn(8, 48)
    x = 128 + 12 * rng.randn(n, 8) @ mixing + 10 * rng.randn(n, 48)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(n, 3, 4, 4)


def _inverse_sqrt64(x_raw):
    """The training mean and the symmetric inverse square root of the covariance, in float64 from
    the eigendecomposition (ZCA's matrix is that unique symmetric inverse square root)."""
    x = x_raw.reshape(len(x_raw), -1).astype(np.float64)
    mean = x.mean(axis=0)
    values, vectors = np.linalg.eigh((x - mean).T @ (x - mean) / len(x))
    return mean, vectors @ np.diag(values ** -0.5) @ vectors.T


def _zca64(x_raw, mean, inverse_sqrt):
    w = (x_raw.reshape(len(x_raw), -1) - mean) @ inverse_sqrt
    w = (w - w.min(axis=1, keepdims=True)) / np.ptp(w, axis=1, keepdims=True)
    return w.reshape(x_raw.shape)


def test_whitened_training_images_have_identity_covariance():
    x_raw = _images(600, 0)
    stats = zca.zca_statistics(x_raw)
    assert stats["zca_mean"].dtype == stats["zca_components"].dtype == np.float32
    centred = x_raw.reshape(600, -1) - x_raw.reshape(600, -1).mean(axis=0)
    np.testing.assert_allclose(stats["zca_mean"], x_raw.reshape(600, -1).mean(axis=0), rtol=1e-6)
    whitened = centred @ stats["zca_components"].T.astype(np.float64)  # before the min-max step
    np.testing.assert_allclose(whitened.T @ whitened / 600, np.eye(48), atol=2e-4)
    # zero-phase: the components are the symmetric inverse square root, not another whitening
    np.testing.assert_allclose(stats["zca_components"], _inverse_sqrt64(x_raw)[1], rtol=1e-3, atol=1e-5)


def test_each_image_is_rescaled_to_0_1_and_equals_the_float64_recipe():
    x_raw = _images(600, 0)
    x = datasets.preprocess_cifar10(x_raw, "zca", datasets.cifar10_statistics(x_raw, "zca"))
    assert x.dtype == np.float32 and x.shape == x_raw.shape
    flat = x.reshape(600, -1)
    np.testing.assert_array_equal(flat.min(axis=1), 0)
    np.testing.assert_allclose(flat.max(axis=1), 1, rtol=0, atol=1e-6)
    np.testing.assert_allclose(x, _zca64(x_raw, *_inverse_sqrt64(x_raw)), atol=2e-5)


def test_test_images_use_the_training_statistics_in_any_chunking():
    x_train, x_test = _images(600, 0), _images(300, 1)
    stats = zca.zca_statistics(x_train)
    got = zca.zca_whiten(x_test, stats, chunk=7)  # chunks that do not divide the set
    np.testing.assert_allclose(got, _zca64(x_test, *_inverse_sqrt64(x_train)), atol=2e-5)
    own = _zca64(x_test, *_inverse_sqrt64(x_test))
    assert np.abs(got - own).max() > 0.05  # the test set's own statistics would differ clearly
    np.testing.assert_allclose(got, zca.zca_whiten(x_test, stats), atol=1e-6)  # BLAS rounding


@pytest.fixture
def small_cifar(monkeypatch):
    """400 + 100 synthetic 3 x 4 x 4 images in place of CIFAR-10's raw arrays."""
    x = np.concatenate([_images(400, 2), _images(100, 3)])
    x[:200] //= 2  # a darker half, so that the training part's mean differs from all images'
    y = np.random.RandomState(4).randint(0, 10, 500).astype(np.uint8)
    raw = (x[:400], y[:400], x[400:], y[400:])
    monkeypatch.setattr(cifar10, "load_cifar10_raw", lambda data_dir=None, download=True: raw)
    return raw


def test_split_whitens_with_the_training_part_only(small_cifar):
    x_raw, _, x_test_raw, _ = small_cifar
    split = data_split.load_split("cifar10", 100, preprocessing="zca")
    order = np.random.RandomState(0).permutation(400)
    val, keep = np.sort(order[:100]), np.sort(order[100:])
    assert split.description["preprocessing"] == "zca" and split.description["statistics_images"] == 300
    train_stats = _inverse_sqrt64(x_raw[keep])
    for (images, _), raw in zip(split, (x_raw[keep], x_raw[val], x_test_raw)):
        np.testing.assert_allclose(images, _zca64(raw, *train_stats), atol=5e-5)
    everything = data_split.load_split("cifar10", 100, statistics="all", preprocessing="zca")
    assert np.abs(everything[1][0] - split[1][0]).max() > 0.01  # the validation images shaped those
    train, test = datasets.get_cifar10(preprocessing="zca")
    np.testing.assert_array_equal(everything[1][0], datasets.arrays(train)[0][val])
    np.testing.assert_array_equal(everything[2][0], datasets.arrays(test)[0])


@pytest.mark.parametrize("n, constant, cause", [(48, False, "48 images for 48 features"),
                                                 (600, True, "1 of the 48 features are the same")])
def test_a_certainly_singular_covariance_is_refused(n, constant, cause):
    x_raw = _images(n, 0)
    if constant:
        x_raw[:, 2, 1, 3] = 77
    with pytest.raises(ValueError, match=cause):
        zca.zca_statistics(x_raw)
