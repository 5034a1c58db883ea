"""Threshold selection from cached per-exit outputs: exact frontiers and the rules that pick on them.

Every rule is fitted on one set (the validation split) and its thresholds are then applied,
unchanged, to another (the test set) with ``ExitCache.evaluate``.

``exact_frontier`` finds the accuracy/cost Pareto frontier over *all* threshold settings, not a
grid. At one exit, the settings that differ are those that let out different sets of samples; the
samples leave in the measure's order (most confident first), so there are at most n + 1 of them,
realised by the midpoints between consecutive distinct values (``Measure.candidates``). For K
exits the thresholds of exits 1..K-2 are enumerated over their candidates and the last non-final
exit is swept exactly with one sort and two cumulative sums:

    time O(prod_{k<K-2} (n_k + 1) * n log n), memory O(n), n the number of samples.

That is O(n log n) for 2 exits and O(n^2 log n) for 3 (B-AlexNet, B-ResNet on 5,000 validation
samples: seconds). For more exits, ``outer_candidates`` keeps that many candidates per enumerated
exit (spread over the quantiles of its values), which is no longer exact.

Rules (``eps``, ``budget`` and accuracies are fractions; costs in the unit of ``exit_costs``):
``fastest_within`` (the cheapest setting within eps of a baseline's accuracy), ``most_accurate_within``
(the most accurate setting whose mean cost is within a budget), ``distribution_thresholds`` and
``geometric_fractions`` (MSDNet's budgeted batch classification: thresholds that send a target
fraction of the samples out at each exit) and ``paper_knee`` (the paper's grid and knee, on
``branchynet.evaluation.sweep``). A rule whose constraint no setting meets on the data raises ``Infeasible``.
"""
import itertools

import numpy

from branchynet.evaluation import sweep
from branchynet.model import measures


class Infeasible(ValueError):
    """No setting meets the rule's constraint on the data it was fitted on."""


class Frontier:
    """Pareto-optimal settings, cheapest first: ``thresholds`` (M, K-1), ``exit_counts`` (M, K),
    ``correct`` (M,), ``costs`` (M,) (mean per sample), ``accuracies`` (M,); ``n`` samples."""

    def __init__(self, measure, thresholds, exit_counts, correct, exit_costs, n):
        self.measure = measures.get(measure).name
        self.thresholds = numpy.asarray(thresholds, dtype=numpy.float64)
        self.exit_counts = numpy.asarray(exit_counts, dtype=numpy.int64)
        self.correct = numpy.asarray(correct, dtype=numpy.int64)
        self.exit_costs = numpy.asarray(exit_costs, dtype=numpy.float64)
        self.n = int(n)
        self.costs = self.exit_counts @ self.exit_costs / max(self.n, 1)
        self.accuracies = self.correct / max(self.n, 1)

    def __len__(self):
        return len(self.correct)

    def rows(self):
        return [{"thresholds": t.tolist(), "cost": float(c), "accuracy": float(a),
                 "exit_fractions": (e / self.n).tolist()}
                for t, c, a, e in zip(self.thresholds, self.costs, self.accuracies, self.exit_counts)]


def pareto(costs, correct):
    """Indices of the Pareto-optimal points (no other point is at most as costly and at least as
    accurate, one of them strictly), cheapest first; of identical points the first is kept."""
    costs = numpy.asarray(costs, dtype=numpy.float64)
    correct = numpy.asarray(correct, dtype=numpy.float64)
    order = numpy.lexsort((numpy.arange(len(costs)), -correct, costs))
    ranked = correct[order]
    best_before = numpy.concatenate([[-numpy.inf], numpy.maximum.accumulate(ranked)[:-1]])
    return order[ranked > best_before].astype(numpy.int64)


def _check_costs(exit_costs, num_exits):
    costs = numpy.asarray(exit_costs, dtype=numpy.float64)
    if costs.shape != (num_exits,):
        raise ValueError("expected %d exit costs, got %s" % (num_exits, costs.shape))
    return costs


def _confidence_key(values, low_leaves):
    """Sort key putting the samples in the order they leave (NaN, never leaving, last)."""
    return numpy.where(numpy.isfinite(values), values if low_leaves else -values, numpy.inf)


