"""The BranchyNet controller: one shared trunk split at the branch points, one head per exit.

Unlike the original, which kept a deep copy of the trunk prefix per exit and synchronised them by
copying parameters (docs/original.md, B11, B12, B19), there is a single trunk: exit k runs on the output of
segment k, the baseline (main) network is the whole trunk plus the last head, and joint training
needs one forward pass.
"""
import contextlib

import numpy

import chainer
import chainer.functions as F
from chainer import optimizers

from branchynet import fast
from branchynet.evaluation import timing
from branchynet.model import exit_rule, measures
from branchynet.model.branch import shared_prefixes, split_network


class Sequence(chainer.ChainList):
    """An ordered run of network items; the links among them are registered as children."""

    def __init__(self, layers):
        super().__init__()
        self.layers = list(layers)
        for layer in self.layers:
            if isinstance(layer, chainer.Link):
                self.add_link(layer)

    def forward(self, x, start=0, stop=None):
        """Runs layers[start:stop] on x (on the fast CPU kernels where they apply)."""
        return fast.run_layers(self.layers[start:stop], x)

    def __len__(self):
        return len(self.layers)


@contextlib.contextmanager
def _chainer_inference():
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        yield


def make_optimizer(target, opt, alpha, beta1, lr, momentum, weight_decay):
    """The original's optimizers over ``target``: Adam (alpha, beta1) or MomentumSGD (lr,
    momentum, weight decay)."""
    if opt == "Adam":
        return optimizers.Adam(alpha=alpha, beta1=beta1).setup(target)
    if opt != "MomentumSGD":
        raise ValueError("opt must be 'Adam' or 'MomentumSGD', got %r" % (opt,))
    optimizer = optimizers.MomentumSGD(lr=lr, momentum=momentum).setup(target)
    if weight_decay:
        optimizer.add_hook(chainer.optimizer_hooks.WeightDecay(weight_decay))
    return optimizer


