"""The training losses of a BranchyNet, apart from the model (as ChainerCV's train chains):
the main network's cross-entropy for pretraining, and ``JointLoss``, the weighted sum of every
exit's loss for joint training, L = sum_n w_n L_n.
"""
import chainer
import chainer.functions as F

from branchynet.model import exit_rule


def main_loss(net, x, t):
    """(loss, accuracy) Variables of the main (baseline) network on (x, t)."""
    y = net.forward_main(x)
    return F.softmax_cross_entropy(y, t), F.accuracy(y, t)


def loss_weights(preset, num_exits):
    """Per-exit loss weights: "slides" (early exits 1.0, last exit 0.3, the paper's and slides'
    choice), "code" (all 1.0, what the original code ran), or an explicit list."""
    if preset == "slides":
        return [1.0] * (num_exits - 1) + [0.3]
    if preset == "code":
        return [1.0] * num_exits
    weights = [float(w) for w in preset]
    if len(weights) != num_exits:
        raise ValueError("expected %d loss weights, got %d" % (num_exits, len(weights)))
    return weights


class JointLoss:
    """The joint loss of every exit, from one shared forward pass through ``net``.

    Args:
        weights: per-exit loss weights w_n; None (the default) takes the ``Branch`` list's.
        joint: if False, the trunk is trained only by the last exit's gradient ("separate" training).
        train_keep: fraction of each batch (the highest-entropy samples) that goes on to later exits;
            1.0 (the original's default) trains every exit on the whole batch.
        train_thresholds: if set, samples with entropy below T_k stop at exit k in training too.
        sample_weighting: None (the paper's per-exit mean losses) or a per-sample loss weighting
            such as ``branchynet.model.sample_weights.SoftExit(alpha)``.
    """

    def __init__(self, weights=None, joint=True, train_keep=1.0, train_thresholds=None,
                 sample_weighting=None):
        if not 0.0 < train_keep <= 1.0:
            raise ValueError("train_keep must be in (0, 1], got %r" % (train_keep,))
        self.weights = None if weights is None else [float(w) for w in weights]
        self.joint, self.train_keep = joint, train_keep
        self.train_thresholds, self.sample_weighting = train_thresholds, sample_weighting

    def weights_of(self, net):
        """The per-exit loss weights used on ``net``."""
        weights = net.weights if self.weights is None else self.weights
        if len(weights) != net.numexits():
            raise ValueError("%d loss weights for a net with %d exits" % (len(weights), net.numexits()))
        return weights

    def __call__(self, net, x, t):
        """(total loss Variable, per-exit losses, per-exit accuracies); an exit that no sample
        reaches has loss and accuracy None."""
        losses, accs = self.exit_losses(net, x, t)
        total = sum(w * loss for w, loss in zip(self.weights_of(net), losses) if loss is not None)
        return total, losses, accs

    def exit_losses(self, net, x, t):
        """Per-exit losses and accuracies of one shared forward pass (in the current Chainer
        configuration; training mode for training).

        With entropy filtering the samples that leave at exit k are dropped from later exits (as
        activations, never recomputed). A head's leading layers that equal the next segment's
        (``net.shared``) run once; the losses are those of running each exit's segments and whole
        head. With ``sample_weighting`` each exit's loss is the batch mean of its per-sample
        cross-entropies times the weighting's per-sample weights.
        """
        losses, accs = [], []
        num_exits = net.numexits()
        h, start = x, 0
        state = None if self.sample_weighting is None else self.sample_weighting.start(len(t), net.xp)
        for k in range(num_exits):
            if h is None:
                losses.append(None)
                accs.append(None)
                continue
            h = net.segments[k].forward(h, start)
            start = net.shared[k]
            if start:  # the head's first layers that equal the next segment's, on the trunk's path
                h = net.heads[k].forward(h, 0, start)
            last = k == num_exits - 1
            head_input = h if (self.joint or last) else chainer.Variable(chainer.as_array(h))
            y = net.heads[k].forward(head_input, start)
            loss, state = self._exit_loss(y, t, k, num_exits, state)
            losses.append(loss)
            accs.append(F.accuracy(y, t))
            if not last:
                h, t, state = self._keep(net, y, h, t, k, state)
        return losses, accs

    def _exit_loss(self, y, t, k, num_exits, state):
        if self.sample_weighting is None:
            return F.softmax_cross_entropy(y, t), state
        a, state = self.sample_weighting.weights(y.array, k, num_exits, state)
        per_sample = F.softmax_cross_entropy(y, t, reduce="no")
        return F.sum(per_sample * a) / len(a), state

    def _keep(self, net, y, h, t, k, state):
        """(h, t, state) of the samples that go on past exit k (h None when none does)."""
        keep = exit_rule.training_keep(y.array, k, net.numexits(), self.train_keep,
                                       self.train_thresholds)
        if keep is None:
            return h, t, state
        if not bool(keep.any()):
            return None, t, state
        index = net.xp.flatnonzero(keep)
        if state is not None:
            state = self.sample_weighting.select(state, index)
        return F.get_item(h, index), t[index], state