def _last_exit_sweep(values, first_right, last_right, low_leaves, presorted=False):
    """Every distinct leave set at the last non-final exit, for the samples reaching it.

    Returns (thresholds (P,), leavers (P,), correct (P,)): threshold p lets the ``leavers[p]``
    most confident samples out; ``correct``: right answers among all of these samples then.
    ``presorted``: the samples already come in ``_confidence_key`` order."""
    n = len(values)
    finite = numpy.isfinite(values)
    key = _confidence_key(values, low_leaves)
    order = numpy.arange(n) if presorted else numpy.argsort(key, kind="stable")
    key = key[order]
    n_finite = int(finite.sum())
    cs_first = numpy.concatenate([[0], numpy.cumsum(first_right[order])])
    cs_last = numpy.concatenate([[0], numpy.cumsum(last_right[order])])
    # m samples can leave where the m-th and (m+1)-th keys differ (or none / every finite one)
    m = numpy.concatenate([[0], numpy.flatnonzero(key[1:n_finite] > key[:n_finite - 1]) + 1,
                           [n_finite] if n_finite else []]).astype(numpy.int64)
    mids = numpy.empty(len(m))
    inner = (m > 0) & (m < n_finite)
    mids[inner] = (key[m[inner] - 1] + key[m[inner]]) / 2
    if n_finite:
        mids[m == 0] = key[0] - 1.0
        mids[m == n_finite] = key[n_finite - 1] + 1.0
    else:
        mids[:] = 0.0
    thresholds = mids if low_leaves else -mids
    correct = cs_first[m] + (cs_last[n] - cs_last[m])
    return thresholds, m, correct


def exact_frontier(cache, measure, exit_costs, outer_candidates=None):
    """The accuracy/cost Pareto frontier of ``measure`` over every threshold setting on ``cache``
    (an ``ExitCache`` with labels), as a ``Frontier``; see the module docstring for complexity."""
    m = measures.get(measure)
    num_exits, n = cache.num_exits, cache.num_samples
    costs = _check_costs(exit_costs, num_exits)
    values = cache.values(m)
    right = cache.correct()
    if num_exits == 1:
        return Frontier(m, numpy.zeros((1, 0)), [[n]], [int(right[0].sum())], costs, n)
    outer = []
    for k in range(num_exits - 2):
        c = m.candidates(values[k])
        if outer_candidates is not None and len(c) > outer_candidates:
            c = c[numpy.unique(numpy.linspace(0, len(c) - 1, outer_candidates).round().astype(int))]
        outer.append(c)
    all_t, all_counts, all_correct = [], [], []
    j = num_exits - 2  # swept exactly; its samples sorted once, in the order they leave
    order_j = numpy.argsort(_confidence_key(values[j], m.low_leaves), kind="stable")
    for prefix in itertools.product(*outer):
        in_flight = numpy.ones(n, dtype=bool)
        counts = numpy.zeros(num_exits, dtype=numpy.int64)
        base_correct = 0
        for k, t in enumerate(prefix):
            leave = in_flight & m.leaves(values[k], t)
            counts[k] = leave.sum()
            base_correct += int(right[k][leave].sum())
            in_flight &= ~leave
        idx = order_j[in_flight[order_j]]
        t_last, leavers, correct = _last_exit_sweep(values[j][idx], right[j][idx],
                                                    right[num_exits - 1][idx], m.low_leaves,
                                                    presorted=True)
        block = numpy.repeat(counts[None, :], len(t_last), axis=0)
        block[:, j] = leavers
        block[:, num_exits - 1] = len(idx) - leavers
        block_correct = base_correct + correct
        keep = pareto(block @ costs, block_correct)
        outer_t = numpy.tile(numpy.asarray(prefix, dtype=numpy.float64).reshape(1, -1),
                             (len(keep), 1))
        all_t.append(numpy.column_stack([outer_t, t_last[keep]]))
        all_counts.append(block[keep])
        all_correct.append(block_correct[keep])
        if len(all_t) > 64:  # keep memory O(n): prune the collected points now and then
            all_t, all_counts, all_correct = _prune(all_t, all_counts, all_correct, costs)
    all_t, all_counts, all_correct = _prune(all_t, all_counts, all_correct, costs)
    return Frontier(m, all_t[0], all_counts[0], all_correct[0], costs, n)


def _prune(all_t, all_counts, all_correct, costs):
    t, counts, correct = (numpy.concatenate(all_t), numpy.concatenate(all_counts),
                          numpy.concatenate(all_correct))
    keep = pareto(counts @ costs, correct)
    return [t[keep]], [counts[keep]], [correct[keep]]


