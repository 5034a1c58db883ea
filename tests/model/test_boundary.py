"""Inputs at the controller's boundary (issue 21): bad labels, thresholds, shapes, dtypes and
non-finite images are refused or reported before any state changes; huge batches run in pieces;
a saved net loaded into the wrong architecture names the array; measures that must not let a
non-finite sample out."""
import warnings

import numpy as np
import pytest

import chainer.functions as F
import chainer.links as L

import branchynet  # noqa: F401  (compatibility shims before chainer)
import networks
from branchynet import Branch, BranchyNet
from branchynet.model import exit_rule, inference, inputs, measures, serialization
from branchynet.training.optimizers import adam


@pytest.fixture
def lenet():
    np.random.seed(0)
    return networks.build("b-lenet")


def _x(n, seed=0, shape=(1, 28, 28), dtype=np.float32):
    return np.random.RandomState(seed).rand(n, *shape).astype(dtype)


def _params(net):
    return {name: p.array.copy() for name, p in net.namedparams()}


def _assert_unchanged(net, before):
    for name, value in _params(net).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


# ------------------------------------------------------------------ labels
@pytest.mark.parametrize("bad", [10, -1, 12])
@pytest.mark.parametrize("stage", ["train", "train_main"])
def test_labels_outside_the_classes_are_refused_before_the_step(lenet, bad, stage):
    lenet.predict(_x(2), 0.1)  # parameters ready, so that "before" holds them all
    optimizer = adam()(lenet)
    before = _params(lenet)
    t = np.array([0, 3, bad, 1], np.int32)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\] for 10 classes; got %d" % bad):
        getattr(lenet, stage)(_x(4), t, optimizer)
    _assert_unchanged(lenet, before)
    assert optimizer.t == 0


def test_label_range_check_on_a_fresh_net_uses_the_heads_output_size():
    net = BranchyNet([L.Linear(None, 8), Branch([L.Linear(None, 4)]), F.relu,
                      Branch([L.Linear(None, 4)])])
    optimizer = adam()(net)
    with pytest.raises(ValueError, match=r"\[0, 3\] for 4 classes; got 4"):
        net.train(_x(2, shape=(5,)), np.array([0, 4], np.int32), optimizer)
    net.train(_x(2, shape=(5,)), np.array([0, 3], np.int32), optimizer)
    inputs.check_labels(np.array([], np.int32), 4)  # nothing to check


# ------------------------------------------------------------------ thresholds
@pytest.mark.parametrize("bad", ["0.1", True, [0.1, "x"], np.bool_(False), [True]])
def test_thresholds_that_are_not_numbers_are_refused(lenet, bad):
    with pytest.raises(TypeError, match="thresholds must be numbers"):
        lenet.predict(_x(2), thresholds=bad)


def test_nan_threshold_is_refused(lenet):
    with pytest.raises(ValueError, match="NaN"):
        lenet.predict(_x(2), thresholds=np.nan)
    assert exit_rule.as_thresholds(np.float32(0.5), 3).tolist() == [0.5, 0.5]


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("first", [(2, 3, 28, 28), (0, 1, 32, 32)])
def test_a_failed_or_empty_first_call_records_no_shape(lenet, first):
    bad = np.zeros(first, np.float32)
    if len(bad):
        with pytest.raises(ValueError, match=r"inputs of shape \(N, 3, 28, 28\) do not fit"):
            lenet.predict(bad, 0.1)
    else:
        labels, _ = lenet.predict(bad, 0.1)
        assert labels.shape == (0,)
        with pytest.raises(ValueError, match=r"inputs of shape \(N, 1, 32, 32\) do not fit"):
            lenet.exit_logits(bad)  # the class counts come from a blank sample: 32x32 fails
    assert lenet.input_shape is None
    labels, exits = lenet.predict(_x(3), 0.1)  # the right shape works afterwards
    assert labels.shape == exits.shape == (3,) and lenet.input_shape == (1, 28, 28)


