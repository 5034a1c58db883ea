"""Checks of what the controller is given (images, labels), before anything runs or changes.

Each check raises a TypeError or ValueError naming what to fix, so that a wrong call fails at the
boundary rather than deep in a kernel (Numba's NotImplementedError for float16), silently (Chainer
skips label -1 in its loss) or with a misleading message later.
"""
import warnings

import numpy

import chainer

from branchynet.fast import jit


class NonFiniteInputWarning(UserWarning):
    """Some inference inputs hold NaN or infinite values: their labels mean nothing."""


def check_images(x, input_shape, dtypes):
    """A float batch (N, ...) of one sample shape ``input_shape`` (None: any) and of one of the
    parameters' ``dtypes`` (empty: any float)."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or dtype.kind != "f" or x.ndim < 2:
        raise TypeError("inputs must be a float array (N, ...) such as float32 images; got %s"
                        % (getattr(x, "dtype", type(x).__name__),))
    if dtypes and dtype not in dtypes:
        raise TypeError("inputs are %s but this net's parameters are %s: convert them, e.g. "
                        "x.astype(numpy.%s)" % (dtype, "/".join(sorted(map(str, dtypes))),
                                                sorted(map(str, dtypes))[0]))
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError("inputs of shape (N, %s) expected, got %s"
                         % (", ".join(map(str, input_shape)), tuple(x.shape)))


def check_label_form(t, n):
    """One integer label per sample: a 1-d integer array of length ``n``."""
    dtype = getattr(t, "dtype", None)
    if dtype is None or t.ndim != 1 or len(t) != n or dtype.kind not in "iu":
        raise ValueError("labels must be %d integers, one per sample; got %s of shape %s"
                         % (n, dtype if dtype is not None else type(t).__name__,
                            tuple(getattr(t, "shape", ()))))


def check_labels(t, classes):
    """Labels in [0, classes): Chainer's loss would skip -1 (its ignore label) without a word, an
    index past the last class fails deep in the loss, and an accuracy counts it as wrong."""
    if len(t) == 0:
        return
    low, high = int(t.min()), int(t.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise ValueError("labels must lie in [0, %d] for %d classes; got %d" % (classes - 1, classes, bad))


def non_finite_count(x):
    """How many samples of a batch hold a NaN or an infinite value (one pass when none does: a
    compiled one on a contiguous numpy array, else a sum in x's own precision, which runs twice
    as fast as in float64; a finite batch whose sum overflows is counted sample by sample)."""
    xp = chainer.backend.get_array_module(x)
    if len(x) == 0:
        return 0
    if xp is numpy and jit.available() and x.flags.c_contiguous:
        if jit.all_finite(x):
            return 0
    elif bool(xp.isfinite(x.sum())):
        return 0
    return int((~xp.isfinite(x.reshape(len(x), -1))).any(axis=1).sum())


def warn_non_finite(x, counts):
    """Warns (``NonFiniteInputWarning``), at the inference method that calls it, how many samples
    of x hold NaN or infinite values: as the first kernel of each piece counted them
    (``counts``), or by one pass over x where a piece was not counted (None)."""
    count = non_finite_count(x) if None in counts else sum(counts)
    if count:
        warnings.warn("%d of %d samples hold NaN or infinite values: their labels mean nothing "
                      "(they never leave early, and take the last exit's argmax)"
                      % (count, len(x)), NonFiniteInputWarning, stacklevel=2)


def refuse_non_finite(x):
    """Training on a non-finite image would turn every parameter into NaN: ValueError."""
    count = non_finite_count(x)
    if count:
        raise ValueError("%d of %d training samples hold NaN or infinite values; remove or "
                         "repair them" % (count, len(x)))


def chunks(n, size):
    """(start, stop) pairs covering range(n) in pieces of at most ``size``."""
    if size < 1:
        raise ValueError("chunk size must be >= 1, got %r" % (size,))
    return [(start, min(start + size, n)) for start in range(0, n, size)]
