"""The CPU inference compiler: a trunk segment's or head's layer list into a numpy program.

Inference needs no Chainer graph, and at batch 1 each Chainer call costs as much as a small layer's
arithmetic, so inference on numpy runs programs compiled here. Each layer type says once, in
``numpy_function``'s table, how it runs on a numpy batch. A program for one sample goes further:
its stages get their buffers and strided views once, at compile time (zero-padded convolution
inputs whose padding stays as set, im2col buffers, pooling window views), so a run is a fixed list
of numpy calls with no allocation and no shape arithmetic; a max pooling and its ReLU run as one
stage, a pooling writes straight into the next convolution's padded input, and a program may read
another's output buffer in place (``source``), which ``Runner`` uses to chain segments and heads.
Parameters are read from the links at every run, so training in between is seen.

A batch-1 program owns its buffers: its output is overwritten by its next run, and it must not run
on two threads at once (``Runner`` keeps one set per thread).
"""
import copy
import threading

import numpy

from branchynet.fast.batch import functions, is_conv
from branchynet.fast.stages import ConvInput, stage
from branchynet.fast.switch import relu_after_pool
from branchynet.model import layers as blayers

__all__ = ["BatchProgram", "SampleProgram", "chain", "Runner"]


class SampleProgram:
    """``layers`` compiled for one sample: of ``shape`` and ``dtype`` into an input buffer of its
    own, or read from ``source``, an array another program writes (its output buffer), which
    saves a copy when programs are chained."""

    def __init__(self, layers, shape=None, dtype=None, source=None):
        layers = relu_after_pool(layers)
        conv_inputs = {}
        if source is None:
            if shape is None or shape[0] != 1:
                raise ValueError("a batch-1 program takes one sample, got shape %r" % (shape,))
            dtype = numpy.dtype(dtype)
            if layers and is_conv(layers[0]):  # the input goes straight into the padding
                inp = ConvInput(layers[0], shape, dtype)
                conv_inputs[id(inp.interior)] = inp
                source = inp.interior
            else:
                source = numpy.zeros(shape, dtype=dtype)
        elif source.shape[0] != 1:
            raise ValueError("a batch-1 program takes one sample, got shape %r" % (source.shape,))
        self.source = src = source
        stages, i = [], 0
        while i < len(layers):
            run, src, used = stage(layers, i, src, conv_inputs)
            if run is not None:
                stages.append((tuple(layers[i:i + used]), run, src))
            i += used
        self.stages = tuple(stages)  # (the layers a stage runs, its run(), its output buffer)
        self.runs = tuple(run for _, run, _ in stages)
        self.output = src

    def __call__(self, x):
        """The layers' output for x: a buffer the next call reuses. x that is this program's
        source (the previous program's output) is read where it is; anything else is copied in."""
        if x is not self.source:
            numpy.copyto(self.source, x)
        for run in self.runs:
            run()
        return self.output


class BatchProgram:
    """``layers`` compiled for a batch of any size: one numpy function per layer, a max pooling
    with its ReLU and with the convolution before it (``batch.functions``); ``then``: the layer
    that reads the output (the next program's first), for which it is laid out."""

    def __init__(self, layers, then=None):
        self.functions = tuple(functions(relu_after_pool(layers), then))

    def __call__(self, x, rows=None, counted=None):
        """The output for x, or for x[rows] (the first function reads those rows where they lie
        when it can). ``counted`` (a list, without ``rows``): the first function appends how many
        samples of x are not finite where it counts them while reading x, which saves the input
        check its own pass; nothing is appended elsewhere."""
        functions = self.functions
        first = functions[0] if functions else None
        if rows is not None:
            if getattr(first, "takes_rows", False):
                x, functions = first(x, rows), functions[1:]
            else:
                x = x[rows]
        elif counted is not None and getattr(first, "counts_non_finite", False):
            x, functions = first(x, counted=counted), functions[1:]
        for fn in functions:
            x = fn(x)
        return x


def chain(segments, heads, shape, dtype):
    """Batch-1 programs for a BranchyNet's trunk segments and heads (layer lists) on one sample of
    ``shape``: segment k reads segment k-1's output buffer and head k segment k's, in place.
    Returns (segment programs, head programs)."""
    seg_programs, head_programs, source = [], [], None
    for seg, head in zip(segments, heads):
        program = (SampleProgram(seg, shape, dtype) if source is None
                   else SampleProgram(seg, source=source))
        source = program.output
        seg_programs.append(program)
        head_programs.append(SampleProgram(head, source=source))
    return seg_programs, head_programs


