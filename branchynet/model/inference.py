"""Inference on one piece of a batch, for ``BranchyNet``'s predict, predict_main and exit_logits
(which cut a large batch into pieces of ``net.chunk_size`` samples, so that memory stays bounded).

Each function takes a net and a piece already on its device and returns host arrays, and how many
of the piece's samples hold NaN or infinite values where the fast CPU path's first kernel counted
them while copying the piece (else None: the caller counts them on the host).
"""
import contextlib

import numpy

import chainer

from branchynet.model import exit_rule


@contextlib.contextmanager
def chainer_inference():
    """Chainer in test mode without a graph."""
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        yield


def predict(net, x, thresholds, rule):
    """(labels, exits, non-finite samples or None) of early-exit inference on x
    (``BranchyNet.predict``)."""
    counted = []
    segment, head, context = net.inference_steps(x, counted)
    with context:
        if len(x) == 1:  # a plain branch per exit is cheaper than masks and copies
            labels, exits = exit_rule.predict_one(x, thresholds, segment, head, rule)
        else:
            labels, exits = exit_rule.predict_batch(x, thresholds, segment, head, net.xp, rule)
    return labels, exits, _counted(counted)


def predict_main(net, x):
    """(labels, non-finite samples or None) of the main network on x: the whole trunk, then the
    last head."""
    counted = []
    segment, head, context = net.inference_steps(x, counted)
    with context:
        h = x
        for k in range(net.numexits()):
            h = segment(k, h)
        logits = head(net.numexits() - 1, h)
    return exit_rule.host(logits).argmax(axis=1).astype(numpy.int32), _counted(counted)


def exit_logits(net, x):
    """(every exit's logits on x, non-finite samples or None); the trunk runs once, segment by
    segment."""
    counted = []
    segment, head, context = net.inference_steps(x, counted)
    logits = []
    h = x
    with context:
        for k in range(net.numexits()):
            h = segment(k, h)
            logits.append(exit_rule.host(head(k, h)))
    return logits, _counted(counted)


def _counted(counted):
    return counted[0] if counted else None


def stock_forward(net, x):
    """Every exit's logits (Variables) on x by stock Chainer in test mode; a ValueError naming
    x's sample shape where the layers do not take it."""
    try:
        with chainer_inference(), chainer.using_config("branchynet_fast_cpu", False):
            return net.forward(x)
    except Exception as err:
        raise ValueError("inputs of shape (N, %s) do not fit this network: %s: %s"
                         % (", ".join(map(str, x.shape[1:])), type(err).__name__, err)) from err


def empty_logits(net, x):
    """Every exit's (0, classes) logits for an empty batch x: the class counts from one blank
    sample, whose shape is not recorded (an empty batch says nothing about the inputs to come)."""
    blank = net.xp.zeros((1,) + tuple(x.shape[1:]), x.dtype)
    return [exit_rule.host(z.array[:0]) for z in stock_forward(net, blank)]
