"""The joint loss of a 3-exit net against cross-entropies computed in numpy from its exit logits
(weights, entropy filtering, a kept fraction, sample weighting, exits nobody reaches), written to
kill the mutants of ``loss`` that the older tests let through (docs/mutation.md)."""
import numpy
import pytest

import chainer

import branchynet  # noqa: F401
from branchynet.model import exit_rule
from branchynet.model.loss import JointLoss, loss_weights, main_loss
from branchynet.model.sample_weights import SoftExit
from tests.helpers import tiny_three_exit_net


@pytest.fixture(scope="module")
def net_and_batch():
    numpy.random.seed(0)
    net = tiny_three_exit_net()
    rng = numpy.random.RandomState(1)
    x = rng.rand(12, 1, 28, 28).astype(numpy.float32)
    t = rng.randint(0, 10, size=12).astype(numpy.int32)
    with chainer.no_backprop_mode():
        logits = net.exit_logits(x)
    return net, x, t, [numpy.asarray(z, dtype=numpy.float64) for z in logits]


def _ce(z, t):
    """Per-sample cross-entropies of logits z (N, C), in float64."""
    z = z - z.max(axis=1, keepdims=True)
    return numpy.log(numpy.exp(z).sum(axis=1)) - z[numpy.arange(len(t)), t]


def _acc(z, t):
    return float((z.argmax(axis=1) == t).mean())


def test_main_loss_is_the_last_exits_cross_entropy(net_and_batch):
    net, x, t, logits = net_and_batch
    loss, acc = main_loss(net, x, t)
    assert float(loss.array) == pytest.approx(_ce(logits[-1], t).mean(), rel=1e-5)
    assert float(acc.array) == pytest.approx(_acc(logits[-1], t))


@pytest.mark.parametrize("weights", [[1.0, 0.5, 0.25], [0.0, 2.0, 1.0]])
def test_total_is_the_weighted_sum_of_exit_cross_entropies(net_and_batch, weights):
    net, x, t, logits = net_and_batch
    total, losses, accs = JointLoss(weights=weights)(net, x, t)
    ce = [_ce(z, t).mean() for z in logits]
    numpy.testing.assert_allclose([float(v.array) for v in losses], ce, rtol=1e-5)
    numpy.testing.assert_allclose([float(a.array) for a in accs], [_acc(z, t) for z in logits])
    assert float(total.array) == pytest.approx(sum(w * c for w, c in zip(weights, ce)), rel=1e-5)


def test_exits_nobody_reaches_have_no_loss(net_and_batch):
    net, x, t, logits = net_and_batch
    total, losses, accs = JointLoss(weights=[1.0, 1.0, 1.0], train_thresholds=[10.0, 10.0])(net, x, t)
    assert len(losses) == 3 and losses[1:] == [None, None] and accs[1:] == [None, None]
    assert float(total.array) == pytest.approx(_ce(logits[0], t).mean(), rel=1e-5)


def test_entropy_filtering_and_a_kept_fraction_pass_the_right_samples_on(net_and_batch):
    net, x, t, logits = net_and_batch
    h = [exit_rule.entropy(exit_rule.softmax(z.astype(numpy.float32))) for z in logits]
    threshold = float(numpy.median(h[0]))
    _, losses, _ = JointLoss(weights=[1.0, 1.0, 1.0], train_thresholds=[threshold, 0.0])(net, x, t)
    on = h[0] >= threshold  # the samples that do not leave at exit 1 (T at exit 2 is 0: none leave)
    assert 0 < on.sum() < 12
    assert float(losses[1].array) == pytest.approx(_ce(logits[1][on], t[on]).mean(), rel=1e-5)
    assert float(losses[2].array) == pytest.approx(_ce(logits[2][on], t[on]).mean(), rel=1e-5)
    _, losses, _ = JointLoss(weights=[1.0, 1.0, 1.0], train_keep=0.5)(net, x, t)
    kept = numpy.argsort(h[0])[6:]  # the highest-entropy half at exit 1
    assert float(losses[1].array) == pytest.approx(_ce(logits[1][kept], t[kept]).mean(), rel=1e-5)
    again = kept[numpy.argsort(h[1][kept])[3:]]  # then half of those at exit 2
    assert float(losses[2].array) == pytest.approx(_ce(logits[2][again], t[again]).mean(), rel=1e-5)


def test_sample_weighting_weighs_each_exits_cross_entropies(net_and_batch):
    net, x, t, logits = net_and_batch
    scheme = SoftExit(1.0)
    _, losses, _ = JointLoss(weights=[1.0, 1.0, 1.0], sample_weighting=scheme)(net, x, t)
    reach = scheme.start(12)
    for k in range(3):
        a, reach = scheme.weights(logits[k].astype(numpy.float32), k, 3, reach)
        assert float(losses[k].array) == pytest.approx((a * _ce(logits[k], t)).sum() / 12, rel=1e-5)
    # with filtering too, the weights follow the samples still in flight
    h0 = exit_rule.entropy(exit_rule.softmax(logits[0].astype(numpy.float32)))
    threshold = float(numpy.median(h0))
    _, losses, _ = JointLoss(weights=[1.0, 1.0, 1.0], sample_weighting=scheme,
                             train_thresholds=[threshold, 0.0])(net, x, t)
    on = numpy.flatnonzero(h0 >= threshold)
    _, reach = scheme.weights(logits[0].astype(numpy.float32), 0, 3, scheme.start(12))
    a, _ = scheme.weights(logits[1][on].astype(numpy.float32), 1, 3, reach[on])
    assert float(losses[1].array) == pytest.approx((a * _ce(logits[1][on], t[on])).sum() / len(on), rel=1e-5)


def test_separate_training_stops_the_early_gradients_at_the_trunk(net_and_batch):
    net, x, t, _ = net_and_batch
    for joint, moved in ((True, True), (False, False)):
        net.cleargrads()
        _, losses, _ = JointLoss(weights=[1.0, 1.0, 1.0], joint=joint)(net, x, t)
        losses[0].backward()  # exit 1's loss alone: reaches the first conv only when joint
        grad = net.segments[0][0].W.grad
        assert (grad is not None and bool(numpy.abs(grad).sum() > 0)) == moved
    net.cleargrads()


def test_weights_presets_and_refusals(net_and_batch):
    net = net_and_batch[0]
    assert loss_weights("slides", 3) == [1.0, 1.0, 0.3] and loss_weights("code", 2) == [1.0, 1.0]
    assert loss_weights((1, 2), 2) == [1.0, 2.0]
    with pytest.raises(ValueError, match="expected 3 loss weights, got 2"):
        loss_weights([1, 2], 3)
    assert JointLoss().weights_of(net) == net.weights
    assert JointLoss(weights=(1, 2, 3)).weights_of(net) == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="2 loss weights for a net with 3 exits"):
        JointLoss(weights=[1, 2]).weights_of(net)
    for bad in (0.0, 1.5, -1):
        with pytest.raises(ValueError, match="train_keep must be in"):
            JointLoss(train_keep=bad)
    loss = JointLoss(train_keep=1.0)
    assert loss.joint and loss.train_keep == 1.0
    assert loss.train_thresholds is None and loss.sample_weighting is None
