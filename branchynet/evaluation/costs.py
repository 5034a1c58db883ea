"""Cost accounting of early exit: per segment and head, per exit, per setting.

A sample that leaves at exit k has run trunk segments 0..k and heads 0..k (every head on its way
was evaluated, including those that let it go on), so the cost of leaving at exit k is

    exit_cost_k = sum_{j <= k} (segment_j + head_j),

and a setting whose samples leave at exit k with frequency f_k costs sum_k f_k exit_cost_k per
sample on average; this equals sum_k reach_k (segment_k + head_k) (``timing.macs_of``). The unit is
whatever the per-part costs are in: MACs (``timing.count_macs``) or batch-1 milliseconds
(``timing.time_exits``: ``segment_ms``/``head_ms``). The baseline is the main network alone: every
segment and only the last head. ``measured_ms`` times a setting for real, to set beside its
predicted cost.
"""
import numpy

from branchynet.evaluation import timing


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


def measured_ms(net, x, thresholds, measure="entropy", repeats=3, warmup=20, progress=None):
    """Real early exit (``net.predict`` with this measure), batch 1, timed end to end: ms per
    sample (median over repeats) with the labels and exits of the first pass."""
    result = timing.time_calls(lambda xb: net.predict(xb, thresholds, measure=measure), x, 1,
                               repeats, warmup, net.xp, progress, "early exit (%s)" % measure)
    outputs = result.pop("outputs")
    result["labels"] = numpy.concatenate([o[0] for o in outputs])
    result["exits"] = numpy.concatenate([o[1] for o in outputs])
    return result
