"""Threshold selection rules on a ``Frontier`` (``branchynet.evaluation.frontier``).

Every rule is fitted on one set (the validation split) and its thresholds are then applied,
unchanged, to another (the test set) with ``ExitOutputs.evaluate``.

Rules (``eps``, ``budget`` and accuracies are fractions; costs in the unit of ``exit_costs``):
``fastest_within`` (the cheapest setting within eps of a baseline's accuracy), ``most_accurate_within``
(the most accurate setting whose mean cost is within a budget), ``distribution_thresholds`` and
``geometric_fractions`` (MSDNet's budgeted batch classification: thresholds that send a target
fraction of the samples out at each exit) and ``paper_knee`` (the paper's grid and knee). A rule
whose constraint no setting meets on the data raises ``Infeasible``.
"""
import numpy

from branchynet.evaluation import frontier as frontiers
from branchynet.model import measures


class Infeasible(ValueError):
    """No setting meets the rule's constraint on the data it was fitted on."""


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


def paper_knee(outputs, grid, exit_costs, baseline_accuracy, measure="entropy"):
    """The paper's rule on cached outputs: the grid's settings (``frontier.grid``), their
    incremental frontier by mean cost and its knee (``frontier.paper_frontier``). Returns the
    frontier and the knee's position in it."""
    points = frontiers.grid(outputs, grid, exit_costs, measure)
    return frontiers.paper_frontier(points, baseline_accuracy)


# ------------------------------------------------------------------ target exit distributions
def geometric_fractions(q, num_exits):
    """MSDNet's exit distribution: the fraction leaving at exit k proportional to q**k."""
    if not q > 0:
        raise ValueError("q must be > 0, got %r" % (q,))
    w = float(q) ** numpy.arange(num_exits)
    return w / w.sum()


def distribution_thresholds(outputs, measure, fractions):
    """Thresholds that let out about ``fractions[k]`` of all samples at exit k (the last takes the
    rest): at each exit, among the samples still in flight, the round(n f_k) most confident leave
    (fewer where tied values make that count impossible; MSDNet's rule)."""
    m = measures.get(measure)
    fractions = numpy.asarray(fractions, dtype=numpy.float64)
    if fractions.shape != (outputs.num_exits,) or (fractions < 0).any() \
            or not numpy.isclose(fractions.sum(), 1.0):
        raise ValueError("fractions must be %d non-negative numbers summing to 1, got %s"
                         % (outputs.num_exits, fractions.tolist()))
    values = outputs.values(m)
    n = outputs.num_samples
    in_flight = numpy.ones(n, dtype=bool)
    thresholds = []
    for k in range(outputs.num_exits - 1):
        idx = numpy.flatnonzero(in_flight)
        want = min(int(round(n * fractions[k])), len(idx))
        t, leavers, _ = frontiers.leave_sets(values[k][idx], numpy.zeros(len(idx)),
                                         numpy.zeros(len(idx)), m.low_leaves)
        p = int(numpy.flatnonzero(leavers <= want)[-1])
        thresholds.append(float(t[p]))
        in_flight &= ~m.leaves(values[k], t[p])
    return numpy.array(thresholds)
