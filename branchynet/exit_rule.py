"""The exit rule: a sample leaves at the first exit whose softmax entropy is below its threshold.

Entropy is Shannon's, in nats (the paper writes sum y log y, without the minus sign: a typo; the
original code uses nats), so for C classes it lies in [0, ln C] and T >= ln C lets everything out.
"""
import numpy

import chainer


def entropy(p):
    """Per-row entropy -sum_c p_c ln p_c of an (N, C) probability array, numpy or cupy.

    0 ln 0 is taken as 0, so a one-hot row gives exactly 0, never NaN.
    """
    xp = chainer.backend.get_array_module(p)
    positive = p > 0
    logp = xp.log(xp.where(positive, p, 1))
    return -(xp.where(positive, p * logp, 0)).sum(axis=1)


def softmax(logits):
    """Row-wise softmax of an (N, C) array, numpy or cupy, shifted by the row max for stability."""
    xp = chainer.backend.get_array_module(logits)
    e = xp.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def as_thresholds(thresholds, num_exits):
    """One float threshold per non-final exit; a scalar broadcasts to all of them."""
    if thresholds is None:
        raise ValueError("no exit thresholds: pass thresholds=... (one per non-final exit, "
                         "in nats) or set net.thresholds")
    values = numpy.asarray(thresholds, dtype=numpy.float64)
    if values.ndim == 0:
        return numpy.full(num_exits - 1, float(values))
    if values.shape != (num_exits - 1,):
        raise ValueError("expected %d thresholds (one per non-final exit of a %d-exit network), got %d"
                         % (num_exits - 1, num_exits, values.size))
    if numpy.isnan(values).any():
        raise ValueError("thresholds must not be NaN, got %r" % (thresholds,))
    return values


def exits_here(entropies, threshold):
    """Mask of the samples that leave at an exit with this threshold: entropy < T (strict)."""
    return entropies < threshold


def leaves(logits, threshold):
    """Mask of the samples that leave at an exit, from its logits: the decision inference makes."""
    return exits_here(entropy(softmax(logits)), threshold)