class BranchyNet(chainer.Chain):
    """Trains and runs an early-exit network declared as a list with ``Branch`` markers.

    Args:
        network: the layer list (see ``branchynet.model.branch``).
        thresholds: default exit thresholds for ``predict``/``test`` (one per non-final exit).
        opt: ``"Adam"`` (alpha, beta1) or ``"MomentumSGD"`` (lr, momentum, weight_decay), as the original.
        joint: if False, the trunk is trained only by the last exit's gradient ("separate" training).
        train_keep: fraction of each batch (the highest-entropy samples) that goes on to later exits
            in training; 1.0 (the original's default) trains every exit on the whole batch.
        train_thresholds: if set, samples with entropy below T_k stop at exit k in training too.
        sample_weighting: None (the paper's per-exit mean losses) or a per-sample loss weighting
            such as ``branchynet.model.sample_weights.SoftExit(alpha)`` (see that module).
    """

    def __init__(self, network, thresholds=None, opt="Adam", alpha=1e-3, beta1=0.9,
                 lr=0.1, momentum=0.9, weight_decay=1e-4, joint=True, train_keep=1.0,
                 train_thresholds=None, sample_weighting=None):
        super().__init__()
        segments, heads, weights = split_network(network)
        with self.init_scope():
            self.segments = chainer.ChainList(*[Sequence(s) for s in segments])
            self.heads = chainer.ChainList(*[Sequence(h) for h in heads])
        self.weights = weights
        self.shared = shared_prefixes(segments, heads)
        self.thresholds = thresholds
        self.joint = joint
        if not 0.0 < train_keep <= 1.0:
            raise ValueError("train_keep must be in (0, 1], got %r" % (train_keep,))
        self.train_keep = train_keep
        self.train_thresholds = train_thresholds
        self.sample_weighting = sample_weighting
        self.opt_settings = dict(opt=opt, alpha=alpha, beta1=beta1, lr=lr, momentum=momentum,
                                 weight_decay=weight_decay)
        self.optimizer = None
        self.reset_optimizer()
        self.input_shape = None  # one sample's shape, recorded at first use
        self._runner = fast.Runner([s.layers for s in self.segments], [h.layers for h in self.heads])

    # ------------------------------------------------------------------ structure
    def numexits(self):
        return len(self.heads)

    def reset_optimizer(self):
        """A fresh optimizer over every parameter; called between pretraining and joint training
        so that the main network's Adam moments do not carry over (docs/original.md, B13)."""
        self.optimizer = make_optimizer(self, **self.opt_settings)
        return self.optimizer

    def _to_device(self, x):
        x = x.array if isinstance(x, chainer.Variable) else x
        return self.device.send(x)

    def _inputs(self, x, t=None):
        """x (and labels t) on the device, checked: a float batch of the shape the net has seen
        before (recorded at first use), one integer label per sample."""
        x = self._to_device(x)
        if getattr(x, "dtype", None) is None or x.dtype.kind != "f" or x.ndim < 2:
            raise TypeError("inputs must be a float array (N, ...) such as float32 images; got %s"
                            % (getattr(x, "dtype", type(x).__name__),))
        if self.input_shape is None:
            self.input_shape = tuple(x.shape[1:])
        elif tuple(x.shape[1:]) != self.input_shape:
            raise ValueError("inputs of shape (N, %s) expected, got %s"
                             % (", ".join(map(str, self.input_shape)), tuple(x.shape)))
        if t is None:
            return x
        t = self._to_device(t)
        if t.ndim != 1 or len(t) != len(x) or t.dtype.kind not in "iu":
            raise ValueError("labels must be %d integers, one per sample; got %s of shape %s"
                             % (len(x), t.dtype, tuple(t.shape)))
        return x, t

    def forward(self, x):
        """Logits of every exit (a list of Variables), without early exit, in the current
        Chainer configuration (``chainer.config.train``)."""
        outputs, h = [], x
        for segment, head in zip(self.segments, self.heads):
            h = segment(h)
            outputs.append(head(h))
        return outputs

    # ------------------------------------------------------------------ training
    def forward_main(self, x):
        """Logits of the main (baseline) network: the whole trunk, then the last head."""
        for segment in self.segments:
            x = segment(x)
        return self.heads[-1](x)

    def train_main(self, x, t):
        """One pretraining step of the main network. Returns (loss, accuracy) as floats."""
        x, t = self._inputs(x, t)
        with fast.cpu_scope(x):
            with chainer.using_config("train", True):
                y = self.forward_main(x)
                loss = F.softmax_cross_entropy(y, t)
                acc = F.accuracy(y, t)
            self.cleargrads()
            loss.backward()
            self.optimizer.update()
        return float(loss.array), float(acc.array)

    def joint_losses(self, x, t):
        """Per-exit losses and accuracies of one shared forward pass, in training mode.

        With the default train_keep=1 every exit sees the whole batch; with entropy filtering the
        samples that leave at exit k are dropped from later exits (as activations, never recomputed).
        An exit that no sample reaches has loss and accuracy None. A head's leading layers that
        equal the next segment's (``self.shared``) are run once; the losses are those of running
        each exit's segments and whole head. With ``sample_weighting`` each exit's loss is the
        batch mean of its per-sample cross-entropies times the weighting's per-sample weights.
        """
        losses, accs = [], []
        h, start = x, 0
        num_exits = self.numexits()
        weighting = self.sample_weighting
        state = None if weighting is None else weighting.start(len(t), self.xp)
        for k in range(num_exits):
            if h is None:
                losses.append(None)
                accs.append(None)
                continue
            h = self.segments[k].forward(h, start)
            # the head's first layers that equal the next segment's run once, on the trunk's path
            start = self.shared[k]
            if start:
                h = self.heads[k].forward(h, 0, start)
            last = k == num_exits - 1
            head_input = h if (self.joint or last) else chainer.Variable(chainer.as_array(h))
            y = self.heads[k].forward(head_input, start)
            if weighting is None:
                losses.append(F.softmax_cross_entropy(y, t))
            else:
                a, state = weighting.weights(y.array, k, num_exits, state)
                per_sample = F.softmax_cross_entropy(y, t, reduce="no")
                losses.append(F.sum(per_sample * a) / len(a))
            accs.append(F.accuracy(y, t))
            if not last:
                keep = exit_rule.training_keep(y.array, k, self.numexits(), self.train_keep,
                                               self.train_thresholds)
                if keep is not None:
                    if not bool(keep.any()):
                        h = None
                        continue
                    index = self.xp.flatnonzero(keep)
                    h, t = F.get_item(h, index), t[index]
                    if state is not None:
                        state = weighting.select(state, index)
        return losses, accs

    def train(self, x, t):
        """One joint training step: loss = sum_n w_n L_n over the exits, one backward, one update.

        Returns (per-exit losses, per-exit accuracies) as lists of floats (None for an exit that
        no sample reached).
        """
        x, t = self._inputs(x, t)
        with fast.cpu_scope(x):
            with chainer.using_config("train", True):
                losses, accs = self.joint_losses(x, t)
                total = sum(w * loss for w, loss in zip(self.weights, losses) if loss is not None)
            self.cleargrads()
            total.backward()
            self.optimizer.update()
        return ([None if v is None else float(v.array) for v in losses],
                [None if v is None else float(v.array) for v in accs])

    # ------------------------------------------------------------------ inference
    def _thresholds(self, thresholds):
        return exit_rule.as_thresholds(self.thresholds if thresholds is None else thresholds,
                                       self.numexits())

    def inference_steps(self, x):
        """(segment k on h, head k on h, context) for inference on x: on numpy with the fast path,
        the compiled numpy programs (``fast.Runner``), which need no Chainer configuration; else
        the Chainer chains in test mode without a graph."""
        if self.xp is numpy and fast.enabled(x):
            segment, head = self._runner.steps(x)
            return segment, head, (fast.cpu_scope(x) if len(x) > 1 else contextlib.nullcontext())
        return (lambda k, h: chainer.as_array(self.segments[k](h)),
                lambda k, h: chainer.as_array(self.heads[k](h)), _chainer_inference())

    def predict(self, x, thresholds=None, measure="entropy"):
        """Early-exit inference. Returns (labels, exit index) per sample, as numpy int arrays.

        Only the samples still in flight go on, as the intermediate activation: lower layers are
        never recomputed and each head runs once per sample that reaches it. The exit decision and
        the split stay on the device; only the final result comes back to the host.

        ``measure`` names the confidence measure the thresholds apply to (``branchynet.model.measures``:
        "entropy", the paper's H < T, "normalized_entropy", "max_prob", "margin", "patience").
        """
        measure = measures.get(measure)
        rule = None if measure.name == "entropy" else measure  # entropy: the fast leaves_one
        thresholds = self._thresholds(thresholds)
        x = self._inputs(x)
        if len(x) == 0:
            return numpy.zeros(0, numpy.int32), numpy.zeros(0, numpy.int32)
        segment, head, context = self.inference_steps(x)
        with context:
            if len(x) == 1:  # a plain branch per exit is cheaper than masks and copies
                return exit_rule.predict_one(x, thresholds, segment, head, rule)
            labels, exits = exit_rule.predict_batch(x, thresholds, segment, head, self.xp, rule)
        return chainer.backend.CpuDevice().send(labels), chainer.backend.CpuDevice().send(exits)

    def test(self, x, t, thresholds=None):
        """Early-exit inference and its evaluation on one batch.

        Returns (overall accuracy, per-exit accuracy (NaN where no sample left), per-exit exit
        counts, seconds for the inference, device synchronised).
        """
        start = timing.clock(self.xp)
        labels, exits = self.predict(x, thresholds)
        seconds = timing.clock(self.xp) - start
        t = chainer.backend.CpuDevice().send(t.array if isinstance(t, chainer.Variable) else t)
        if len(t) != len(labels):
            raise ValueError("%d labels for %d samples" % (len(t), len(labels)))
        correct = labels == t
        counts = numpy.bincount(exits, minlength=self.numexits())
        per_exit = [float(correct[exits == k].mean()) if counts[k] else float("nan")
                    for k in range(self.numexits())]
        overall = float(correct.mean()) if len(correct) else float("nan")
        return overall, per_exit, counts.tolist(), seconds

    def predict_main(self, x):
        """Labels of the main (baseline) network, as a numpy int array."""
        x = self._inputs(x)
        if len(x) == 0:
            return numpy.zeros(0, numpy.int32)
        segment, head, context = self.inference_steps(x)
        with context:
            h = x
            for k in range(self.numexits()):
                h = segment(k, h)
            logits = head(self.numexits() - 1, h)
        return chainer.backend.CpuDevice().send(logits.argmax(axis=1).astype(numpy.int32))

    def exit_probs(self, x):
        """Softmax output of every exit for every sample, without early exit (the original's get_SM):
        a list of K host arrays of shape (N, classes)."""
        return [exit_rule.softmax(z) for z in self.exit_logits(x)]

    def exit_logits(self, x):
        """Logits of every exit for every sample, without early exit: a list of K host arrays of
        shape (N, classes); the trunk runs once, segment by segment."""
        x = self._inputs(x)
        if len(x) == 0:  # the class count from one blank sample
            return [z[:0] for z in self.exit_logits(self.xp.zeros((1,) + x.shape[1:], x.dtype))]
        segment, head, context = self.inference_steps(x)
        logits = []
        h = x
        with context:
            for k in range(self.numexits()):
                h = segment(k, h)
                logits.append(chainer.backend.CpuDevice().send(head(k, h)))
        return logits
