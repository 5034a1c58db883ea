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

Every value is computed from an exit's logits, by the same function in a real early-exit run
(``BranchyNet.predict``) and in the cached simulation (``branchynet.evaluation.outputs``). The
entropies are the exit rule's (float32 softmax, as the paper's rule decides); ``max_prob`` and
``margin`` are computed in float64 from the logits, so that confident samples, whose float32
probabilities all round to 1, still rank apart.
"""
import weakref

import numpy

import chainer

from branchynet.model import exit_rule


class Measure:
    """One confidence measure: its per-exit ``values`` and its leave rule.

    ``values(logits, state)`` takes an exit's (N, C) logits and the state carried from the earlier
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

    def values(self, logits, state=None):
        if self.stateful:
            return self._values(logits, state)
        return self._values(logits), None

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


def entropy(z):
    """The paper's measure: softmax entropy (nats) of logits, float32 as the exit rule decides."""
    return exit_rule.entropy(exit_rule.softmax(z))


def normalized_entropy(z):
    """Entropy divided by ln C (C classes), in [0, 1]."""
    return entropy(z) / numpy.float32(numpy.log(z.shape[1]))


def _shifted_exp(z):
    """exp(z - max z) per row in float64, and its row sums (NaN rows stay NaN)."""
    z = z.astype(numpy.float64)
    e = chainer.backend.get_array_module(z).exp(z - z.max(axis=1, keepdims=True))
    return e, e.sum(axis=1)


def max_prob(z):
    """The largest class probability of each row, 1 / sum_c exp(z_c - max z), in float64."""
    return 1.0 / _shifted_exp(z)[1]


def margin(z):
    """The largest class probability minus the second largest, in float64."""
    xp = chainer.backend.get_array_module(z)
    e, total = _shifted_exp(z)
    second = xp.sort(e, axis=1)[:, -2] if z.shape[1] > 1 else xp.zeros(len(z))
    out = (1.0 - second) / total
    return xp.where(xp.isnan(z).any(axis=1), xp.nan, out)


def patience(z, state):
    """Consecutive exits agreeing on the label, the current one included; state: (label, run).
    A row with a non-finite logit has the value NaN (its argmax means nothing): it never leaves."""
    xp = chainer.backend.get_array_module(z)
    labels = z.argmax(axis=1)
    if state is None:
        run = xp.ones(len(z), dtype=numpy.int64)
    else:
        previous, previous_run = state
        run = xp.where(labels == previous, previous_run + 1, 1)
    values = xp.where(xp.isfinite(z).all(axis=1), run.astype(numpy.float64), xp.nan)
    return values, (labels, run)


MEASURES = {
    "entropy": Measure("entropy", True, entropy,
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
_FITTED = weakref.WeakValueDictionary()  # fitted measures (OpenMax) by their unique names


def register(measure):
    """Makes a fitted measure (``openmax.OpenMax``) known to ``get`` by its name while it lives:
    code given a name (``ExitOutputs.sweep``) finds it."""
    _FITTED[measure.name] = measure


def get(measure):
    """The ``Measure`` named ``measure`` (a Measure passes through). Unknown names: ValueError."""
    if isinstance(measure, Measure):
        return measure
    try:
        return MEASURES[measure] if measure in MEASURES else _FITTED[measure]
    except (KeyError, TypeError):
        raise ValueError("unknown confidence measure %r; known: %s"
                         % (measure, ", ".join(NAMES))) from None
