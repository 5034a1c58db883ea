"""OpenMax (Bendale and Boult, CVPR 2016) as an exit confidence measure, fitted per exit.

The authors' ``openmax`` branch (``openmax/openmax.py``, with libMR) recalibrates one exit's logits
z (its "activation vector") with the class means of correctly classified training samples:

* the mean activation vector (MAV) of class c: the mean logits of the training samples of class c
  that the exit classifies correctly;
* distance of z to each MAV, "eucos": euclidean / 200 + cosine distance (the original's default);
* per class, a Weibull fitted to the ``tailsize`` largest training distances as libMR's
  ``FitHigh`` does: the tail is shifted by ``TRANSLATE - smallest tail value`` and a two-parameter
  Weibull (location 0) is fitted by maximum likelihood, so the location is fixed at
  ``smallest - TRANSLATE`` (here ``scipy.stats.weibull_min.fit`` with that ``floc``);
* w_c = the Weibull CDF of z's distance to MAV c; the ``alpharank`` top classes of z get weights
  alpha = (alpharank - rank) / alpharank (1 for the top one), the others 0;
* recalibrated logits z_c (1 - w_c alpha_c) and an "unknown" logit sum_c z_c w_c alpha_c, then a
  softmax over the C + 1.

Defaults as the original's ``OpenMax`` class (kunglab/branchynet, branch ``openmax``,
``openmax/openmax.py``): ``tailsize=20``, ``alpharank=10``, ``eucos``; its notebooks passed 20 and
5 (B-LeNet), 40 and 1 (B-AlexNet), 10 and 3 (the drop/exit/continue notebook). The
confidence value at exit k is the largest known class's OpenMax probability (unknown excluded);
a sample leaves when it is >= T, so samples that look unknown stay in the network.

Fitting needs scipy (imported there only); inference is numpy or cupy, so a loaded net uses its
fitted OpenMax without scipy. Deviation: libMR leaves a class unfitted when it has fewer correct
samples than ``tailsize``; here its tail is all of them (at least 2 are needed).

``columns`` (optional) names the logit columns OpenMax models: a net trained on a subset of its
classes (open-set evaluation, ``branchynet.evaluation.openset``) is recalibrated over those
classes only, its other outputs ignored.
"""
import hashlib
import json

import numpy

import chainer

from branchynet.model import measures

TRANSLATE = 10000.0  # libMR's translate_amount default (MetaRecognition.h)
DEFAULT_TAILSIZE = 20
DEFAULT_ALPHARANK = 10
DISTANCES = ("eucos", "euclidean", "cosine")


def distances(z, mav, kind="eucos"):
    """(N, C) float64 distance of each row of ``z`` (N, D) to each class mean of ``mav`` (C, D)."""
    if kind not in DISTANCES:
        raise ValueError("unknown OpenMax distance %r; known: %s" % (kind, ", ".join(DISTANCES)))
    xp = chainer.backend.get_array_module(z)
    z = z.astype(numpy.float64)[:, None, :]
    m = xp.asarray(mav, dtype=numpy.float64)[None, :, :]
    out = xp.zeros((z.shape[0], m.shape[1]))
    if kind in ("eucos", "euclidean"):
        out += xp.sqrt(((z - m) ** 2).sum(axis=2)) / 200.0
    if kind in ("eucos", "cosine"):
        norms = xp.sqrt((z * z).sum(axis=2)) * xp.sqrt((m * m).sum(axis=2))
        out += 1.0 - (z * m).sum(axis=2) / norms
    return out


def weibull_cdf(d, shape, scale, loc):
    """The Weibull CDF 1 - exp(-((d - loc) / scale)^shape), 0 at or below ``loc``; per class."""
    xp = chainer.backend.get_array_module(d)
    x = xp.maximum(d - xp.asarray(loc), 0.0) / xp.asarray(scale)
    with numpy.errstate(divide="ignore"):
        return -xp.expm1(-xp.exp(xp.asarray(shape) * xp.log(x)))


