"""Threshold settings and their accuracy/cost frontiers: one ``Frontier`` type for every search.

A ``Frontier`` is a set of threshold settings evaluated on one set of samples: each setting's exit
counts and right answers, and from the cumulative cost of leaving at each exit (``costs.exit_costs``)
its mean cost. Candidate sets: ``grid`` (every setting of a threshold grid, such as the paper's,
``paper_grid``) and the exact search (``exact_frontier``); ``pareto`` keeps the settings no other
beats, and ``incremental`` and ``knee`` are the paper's frontier and operating point
(docs/original.md#frontier-and-knee) on the same points.

``exact_frontier`` finds the Pareto frontier over *all* threshold settings, not a grid. At one
exit, the settings that differ are those that let out different sets of samples; the samples leave
in the measure's order (most confident first), so there are at most n + 1 of them, realised by the
midpoints between consecutive distinct values (``Measure.candidates``). For K exits the thresholds
of exits 1..K-2 are enumerated over their candidates and the last non-final exit is swept exactly
with one sort and two cumulative sums (``leave_sets``):

    time O(prod_{k<K-2} (n_k + 1) * n log n), memory O(n), n the number of samples.

That is O(n log n) for 2 exits and O(n^2 log n) for 3 (B-AlexNet, B-ResNet on 5,000 validation
samples: seconds). For more exits, ``outer_candidates`` keeps that many candidates per enumerated
exit (spread over the quantiles of its values), which is no longer exact.
"""
import itertools

import numpy

from branchynet.model import measures

# docs/original.md#threshold-lists: the per-exit threshold lists of the original experiments (nats); the
# sweep is their Cartesian product over the K-1 non-final exits.
LENET_THRESHOLDS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
                    1.0, 2.0, 3.0, 5.0, 10.0)  # 17 configurations (B-LeNet has one early exit)
ALEXNET_THRESHOLDS = (0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 0.75, 1.0, 5.0, 10.0)  # 11 x 11
RESNET_THRESHOLDS = LENET_THRESHOLDS  # 17 x 17 = 289; the paper's (0.3, 0.2) is not in it

THRESHOLD_LISTS = {"lenet": LENET_THRESHOLDS, "alexnet": ALEXNET_THRESHOLDS,
                   "resnet110": RESNET_THRESHOLDS}

# docs/original.md#frontier-and-knee: the original's frontier tolerance, a fraction of accuracy (0.01 points).
INC_AMT = -0.0001

# the thresholds of the paper's Table I rows (nats), one per non-final exit
PAPER_THRESHOLDS = {"lenet": (0.025,), "alexnet": (0.0001, 0.05), "resnet110": (0.3, 0.2)}


def paper_thresholds(family):
    """The thresholds of the paper's Table I row for a family, one per non-final exit."""
    return tuple(PAPER_THRESHOLDS[family])


def threshold_grid(lists):
    """The Cartesian product of per-exit threshold lists, as a list of float tuples; the first
    exit's threshold varies slowest."""
    return [tuple(float(v) for v in combo) for combo in itertools.product(*lists)]


def paper_grid(family, num_exits):
    """The original's sweep for a network of the paper's ``family`` ("lenet", "alexnet",
    "resnet110"; ``networks.family_of`` names a registered network's): the family's list for each
    non-final exit."""
    values = THRESHOLD_LISTS[family]
    return threshold_grid([values] * (num_exits - 1))


class Frontier:
    """Threshold settings evaluated on ``n`` samples: ``thresholds`` (M, K-1), ``exit_counts``
    (M, K), ``correct`` (M,), ``exit_costs`` (K,), the cost of leaving at each exit; derived:
    ``costs`` (M,), the mean cost per sample, and ``accuracies`` (M,). ``index``: where each
    setting sits in the candidate set it was taken from (``take``)."""

    def __init__(self, thresholds, exit_counts, correct, exit_costs, n, measure="entropy",
                 index=None):
        self.measure = measures.get(measure).name
        self.thresholds = numpy.asarray(thresholds, dtype=numpy.float64)
        self.exit_counts = numpy.asarray(exit_counts, dtype=numpy.int64)
        self.correct = numpy.asarray(correct, dtype=numpy.int64)
        self.exit_costs = _check_costs(exit_costs, self.exit_counts.shape[1])
        self.n = int(n)
        self.index = numpy.arange(len(self.correct)) if index is None else numpy.asarray(index)
        self.costs = self.exit_counts @ self.exit_costs / max(self.n, 1)
        self.accuracies = self.correct / max(self.n, 1)

    def __len__(self):
        return len(self.correct)

    def take(self, positions):
        """The settings at ``positions`` (in that order), remembering where they came from."""
        positions = numpy.asarray(positions, dtype=numpy.int64)
        return Frontier(self.thresholds[positions], self.exit_counts[positions],
                        self.correct[positions], self.exit_costs, self.n, self.measure,
                        self.index[positions])

    def with_costs(self, exit_costs):
        """The same settings priced with other per-exit costs (another device or accounting)."""
        return Frontier(self.thresholds, self.exit_counts, self.correct, exit_costs, self.n,
                        self.measure, self.index)

    def pareto(self):
        """The Pareto-optimal settings (``pareto``), cheapest first."""
        return self.take(pareto(self.costs, self.correct))

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


