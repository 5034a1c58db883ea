"""The BranchyNet controller: one shared trunk split at the branch points, one head per exit.

Unlike the original, which kept a deep copy of the trunk prefix per exit and synchronised them by
copying parameters (bugs B11, B12, B19), there is a single trunk: exit k runs on the output of
segment k, the baseline (main) network is the whole trunk plus the last head, and joint training
needs one forward pass.
"""
import contextlib
import threading

import numpy

import chainer
import chainer.functions as F
from chainer import optimizers

from branchynet import exit_rule, lean, ops, single, timing
from branchynet.branch import shared_prefixes, split_network
from branchynet.layers import MaxPool


class Sequence(chainer.ChainList):
    """An ordered run of network items; the links among them are registered as children."""

    def __init__(self, layers):
        super().__init__()
        self.layers = list(layers)
        for layer in self.layers:
            if isinstance(layer, chainer.Link):
                self.add_link(layer)

    def forward(self, x, start=0, stop=None):
        """Runs layers[start:stop] on x.

        On the fast CPU path a ReLU followed by a max pooling runs as the pooling then the ReLU:
        the same values and the same gradients (the two commute, and where the window's maximum is
        positive both route the gradient to its first occurrence; elsewhere both give zero), on a
        tensor the pooling has made several times smaller.
        """
        layers = self.layers[start:stop]
        swap = ops.fast_enabled(x)
        i = 0
        while i < len(layers):
            if (swap and layers[i] is F.relu and i + 1 < len(layers)
                    and isinstance(layers[i + 1], MaxPool)):
                x = F.relu(ops.apply(layers[i + 1], x))
                i += 2
            else:
                x = ops.apply(layers[i], x)
                i += 1
        return x

    def __len__(self):
        return len(self.layers)


@contextlib.contextmanager
def _chainer_inference():
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        yield


