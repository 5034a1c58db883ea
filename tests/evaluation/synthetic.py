"""Cached exit outputs with chosen per-exit entropies or probabilities, for hand-made tests."""
import numpy

from branchynet.evaluation.outputs import ExitOutputs


def _entropy_of_gap(a, classes):
    """Entropy (nats) of the softmax of logits (a, 0, ..., 0), in float64."""
    rest = (classes - 1) * numpy.exp(-a)
    p_top = 1.0 / (1.0 + rest)
    p_other = numpy.exp(-a) * p_top
    with numpy.errstate(divide="ignore", invalid="ignore"):
        other = numpy.where(p_other > 0, p_other * numpy.log(p_other), 0)
        h = -(p_top * numpy.log(p_top) + (classes - 1) * other)
    return h


def logits_for(entropies, predictions, classes=10):
    """(K, N, C) float32 logits whose softmax predicts ``predictions`` with about the given
    entropies (a zero entropy exactly: a gap of 200 underflows every other class to 0)."""
    target = numpy.asarray(entropies, dtype=numpy.float64)
    if (target < 0).any() or (target >= numpy.log(classes)).any():
        raise ValueError("entropies must lie in [0, ln C)")
    low, high = numpy.zeros_like(target), numpy.full_like(target, 200.0)
    for _ in range(100):  # bisection: the entropy falls as the gap grows
        mid = (low + high) / 2
        above = _entropy_of_gap(mid, classes) > target
        low, high = numpy.where(above, mid, low), numpy.where(above, high, mid)
    gap = numpy.where(target == 0, 200.0, (low + high) / 2)
    predictions = numpy.asarray(predictions)
    logits = numpy.zeros(target.shape + (classes,), numpy.float32)
    numpy.put_along_axis(logits, predictions[..., None], gap[..., None].astype(numpy.float32), axis=-1)
    return logits


def outputs_with(entropies, predictions, labels=None, classes=10):
    """``ExitOutputs`` whose exits predict ``predictions`` ((K, N)) at about these entropies."""
    return ExitOutputs(logits_for(entropies, predictions, classes), labels)


def outputs_of_probs(probs, labels=None):
    """``ExitOutputs`` whose softmax is ``probs`` ((K, N, C), rows summing to 1; zeros become
    logits of -69, whose probability underflows in float32)."""
    probs = numpy.asarray(probs, dtype=numpy.float64)
    return ExitOutputs(numpy.log(numpy.maximum(probs, 1e-30)).astype(numpy.float32), labels)
