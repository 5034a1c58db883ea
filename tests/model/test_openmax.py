"""OpenMax exits: distances, Weibull fit and recalibration against independent computations; real
early exit with a fitted OpenMax against the cached simulation (batched and batch 1); save/load."""
import math

import numpy
import pytest

import networks
from branchynet.evaluation.outputs import ExitOutputs
from branchynet.model import measures, openmax, serialization
from tests.helpers import TINY_ALPHA, tiny_three_exit_net, train_steps

scipy = pytest.importorskip("scipy")
from scipy.spatial import distance as spd  # noqa: E402


def _fake_fit(seed=0, c=4, exits=2):
    rng = numpy.random.RandomState(seed)
    return openmax.OpenMax([{"mav": rng.randn(c, c) * 3, "shape": rng.uniform(1, 5, c),
                             "scale": rng.uniform(0.2, 2, c), "loc": rng.uniform(-0.5, 0.3, c)}
                            for _ in range(exits)], tailsize=20, alpharank=3)


def test_distances_match_scipy():
    rng = numpy.random.RandomState(0)
    z, mav = rng.randn(7, 5).astype(numpy.float32), rng.randn(5, 5)
    for kind in openmax.DISTANCES:
        got = openmax.distances(z, mav, kind)
        for n in range(7):
            for c in range(5):
                u, v = mav[c], z[n].astype(numpy.float64)
                expected = {"eucos": spd.euclidean(u, v) / 200 + spd.cosine(u, v),
                            "euclidean": spd.euclidean(u, v) / 200, "cosine": spd.cosine(u, v)}[kind]
                assert got[n, c] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match="unknown OpenMax distance 'manhattan'"):
        openmax.distances(z, mav, "manhattan")


def test_weibull_tail_fit_solves_the_likelihood_equations():
    """libMR's FitHigh: location min - 10000, then the two-parameter MLE, whose shape c solves
    sum y^c ln y / sum y^c - 1 / c - mean ln y = 0 and scale = (mean x^c)^(1/c) (y = x / max x)."""
    tail = numpy.sort(numpy.random.RandomState(1).gamma(5, 0.1, size=300))[-20:]
    shape, scale, loc = openmax.fit_tail(tail)
    assert loc == tail[0] - openmax.TRANSLATE
    x = tail - loc
    y = x / x.max()
    yc = y ** shape
    residual = (yc * numpy.log(y)).sum() / yc.sum() - 1 / shape - numpy.log(y).mean()
    assert abs(residual * shape) < 1e-4  # relative to the 1/c term
    assert scale == pytest.approx(x.max() * yc.mean() ** (1 / shape), rel=1e-9)
    cdf = openmax.weibull_cdf(tail, shape, scale, loc)
    assert numpy.all(numpy.diff(cdf) > 0) and 0 < cdf[0] < cdf[-1] < 1
    with pytest.raises(ValueError, match="at least 2 distinct"):
        openmax.fit_tail([0.3, 0.3, 0.3])


def _openmax_by_hand(z, e, alpharank):
    """The original's per-sample recalibration, written as loops over the classes."""
    c = len(z)
    order = sorted(range(c), key=lambda j: (-z[j], j))
    alpha = [0.0] * c
    for i in range(alpharank):
        alpha[order[i]] = (alpharank + 1 - (i + 1)) / alpharank
    new, unknown = [], 0.0
    for j in range(c):
        d = spd.euclidean(e["mav"][j], z) / 200 + spd.cosine(e["mav"][j], z)
        x = d - e["loc"][j]
        w = 1 - math.exp(-((x / e["scale"][j]) ** e["shape"][j])) if x > 0 else 0.0
        new.append(z[j] * (1 - w * alpha[j]))
        unknown += z[j] - new[-1]
    total = sum(math.exp(v) for v in new) + math.exp(unknown)
    return [math.exp(v) / total for v in new] + [math.exp(unknown) / total]


def test_recalibration_matches_the_original_loops():
    om = _fake_fit()
    z = (numpy.random.RandomState(2).randn(30, 4) * 4).astype(numpy.float32)
    z[0] = om.exits[1]["mav"][2]  # at a class mean: that class untouched (w = 0)
    for k in range(2):
        p = om.probabilities(z, k)
        for n in range(len(z)):
            expected = _openmax_by_hand(z[n].astype(float).tolist(), om.exits[k], 3)
            numpy.testing.assert_allclose(p[n], expected, rtol=1e-9, atol=1e-15)
    assert numpy.allclose(om.probabilities(z, 1).sum(axis=1), 1)
    values, state = om.values(z, None)
    assert state == 1 and numpy.array_equal(values, om.probabilities(z, 0)[:, :4].max(axis=1))
    assert numpy.isnan(om.values(numpy.full((1, 4), numpy.nan, numpy.float32))[0]).all()


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="alpharank must be between 1 and the 4 classes"):
        openmax.OpenMax(_fake_fit().to_dict()["exits"], alpharank=10)
    z = numpy.eye(3, dtype=numpy.float32)[[0, 0, 1, 1, 2]] * 5
    with pytest.raises(ValueError, match="exit 0, class 0: a Weibull tail needs at least 2 distinct"):
        openmax.fit([z], [0, 0, 1, 1, 2], alpharank=3)  # identical samples: nothing to fit
    z[[1, 3]] += 0.5
    with pytest.raises(ValueError, match="exit 0 classifies 1 training samples of class 2"):
        openmax.fit([z], [0, 0, 1, 1, 2], alpharank=3)
    with pytest.raises(ValueError, match=r"OpenMax fitted for 4 classes, got logits of shape \(5, 3\)"):
        _fake_fit().values(z)
    with pytest.raises(ValueError, match=r"labels outside the modelled columns \[0, 1\]: \[2\]"):
        openmax.fit([z], [0, 0, 1, 1, 2], alpharank=2, columns=[0, 1])