def alpha_weights(z, alpharank):
    """(N, C) weights: (alpharank - r) / alpharank for the class of rank r < alpharank (by logit,
    highest first, ties in class order), else 0."""
    xp = chainer.backend.get_array_module(z)
    ranks = xp.argsort(xp.argsort(-z, axis=1, kind="stable"), axis=1, kind="stable")
    return xp.maximum(alpharank - ranks, 0) / float(alpharank)


class OpenMax(measures.Measure):
    """A fitted OpenMax for every exit: the measure ``BranchyNet.predict(x, T, measure=om)`` and
    ``ExitOutputs`` use. ``exits``: one dict per exit with ``mav`` (C, C), ``shape``, ``scale``
    and ``loc`` (C,) of the Weibull per class. ``columns``: the C logit columns modelled (None:
    all, then the logits have C columns)."""

    def __init__(self, exits, tailsize=DEFAULT_TAILSIZE, alpharank=DEFAULT_ALPHARANK,
                 distance="eucos", columns=None):
        self.exits = [{key: numpy.asarray(e[key], dtype=numpy.float64)
                       for key in ("mav", "shape", "scale", "loc")} for e in exits]
        classes = {e["mav"].shape[0] for e in self.exits}
        if len(classes) != 1 or any(e["mav"].shape != (e["mav"].shape[0],) * 2 for e in self.exits):
            raise ValueError("every exit's MAV must be (classes, classes), got %s"
                             % [e["mav"].shape for e in self.exits])
        self.num_classes = classes.pop()
        self.columns = None if columns is None else [int(c) for c in columns]
        if self.columns is not None and (len(self.columns) != self.num_classes
                                         or sorted(set(self.columns)) != self.columns):
            raise ValueError("columns must be %d increasing logit indices, one per fitted class, "
                             "got %r" % (self.num_classes, columns))
        if not 1 <= alpharank <= self.num_classes:
            raise ValueError("alpharank must be between 1 and the %d classes, got %r (the "
                             "original's default 10 assumes 10 classes)" % (self.num_classes, alpharank))
        if distance not in DISTANCES:
            raise ValueError("unknown OpenMax distance %r; known: %s" % (distance, ", ".join(DISTANCES)))
        self.tailsize, self.alpharank, self.distance = int(tailsize), int(alpharank), distance
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
        super().__init__("openmax-" + digest[:12], False, None,
                         "largest known class's OpenMax probability; leaves when >= T",
                         stateful=True)
        measures.register(self)

    def probabilities(self, logits, k):
        """(N, C + 1) float64 OpenMax probabilities of exit k's logits; the last column: unknown."""
        xp = chainer.backend.get_array_module(logits)
        e = self.exits[k]
        z = self._modelled(logits).astype(numpy.float64)
        w = weibull_cdf(distances(z, e["mav"], self.distance), e["shape"], e["scale"], e["loc"])
        scaled = z * w * alpha_weights(z, self.alpharank)
        scores = xp.concatenate([z - scaled, scaled.sum(axis=1, keepdims=True)], axis=1)
        shifted = xp.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def values(self, logits, state=None):
        """(largest known OpenMax probability per sample, next exit's index); state: exit index."""
        k = 0 if state is None else state
        p = self.probabilities(logits, k)
        xp = chainer.backend.get_array_module(p)
        top = p[:, :-1].max(axis=1)
        return xp.where(xp.isnan(p).any(axis=1), xp.nan, top), k + 1

    def _modelled(self, logits):
        """The logit columns OpenMax models (checked against the fit)."""
        width = self.num_classes if self.columns is None else self.columns[-1] + 1
        if logits.ndim != 2 or (logits.shape[1] != width if self.columns is None
                                else logits.shape[1] < width):
            raise ValueError("OpenMax fitted for %d classes%s, got logits of shape %s"
                             % (self.num_classes, "" if self.columns is None
                                else " (columns %s)" % self.columns, tuple(logits.shape)))
        return logits if self.columns is None else logits[:, self.columns]

    @staticmethod
    def select(state, index):
        return state  # the exit index is the same for every sample in flight

    def to_dict(self):
        """JSON-able parameters (floats round-trip exactly through JSON)."""
        return {"tailsize": self.tailsize, "alpharank": self.alpharank, "distance": self.distance,
                "columns": self.columns,
                "exits": [{key: value.tolist() for key, value in e.items()} for e in self.exits]}

    @classmethod
    def from_dict(cls, data):
        return cls(data["exits"], data["tailsize"], data["alpharank"], data["distance"],
                   data["columns"])


