"""The BranchyNet controller: one shared trunk split at the branch points, one head per exit.

Unlike the original, which kept a deep copy of the trunk prefix per exit and synchronised them by
copying parameters (docs/original.md, B11, B12, B19), there is a single trunk: exit k runs on the output of
segment k, the baseline (main) network is the whole trunk plus the last head, and joint training
needs one forward pass.
"""
import contextlib

import numpy

import chainer

from branchynet import fast
from branchynet.model import exit_rule, measures
from branchynet.model.branch import shared_prefixes, split_network
from branchynet.model.loss import JointLoss, main_loss


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


def _host(x):
    return chainer.backend.CpuDevice().send(x)


class BranchyNet(chainer.Chain):
    """Trains and runs an early-exit network declared as a list with ``Branch`` markers.

    The optimizer is the caller's (``branchynet.training.optimizers``; ``fit`` makes one per
    stage); the joint loss is ``loss``'s.

    Args:
        network: the layer list (see ``branchynet.model.branch``).
        thresholds: default exit thresholds for ``predict`` (one per non-final exit).
        loss: the joint training loss, a ``branchynet.model.loss.JointLoss`` (default: the
            ``Branch`` list's weights, every exit on the whole batch).
    """

    def __init__(self, network, thresholds=None, loss=None):
        super().__init__()
        segments, heads, weights = split_network(network)
        with self.init_scope():
            self.segments = chainer.ChainList(*[Sequence(s) for s in segments])
            self.heads = chainer.ChainList(*[Sequence(h) for h in heads])
        self.weights = weights
        self.shared = shared_prefixes(segments, heads)
        self.thresholds = thresholds
        self.loss = JointLoss() if loss is None else loss
        self.input_shape = None  # one sample's shape, recorded at first use
        self._params_ready = False  # every parameter initialised (lazily sized layers included)
        self._runner = fast.Runner([s.layers for s in self.segments], [h.layers for h in self.heads])

    def numexits(self):
        return len(self.heads)

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
        if not self._params_ready and len(x):
            self.initialize(x)
        if t is None:
            return x
        t = self._to_device(t)
        if t.ndim != 1 or len(t) != len(x) or t.dtype.kind not in "iu":
            raise ValueError("labels must be %d integers, one per sample; got %s of shape %s"
                             % (len(x), t.dtype, tuple(t.shape)))
        return x, t

    def initialize(self, x):
        """Sizes lazily sized layers (``L.Linear(None, 10)``) by one stock-Chainer forward of x's
        first sample through every exit, before the fast kernels and programs read the parameters
        (done at the first use; ``fit`` does it before training, so that every process of a data
        parallel run starts from the same sized parameters)."""
        if any(param.array is None for param in self.params()):
            with _chainer_inference(), chainer.using_config("branchynet_fast_cpu", False):
                self.forward(self._to_device(x[:1]))
        self._params_ready = True

    def forward(self, x):
        """Logits of every exit (a list of Variables), without early exit, in the current
        Chainer configuration (``chainer.config.train``)."""
        outputs, h = [], x
        for segment, head in zip(self.segments, self.heads):
            h = segment(h)
            outputs.append(head(h))
        return outputs

    def forward_main(self, x):
        """Logits of the main (baseline) network: the whole trunk, then the last head."""
        for segment in self.segments:
            x = segment(x)
        return self.heads[-1](x)

    # ------------------------------------------------------------------ training
    def _step(self, optimizer, loss_of):
        with chainer.using_config("train", True):
            result = loss_of()
        self.cleargrads()
        result[0].backward()
        optimizer.update()
        return result

    def train_main(self, x, t, optimizer):
        """One pretraining step of the main network with ``optimizer`` (set up on this net).
        Returns (loss, accuracy) as floats."""
        x, t = self._inputs(x, t)
        with fast.cpu_scope(x):
            loss, acc = self._step(optimizer, lambda: main_loss(self, x, t))
        return float(loss.array), float(acc.array)

    def train(self, x, t, optimizer):
        """One joint training step with ``optimizer``: ``self.loss`` (L = sum_n w_n L_n over the
        exits), one backward, one update. Returns (per-exit losses, per-exit accuracies) as lists
        of floats (None for an exit that no sample reached)."""
        x, t = self._inputs(x, t)
        with fast.cpu_scope(x):
            _, losses, accs = self._step(optimizer, lambda: self.loss(self, x, t))
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
        return _host(labels), _host(exits)

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
        return _host(logits.argmax(axis=1).astype(numpy.int32))

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
                logits.append(_host(head(k, h)))
        return logits
