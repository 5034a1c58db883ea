"""Confidence measures for the exit rule, and per-exit outputs cached from one pass.

The paper lets a sample leave at the first exit whose softmax entropy is below that exit's
threshold. The field has used other measures since; each is a per-sample *value* at every exit,
and a rule saying, from the value and the exit's threshold T, whether the sample leaves:

=====================  =====================================  ===========  ==========================
name                   value at exit k                        leaves when  meaning of T
=====================  =====================================  ===========  ==========================
``entropy``            -sum_c p_c ln p_c (nats), in [0, ln C]  value < T    the paper's; T <= 0: none
``normalized_entropy`` entropy / ln C, in [0, 1] (DDNN)       value < T    T > 1: all leave
``max_prob``           max_c p_c, in [1/C, 1] (SDN, MSDNet)   value >= T   T <= 1/C: all; T > 1: none
``margin``             p_(1) - p_(2), top two, in [0, 1]      value >= T   T <= 0: all; T > 1: none
``patience``           how many consecutive exits up to k     value >= T   T = p: leave once p exits
                       (k included) predict the same label                  in a row agree (PABEE);
                       (1 at the first exit)                               T <= 1: all leave at exit 1
=====================  =====================================  ===========  ==========================

Uncertainty measures (entropies) let a sample out when the value is *low* (strictly below T, the
paper's rule); confidence measures when it is *high* (at least T). A value that is NaN (non-finite
logits) lets nobody out. The last exit takes every sample still in flight.

A sample's value at exit k depends only on the outputs of exits 0..k, never on the thresholds, so
``ExitCache`` computes every measure from one pass through every exit (``BranchyNet.exit_probs``) and
gives, for any thresholds, the exits and labels a real early-exit run gives (``BranchyNet.predict``
with the same ``measure``), which the tests hold equal.
"""
import numpy

import chainer

from branchynet.evaluation import sweep
from branchynet.model import exit_rule


class Measure:
    """One confidence measure: its per-exit ``values`` and its leave rule.

    ``values(probs, state)`` takes an exit's (N, C) softmax and the state carried from the earlier
    exits (None at the first; only patience uses it) and returns (values, state). ``select(state,
    index)`` keeps the state of the samples still in flight.
    """

    def __init__(self, name, low_leaves, values, doc, stateful=False):
        self.name = name
        self.low_leaves = low_leaves  # True: leaves when value < T; False: when value >= T
        self._values = values
        self.doc = doc
        self.stateful = stateful

    def __repr__(self):
        return "Measure(%r)" % self.name

    def values(self, probs, state=None):
        if self.stateful:
            return self._values(probs, state)
        return self._values(probs), None

    def leaves(self, values, threshold):
        """Mask of the samples whose value lets them out at a threshold (NaN never leaves)."""
        if self.low_leaves:
            return values < threshold
        return values >= threshold

    @staticmethod
    def select(state, index):
        return None if state is None else tuple(s[index] for s in state)

    def candidates(self, values):
        """Thresholds realising every distinct set of leavers at one exit: below, between and
        above the sorted distinct finite values (midpoints, so that values computed again, a few
        ulp apart, decide alike). ``values``: any array of the measure's values."""
        v = numpy.unique(numpy.asarray(values, dtype=numpy.float64))
        v = v[numpy.isfinite(v)]
        if len(v) == 0:
            return numpy.zeros(1)
        mids = (v[:-1] + v[1:]) / 2
        return numpy.concatenate([[v[0] - 1.0], mids, [v[-1] + 1.0]])

    def nobody_leaves(self, values):
        """A threshold that lets nobody out, given the values it will meet."""
        c = self.candidates(values)
        return float(c[0] if self.low_leaves else c[-1])

    def everybody_leaves(self, values):
        c = self.candidates(values)
        return float(c[-1] if self.low_leaves else c[0])


def normalized_entropy(p):
    """Entropy divided by ln C (C classes), in [0, 1]."""
    return exit_rule.entropy(p) / numpy.float32(numpy.log(p.shape[1]))


def max_prob(p):
    """The largest class probability of each row."""
    return p.max(axis=1)


def margin(p):
    """The largest class probability minus the second largest."""
    xp = chainer.backend.get_array_module(p)
    top2 = xp.sort(p, axis=1)[:, -2:]
    out = top2[:, 1] - top2[:, 0]
    return xp.where(xp.isnan(p).any(axis=1), xp.nan, out)


def patience(p, state):
    """Consecutive exits agreeing on the label, the current one included; state: (label, run)."""
    xp = chainer.backend.get_array_module(p)
    labels = p.argmax(axis=1)
    if state is None:
        run = xp.ones(len(p), dtype=numpy.int64)
    else:
        previous, previous_run = state
        run = xp.where(labels == previous, previous_run + 1, 1)
    return run.astype(numpy.float64), (labels, run)


MEASURES = {
    "entropy": Measure("entropy", True, exit_rule.entropy,
                       "softmax entropy in nats; leaves when H < T (the paper)"),
    "normalized_entropy": Measure("normalized_entropy", True, normalized_entropy,
                                  "entropy / ln C in [0, 1]; leaves when H / ln C < T"),
    "max_prob": Measure("max_prob", False, max_prob,
                        "largest softmax probability; leaves when max p >= T"),
    "margin": Measure("margin", False, margin,
                      "top-1 minus top-2 probability; leaves when the margin >= T"),
    "patience": Measure("patience", False, patience,
                        "consecutive exits agreeing on the label (this one included); leaves "
                        "when at least T agree", stateful=True),
}
NAMES = tuple(MEASURES)