class BranchyNet(chainer.Chain):
    """Trains and runs an early-exit network declared as a list with ``Branch`` markers.

    Args:
        network: the layer list (see ``branchynet.branch``).
        thresholds: default exit thresholds for ``predict``/``test`` (one per non-final exit).
        opt: ``"Adam"`` (alpha, beta1) or ``"MomentumSGD"`` (lr, momentum, weight_decay), as the original.
        joint: if False, the trunk is trained only by the last exit's gradient ("separate" training).
        train_keep: fraction of each batch (the highest-entropy samples) that goes on to later exits
            in training; 1.0 (the original's default) trains every exit on the whole batch.
        train_thresholds: if set, samples with entropy below T_k stop at exit k in training too.
    """

    def __init__(self, network, thresholds=None, opt="Adam", alpha=1e-3, beta1=0.9,
                 lr=0.1, momentum=0.9, weight_decay=1e-4, joint=True, train_keep=1.0,
                 train_thresholds=None):
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
        self.opt_settings = dict(opt=opt, alpha=alpha, beta1=beta1, lr=lr, momentum=momentum,
                                 weight_decay=weight_decay)
        self.optimizer = None
        self.reset_optimizer()
        self._lean = None
        self._single = {}

    # ------------------------------------------------------------------ structure
    def numexits(self):
        return len(self.heads)

    def reset_optimizer(self):
        """A fresh optimizer over every parameter; called between pretraining and joint training
        so that the main network's Adam moments do not carry over (the original's B13)."""
        s = self.opt_settings
        if s["opt"] == "Adam":
            optimizer = optimizers.Adam(alpha=s["alpha"], beta1=s["beta1"])
        elif s["opt"] == "MomentumSGD":
            optimizer = optimizers.MomentumSGD(lr=s["lr"], momentum=s["momentum"])
        else:
            raise ValueError("opt must be 'Adam' or 'MomentumSGD', got %r" % (s["opt"],))
        optimizer.setup(self)
        if s["opt"] == "MomentumSGD" and s["weight_decay"]:
            optimizer.add_hook(chainer.optimizer_hooks.WeightDecay(s["weight_decay"]))
        self.optimizer = optimizer
        return optimizer

    def _to_device(self, x):
        x = x.array if isinstance(x, chainer.Variable) else x
        return self.device.send(x)

    # ------------------------------------------------------------------ training
    def forward_main(self, x):
        """Logits of the main (baseline) network: the whole trunk, then the last head."""
        for segment in self.segments:
            x = segment(x)
        return self.heads[-1](x)

    def train_main(self, x, t):
        """One pretraining step of the main network. Returns (loss, accuracy) as floats."""
        x, t = self._to_device(x), self._to_device(t)
        with ops.cpu_scope(x):
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
        each exit's segments and whole head.
        """
        losses, accs = [], []
        h, start = x, 0
        num_exits = self.numexits()
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
            losses.append(F.softmax_cross_entropy(y, t))
            accs.append(F.accuracy(y, t))
            if not last:
                keep = self._train_keep_mask(y.array, k)
                if keep is not None:
                    if not bool(keep.any()):
                        h = None
                        continue
                    index = self.xp.flatnonzero(keep)
                    h, t = F.get_item(h, index), t[index]
        return losses, accs

    def _train_keep_mask(self, logits, k):
        """Which samples go on to the next exit in training; None keeps all of them."""
        if self.train_thresholds is None and self.train_keep >= 1.0:
            return None
        xp = self.xp
        ent = exit_rule.entropy(exit_rule.softmax(logits))
        if self.train_thresholds is not None:
            thresholds = exit_rule.as_thresholds(self.train_thresholds, self.numexits())
            return ~exit_rule.exits_here(ent, thresholds[k])
        n_keep = int(round(self.train_keep * len(ent)))
        keep = xp.zeros(len(ent), dtype=bool)
        keep[xp.argsort(ent)[len(ent) - n_keep:]] = True
        return keep

    def train(self, x, t):
        """One joint training step: loss = sum_n w_n L_n over the exits, one backward, one update.

        Returns (per-exit losses, per-exit accuracies) as lists of floats (None for an exit that
        no sample reached).
        """
        x, t = self._to_device(x), self._to_device(t)
        with ops.cpu_scope(x):
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

    def _use_lean(self, x):
        return self.xp is numpy and ops.fast_enabled(x)

    def _lean_program(self):
        if self._lean is None:
            self._lean = ([lean.compile_sequence(s.layers) for s in self.segments],
                          [lean.compile_sequence(h.layers) for h in self.heads])
        return self._lean

    def _single_chain(self, x):
        """Batch-1 programs (single.py) for inputs like x, one set per thread: segment k reads
        segment k-1's output buffer and head k segment k's, where they lie. Returns the functions
        (segment k on h, head k on h); h that is not that buffer is copied in."""
        key = (threading.get_ident(), x.shape, x.dtype.str)
        steps = self._single.get(key)
        if steps is None:
            if len(self._single) >= 64:  # threads come and go; programs are cheap to rebuild
                self._single.clear()
            segments, heads = single.chain([s.layers for s in self.segments],
                                           [h.layers for h in self.heads], x.shape, x.dtype)
            steps = self._single[key] = (lambda k, h: segments[k](h), lambda k, h: heads[k](h))
        return steps

    def inference_steps(self, x):
        """(segment k on h, head k on h, context) for inference on x: on CPU with the fast path,
        the lean numpy programs, which need no Chainer configuration (at batch 1 entering one
        costs as much as a small layer); else the Chainer chains in test mode without a graph."""
        if self._use_lean(x):
            if len(x) == 1 and x.dtype.kind == "f":
                return self._single_chain(x) + (contextlib.nullcontext(),)
            segments, heads = self._lean_program()
            return (lambda k, h: lean.run_sequence(segments[k], h),
                    lambda k, h: lean.run_sequence(heads[k], h), ops.cpu_scope(x))
        return (lambda k, h: chainer.as_array(self.segments[k](h)),
                lambda k, h: chainer.as_array(self.heads[k](h)), _chainer_inference())

    def run_segment(self, k, h):
        """Inference through trunk segment k; a device array out."""
        segment, _, context = self.inference_steps(h)
        with context:
            return segment(k, h).copy()  # batch-1 programs return buffers they reuse

    def run_head(self, k, h):
        """Logits of exit k's head on segment k's output (inference); a device array out."""
        _, head, context = self.inference_steps(h)
        with context:
            return head(k, h).copy()

    def predict(self, x, thresholds=None):
        """Early-exit inference. Returns (labels, exit index) per sample, as numpy int arrays.

        Only the samples still in flight go on, as the intermediate activation: lower layers are
        never recomputed and each head runs once per sample that reaches it. The exit decision and
        the split stay on the device; only the final result comes back to the host.
        """
        thresholds = self._thresholds(thresholds)
        x = self._to_device(x)
        segment, head, context = self.inference_steps(x)
        with context:
            if len(x) == 1:  # a plain branch per exit is cheaper than masks and copies
                return self._predict_one(x, thresholds, segment, head)
            return self._predict_batch(x, thresholds, segment, head)

    def _predict_one(self, x, thresholds, segment, head):
        last = self.numexits() - 1
        h = x
        for k in range(last + 1):
            h = segment(k, h)
            logits = head(k, h)
            if k == last or exit_rule.leaves_one(logits, thresholds[k]):
                break
        return (numpy.array([int(logits[0].argmax())], dtype=numpy.int32),
                numpy.array([k], dtype=numpy.int32))

    def _predict_batch(self, x, thresholds, segment, head):
        xp = self.xp
        labels = xp.empty(len(x), dtype=numpy.int32)
        exits = xp.empty(len(x), dtype=numpy.int32)
        remaining = xp.arange(len(x))
        last = self.numexits() - 1
        h = x
        for k in range(last + 1):
            h = segment(k, h)
            logits = head(k, h)
            if k == last:
                leave = xp.ones(len(logits), dtype=bool)
            else:
                leave = exit_rule.leaves(logits, thresholds[k])
            leaving = remaining[leave]
            labels[leaving] = logits[leave].argmax(axis=1)
            exits[leaving] = k
            stay = ~leave
            remaining, h = remaining[stay], h[stay]
            if len(remaining) == 0:
                break
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
        correct = labels == t
        counts = numpy.bincount(exits, minlength=self.numexits())
        per_exit = [float(correct[exits == k].mean()) if counts[k] else float("nan")
                    for k in range(self.numexits())]
        return float(correct.mean()), per_exit, counts.tolist(), seconds

    def predict_main(self, x):
        """Labels of the main (baseline) network, as a numpy int array."""
        x = self._to_device(x)
        segment, head, context = self.inference_steps(x)
        with context:
            h = x
            for k in range(self.numexits()):
                h = segment(k, h)
            logits = head(self.numexits() - 1, h)
        return chainer.backend.CpuDevice().send(logits.argmax(axis=1).astype(numpy.int32))

    def test_main(self, x, t):
        """Baseline inference on one batch. Returns (accuracy, seconds), device synchronised."""
        start = timing.clock(self.xp)
        labels = self.predict_main(x)
        seconds = timing.clock(self.xp) - start
        t = chainer.backend.CpuDevice().send(t.array if isinstance(t, chainer.Variable) else t)
        return float((labels == t).mean()), seconds

    def exit_probs(self, x):
        """Softmax output of every exit for every sample, without early exit (the original's get_SM).

        A list of K host arrays of shape (N, classes); the trunk runs once, segment by segment.
        """
        x = self._to_device(x)
        segment, head, context = self.inference_steps(x)
        probs = []
        h = x
        with context:
            for k in range(self.numexits()):
                h = segment(k, h)
                probs.append(chainer.backend.CpuDevice().send(exit_rule.softmax(head(k, h))))
        return probs