def test_columns_model_a_subset_of_the_outputs():
    """Fitted on some logit columns of a wider net = fitted on those columns alone."""
    rng = numpy.random.RandomState(4)
    labels = numpy.repeat([1, 3, 4], 12)
    z = (rng.randn(36, 6) + 6 * numpy.eye(6)[labels]).astype(numpy.float32)
    wide = openmax.fit([z], labels, tailsize=8, alpharank=2, columns=[4, 1, 3])
    alone = openmax.fit([z[:, [1, 3, 4]]], numpy.searchsorted([1, 3, 4], labels), tailsize=8,
                        alpharank=2)
    assert wide.columns == [1, 3, 4] and alone.columns is None
    test = (rng.randn(20, 6) * 4).astype(numpy.float32)
    numpy.testing.assert_array_equal(wide.values(test)[0], alone.values(test[:, [1, 3, 4]])[0])
    with pytest.raises(ValueError, match=r"columns \[1, 3, 4\]\), got logits of shape \(20, 4\)"):
        wide.values(test[:, :4])


# ---------------------------------------------------------------- on a real net
@pytest.fixture(scope="module")
def fitted(mnist_subset):
    """A small 3-exit net trained on 1,500 MNIST images, its OpenMax fitted on them."""
    numpy.random.seed(1)
    x, t = mnist_subset
    net = train_steps(tiny_three_exit_net(), x[:1500], t[:1500], steps=60, batch=32, seed=1,
                      alpha=TINY_ALPHA)
    om = openmax.fit(ExitOutputs.from_net(net, x[:1500]).logits, t[:1500], alpharank=5)
    return net, om


@pytest.mark.parametrize("batch", [1, 50])
def test_real_early_exit_equals_the_cache(fitted, mnist_subset, batch):
    net, om = fitted
    x, t = mnist_subset
    n = 100 if batch == 1 else 400
    x, t = x[-n:], t[-n:]
    cache = ExitOutputs.from_net(net, x, t)
    values = cache.values(om)
    for k in range(3):  # exit k's values from exit k's fit
        expected = om.probabilities(cache.logits[k], k)[:, :-1].max(axis=1)
        numpy.testing.assert_array_equal(values[k], expected)
    spread = set()
    for q in (0.15, 0.5, 0.85):
        thresholds = tuple(float(numpy.quantile(values[k], q)) + 1e-7 for k in range(2))
        outs = [net.predict(x[s:s + batch], thresholds, measure=om) for s in range(0, n, batch)]
        labels = numpy.concatenate([o[0] for o in outs])
        exits = numpy.concatenate([o[1] for o in outs])
        sim_labels, sim_exits = cache.simulate(thresholds, om)
        numpy.testing.assert_array_equal(exits, sim_exits, err_msg=str(thresholds))
        numpy.testing.assert_array_equal(labels, sim_labels)
        row = cache.evaluate(thresholds, om.name)  # found by name (the sweep's path)
        assert row["exit_counts"] == numpy.bincount(exits, minlength=3).tolist()
        spread |= set(exits.tolist())
    assert spread == {0, 1, 2}  # every exit used: the middle exit's fit is exercised


def _synthetic_fit(exits, c):
    """An OpenMax fitted on synthetic logits, 10 samples per class around 8 * one-hot, for the
    even classes only (``columns``)."""
    rng = numpy.random.RandomState(0)
    z = (numpy.repeat(numpy.eye(c) * 8, 10, axis=0) + rng.randn(10 * c, c)).astype(numpy.float32)
    labels = numpy.repeat(numpy.arange(c), 10)
    even = labels % 2 == 0
    return openmax.fit([z[even]] * exits, labels[even], tailsize=5, alpharank=2,
                       columns=range(0, c, 2))


def test_saved_with_the_model_and_loaded_back(mnist_subset, tmp_path):
    lenet = networks.build("b-lenet")
    x = mnist_subset[0][-64:]
    lenet_logits = lenet.exit_logits(x)
    lenet.openmax = _synthetic_fit(len(lenet_logits), lenet_logits[0].shape[1])
    path = tmp_path / "net.npz"
    serialization.save(lenet, str(path))
    loaded = networks.load(str(path))
    assert loaded.openmax.name == lenet.openmax.name
    assert loaded.openmax.to_dict() == lenet.openmax.to_dict()
    assert measures.get(loaded.openmax.name) is not None
    t = float(numpy.median(ExitOutputs(lenet_logits).values(lenet.openmax)[0]))
    for a, b in zip(lenet.predict(x, t, measure=lenet.openmax),
                    loaded.predict(x, t, measure=loaded.openmax)):
        numpy.testing.assert_array_equal(a, b)
    plain = tmp_path / "plain.npz"
    serialization.save(networks.build("b-lenet"), str(plain))
    assert getattr(networks.load(str(plain)), "openmax", None) is None
