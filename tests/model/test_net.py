"""The controller: exit rule against brute force, no recomputation, joint gradients, errors."""
import math

import numpy
import pytest

import chainer
import chainer.functions as F
import chainer.links as L

from branchynet import Branch, BranchyNet, entropy
from branchynet.model.layers import MaxPool
from tests.helpers import build, random_images


def brute_force(probs, thresholds):
    """First exit whose entropy is strictly below its threshold, else the last exit."""
    n, k = len(probs[0]), len(probs)
    labels, exits = numpy.empty(n, int), numpy.empty(n, int)
    for i in range(n):
        for e in range(k):
            p = probs[e][i]
            h = -sum(v * math.log(v) for v in p if v > 0)
            if e == k - 1 or h < thresholds[e]:
                labels[i], exits[i] = int(numpy.argmax(p)), e
                break
    return labels, exits


# ---------------------------------------------------------------- entropy
def test_entropy_one_hot_is_zero_and_uniform_is_log_c():
    p = numpy.eye(10, dtype=numpy.float32)
    assert numpy.array_equal(entropy(p), numpy.zeros(10, numpy.float32))
    assert not numpy.isnan(entropy(p)).any()
    uniform = numpy.full((3, 7), 1 / 7, dtype=numpy.float64)
    numpy.testing.assert_allclose(entropy(uniform), numpy.log(7), rtol=1e-12)


def test_entropy_matches_independent_formula():
    rng = numpy.random.RandomState(0)
    p = rng.dirichlet(numpy.full(10, 0.3), size=50)
    p[:5, 3] = 0  # zeros inside rows that are not one-hot
    p /= p.sum(axis=1, keepdims=True)
    expected = [-sum(v * math.log(v) for v in row if v > 0) for row in p]
    numpy.testing.assert_allclose(entropy(p), expected, rtol=1e-10)


# ---------------------------------------------------------------- exit rule
@pytest.mark.parametrize("batch", [1, 7, 300])
@pytest.mark.parametrize("fast", [True, False])
def test_predict_equals_brute_force(trained_lenet, mnist_subset, batch, fast):
    x = mnist_subset[0][:300]
    rng = numpy.random.RandomState(batch)
    with chainer.using_config("branchynet_fast_cpu", fast):
        probs = trained_lenet.exit_probs(x)
        ent = numpy.sort(entropy(probs[0]))
        midpoints = (ent[1:] + ent[:-1]) / 2
        for threshold in list(rng.choice(midpoints, 4)) + [0.0, 10.0]:
            expected = brute_force(probs, [threshold])
            labels, exits = zip(*[trained_lenet.predict(x[s:s + batch], threshold)
                                  for s in range(0, len(x), batch)])
            numpy.testing.assert_array_equal(numpy.concatenate(exits), expected[1])
            numpy.testing.assert_array_equal(numpy.concatenate(labels), expected[0])


def test_lean_path_equals_chainer_path(trained_lenet, mnist_subset):
    x = mnist_subset[0][:64]
    with chainer.using_config("branchynet_fast_cpu", False):
        stock = trained_lenet.exit_probs(x)
    lean = trained_lenet.exit_probs(x)
    for a, b in zip(stock, lean):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_threshold_zero_equals_main_network(trained_lenet, mnist_subset):
    x = mnist_subset[0][:100]
    labels, exits = trained_lenet.predict(x, 0.0)
    assert (exits == 1).all()
    numpy.testing.assert_array_equal(labels, trained_lenet.predict_main(x))


class _BatchSizes(chainer.FunctionHook):
    """Records the batch size every Convolution2D and Linear call sees."""

    def __init__(self):
        self.calls = []

    def forward_preprocess(self, function, in_data):
        if function.label in ("Convolution2DFunction", "LinearFunction"):
            self.calls.append((function.label, in_data[0].shape[0]))


def _record_segments_and_heads(net, monkeypatch):
    """Records (kind, exit, batch size) of every segment and head call inference makes."""
    seen = []
    inference_steps = net.inference_steps

    def recording_steps(x, *counted):
        run_segment, run_head, context = inference_steps(x, *counted)

        def segment(k, h):
            seen.append(("segment", k, len(h)))
            return run_segment(k, h)

        def head(k, h):
            seen.append(("head", k, len(h)))
            return run_head(k, h)
        return segment, head, context
    monkeypatch.setattr(net, "inference_steps", recording_steps)
    return seen


@pytest.mark.parametrize("fast", [True, False])
def test_exited_samples_never_reach_later_layers(trained_lenet, mnist_subset, monkeypatch, fast,
                                                split_threshold):
    x = mnist_subset[0][:200]
    seen = _record_segments_and_heads(trained_lenet, monkeypatch)
    with chainer.using_config("branchynet_fast_cpu", fast):
        trained_lenet.predict(x, split_threshold)
    assert seen == [("segment", 0, 200), ("head", 0, 200), ("segment", 1, 100), ("head", 1, 100)]


