"""Threshold selection rules that hold on new data, not only on the split they were fitted on.

``selection.fastest_within`` on an exact frontier picks, among thousands of settings, the cheapest
one whose validation accuracy reaches the baseline's: the winner of many noisy comparisons, it
scores lower on the test set (the winner's curse). Two rules demand evidence
instead, both comparing with the baseline sample by sample (paired, which cancels the noise the
two share), both fitted on the validation split only:

* ``cv_margin``: k-fold cross-validation inside the split chooses a margin (accuracy demanded above
  the baseline's): the smallest of ``MARGINS`` whose picks, on frontiers fitted on k-1 folds, hold
  the baseline on the held-out folds on average. The whole split's frontier is then asked for it.
* ``bootstrap_fastest``: the cheapest setting whose one-sided bootstrap lower bound (over
  resamples of the split's samples) on its accuracy minus the baseline's is at least 0.

Both are deterministic for a given ``seed``; a rule no setting satisfies raises
``selection.Infeasible``.
"""
import numpy

from branchynet.evaluation import frontier as frontiers
from branchynet.evaluation import selection

MARGINS = tuple(round(0.001 * i, 3) for i in range(51))  # 0 to 5 percentage points
FOLDS = 5
LEVEL = 0.95
RESAMPLES = 1000


def _baseline(cache, baseline_right):
    right = numpy.asarray(baseline_right)
    if right.shape != (cache.num_samples,) or right.dtype != bool:
        raise ValueError("baseline_right must be a (%d,) bool array: whether the baseline gets each "
                         "sample right, got %s %s" % (cache.num_samples, right.dtype, right.shape))
    return right


def settings_right(cache, thresholds, measure):
    """(M, N) bool: whether each of M threshold settings ((M, K-1)) gets each sample right."""
    exits = cache.exit_index(thresholds, measure)
    return cache.correct()[exits, numpy.arange(cache.num_samples)[None, :]]


def folds(n, k=FOLDS, seed=0):
    """``k`` disjoint index arrays covering range(n), from a permutation fixed by ``seed``."""
    if not 2 <= k <= n:
        raise ValueError("k must be between 2 and the number of samples (%d), got %r" % (n, k))
    return numpy.array_split(numpy.random.RandomState(seed).permutation(n), k)


def reaching(front, accuracy):
    """The cheapest setting of ``front`` whose accuracy is at least ``accuracy`` or, where none
    is, the most accurate (the cheapest of those): the best a demand can get (the paper's knee
    does the same)."""
    try:
        return selection.fastest_within(front, accuracy, 0.0)
    except selection.Infeasible:
        best = numpy.flatnonzero(front.correct == front.correct.max())
        return int(best[numpy.argmin(front.costs[best])])


def held_out_gains(cache, measure, exit_costs, baseline_right, margins=MARGINS, k=FOLDS, seed=0):
    """(k, len(margins)): on each fold, the accuracy minus the baseline's of the pick
    (``reaching``) of the frontier fitted on the other folds at each margin."""
    right = _baseline(cache, baseline_right)
    gains = numpy.zeros((k, len(margins)))
    for i, held in enumerate(folds(cache.num_samples, k, seed)):
        fit = numpy.setdiff1d(numpy.arange(cache.num_samples), held)
        front = frontiers.exact_frontier(cache.subset(fit), measure, exit_costs)
        out = cache.subset(held)
        for j, margin in enumerate(margins):
            p = reaching(front, right[fit].mean() + margin)
            acc = out.evaluate(front.thresholds[p], measure)["accuracy"]
            gains[i, j] = acc - right[held].mean()
    return gains


def cv_margin(cache, front, baseline_right, margins=MARGINS, k=FOLDS, seed=0):
    """(index into ``front``, margin, mean held-out gain per margin): the cheapest setting of
    ``front`` (the exact frontier fitted on ``cache``) reaching the baseline's accuracy plus the
    smallest margin that held the baseline under k-fold cross-validation on ``cache``
    (``reaching``: the most accurate setting where none reaches it)."""
    right = _baseline(cache, baseline_right)
    gains = held_out_gains(cache, front.measure, front.exit_costs, right, margins, k, seed)
    mean = gains.mean(axis=0)
    ok = numpy.flatnonzero(mean >= -1e-12)
    if len(ok) == 0:
        raise selection.Infeasible("no margin up to %.2f pp held the baseline on the held-out folds"
                                   % (100 * margins[-1]))
    margin = float(margins[ok[0]])
    return reaching(front, right.mean() + margin), margin, mean


def bootstrap_fastest(cache, front, baseline_right, level=LEVEL, resamples=RESAMPLES, seed=0,
                      chunk=256):
    """(index into ``front``, lower bound): the cheapest setting of ``front`` (fitted on
    ``cache``) whose paired bootstrap lower bound at ``level`` (one-sided; the 1 - level quantile
    over ``resamples`` resamples of the samples) of accuracy minus the baseline's is >= 0."""
    if not 0.5 <= level < 1:
        raise ValueError("level must be in [0.5, 1), got %r" % (level,))
    right = _baseline(cache, baseline_right).astype(numpy.float64)
    n = cache.num_samples
    weights = numpy.random.RandomState(seed).multinomial(n, numpy.full(n, 1.0 / n), size=resamples)
    order = numpy.argsort(front.costs, kind="stable")
    for start in range(0, len(order), chunk):
        pos = order[start:start + chunk]
        diff = settings_right(cache, front.thresholds[pos], front.measure) - right[None, :]
        lower = numpy.quantile(weights @ diff.T, 1 - level, axis=0) / n
        ok = numpy.flatnonzero(lower >= -1e-12)
        if len(ok):
            return int(pos[ok[0]]), float(lower[ok[0]])
    raise selection.Infeasible("no setting's %.0f %% lower bound reaches the baseline" % (100 * level))
