"""The joint loss apart from the model: the weighted sum of exit losses against independent
plain-Chainer passes, shared leading layers run once, entropy filtering, separate training."""
import numpy
import pytest

import chainer
import chainer.functions as F

from branchynet.model.loss import JointLoss, loss_weights
from branchynet.training.optimizers import OptimizerSettings, adam
from tests.helpers import build
from tests.model.test_net import _BatchSizes


def _grads(net):
    return {name: None if p.grad is None else p.grad.copy() for name, p in net.namedparams()}


def test_loss_weight_presets():
    assert loss_weights("slides", 3) == [1.0, 1.0, 0.3]
    assert loss_weights("code", 2) == [1.0, 1.0]
    assert loss_weights([0.5, 2], 2) == [0.5, 2.0]
    with pytest.raises(ValueError, match="expected 3 loss weights"):
        loss_weights([1, 1], 3)


def test_the_callers_weights_replace_the_branch_lists(mnist_subset):
    """JointLoss(weights=...) sums the same per-exit losses with the caller's weights."""
    net = build(weights=[0.7, 0.2])
    x, t = mnist_subset[0][:16], mnist_subset[1][:16]
    with chainer.using_config("train", False):
        own, losses, _ = net.loss(net, x, t)
        other, _, _ = JointLoss(weights=[0.1, 2.0])(net, x, t)
    numpy.testing.assert_allclose(own.array, 0.7 * losses[0].array + 0.2 * losses[1].array, rtol=1e-6)
    numpy.testing.assert_allclose(other.array, 0.1 * losses[0].array + 2.0 * losses[1].array, rtol=1e-6)
    with pytest.raises(ValueError, match="3 loss weights for a net with 2 exits"):
        JointLoss(weights=[1, 1, 1])(net, x, t)
    with pytest.raises(ValueError, match="train_keep"):
        JointLoss(train_keep=0)


def _plain(sequence, h):
    """A segment or head as plain Chainer: its layers called one after another."""
    for layer in sequence.layers:
        h = layer(h)
    return h


def _independent_exit_grads(net, x, t):
    """Each exit's parameter gradients from its own backward pass through its segments and its
    whole head, in stock Chainer (no joint_losses, no shared layers, fast kernels off); with
    joint=False a non-final exit sees its segments' output as a constant."""
    grads, last = [], net.numexits() - 1
    for k in range(net.numexits()):
        net.cleargrads()
        with chainer.using_config("train", True), \
                chainer.using_config("branchynet_fast_cpu", False):
            h = chainer.Variable(x)
            for j in range(k + 1):
                h = _plain(net.segments[j], h)
            if not net.loss.joint and k < last:
                h = chainer.Variable(h.array)
            loss = F.softmax_cross_entropy(_plain(net.heads[k], h), t)
        loss.backward()
        grads.append({name: _zero_if_none(p.grad, p.array).copy()
                      for name, p in net.namedparams()})
    return grads


def _zero_if_none(g, like):
    return numpy.zeros_like(like) if g is None else g


@pytest.mark.parametrize("joint", [True, False])
def test_train_step_gradient_is_the_weighted_sum_of_exit_gradients(mnist_subset, joint):
    """The gradients net.train(x, t) leaves are w1 grad L1 + w2 grad L2, each grad L_k from a
    separate plain-Chainer backward pass; with joint=False exit 1's loss does not reach the trunk."""
    weights = [0.7, 0.2]
    net = build(weights=weights, loss=JointLoss(joint=joint))
    x, t = mnist_subset[0][:32], mnist_subset[1][:32]
    per_exit = _independent_exit_grads(net, x, t)
    net.train(x, t, adam()(net))
    for name, p in net.namedparams():
        expected = weights[0] * per_exit[0][name] + weights[1] * per_exit[1][name]
        numpy.testing.assert_allclose(_zero_if_none(p.grad, p.array), expected, rtol=1e-4,
                                      atol=1e-6, err_msg=name)
    trunk = [n for n in per_exit[0] if n.startswith("/segments/")]
    if joint:
        assert any(numpy.abs(per_exit[0][n]).max() > 0 for n in trunk)
    else:
        assert not any(numpy.abs(per_exit[0][n]).any() for n in trunk)
        assert numpy.abs(per_exit[0]["/heads/0/0/W"]).max() > 0  # exit 1's head still learns


def _unshared_losses(net, x, t):
    """Each exit's loss from its segments and its whole head, nothing shared."""
    losses, h = [], x
    for k in range(net.numexits()):
        h = net.segments[k](h)
        losses.append(F.softmax_cross_entropy(net.heads[k](h), t))
    return losses