def grid(outputs, thresholds, exit_costs, measure="entropy"):
    """Every setting of a threshold grid ((G, K-1) or a list of tuples), in grid order, evaluated
    on ``outputs`` (``ExitOutputs`` with labels)."""
    m = measures.get(measure)
    thresholds = numpy.asarray(thresholds, dtype=numpy.float64).reshape(-1, outputs.num_exits - 1)
    exits = outputs.exit_index(thresholds, m)
    counts = numpy.stack([(exits == k).sum(axis=1) for k in range(outputs.num_exits)], axis=1)
    right = outputs.correct()
    correct = right[exits, numpy.arange(outputs.num_samples)[None, :]].sum(axis=1)
    return Frontier(thresholds, counts, correct, exit_costs, outputs.num_samples, m.name)


def grid_frontier(outputs, measure, thresholds, exit_costs):
    """The Pareto frontier of the settings of a threshold grid only."""
    return grid(outputs, thresholds, exit_costs, measure).pareto()


def _confidence_key(values, low_leaves):
    """Sort key putting the samples in the order they leave (NaN, never leaving, last)."""
    return numpy.where(numpy.isfinite(values), values if low_leaves else -values, numpy.inf)


def leave_sets(values, first_right, last_right, low_leaves, presorted=False):
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
    (``ExitOutputs`` with labels), as a ``Frontier``; see the module docstring for complexity."""
    m = measures.get(measure)
    num_exits, n = cache.num_exits, cache.num_samples
    costs = _check_costs(exit_costs, num_exits)
    values = cache.values(m)
    right = cache.correct()
    if num_exits == 1:
        return Frontier(numpy.zeros((1, 0)), [[n]], [int(right[0].sum())], costs, n, m.name)
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
        t_last, leavers, correct = leave_sets(values[j][idx], right[j][idx],
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
    return Frontier(all_t[0], all_counts[0], all_correct[0], costs, n, m.name)


def _prune(all_t, all_counts, all_correct, costs):
    t, counts, correct = (numpy.concatenate(all_t), numpy.concatenate(all_counts),
                          numpy.concatenate(all_correct))
    keep = pareto(counts @ costs, correct)
    return [t[keep]], [counts[keep]], [correct[keep]]


def incremental(times, accuracies, inc_amt=INC_AMT):
    """Indices of the original's "incremental" frontier (docs/original.md#frontier-and-knee), fastest first.

    Configurations are sorted by runtime (ties: the more accurate first, then grid order); the
    fastest is kept, and after it a configuration is kept if its accuracy exceeds the last kept
    one's by more than ``inc_amt`` (a fraction; the original's -0.0001 tolerates drops of 0.01
    percentage points). A configuration with exactly the same (runtime, accuracy) as the last kept
    point is the same point and is not kept again (identical exit patterns give identical
    predicted runtimes, which the original's noisy measurements never did).
    """
    times = numpy.asarray(times, dtype=numpy.float64)
    accuracies = numpy.asarray(accuracies, dtype=numpy.float64)
    if times.shape != accuracies.shape:
        raise ValueError("times and accuracies must have the same length")
    order = numpy.lexsort((numpy.arange(len(times)), -accuracies, times))
    kept = []
    for i in order:
        if not kept:
            kept.append(int(i))
            continue
        last = kept[-1]
        if times[i] == times[last] and accuracies[i] == accuracies[last]:
            continue
        if accuracies[i] > accuracies[last] + inc_amt:
            kept.append(int(i))
    return kept


def knee(times, accuracies, frontier_indices, baseline_accuracy):
    """The automatic knee rule (the paper chose its knees by hand, docs/original.md#frontier-and-knee).

    The knee is the fastest frontier point whose accuracy is at least the baseline's; if no
    frontier point reaches the baseline's accuracy, it is the most accurate frontier point (the
    fastest of them if several tie). Returns an index into ``times``/``accuracies``.
    """
    if not frontier_indices:
        raise ValueError("empty frontier")
    times = numpy.asarray(times, dtype=numpy.float64)
    accuracies = numpy.asarray(accuracies, dtype=numpy.float64)
    by_time = sorted(frontier_indices, key=lambda i: (times[i], -accuracies[i], i))
    for i in by_time:
        if accuracies[i] >= baseline_accuracy:
            return int(i)
    best = max(accuracies[i] for i in by_time)
    return int(next(i for i in by_time if accuracies[i] == best))


def paper_frontier(points, baseline_accuracy, inc_amt=INC_AMT):
    """The paper's rule on a candidate set: its incremental frontier by mean cost (``incremental``)
    and the knee (``knee``), as a ``Frontier`` and the knee's position in it."""
    front = incremental(points.costs, points.accuracies, inc_amt)
    chosen = knee(points.costs, points.accuracies, front, baseline_accuracy)
    return points.take(front), front.index(chosen)
