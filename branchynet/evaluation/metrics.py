"""The evaluations the early-exit field has used since the paper, on cached per-exit outputs.

* ``anytime``: each exit alone (every sample forced out there), accuracy against its cumulative
  cost (MSDNet's anytime prediction).
* ``budgeted``: accuracy against mean cost over threshold settings (MSDNet's budgeted batch
  classification); the exact curve is ``frontier.exact_frontier``, here its rows, and the same
  settings applied to another set.
* ``at_budgets``: the most accurate setting (fitted on one set) within fractions of the baseline's
  cost, applied to another; ``mean_spread`` summarises such numbers over seeds.
* ``oracle`` / ``oracle_curve``: each sample leaves at the earliest exit that classifies it
  correctly (samples no exit gets right leave at the first: they are lost anyway), the cheapest
  any policy can be; the curve is the least mean cost at each number of correct samples, a lower
  bound no threshold setting can cross.
* ``overthinking``: SDN's wasteful (right at an earlier exit and at the last: cost wasted) and
  destructive (right at an earlier exit, wrong at the last) overthinking.
* ``calibration``: per-exit expected calibration error (equal-width bins of the top probability)
  and the reliability diagram's bins.
* the accuracy of the samples that actually left at each exit: ``ExitOutputs.evaluate``'s
  ``exit_accuracy``.
"""
import numpy

from branchynet.evaluation import selection


def anytime(cache, exit_costs):
    """One row per exit: accuracy of that exit on every sample, and its cumulative cost."""
    right = cache.correct()
    costs = numpy.asarray(exit_costs, dtype=numpy.float64)
    return [{"exit": k + 1, "accuracy": float(right[k].mean()), "cost": float(costs[k])}
            for k in range(cache.num_exits)]


def budgeted(frontier, cache=None):
    """Rows (thresholds, cost, accuracy, exit fractions) of a frontier's settings, on the set it
    was fitted on or, with ``cache``, on that set (the same thresholds applied unchanged)."""
    if cache is None:
        return frontier.rows()
    return [cache.evaluate(t, frontier.measure, frontier.exit_costs) for t in frontier.thresholds]


def at_budgets(frontier, cache, baseline_cost, fractions=(0.25, 0.5, 0.75, 1.0)):
    """For each fraction f of the baseline's cost: the most accurate setting of ``frontier``
    (fitted on its own set) within f * baseline_cost, evaluated on ``cache``; None where no
    setting is that cheap."""
    out = []
    for f in fractions:
        try:
            i = selection.most_accurate_within(frontier, f * baseline_cost)
        except selection.Infeasible:
            out.append({"fraction": f, "row": None})
            continue
        row = cache.evaluate(frontier.thresholds[i], frontier.measure, frontier.exit_costs)
        out.append({"fraction": f, "fitted_accuracy": float(frontier.accuracies[i]),
                    "fitted_cost": float(frontier.costs[i]), "row": row})
    return out


def mean_spread(values):
    """Mean, sample standard deviation (ddof 1; 0 for one value), min and max, ignoring None."""
    v = numpy.array([x for x in values if x is not None], dtype=numpy.float64)
    if len(v) == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {"n": int(len(v)), "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}


def earliest_correct(cache):
    """(N,) index of the first exit that is right, -1 where none is."""
    right = cache.correct()
    return numpy.where(right.any(axis=0), right.argmax(axis=0), -1)


def oracle(cache, exit_costs):
    """The oracle policy: accuracy (right at some exit), mean cost, exit fractions."""
    costs = numpy.asarray(exit_costs, dtype=numpy.float64)
    first = earliest_correct(cache)
    exits = numpy.where(first >= 0, first, 0)
    n = cache.num_samples
    counts = numpy.bincount(exits, minlength=cache.num_exits)
    return {"accuracy": float((first >= 0).mean()), "cost": float(costs[exits].mean()),
            "exit_fractions": (counts / n).tolist()}


def oracle_curve(cache, exit_costs):
    """(costs (C+1,), accuracies (C+1,)): the least mean cost of any assignment of samples to
    exits with c of them right, c = 0..C (C: samples right somewhere). Every sample pays at least
    the first exit's cost; one counted right pays at least its earliest correct exit's."""
    costs = numpy.asarray(exit_costs, dtype=numpy.float64)
    first = earliest_correct(cache)
    n = cache.num_samples
    extra = numpy.sort(costs[first[first >= 0]] - costs[0])
    total = n * costs[0] + numpy.concatenate([[0.0], numpy.cumsum(extra)])
    return total / n, numpy.arange(len(extra) + 1) / n


def overthinking(cache):
    """SDN's overthinking, as fractions of all samples: ``wasteful`` (right at an earlier exit
    and at the last), ``destructive`` (right at an earlier exit, wrong at the last), and the
    share of the last exit's errors that some earlier exit got right."""
    right = cache.correct()
    early = right[:-1].any(axis=0)
    last = right[-1]
    wrong_last = int((~last).sum())
    destructive = early & ~last
    return {"wasteful": float((early & last).mean()), "destructive": float(destructive.mean()),
            "destructive_of_last_errors": float(destructive.sum() / wrong_last) if wrong_last else 0.0,
            "right_somewhere": float(right.any(axis=0).mean()), "last_exit": float(last.mean())}


def calibration(cache, bins=15):
    """Per exit: expected calibration error sum_b |B|/n |acc(B) - conf(B)| over equal-width bins
    of the top probability (bin b holds (b/B, (b+1)/B], the first also 0), with the bins."""
    right = cache.correct()
    edges = numpy.linspace(0.0, 1.0, bins + 1)
    out = []
    for k in range(cache.num_exits):
        conf = cache.values("max_prob")[k]
        which = numpy.clip(numpy.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
        count = numpy.bincount(which, minlength=bins)
        conf_sum = numpy.bincount(which, weights=conf, minlength=bins)
        right_sum = numpy.bincount(which, weights=right[k], minlength=bins)
        with numpy.errstate(invalid="ignore", divide="ignore"):
            mean_conf, acc = conf_sum / count, right_sum / count
        ece = float(numpy.abs(right_sum - conf_sum).sum() / max(cache.num_samples, 1))
        out.append({"exit": k + 1, "ece": ece, "accuracy": float(right[k].mean()),
                    "mean_confidence": float(conf.mean()),
                    "bins": [{"low": float(edges[b]), "high": float(edges[b + 1]),
                              "count": int(count[b]),
                              "confidence": None if count[b] == 0 else float(mean_conf[b]),
                              "accuracy": None if count[b] == 0 else float(acc[b])}
                             for b in range(bins)]})
    return out