def grid_frontier(cache, measure, grid, exit_costs):
    """The Pareto frontier of the settings of a threshold ``grid`` only (brute force)."""
    m = measures.get(measure)
    costs = _check_costs(exit_costs, cache.num_exits)
    grid = numpy.asarray(grid, dtype=numpy.float64).reshape(-1, cache.num_exits - 1)
    exits = cache.exit_index(grid, m)
    counts = numpy.stack([(exits == k).sum(axis=1) for k in range(cache.num_exits)], axis=1)
    right = cache.correct()
    correct = right[exits, numpy.arange(cache.num_samples)[None, :]].sum(axis=1)
    keep = pareto(counts @ costs, correct)
    return Frontier(m, grid[keep], counts[keep], correct[keep], costs, cache.num_samples)


# ------------------------------------------------------------------ rules on a frontier
def fastest_within(frontier, baseline_accuracy, eps=0.0):
    """Index of the cheapest frontier setting whose accuracy is at least baseline - eps."""
    if not eps >= 0:
        raise ValueError("eps must be >= 0 (an accuracy drop allowed, as a fraction), got %r" % (eps,))
    ok = numpy.flatnonzero(frontier.correct >= (baseline_accuracy - eps) * frontier.n - 1e-9)
    if len(ok) == 0:
        raise Infeasible("no setting reaches %.4f - %.4f (best: %.4f)"
                         % (baseline_accuracy, eps, frontier.accuracies.max()))
    return int(ok[numpy.argmin(frontier.costs[ok])])


def most_accurate_within(frontier, budget):
    """Index of the most accurate frontier setting whose mean cost is at most ``budget``."""
    cheapest = float(frontier.costs.min())
    if budget < cheapest * (1 - 1e-12):
        raise Infeasible("budget %.6g is below the cheapest setting's cost %.6g (every sample "
                         "leaving at the first exit costs %.6g)"
                         % (budget, cheapest, frontier.exit_costs[0]))
    ok = numpy.flatnonzero(frontier.costs <= budget * (1 + 1e-12))
    best = frontier.correct[ok].max()
    ok = ok[frontier.correct[ok] == best]
    return int(ok[numpy.argmin(frontier.costs[ok])])


def paper_knee(cache, grid, exit_costs, baseline_accuracy, measure="entropy"):
    """The paper's rule on the cache: the grid's settings, their frontier (the original's
    ``inc_amt`` tolerance, ``sweep.frontier``) by mean cost, and its knee (``sweep.knee``)."""
    grid = [tuple(g) for g in grid]
    rows = [cache.evaluate(t, measure, exit_costs) for t in grid]
    costs = [r["cost"] for r in rows]
    accs = [r["accuracy"] for r in rows]
    front = sweep.frontier(costs, accs)
    return {"rows": rows, "frontier": front,
            "knee": sweep.knee(costs, accs, front, baseline_accuracy)}


# ------------------------------------------------------------------ target exit distributions
def geometric_fractions(q, num_exits):
    """MSDNet's exit distribution: the fraction leaving at exit k proportional to q**k."""
    if not q > 0:
        raise ValueError("q must be > 0, got %r" % (q,))
    w = float(q) ** numpy.arange(num_exits)
    return w / w.sum()


def distribution_thresholds(cache, measure, fractions):
    """Thresholds that let out about ``fractions[k]`` of all samples at exit k (the last takes the
    rest): at each exit, among the samples still in flight, the round(n f_k) most confident leave
    (fewer where tied values make that count impossible; MSDNet's rule)."""
    m = measures.get(measure)
    fractions = numpy.asarray(fractions, dtype=numpy.float64)
    if fractions.shape != (cache.num_exits,) or (fractions < 0).any() \
            or not numpy.isclose(fractions.sum(), 1.0):
        raise ValueError("fractions must be %d non-negative numbers summing to 1, got %s"
                         % (cache.num_exits, fractions.tolist()))
    values = cache.values(m)
    n = cache.num_samples
    in_flight = numpy.ones(n, dtype=bool)
    thresholds = []
    for k in range(cache.num_exits - 1):
        idx = numpy.flatnonzero(in_flight)
        want = min(int(round(n * fractions[k])), len(idx))
        t, leavers, _ = _last_exit_sweep(values[k][idx], numpy.zeros(len(idx)),
                                         numpy.zeros(len(idx)), m.low_leaves)
        p = int(numpy.flatnonzero(leavers <= want)[-1])
        thresholds.append(float(t[p]))
        in_flight &= ~m.leaves(values[k], t[p])
    return numpy.array(thresholds)
