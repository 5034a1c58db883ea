"""The exit rule: a sample leaves at the first exit whose softmax entropy is below its threshold.

Entropy is Shannon's, in nats, as in the original code, so for C classes it lies in [0, ln C] and
T >= ln C lets everything out (docs/original.md#threshold-lists).
"""
import math

import numpy

import chainer

from branchynet.fast import jit as _jit


def entropy(p):
    """Per-row entropy -sum_c p_c ln p_c of an (N, C) probability array, numpy or cupy.

    0 ln 0 is taken as 0, so a one-hot row gives exactly 0; a row holding NaN (from non-finite
    logits) gives NaN, which is below no threshold: such a sample never leaves early.
    """
    xp = chainer.backend.get_array_module(p)
    positive = p > 0
    logp = xp.log(xp.where(positive, p, 1))
    ent = -(xp.where(positive, p * logp, 0)).sum(axis=1)
    return xp.where(xp.isnan(p).any(axis=1), xp.nan, ent).astype(ent.dtype, copy=False)


def softmax(logits):
    """Row-wise softmax of an (N, C) array, numpy or cupy, shifted by the row max for stability."""
    xp = chainer.backend.get_array_module(logits)
    e = xp.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def as_thresholds(thresholds, num_exits):
    """One float threshold per non-final exit; a scalar broadcasts to all of them. Strings and
    booleans are refused (numpy would read "0.1" and True as numbers), and so is NaN."""
    if thresholds is None:
        raise ValueError("no exit thresholds: pass thresholds=... (one per non-final exit, "
                         "in nats) or set net.thresholds")
    values = numpy.asarray(chainer.backend.CpuDevice().send(thresholds)
                           if hasattr(thresholds, "device") else thresholds)
    if values.dtype.kind not in "iuf":
        raise TypeError("thresholds must be numbers (a float, or one per non-final exit), got %r"
                        % (thresholds,))
    values = values.astype(numpy.float64)
    if numpy.isnan(values).any():
        raise ValueError("thresholds must not be NaN, got %r" % (thresholds,))
    if values.ndim == 0:
        return numpy.full(num_exits - 1, float(values))
    if values.shape != (num_exits - 1,):
        raise ValueError("expected %d thresholds (one per non-final exit of a %d-exit network), got %d"
                         % (num_exits - 1, num_exits, values.size))
    return values


def exits_here(entropies, threshold):
    """Mask of the samples that leave at an exit with this threshold: entropy < T (strict)."""
    return entropies < threshold


def leaves(logits, threshold):
    """Mask of the samples that leave at an exit, from its logits: the decision inference makes.

    On numpy with Numba, each row's entropy is first computed in float64 in one compiled call
    (``leaves_one``'s formula: numpy's reductions over ten classes cost about 0.1 ms a call in a
    batch of 1,000); rows within ``leaves_one``'s margin of T, or non-finite, are decided by the
    float32 formula itself, so the decisions are the same."""
    if not (_jit.available() and isinstance(logits, numpy.ndarray) and logits.dtype.kind == "f"
            and logits.ndim == 2 and len(logits)):
        return exits_here(entropy(softmax(logits)), threshold)
    out, unsure, _ = _jit.entropy_decisions(logits, threshold, _margin(logits.shape[1]))
    if unsure is not None:
        out[unsure] = exits_here(entropy(softmax(logits[unsure])), threshold)
    return out


def _margin(classes):
    """How far the float64 entropy may lie from T for its decision to be the float32 one's:
    float32 softmax + entropy err by a few ulp per class, 1e-5 per class is 100x that."""
    return 1e-4 + 1e-5 * classes


def leaves_one(logits, threshold):
    """``leaves`` for one sample's logits (shape (1, C)) as a Python bool, in plain Python where it can.

    At batch 1 the dozen numpy calls of ``leaves`` cost more than a small head. Here the entropy
    is computed in float64 from the logits (H = log sum e - sum e z / sum e, z shifted by its max);
    it differs from the float32 ``leaves`` by far less than the margin below, so wherever it is
    further than that from T it decides alike, and within the margin (or for non-finite logits)
    ``leaves`` itself decides: the same decisions at a fraction of the calls. An entropy is never
    negative, so with T <= 0 nothing leaves. With Numba (``branchynet.fast.jit``) the float64
    entropy is one compiled call.
    """
    if threshold <= 0:
        return False
    if _jit.available() and isinstance(logits, numpy.ndarray) and logits.dtype.kind == "f":
        entropy_ = _jit.entropy_one(logits)  # the same formula, one compiled call
    else:
        entropy_ = _entropy_one(logits)
    if math.isfinite(entropy_) and abs(entropy_ - threshold) > _margin(logits.size):
        return entropy_ < threshold
    return bool(leaves(logits, threshold)[0])


