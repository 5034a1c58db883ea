"""The BranchyNet controller: one shared trunk split at the branch points, one head per exit.

Unlike the original, which kept a deep copy of the trunk prefix per exit and synchronised them by
copying parameters (docs/original.md, B11, B12, B19), there is a single trunk: exit k runs on the output of
segment k, the baseline (main) network is the whole trunk plus the last head, and joint training
needs one forward pass.
"""
import contextlib

import numpy

import chainer

from branchynet import fast, gpu
from branchynet.model import exit_rule, inference, inputs, measures
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
        self.input_shape = None  # one sample's shape, recorded at first use or saved
        self.chunk_size = 4096  # inference runs on at most this many samples at a time
        self._params_ready = False  # every parameter initialised (lazily sized layers included)
        self._dtypes = set()  # the parameters' dtypes, and the class count, known once ready
        self._classes = None
        self._runner = fast.Runner([s.layers for s in self.segments], [h.layers for h in self.heads])
        self._graphs = gpu.GraphCache()

    def numexits(self):
        return len(self.heads)

    def _to_device(self, x):
        x = x.array if isinstance(x, chainer.Variable) else x
        return self.device.send(x)

    def _inputs(self, x, t=None, training=False):
        """x (and labels t) checked before anything runs (``branchynet.model.inputs``): a float
        batch of the parameters' dtype and of the sample shape the net has seen or was saved
        with, one label in [0, classes) per sample, finite images for training (inference counts
        the others as it runs, and warns). Returns them as given (not yet on the device)."""
        x = x.array if isinstance(x, chainer.Variable) else x
        inputs.check_images(x, self.input_shape, self._dtypes)
        if t is not None:
            t = t.array if isinstance(t, chainer.Variable) else t
            inputs.check_label_form(t, len(x))
        if not self._params_ready and len(x):
            self.initialize(x[:1])
            inputs.check_images(x, self.input_shape, self._dtypes)
        if t is not None and self._classes is not None:
            inputs.check_labels(t, self._classes)
        if training:
            inputs.refuse_non_finite(x)
        return x if t is None else (x, t)

    def initialize(self, x):
        """Sizes lazily sized layers (``L.Linear(None, 10)``) and checks that samples of x's shape
        fit the layers, by one stock-Chainer forward of x's first sample through every exit,
        before the fast kernels and programs read the parameters (done at the first use; ``fit``
        does it before training, so that every process of a data parallel run starts from the
        same sized parameters). Records the sample shape (unless one was saved with the net),
        the parameters' dtype and the class count, only once the forward succeeded."""
        x = self._to_device(x[:1])
        inputs.check_images(x, None, {p.dtype for p in self.params() if p.array is not None})
        outputs = inference.stock_forward(self, x)
        if self.input_shape is None:
            self.input_shape = tuple(x.shape[1:])
        self._dtypes = {param.dtype for param in self.params()}
        self._classes = outputs[-1].shape[1]
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

    def _training_inputs(self, x, t):
        x, t = self._inputs(x, t, training=True)
        return self._to_device(x), self._to_device(t)

    def train_main(self, x, t, optimizer):
        """One pretraining step of the main network with ``optimizer`` (set up on this net).
        Returns (loss, accuracy) as floats."""
        x, t = self._training_inputs(x, t)
        with fast.cpu_scope(x):
            loss, acc = self._step(optimizer, lambda: main_loss(self, x, t))
        return float(loss.array), float(acc.array)

    def train(self, x, t, optimizer):
        """One joint training step with ``optimizer``: ``self.loss`` (L = sum_n w_n L_n over the
        exits), one backward, one update. Returns (per-exit losses, per-exit accuracies) as lists
        of floats (None for an exit that no sample reached)."""
        x, t = self._training_inputs(x, t)
        with fast.cpu_scope(x):
            _, losses, accs = self._step(optimizer, lambda: self.loss(self, x, t))
        return ([None if v is None else float(v.array) for v in losses],
                [None if v is None else float(v.array) for v in accs])

    # ------------------------------------------------------------------ inference
    def _thresholds(self, thresholds):
        return exit_rule.as_thresholds(self.thresholds if thresholds is None else thresholds,
                                       self.numexits())

    def inference_steps(self, x, counted=None):
        """(segment k on h, head k on h, context) for inference on x: on numpy with the fast path,
        the compiled numpy programs (``fast.Runner``), which need no Chainer configuration; one
        sample on a GPU, CUDA graphs of each segment and head (``gpu.graphs``); else the Chainer
        chains in test mode without a graph. ``counted``: a list to which the fast path's first
        kernel appends how many samples of x are not finite, where it counts them."""
        if self.xp is numpy and fast.enabled(x):
            segment, head = self._runner.steps(x, counted)
            return segment, head, (fast.cpu_scope(x) if len(x) > 1 else contextlib.nullcontext())
        if self.xp is not numpy and gpu.enabled(x):
            steps = self._graphs.steps(self, x)
            if steps is not None:
                return steps
        return (lambda k, h: chainer.as_array(self.segments[k](h)),
                lambda k, h: chainer.as_array(self.heads[k](h)), inference.chainer_inference())

    def _chunks(self, x):
        """x in pieces of at most ``chunk_size`` samples, each on the device."""
        return (self._to_device(x[a:b]) for a, b in inputs.chunks(len(x), self.chunk_size))

    def predict(self, x, thresholds=None, measure="entropy"):
        """Early-exit inference. Returns (labels, exit index) per sample, as numpy int arrays.

        Only the samples still in flight go on, as the intermediate activation: lower layers are
        never recomputed and each head runs once per sample that reaches it. Each exit's logits
        come to the host, where the exit decisions are made; the samples staying are gathered on
        the device. A batch larger than ``chunk_size`` runs in pieces.

        ``measure`` names the confidence measure the thresholds apply to (``branchynet.model.measures``:
        "entropy", the paper's H < T, "normalized_entropy", "max_prob", "margin", "patience").
        """
        measure = measures.get(measure)
        rule = None if measure.name == "entropy" else measure  # entropy: the fast leaves_one
        thresholds = self._thresholds(thresholds)
        x = self._inputs(x)
        results = [inference.predict(self, chunk, thresholds, rule) for chunk in self._chunks(x)]
        inputs.warn_non_finite(x, [r[2] for r in results])
        if not results:
            return numpy.zeros(0, numpy.int32), numpy.zeros(0, numpy.int32)
        if len(results) == 1:
            return results[0][:2]
        return tuple(numpy.concatenate(parts) for parts in list(zip(*results))[:2])

    def predict_main(self, x):
        """Labels of the main (baseline) network, as a numpy int array."""
        x = self._inputs(x)
        results = [inference.predict_main(self, chunk) for chunk in self._chunks(x)]
        inputs.warn_non_finite(x, [count for _, count in results])
        labels = [labels for labels, _ in results]
        return numpy.concatenate(labels) if labels else numpy.zeros(0, numpy.int32)

    def exit_probs(self, x):
        """Softmax output of every exit for every sample, without early exit (the original's get_SM):
        a list of K host arrays of shape (N, classes)."""
        return [exit_rule.softmax(z) for z in self.exit_logits(x)]

    def exit_logits(self, x):
        """Logits of every exit for every sample, without early exit: a list of K host arrays of
        shape (N, classes); the trunk runs once per piece of ``chunk_size`` samples."""
        x = self._inputs(x)
        if len(x) == 0:
            return inference.empty_logits(self, x)
        results = [inference.exit_logits(self, chunk) for chunk in self._chunks(x)]
        inputs.warn_non_finite(x, [count for _, count in results])
        pieces = [logits for logits, _ in results]
        return [numpy.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*pieces)]