def _inputs_for(name, mnist_subset, n=8):
    if name == "b-lenet":
        return mnist_subset[0][:n], mnist_subset[1][:n]
    rng = numpy.random.RandomState(2)
    return (rng.randn(n, 3, 32, 32).astype(numpy.float32),
            rng.randint(0, 10, n).astype(numpy.int32))


@pytest.mark.parametrize("name, shared", [("b-lenet", [2, 0]), ("b-alexnet", [3, 1, 0]),
                                          ("b-alexnet-paper", [3, 3, 0]),
                                          ("b-resnet110", [0, 0, 0])])
def test_joint_training_runs_a_heads_leading_trunk_layers_once(name, shared, mnist_subset,
                                                              monkeypatch):
    """A head's leading layers that equal the next segment's run once in joint training (every
    layer call counted), and the losses and gradients are those of running every head whole."""
    from branchynet.fast import switch
    kwargs = {"n": 1} if "resnet" in name else {}
    net = build(name, **kwargs)
    assert net.shared == shared
    x, t = _inputs_for(name, mnist_subset)
    calls = []
    real = switch.apply
    monkeypatch.setattr(switch, "apply", lambda layer, h: calls.append(layer) or real(layer, h))
    with chainer.using_config("branchynet_fast_cpu", False), chainer.using_config("train", True):
        net.cleargrads()
        numpy.random.seed(1)  # the same dropout masks in both passes
        losses, _ = net.loss.exit_losses(net, x, t)
        every_layer = sum(len(s) + len(h) for s, h in zip(net.segments, net.heads))
        assert len(calls) == every_layer - sum(shared)
        sum(w * loss for w, loss in zip(net.weights, losses)).backward()
        shared_grads = _grads(net)
        net.cleargrads()
        numpy.random.seed(1)
        reference = _unshared_losses(net, x, t)
        assert len(calls) == 2 * every_layer - sum(shared)
        for a, b in zip(losses, reference):
            numpy.testing.assert_allclose(a.array, b.array, rtol=1e-6)
        sum(w * loss for w, loss in zip(net.weights, reference)).backward()
    for name_, g in _grads(net).items():
        numpy.testing.assert_allclose(shared_grads[name_], g, rtol=1e-5, atol=1e-7, err_msg=name_)


def test_lenet_exit_1_shares_the_trunk_pool_on_the_fast_path(mnist_subset, monkeypatch):
    """On the fast CPU path too (where ReLU and pool swap): 4 poolings, not 5."""
    from branchynet.fast import switch
    net = build()
    x, t = mnist_subset[0][:16], mnist_subset[1][:16]
    calls = []
    real = switch.max_pooling_2d
    monkeypatch.setattr(switch, "max_pooling_2d",
                        lambda h, *a, **kw: calls.append(h.shape) or real(h, *a, **kw))
    with chainer.using_config("train", True):
        net.loss.exit_losses(net, x, t)
    assert len(calls) == 4  # trunk 3 + exit 1's second; not 5


def test_train_step_uses_the_weighted_loss(mnist_subset):
    """One momentum-free SGD step of train() moves parameters by -lr * sum_n w_n grad L_n."""
    net = build(weights=[0.7, 0.3])
    sgd = OptimizerSettings("MomentumSGD", lr=0.01, momentum=0.0, weight_decay=0)(net)
    x, t = mnist_subset[0][:32], mnist_subset[1][:32]
    before = {n: p.array.copy() for n, p in net.namedparams()}
    per_exit = _independent_exit_grads(net, x, t)
    net.train(x, t, sgd)
    for name, p in net.namedparams():
        g = 0.7 * per_exit[0][name] + 0.3 * per_exit[1][name]
        numpy.testing.assert_allclose(p.array, before[name] - 0.01 * g, rtol=1e-4, atol=1e-6,
                                      err_msg=name)


def test_entropy_filtered_training_drops_confident_samples(trained_lenet, mnist_subset,
                                                          split_threshold):
    x, t = mnist_subset[0][:200], mnist_subset[1][:200]
    hook = _BatchSizes()
    n_early = 100
    with chainer.using_config("branchynet_fast_cpu", False), \
            chainer.using_config("train", False), hook:
        JointLoss(train_thresholds=split_threshold).exit_losses(trained_lenet, x, t)
    assert hook.calls[-1] == ("LinearFunction", 200 - n_early)