def get(measure):
    """The ``Measure`` named ``measure`` (a Measure passes through). Unknown names: ValueError."""
    if isinstance(measure, Measure):
        return measure
    try:
        return MEASURES[measure]
    except (KeyError, TypeError):
        raise ValueError("unknown confidence measure %r; known: %s"
                         % (measure, ", ".join(NAMES))) from None


class ExitCache:
    """Every exit's softmax output on a set of samples, from one pass; any measure's early exit
    computed from it without running the net again.

    Args:
        probs: (K, N, C) array (or a list of K (N, C) arrays): exit k's softmax of sample n.
        labels: (N,) true labels, or None.
    """

    def __init__(self, probs, labels=None):
        probs = [numpy.asarray(chainer.backend.CpuDevice().send(p)) for p in probs]
        self.probs = numpy.stack(probs) if probs else numpy.zeros((0, 0, 0), numpy.float32)
        if self.probs.ndim != 3:
            raise ValueError("probs must be (exits, samples, classes), got %s" % (self.probs.shape,))
        self.labels = None if labels is None else numpy.asarray(labels)
        if self.labels is not None and self.labels.shape != (self.num_samples,):
            raise ValueError("expected %d labels, got shape %s"
                             % (self.num_samples, self.labels.shape))
        self.predictions = self.probs.argmax(axis=2)
        self._values = {}

    @property
    def num_exits(self):
        return self.probs.shape[0]

    @property
    def num_samples(self):
        return self.probs.shape[1]

    @classmethod
    def from_net(cls, net, x, labels=None, batchsize=1000, progress=None, desc="all exits"):
        """Runs ``x`` once through every exit of ``net``, ``batchsize`` at a time."""
        return cls(sweep.exit_probs_in_batches(net, x, batchsize, progress, desc), labels)

    def subset(self, index):
        return ExitCache(self.probs[:, index], None if self.labels is None else self.labels[index])

    def values(self, measure):
        """(K, N) float64 values of ``measure`` at every exit (cached)."""
        m = get(measure)
        if m.name not in self._values:
            state, rows = None, []
            for k in range(self.num_exits):
                v, state = m.values(self.probs[k], state)
                rows.append(numpy.asarray(v, dtype=numpy.float64))
            self._values[m.name] = numpy.stack(rows) if rows else numpy.zeros((0, 0))
        return self._values[m.name]

    def correct(self):
        """(K, N) bool: exit k's prediction of sample n is right."""
        if self.labels is None:
            raise ValueError("no labels: pass labels= to compute accuracies")
        return self.predictions == self.labels[None, :]

    def exit_index(self, thresholds, measure="entropy"):
        """(G, N) exit of every sample under each of G threshold tuples ((G, K-1) array, or one
        tuple or scalar, giving (1, N))."""
        m = get(measure)
        k = self.num_exits
        grid = numpy.asarray(thresholds, dtype=numpy.float64)
        if grid.ndim == 0:
            grid = numpy.full((1, k - 1), float(grid))
        elif grid.ndim == 1:
            grid = grid.reshape(1, -1)
        if grid.shape[1] != k - 1:
            raise ValueError("expected %d thresholds per setting (one per non-final exit), got %d"
                             % (k - 1, grid.shape[1]))
        if numpy.isnan(grid).any():
            raise ValueError("thresholds must not be NaN")
        if k == 1:
            return numpy.zeros((len(grid), self.num_samples), dtype=numpy.int64)
        values = self.values(m)[None, :k - 1, :]
        leave = m.leaves(values, grid[:, :, None])
        return numpy.where(leave.any(axis=1), leave.argmax(axis=1), k - 1)

    def simulate(self, thresholds, measure="entropy"):
        """(labels, exits) that early exit with these thresholds gives, as ``BranchyNet.predict``."""
        exits = self.exit_index(exit_rule.as_thresholds(thresholds, self.num_exits), measure)[0]
        return self.predictions[exits, numpy.arange(self.num_samples)], exits

    def evaluate(self, thresholds, measure="entropy", exit_costs=None):
        """One setting: accuracy, exit counts and fractions, accuracy of the samples that left at
        each exit (None where none did), and with ``exit_costs`` (the cumulative cost of leaving
        at each exit, ``costs.exit_costs``) the mean cost per sample."""
        thresholds = exit_rule.as_thresholds(thresholds, self.num_exits)
        labels, exits = self.simulate(thresholds, measure)
        n, k = self.num_samples, self.num_exits
        counts = numpy.bincount(exits, minlength=k)
        row = {"measure": get(measure).name, "thresholds": thresholds.tolist(), "n": n,
               "exit_counts": counts.tolist(),
               "exit_fractions": (counts / n).tolist() if n else [0.0] * k}
        if self.labels is not None:
            right = labels == self.labels
            per_exit = numpy.bincount(exits, weights=right, minlength=k)
            row["correct"] = int(right.sum())
            row["accuracy"] = float(right.mean()) if n else float("nan")
            row["exit_accuracy"] = [float(r / c) if c else None for r, c in zip(per_exit, counts)]
        if exit_costs is not None:
            row["cost"] = float(numpy.asarray(exit_costs, dtype=numpy.float64)[exits].mean()) \
                if n else float("nan")
        return row
