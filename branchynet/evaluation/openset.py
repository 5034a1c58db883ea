"""Open-set evaluation of early exits: a net trained on some classes (known) meets all of them.

For each exit and confidence measure: how well the measure's value tells known from unknown test
samples (AUROC, ``auroc``: the probability that a random known sample looks more confident than a
random unknown one, ties counting half); the accuracy on the known classes at matched cost (the
most accurate setting within a budget, on the known test samples: ``frontier.exact_frontier``
and ``selection.most_accurate_within``); and, at that setting, the fraction of known and of
unknown samples leaving at each exit: does early exit let unknowns out early?
"""
import numpy

from branchynet.evaluation import frontier, selection
from branchynet.model import measures


def auroc(scores, positive):
    """Area under the ROC curve of ``scores`` for ``positive`` (bool) against the rest: the
    Mann-Whitney statistic from average ranks (ties count half). NaN scores rank lowest."""
    scores = numpy.asarray(scores, dtype=numpy.float64)
    positive = numpy.asarray(positive, dtype=bool)
    if scores.shape != positive.shape or scores.ndim != 1:
        raise ValueError("one score per sample expected, got %s scores for %s labels"
                         % (scores.shape, positive.shape))
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs known and unknown samples, got %d and %d" % (n_pos, n_neg))
    scores = numpy.where(numpy.isnan(scores), -numpy.inf, scores)
    order = numpy.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = numpy.flatnonzero(numpy.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = numpy.concatenate([starts[1:], [len(ordered)]])
    ranks = numpy.empty(len(scores))
    ranks[order] = numpy.repeat((starts + ends + 1) / 2.0, ends - starts)  # 1-based average
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def confidence(cache, measure):
    """(K, N) per-exit scores that grow with confidence: the measure's values, negated for the
    uncertainty measures (entropies), which let a sample out when low."""
    m = measures.get(measure)
    values = cache.values(m)
    return -values if m.low_leaves else values


def exit_aurocs(cache, measure, known):
    """AUROC of known against unknown samples at every exit (a list of K floats)."""
    return [auroc(scores, known) for scores in confidence(cache, measure)]


def leave_fractions(cache, measure, thresholds, known):
    """{"known": [...], "unknown": [...]}: the fraction of each group leaving at each exit under
    one threshold setting."""
    exits = cache.simulate(thresholds, measure)[1]
    k = cache.num_exits
    return {name: (numpy.bincount(exits[mask], minlength=k) / max(int(mask.sum()), 1)).tolist()
            for name, mask in (("known", known), ("unknown", ~known))}


def matched_cost(cache, measure, known, exit_costs, budgets):
    """For each budget (a mean cost per sample), the most accurate setting on the known samples
    within it: a dict with ``budget``, ``thresholds``, ``cost`` and ``accuracy`` (on the known
    samples) and the ``leave_fractions`` of known and unknown samples; None where no setting is
    that cheap."""
    known_cache = cache.subset(numpy.flatnonzero(known))
    points = frontier.exact_frontier(known_cache, measure, exit_costs)
    rows = []
    for budget in budgets:
        try:
            i = selection.most_accurate_within(points, budget)
        except selection.Infeasible:
            rows.append(None)
            continue
        thresholds = points.thresholds[i].tolist()
        rows.append({"budget": float(budget), "thresholds": thresholds,
                     "cost": float(points.costs[i]), "accuracy": float(points.accuracies[i]),
                     "leave_fractions": leave_fractions(cache, measure, thresholds, known)})
    return rows


def openmax_rejections(cache, fitted, known):
    """Per exit, the fraction of known and of unknown samples whose most probable OpenMax class
    is "unknown" (OpenMax's own rejection, no threshold)."""
    out = {"known": [], "unknown": []}
    for k in range(cache.num_exits):
        rejected = fitted.probabilities(cache.logits[k], k).argmax(axis=1) == fitted.num_classes
        out["known"].append(float(rejected[known].mean()))
        out["unknown"].append(float(rejected[~known].mean()))
    return out


def report(cache, known, named_measures, exit_costs, budgets):
    """Every measure's open-set numbers on ``cache`` (all test samples, labels as trained; unknown
    samples' labels are not used): {display name: {"auroc": [...], "matched": [...]}}.
    ``named_measures``: {display name: measure or name}."""
    known = numpy.asarray(known, dtype=bool)
    return {name: {"auroc": exit_aurocs(cache, m, known),
                   "matched": matched_cost(cache, m, known, exit_costs, budgets)}
            for name, m in named_measures.items()}