def _entropy_one(logits):
    """``leaves_one``'s float64 entropy in plain Python (NaN or inf for non-finite logits)."""
    values = logits.ravel().tolist()
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return math.log(total) - sum(e * (v - top) for e, v in zip(exps, values)) / total


def training_keep(logits, k, num_exits, keep_fraction=1.0, thresholds=None):
    """Which samples go on past exit k in training (a mask), or None for all of them: those whose
    entropy is not below ``thresholds[k]``, else the ``keep_fraction`` of highest entropy."""
    if thresholds is None and keep_fraction >= 1.0:
        return None
    xp = chainer.backend.get_array_module(logits)
    ent = entropy(softmax(logits))
    if thresholds is not None:
        return ~exits_here(ent, as_thresholds(thresholds, num_exits)[k])
    n_keep = int(round(keep_fraction * len(ent)))
    keep = xp.zeros(len(ent), dtype=bool)
    keep[xp.argsort(ent)[len(ent) - n_keep:]] = True
    return keep


def predict_one(x, thresholds, segment, head, measure=None):
    """Early exit of one sample: ``segment(k, h)`` and ``head(k, h)`` run exit by exit until one
    lets it out. Returns (label, exit) as numpy int arrays of one element.

    Each head's logits come to the host once (one copy from a GPU), where the decision and the
    label are made. ``measure``: None (entropy, decided by ``leaves_one``) or a
    ``measures.Measure``, whose values and leave rule decide instead."""
    last = len(thresholds)
    h = x
    state = None
    for k in range(last + 1):
        h = segment(k, h)
        logits = host(head(k, h))
        if k == last:
            break
        if measure is None:
            if leaves_one(logits, thresholds[k]):
                break
        else:
            values, state = measure.values(logits, state)
            if bool(measure.leaves(values, thresholds[k])[0]):
                break
    return numpy.array([int(logits[0].argmax())], numpy.int32), numpy.array([k], numpy.int32)


def predict_batch(x, thresholds, segment, head, xp=numpy, measure=None):
    """Early exit of a batch: only the samples still in flight go on, as the intermediate
    activation, so lower layers never run twice and each head runs once per sample reaching it.
    Returns (labels, exits) as numpy int arrays.

    Each exit's logits (N x classes, small) come to the host, where the decisions and labels are
    made; the samples staying are gathered on the device by their indices (``xp``'s). On a GPU
    that is one copy each way per exit instead of a synchronisation per masked selection.
    ``measure``: None (entropy, ``leaves``) or a ``measures.Measure`` deciding instead; its
    state (patience's run of agreeing labels) follows the samples still in flight. A ``segment``
    that ``takes_rows`` is given the stayers' rows of the previous segment's output instead of
    their copy."""
    labels = numpy.empty(len(x), dtype=numpy.int32)
    exits = numpy.empty(len(x), dtype=numpy.int32)
    remaining = numpy.arange(len(x))
    last = len(thresholds)
    in_place = getattr(segment, "takes_rows", False)
    h, rows = x, None
    state = None
    for k in range(last + 1):
        h = segment(k, h) if rows is None else segment(k, h, rows)
        logits = host(head(k, h))
        if k == last:
            leave = numpy.ones(len(logits), dtype=bool)
        elif measure is None:
            leave = leaves(logits, thresholds[k])
        else:
            values, state = measure.values(logits, state)
            leave = measure.leaves(values, thresholds[k])
        stay = _record(logits, leave, remaining, k, labels, exits)
        remaining = remaining[stay]
        if len(remaining) == 0:
            break
        if in_place:
            rows = stay
        else:
            h = h[stay if xp is numpy else xp.asarray(stay)]
        if state is not None:
            state = measure.select(state, stay)
    return labels, exits


def _record(logits, leave, remaining, k, labels, exits):
    """Labels and exit k of the samples that leave (their places in the batch: ``remaining``);
    the indices of the rows that stay. With Numba one compiled call."""
    if _jit.available() and logits.dtype.kind == "f" and len(logits):
        return _jit.record_exits(logits, leave, remaining, k, labels, exits)
    labels[remaining[leave]] = logits[leave].argmax(axis=1)
    exits[remaining[leave]] = k
    return numpy.flatnonzero(~leave)


def host(array):
    """A device array's copy on the host (numpy arrays as they are, without Chainer's dispatch:
    at batch 1 on the CPU a head takes microseconds)."""
    return array if isinstance(array, numpy.ndarray) else chainer.backend.CpuDevice().send(array)
