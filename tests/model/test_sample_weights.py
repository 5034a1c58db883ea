"""Sample-dependent loss weights: the SoftExit formula by hand, alpha = 0 is the paper's loss, and
the joint loss and its gradients are the weighted per-sample cross-entropies."""
import numpy
import pytest

import chainer
import chainer.functions as F

import branchynet  # noqa: F401
import networks
from branchynet.model import exit_rule, sample_weights


def test_soft_exit_weights_by_hand():
    logits = [numpy.log(numpy.array([[0.9, 0.1], [0.6, 0.4]], numpy.float32)),
              numpy.log(numpy.array([[0.5, 0.5], [0.8, 0.2]], numpy.float32)),
              numpy.zeros((2, 2), numpy.float32)]
    w = sample_weights.SoftExit(alpha=1.0)
    reach = w.start(2)
    got = []
    for k in range(3):
        a, reach = w.weights(logits[k], k, 3, reach)
        got.append(a)
    # soft leave probabilities: exit 1: 0.9, 0.6; exit 2: 0.1*0.5, 0.4*0.8; last: 0.1*0.5, 0.4*0.2
    q = numpy.array([[0.9, 0.6], [0.05, 0.32], [0.05, 0.08]])
    expected = q / q.mean(axis=1, keepdims=True)
    numpy.testing.assert_allclose(numpy.stack(got), expected, rtol=1e-5)
    half = sample_weights.SoftExit(alpha=0.5)
    a, _ = half.weights(logits[0], 0, 3, half.start(2))
    numpy.testing.assert_allclose(a, 0.5 + 0.5 * expected[0], rtol=1e-5)
    assert a.mean() == pytest.approx(1.0)  # the batch mean stays 1: exit weights keep their share


def test_bad_weighting_is_a_clear_error():
    with pytest.raises(ValueError, match="alpha must be in"):
        sample_weights.SoftExit(alpha=1.5)
    with pytest.raises(ValueError, match="unknown sample weighting"):
        sample_weights.get("focal")
    assert sample_weights.get("none") is None
    assert sample_weights.get("soft_exit:0.25").alpha == 0.25


def _batch(mnist_subset, n=64):
    x, t = mnist_subset
    return x[:n], t[:n]


def test_alpha_zero_is_the_paper_loss(mnist_subset):
    x, t = _batch(mnist_subset)
    numpy.random.seed(0)
    net = networks.build("b-lenet")
    with chainer.using_config("train", True):
        plain, _ = net.loss.exit_losses(net, x, t)
        net.loss.sample_weighting = sample_weights.SoftExit(alpha=0.0)
        weighted, _ = net.loss.exit_losses(net, x, t)
    for p, w in zip(plain, weighted):
        assert float(w.array) == pytest.approx(float(p.array), rel=1e-6)


def test_weighted_loss_and_gradient_are_the_weighted_cross_entropies(mnist_subset):
    x, t = _batch(mnist_subset)
    numpy.random.seed(0)
    net = networks.build("b-lenet")
    scheme = sample_weights.SoftExit(alpha=0.8)
    net.loss.sample_weighting = scheme
    with chainer.using_config("train", False):  # no dropout: the same forward twice
        losses, _ = net.loss.exit_losses(net, x, t)
        total = sum(w * loss for w, loss in zip(net.weights, losses))
        net.cleargrads()
        total.backward()
        grads = [p.grad.copy() for p in net.params()]
        # by hand: the exits' logits, the weights from them, the weighted means
        logits = [y for y in net.forward(x)]
        reach = scheme.start(len(t))
        expected = []
        for k, y in enumerate(logits):
            a, reach = scheme.weights(y.array, k, len(logits), reach)
            ce = -numpy.log(exit_rule.softmax(y.array)[numpy.arange(len(t)), t])
            expected.append(float((a * ce).mean()))
            assert float(losses[k].array) == pytest.approx(expected[-1], rel=1e-4)
        net.cleargrads()
        manual = sum(w * F.sum(F.softmax_cross_entropy(y, t, reduce="no") *
                               scheme.weights(y.array, k, len(logits), r)[0]) / len(t)
                     for k, (w, y, r) in enumerate(zip(net.weights, logits, _reaches(scheme, logits))))
        manual.backward()
    for g, p in zip(grads, net.params()):
        numpy.testing.assert_allclose(g, p.grad, rtol=1e-4, atol=1e-6)
    assert not numpy.allclose(expected[1], float(F.softmax_cross_entropy(logits[1], t).array))


def _reaches(scheme, logits):
    reach = scheme.start(len(logits[0].array))
    out = []
    for k, y in enumerate(logits):
        out.append(reach)
        _, reach = scheme.weights(y.array, k, len(logits), reach)
    return out