def fit_tail(tail):
    """(shape, scale, loc) of libMR's FitHigh on the ``tail`` (largest distances): location
    fixed at min(tail) - TRANSLATE, shape and scale by maximum likelihood (scipy)."""
    from scipy import stats  # only fitting needs scipy (the "openmax" extra)

    tail = numpy.sort(numpy.asarray(tail, dtype=numpy.float64))
    if len(tail) < 2 or tail[0] == tail[-1]:
        raise ValueError("a Weibull tail needs at least 2 distinct distances, got %s" % tail)
    loc = tail[0] - TRANSLATE
    shape, _, scale = stats.weibull_min.fit(tail, floc=loc)
    return float(shape), float(scale), float(loc)


def fit_exit(logits, labels, tailsize=DEFAULT_TAILSIZE, distance="eucos", exit_index=0):
    """One exit's MAVs and Weibulls from its training logits (N, C) and labels (N,)."""
    logits = numpy.asarray(chainer.backend.CpuDevice().send(logits), dtype=numpy.float64)
    labels = numpy.asarray(labels)
    correct = logits.argmax(axis=1) == labels
    fitted = {"mav": [], "shape": [], "scale": [], "loc": []}
    for c in range(logits.shape[1]):
        feats = logits[correct & (labels == c)]
        if len(feats) < 2:
            raise ValueError("exit %d classifies %d training samples of class %d correctly: "
                             "OpenMax needs at least 2 (train longer or fit on more samples)"
                             % (exit_index, len(feats), c))
        mav = feats.mean(axis=0)
        d = distances(feats, mav[None, :], distance)[:, 0]
        try:
            shape, scale, loc = fit_tail(numpy.sort(d)[-tailsize:])
        except ValueError as err:
            raise ValueError("exit %d, class %d: %s" % (exit_index, c, err)) from None
        for key, value in zip(("mav", "shape", "scale", "loc"), (mav, shape, scale, loc)):
            fitted[key].append(value)
    return fitted


def fit(exit_logits, labels, tailsize=DEFAULT_TAILSIZE, alpharank=DEFAULT_ALPHARANK,
        distance="eucos", columns=None):
    """An ``OpenMax`` fitted on every exit's training logits (K arrays (N, C), e.g.
    ``ExitOutputs.logits``) and the true labels (N,); with ``columns``, on those logit columns
    only, the labels being among them."""
    labels = numpy.asarray(labels)
    if columns is not None:
        columns = sorted(set(int(c) for c in columns))
        position = numpy.searchsorted(columns, labels).clip(0, len(columns) - 1)
        if not numpy.array_equal(numpy.asarray(columns)[position], labels):
            raise ValueError("labels outside the modelled columns %s: %s"
                             % (columns, sorted(set(labels.tolist()) - set(columns))))
        exit_logits = [numpy.asarray(chainer.backend.CpuDevice().send(z))[:, columns]
                       for z in exit_logits]
        labels = position
    if any(len(z) != len(labels) for z in exit_logits):
        raise ValueError("expected %d logits per exit, got %s"
                         % (len(labels), [len(z) for z in exit_logits]))
    if tailsize < 2:
        raise ValueError("tailsize must be at least 2, got %r" % tailsize)
    exits = [fit_exit(z, labels, tailsize, distance, k) for k, z in enumerate(exit_logits)]
    return OpenMax(exits, tailsize, alpharank, distance, columns)
