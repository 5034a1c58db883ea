"""Bad input to the controller: a clear error naming what to fix, or the right answer."""
import numpy as np
import pytest

import chainer

import branchynet  # noqa: F401  (compatibility shims before chainer)
import networks
from branchynet.model import exit_rule
from branchynet.training.optimizers import adam


@pytest.fixture
def lenet():
    np.random.seed(0)
    return networks.build("b-lenet")


def _x(n, seed=0):
    return np.random.RandomState(seed).rand(n, 1, 28, 28).astype(np.float32)


def test_nan_threshold_is_refused_as_a_scalar_too(lenet):
    for bad in (float("nan"), [float("nan")]):
        with pytest.raises(ValueError, match="NaN"):
            lenet.predict(_x(2), thresholds=bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_never_leave_early(lenet, value):
    x = _x(3)
    x[1] = value
    with np.errstate(invalid="ignore", over="ignore"):  # 10 nats lets every finite sample out
        _, batch_exits = lenet.predict(x, thresholds=10.0)
        _, one_exit = lenet.predict(x[1:2], thresholds=10.0)
    assert batch_exits.tolist() == [0, 1, 0] and one_exit.tolist() == [1]


def test_nan_probabilities_have_nan_entropy_and_never_exit():
    p = np.array([[0.5, 0.5], [np.nan, np.nan], [1.0, 0.0]], np.float32)
    ent = exit_rule.entropy(p)
    assert np.isnan(ent[1]) and ent[2] == 0 and abs(ent[0] - np.log(2)) < 1e-6
    assert exit_rule.exits_here(ent, 100.0).tolist() == [True, False, True]


def test_empty_batch_gives_empty_results(lenet):
    empty = _x(0)
    labels, exits = lenet.predict(empty, 0.1)
    assert labels.shape == exits.shape == (0,)
    assert lenet.predict_main(empty).shape == (0,)
    assert [p.shape for p in lenet.exit_probs(empty)] == [(0, 10), (0, 10)]


def test_label_count_must_match_the_batch(lenet):
    optimizer = adam()(lenet)
    with pytest.raises(ValueError, match="labels must be 4 integers"):
        lenet.train(_x(4), np.zeros(3, np.int32), optimizer)
    with pytest.raises(ValueError, match="labels must be 4 integers"):
        lenet.train_main(_x(4), np.zeros(4, np.float32), optimizer)


def test_wrong_dtype_or_shape_is_named(lenet):
    with pytest.raises(TypeError, match="float array"):
        lenet.predict((_x(2) * 255).astype(np.uint8), 0.1)
    lenet.predict(_x(2), 0.1)
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\) expected, got \(2, 3, 28, 28\)"):
        lenet.predict(np.zeros((2, 3, 28, 28), np.float32), 0.1)


def test_calling_the_net_returns_every_exits_logits(lenet):
    x = _x(5)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        outputs = lenet(x)
    assert [o.shape for o in outputs] == [(5, 10), (5, 10)]
    for out, probs in zip(outputs, lenet.exit_probs(x)):
        np.testing.assert_allclose(exit_rule.softmax(out.array), probs, rtol=1e-5, atol=1e-6)