def _same_step(a, b):
    """Whether two network items compute the same function of their input and have no
    parameters: the same object (a function such as F.relu), or poolings with equal settings."""
    if a is b:
        return not hasattr(a, "params") or not list(a.params())
    return (type(a) is type(b) and isinstance(a, (blayers.MaxPool, blayers.AvgPool))
            and vars(a) == vars(b))


def shared_prefixes_hoisted(segments, heads):
    """(segments, heads) as layer lists, with the parameter-free layers that head k and segment
    k + 1 both start with moved to the end of segment k: computed once for every sample that
    reaches exit k, not again for those that go on. Outputs are unchanged."""
    segments = [relu_after_pool(s) for s in segments]
    heads = [relu_after_pool(h) for h in heads]
    for k in range(len(segments) - 1):
        n = 0
        while (n < len(heads[k]) - 1 and n < len(segments[k + 1]) - 1
               and _same_step(heads[k][n], segments[k + 1][n])):
            n += 1
        segments[k] = segments[k] + heads[k][:n]
        heads[k], segments[k + 1] = heads[k][n:], segments[k + 1][n:]
    return segments, heads


class Runner:
    """What inference on numpy runs for a BranchyNet's segments and heads (layer lists): batch
    programs, and for one floating-point sample, chained batch-1 programs per thread and shape.
    In a batch, the few samples that early exit leaves in flight (at most ``SAMPLE_MAX``) go on
    one at a time through the batch-1 programs, which cost less than a batch program's calls."""

    _MAX_SAMPLE_CHAINS = 64  # threads come and go; programs are cheap to rebuild
    # Largest part of a batch run sample by sample: at 1-2 samples the batch-1 programs beat the
    # batch programs on B-LeNet and B-AlexNet alike (B-LeNet's from 1 to 64 samples, B-AlexNet's
    # from 4 samples on lose by 10-20 %).
    SAMPLE_MAX = 2

    def __init__(self, segments, heads):
        self.segments, self.heads = shared_prefixes_hoisted(segments, heads)
        self._originals = (segments, heads)
        self._batch = None
        self._sample = {}

    def __deepcopy__(self, memo):
        """A copy over copied layers, with no programs: compiled closures would still read the
        original links."""
        return Runner(*copy.deepcopy(self._originals, memo))

    def _chain(self, shape, dtype):
        key = (threading.get_ident(), shape, dtype.str)
        programs = self._sample.get(key)
        if programs is None:
            if len(self._sample) >= self._MAX_SAMPLE_CHAINS:
                self._sample.clear()
            programs = self._sample[key] = chain(self.segments, self.heads, shape, dtype)
        return programs

    def steps(self, x, counted=None):
        """(segment k on h, head k on h) for inputs like x. A batch-1 program returns its own
        buffer, which its next run overwrites. A batch's segment step also takes ``rows``: it
        then runs on h[rows] (the samples still in flight), reading them in place where its
        first layer can (``takes_rows``, which early exit looks for). ``counted`` (a list): the
        first segment run on x itself appends how many of its samples are not finite where its
        first kernel counts them (``BatchProgram``); nothing is appended elsewhere."""
        if len(x) == 1 and x.dtype.kind == "f":
            segments, heads = self._chain(x.shape, x.dtype)
            return (lambda k, h: segments[k](h)), (lambda k, h: heads[k](h))
        if self._batch is None:
            self._batch = ([BatchProgram(s, then=h[0] if h else None)
                            for s, h in zip(self.segments, self.heads)],
                           [BatchProgram(h) for h in self.heads])
        segments, heads = self._batch
        if x.dtype.kind != "f":
            return (lambda k, h: segments[k](h)), (lambda k, h: heads[k](h))
        sample_shape = (1,) + tuple(x.shape[1:])

        def by_sample(programs, k, h):  # programs[k] on each sample of h, results stacked
            program = programs[k]
            first = program(h[:1])
            out = numpy.empty((len(h),) + first.shape[1:], dtype=first.dtype)
            out[0] = first[0]
            for i in range(1, len(h)):
                out[i] = program(h[i:i + 1])[0]
            return out

        def segment(k, h, rows=None):
            if rows is not None and len(rows) <= self.SAMPLE_MAX:
                h, rows = h[rows], None
            if 0 < len(h) <= self.SAMPLE_MAX:
                return by_sample(self._chain(sample_shape, x.dtype)[0], k, h)
            if k == 0 and h is x and rows is None:
                return segments[0](h, counted=counted)
            return segments[k](h, rows)
        segment.takes_rows = True

        def head(k, h):
            if 0 < len(h) <= self.SAMPLE_MAX:
                return by_sample(self._chain(sample_shape, x.dtype)[1], k, h)
            return heads[k](h)
        return segment, head