def test_function_calls_see_only_samples_in_flight(trained_lenet, mnist_subset, split_threshold):
    """At the level of Chainer's own functions (stock path): 3 convs + 1 linear see only the rest."""
    x = mnist_subset[0][:200]
    hook = _BatchSizes()
    with chainer.using_config("branchynet_fast_cpu", False), hook:
        trained_lenet.predict(x, split_threshold)
    rest = 100
    assert hook.calls == [("Convolution2DFunction", 200),            # trunk conv 1
                          ("Convolution2DFunction", 200), ("LinearFunction", 200),  # head 1
                          ("Convolution2DFunction", rest), ("Convolution2DFunction", rest),
                          ("LinearFunction", rest), ("LinearFunction", rest)]     # trunk + head 2


def test_infinite_threshold_runs_only_first_segment_and_head(trained_lenet, mnist_subset,
                                                              monkeypatch):
    seen = _record_segments_and_heads(trained_lenet, monkeypatch)
    _, exits = trained_lenet.predict(mnist_subset[0][:50], float("inf"))
    assert (exits == 0).all()
    assert seen == [("segment", 0, 50), ("head", 0, 50)]


def test_batch_one_skips_later_segments(trained_lenet, mnist_subset, monkeypatch):
    seen = _record_segments_and_heads(trained_lenet, monkeypatch)
    trained_lenet.predict(mnist_subset[0][:1], float("inf"))
    assert seen == [("segment", 0, 1), ("head", 0, 1)]


# ---------------------------------------------------------------- errors
def test_wrong_threshold_count_is_a_clear_error():
    net = build()
    with pytest.raises(ValueError, match="expected 1 thresholds"):
        net.predict(random_images(2), [0.1, 0.2])
    with pytest.raises(ValueError, match="no exit thresholds"):
        net.predict(random_images(2))


def test_network_must_end_with_branch():
    with pytest.raises(ValueError, match="must end with a Branch"):
        BranchyNet([L.Linear(4, 3), Branch([L.Linear(3, 2)]), F.relu])
    with pytest.raises(ValueError, match="must end with a Branch"):
        BranchyNet([])


def test_branch_needs_layers():
    with pytest.raises(ValueError, match="at least one layer"):
        Branch([])


def test_branch_weight_is_kept():
    net = BranchyNet([L.Linear(4, 3), Branch([L.Linear(3, 2)], weight=0.7),
                      Branch([L.Linear(3, 2)], weight=0.3)])
    assert net.weights == [0.7, 0.3]


def test_only_deterministic_parameter_free_layers_are_shared():
    from branchynet.model.branch import shared_prefixes
    from branchynet.model.layers import Dropout
    conv = L.Convolution2D(1, 2, 3)
    heads = [[MaxPool(2, 2), F.relu, conv, L.Linear(None, 10)], [L.Linear(None, 10)]]
    assert shared_prefixes([[], [MaxPool(2, 2), F.relu, conv]], heads) == [2, 0]
    assert shared_prefixes([[], [MaxPool(2, 2)]], [[MaxPool(3, 2), L.Linear(None, 10)], [F.relu]]) == [0, 0]
    assert shared_prefixes([[], [Dropout(0.5)]], [[Dropout(0.5), L.Linear(None, 10)], [F.relu]]) == [0, 0]
    assert shared_prefixes([[], [F.dropout]], [[F.dropout, L.Linear(None, 10)], [F.relu]]) == [0, 0]
    # a head keeps at least its last layer
    assert shared_prefixes([[], [F.relu, F.relu]], [[F.relu], [F.relu]]) == [0, 0]


def test_short_training_on_real_mnist_lowers_every_exit_loss(trained_lenet, mnist_subset):
    from branchynet.training.trainer import exit_sums
    n = len(mnist_subset[0])
    loss_before = exit_sums(build(), *mnist_subset)[0] / n
    loss_after, correct = exit_sums(trained_lenet, *mnist_subset)
    loss_after, acc_after = loss_after / n, correct / n
    for before, after, acc in zip(loss_before, loss_after, acc_after):
        assert before > 2.0
        assert after < 0.6 * math.log(10)
        assert acc > 0.8


def test_initialize_sizes_lazy_layers_once_and_draws_nothing_for_a_sized_net():
    net = BranchyNet([L.Convolution2D(None, 2, 3), Branch([L.Linear(None, 10)]),
                      F.relu, Branch([L.Linear(None, 10)])])
    x = random_images(3)
    assert any(p.array is None for p in net.params())
    net.initialize(x)
    assert {name: p.shape for name, p in net.namedparams()} == {
        "/segments/0/0/W": (2, 1, 3, 3), "/segments/0/0/b": (2,),
        "/heads/0/0/W": (10, 2 * 26 * 26), "/heads/0/0/b": (10,),
        "/heads/1/0/W": (10, 2 * 26 * 26), "/heads/1/0/b": (10,)}
    sized = build()
    state = numpy.random.get_state()[1].copy()
    sized.initialize(x)
    numpy.testing.assert_array_equal(numpy.random.get_state()[1], state)