def test_a_loaded_net_refuses_another_sample_shape(lenet, tmp_path):
    lenet.predict(_x(2), 0.1)
    path = str(tmp_path / "net.npz")
    serialization.save(lenet, path)
    loaded = networks.load(path)
    assert loaded.input_shape == (1, 28, 28)
    # 28x27 passes B-LeNet's layers (the flattened size is 720 too), so only the saved shape tells
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\) expected, got \(2, 1, 28, 27\)"):
        loaded.predict(_x(2, shape=(1, 28, 27)), 0.1)
    np.testing.assert_array_equal(loaded.predict_main(_x(4)), lenet.predict_main(_x(4)))


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_float16_is_refused_like_stock_chainer_at_every_batch_size(lenet, n):
    with pytest.raises(TypeError, match=r"inputs are float16 but this net's parameters are "
                                        r"float32: convert them, e.g. x.astype\(numpy.float32\)"):
        lenet.predict(_x(n, dtype=np.float16), 0.1)
    lenet.predict(_x(n), 0.1)  # a later right call: the dtype is checked against the parameters
    with pytest.raises(TypeError, match="float16"):
        lenet.exit_probs(_x(n, dtype=np.float16))


# ------------------------------------------------------------------ non-finite images
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_images_are_reported_with_their_count(lenet, value):
    x = _x(5)
    x[1, 0, 3, 3] = value
    x[4] = value
    with np.errstate(all="ignore"), pytest.warns(inputs.NonFiniteInputWarning,
                                                 match="2 of 5 samples hold NaN or infinite"):
        lenet.predict(x, 0.5)
    with np.errstate(all="ignore"), pytest.warns(inputs.NonFiniteInputWarning, match="1 of 1"):
        lenet.exit_probs(x[4:5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lenet.predict(_x(5), 0.5)  # finite: no warning


def test_a_batch_is_counted_by_its_first_kernel(lenet, monkeypatch):
    """Where the first kernel copies the batch (the fused convolution, forced here), predict,
    predict_main and exit_logits warn with the count it made, piece by piece, and never pass over
    the batch again; where a piece is not counted so (one sample, or the fast path off), one
    pass over the whole batch counts alike."""
    import chainer

    from branchynet.fast import conv as fconv
    from branchynet.fast import microkernel
    if not microkernel.available():
        pytest.skip("the fused convolution needs vector code")
    monkeypatch.setattr(fconv, "forward_path", lambda *args: "unpacked")
    x = _x(40)
    x[0, 0, 0, 0], x[17, 0, 9, 20], x[39, 0, 27, 27] = np.nan, np.inf, -np.inf
    passes = []
    real = inputs.non_finite_count
    monkeypatch.setattr(inputs, "non_finite_count", lambda v: passes.append(len(v)) or real(v))
    runs = (lambda: lenet.predict(x, 0.5), lambda: lenet.predict_main(x), lambda: lenet.exit_logits(x))

    def warned_each(want_passes):
        for run in runs:
            with np.errstate(all="ignore"), pytest.warns(inputs.NonFiniteInputWarning,
                                                         match="3 of 40 samples"):
                run()
        assert passes == want_passes
        passes.clear()
    warned_each([])
    lenet.chunk_size = 16
    warned_each([])
    lenet.chunk_size = 39  # the last piece, one sample, runs the batch-1 programs
    warned_each([40, 40, 40])
    lenet.chunk_size = 1000
    with chainer.using_config("branchynet_fast_cpu", False):
        warned_each([40, 40, 40])


@pytest.mark.parametrize("compiled", [True, False])
def test_non_finite_count_against_a_per_sample_check(compiled):
    """The count of samples holding NaN or +-inf, compiled pass or numpy sum alike: for float32
    and float64, contiguous batches and strided views, and finite batches whose sum overflows."""
    from branchynet.fast import jit
    previous = jit.set_enabled(compiled)
    try:
        rng = np.random.RandomState(3)
        for dtype in (np.float32, np.float64):
            x = rng.rand(9, 3, 7, 5).astype(dtype)
            places = ([], [(0, 0, 0, 0)], [(0, 0, 0, 1)], [(8, 2, 6, 4)], [(2, 1, 3, 3), (5, 0, 0, 1)])
            for bad in places:
                for value in (np.nan, np.inf, -np.inf):
                    y = x.copy()
                    for at in bad:
                        y[at] = value
                    for view in (y, y[::2], y[:, :, :, 1:]):
                        want = int((~np.isfinite(view.reshape(len(view), -1))).any(axis=1).sum())
                        with np.errstate(all="ignore"):
                            assert inputs.non_finite_count(view) == want
            huge = np.full((4, 3), np.finfo(dtype).max / 2, dtype)
            with np.errstate(over="ignore"):
                assert inputs.non_finite_count(huge) == 0
            assert inputs.non_finite_count(x[:0]) == 0
            assert inputs.non_finite_count(x[:, :0]) == 0
    finally:
        jit.set_enabled(previous)


def test_non_finite_training_images_are_refused(lenet):
    lenet.predict(_x(2), 0.1)
    optimizer = adam()(lenet)
    before = _params(lenet)
    x = _x(4)
    x[2, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="1 of 4 training samples hold NaN or infinite"):
        lenet.train(x, np.zeros(4, np.int32), optimizer)
    _assert_unchanged(lenet, before)


# ------------------------------------------------------------------ large batches
def test_large_batches_run_in_pieces_with_the_same_results(lenet, monkeypatch):
    x = _x(23)
    whole_labels, whole_exits = lenet.predict(x, 0.3)
    whole_logits = lenet.exit_logits(x)
    whole_main = lenet.predict_main(x)
    sizes = []
    real = inference.exit_logits
    monkeypatch.setattr(inference, "exit_logits", lambda net, h: sizes.append(len(h)) or real(net, h))
    lenet.chunk_size = 5
    labels, exits = lenet.predict(x, 0.3)
    logits = lenet.exit_logits(x)
    assert sizes == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(labels, whole_labels)
    np.testing.assert_array_equal(exits, whole_exits)
    np.testing.assert_array_equal(lenet.predict_main(x), whole_main)
    for piecewise, whole in zip(logits, whole_logits):
        np.testing.assert_allclose(piecewise, whole, rtol=1e-5, atol=1e-6)
    lenet.chunk_size = 1  # batch 1 takes predict_one's path
    np.testing.assert_array_equal(lenet.predict(x[:4], 0.3)[1], whole_exits[:4])


# ------------------------------------------------------------------ loading into the wrong net
def _small(channels):
    return BranchyNet([L.Convolution2D(1, 4, 3), Branch([F.relu, L.Convolution2D(4, channels, 3),
                                                         L.Linear(None, 10)]),
                       F.relu, Branch([L.Linear(None, 10)])])


def test_loading_into_the_wrong_net_names_the_array(tmp_path):
    saved, other = _small(5), _small(7)
    for net in (saved, other):
        net.predict(_x(2, shape=(1, 8, 8)), 0.1)
    path = str(tmp_path / "small.npz")
    serialization.save(saved, path)
    with pytest.raises(ValueError, match=r"small.npz does not fit this net: heads/0/0/W: saved "
                                         r"\(5, 4, 3, 3\), this net \(7, 4, 3, 3\)"):
        serialization.load_into(other, path)


# ------------------------------------------------------------------ measures
def test_patience_never_lets_a_non_finite_sample_leave():
    z = np.zeros((3, 4), np.float32)
    z[:, 1] = 5
    z[1] = np.nan
    z[2, 0] = np.inf
    m = measures.get("patience")
    values, state = m.values(z)
    values, state = m.values(z, state)
    assert values[0] == 2 and np.isnan(values[1]) and np.isnan(values[2])
    assert m.leaves(values, 1.0).tolist() == [True, False, False]


def test_patience_in_predict_keeps_a_nan_image_to_the_last_exit(lenet):
    x = _x(3)
    x[1] = np.nan
    with np.errstate(all="ignore"), pytest.warns(inputs.NonFiniteInputWarning):
        _, exits = lenet.predict(x, 1.0, measure="patience")  # T <= 1: every finite sample leaves
        _, one = lenet.predict(x[1:2], 1.0, measure="patience")
    assert exits.tolist() == [0, 1, 0] and one.tolist() == [1]


def test_max_prob_and_margin_rank_samples_whose_float32_probabilities_saturate():
    z = np.array([[20, 0, 0], [25, 0, 0], [30, 0, 0]], np.float32)
    assert (exit_rule.softmax(z).max(axis=1) == 1).all()  # float32 cannot rank them
    for name in ("max_prob", "margin"):
        v = measures.get(name).values(z)[0]
        assert v.dtype == np.float64 and v[0] < v[1] < v[2] < 1, name
        expected = 1 / (1 + 2 * np.exp(-z[:, 0].astype(np.float64)))  # top prob; 2nd is tiny
        np.testing.assert_allclose(v, expected if name == "max_prob"
                                   else expected * (1 - np.exp(-z[:, 0].astype(np.float64))),
                                   rtol=1e-14)
