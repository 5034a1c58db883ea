"""Every cost formula of early exit: MACs, per-exit costs with every head on the way, the
baseline's, a setting's expected cost and its predicted batch-1 milliseconds.

A sample that leaves at exit k has run trunk segments 0..k and heads 0..k (every head on its way
was evaluated, including those that let it go on), so the cost of leaving at exit k is

    exit_cost_k = sum_{j <= k} (segment_j + head_j),

and a setting whose samples leave at exit k with frequency f_k costs sum_k f_k exit_cost_k per
sample on average (``expected_cost``); this equals sum_k reach_k (segment_k + head_k)
(``predicted_ms``, with reach_k the fraction of samples that get to exit k). The unit is whatever
the per-part costs are in: MACs (``count_macs``) or batch-1 milliseconds
(``timing.time_exits``: ``segment_ms``/``head_ms``). The baseline is the main network alone: every
segment and only the last head. The original's trunk-only accounting leaves every head out.
"""
import numpy

import chainer
from chainer.utils import conv as conv_utils


class MacCounter(chainer.FunctionHook):
    """Counts multiply-accumulates of convolutions and fully connected layers.

    Convolution2DFunction: output elements x C_in/groups x kh x kw; LinearFunction: rows x in x
    out. Everything else (pooling, ReLU, BN, LRN, softmax) is not counted, as in the MAC table of
    docs/original.md.
    """

    name = "MacCounter"

    def __init__(self):
        self.macs = 0
        self.calls = []

    def forward_postprocess(self, function, in_data):
        label = function.label
        if label == "Convolution2DFunction":
            x, w = in_data[0], in_data[1]
            kh, kw = w.shape[2:]
            out_h = conv_utils.get_conv_outsize(x.shape[2], kh, function.sy, function.ph,
                                                function.cover_all, function.dy)
            out_w = conv_utils.get_conv_outsize(x.shape[3], kw, function.sx, function.pw,
                                                function.cover_all, function.dx)
            macs = x.shape[0] * out_h * out_w * w.size  # w.size = C_out * C_in/groups * kh * kw
        elif label == "LinearFunction":
            x, w = in_data[0], in_data[1]
            macs = (x.size // w.shape[1]) * w.size
        else:
            return
        self.macs += int(macs)
        self.calls.append((label, int(macs)))


def count_macs(net, x_sample):
    """MACs of one sample (``x_sample``: a batch of 1) per trunk segment and per head.

    Runs the net's Chainer links (not the lean numpy path) with the fast CPU kernels off, so that
    every convolution and linear layer is a Chainer function the hook sees. Returns
    {"segments": [...], "heads": [...]} (ints, per sample).
    """
    x_sample = numpy.asarray(chainer.backend.CpuDevice().send(x_sample))
    if len(x_sample) != 1:
        raise ValueError("count_macs takes one sample (a batch of 1)")
    segments, heads = [], []
    with chainer.using_config("branchynet_fast_cpu", False), chainer.using_config("train", False), \
            chainer.no_backprop_mode():
        h = net.device.send(x_sample)
        for k in range(net.numexits()):
            with MacCounter() as counter:
                h = net.segments[k](h)
            segments.append(counter.macs)
            with MacCounter() as counter:
                net.heads[k](h)
            heads.append(counter.macs)
    return {"segments": segments, "heads": heads}


# ------------------------------------------------------------------ costs of settings
def exit_costs(parts):
    """Cumulative cost of leaving at each exit from per-part costs: a dict with ``segments`` and
    ``heads`` (``timing.count_macs``) or with ``segment_ms`` and ``head_ms`` (``time_exits``)."""
    seg, head = _parts(parts)
    return numpy.cumsum(seg + head)


def baseline_cost(parts):
    """Cost of the main network: every segment plus the last head."""
    seg, head = _parts(parts)
    return float(seg.sum() + head[-1])


def _parts(parts):
    if "segment_ms" in parts:  # time_exits' result also holds per-repeat detail as "segments"
        seg, head = parts["segment_ms"], parts["head_ms"]
    else:
        seg, head = parts["segments"], parts["heads"]
    seg = numpy.asarray(seg, dtype=numpy.float64)
    head = numpy.asarray(head, dtype=numpy.float64)
    if seg.shape != head.shape or seg.ndim != 1 or len(seg) == 0:
        raise ValueError("one segment cost and one head cost per exit expected, got %s and %s"
                         % (seg.shape, head.shape))
    return seg, head


def expected_cost(exit_fractions, costs):
    """Mean cost per sample of a setting: sum_k f_k exit_cost_k (``costs`` from ``exit_costs``)."""
    f = numpy.asarray(exit_fractions, dtype=numpy.float64)
    costs = numpy.asarray(costs, dtype=numpy.float64)
    if f.shape != costs.shape:
        raise ValueError("%d exit fractions for %d exit costs" % (f.size, costs.size))
    return float(f @ costs)


def cost_table(parts):
    """One row per exit: segment, head, cumulative cost of leaving there, and that as a fraction
    of the baseline; plus the heads' total share of the cost of reaching the last exit."""
    seg, head = _parts(parts)
    cum = exit_costs(parts)
    base = baseline_cost(parts)
    rows = [{"exit": k + 1, "segment": float(seg[k]), "head": float(head[k]),
             "exit_cost": float(cum[k]), "of_baseline": float(cum[k] / base)}
            for k in range(len(seg))]
    return {"exits": rows, "baseline": base,
            "head_overhead": float((head[:-1].sum()) / base)}


def predicted_ms(reach_fractions, segment_ms, head_ms):
    """Runtime per sample of a configuration in the two accountings: (end_to_end, trunk_only).

    end_to_end = sum_k reach_k * (seg_k + head_k); trunk_only = sum_k reach_k * seg_k (the
    original's accounting, which leaves out every head and the exit decisions).
    """
    reach = numpy.asarray(reach_fractions, dtype=numpy.float64)
    seg = numpy.asarray(segment_ms, dtype=numpy.float64)
    head = numpy.asarray(head_ms, dtype=numpy.float64)
    return float((reach * (seg + head)).sum()), float((reach * seg).sum())
