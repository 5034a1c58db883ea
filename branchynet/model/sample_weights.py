"""Sample-dependent loss weights for joint training (the slides' future work).

The paper's joint loss is sum_k w_k L_k with fixed per-exit weights w_k and each L_k the mean
cross-entropy over the batch. A sample-dependent scheme replaces the mean at exit k by a weighted
mean, sum_n a_kn CE_kn / N, with per-sample weights a_kn computed from the network's own (detached)
outputs, so that the per-exit weights w_k still set each exit's share.

``SoftExit`` (the scheme implemented here): treat each exit's largest softmax probability s_kn as
the chance that sample n would leave there. The chance that it leaves at exit k is then
q_kn = s_kn prod_{j<k} (1 - s_jn) for the non-final exits, and prod_{j<K-1} (1 - s_jn) at the last:
easy samples (confident early) weigh most at the early exits, hard ones at the later exits. The
weight mixes that with a uniform weight and keeps the batch mean at 1:

    a_kn = (1 - alpha) + alpha * q_kn / mean_n q_kn.

alpha = 0 is the paper's loss exactly; alpha = 1 is the pure soft-exit weighting. No gradient flows
through the weights. Used as ``BranchyNet(..., loss=JointLoss(sample_weighting=SoftExit(0.5)))``
or by setting ``net.loss.sample_weighting``; ``JointLoss.exit_losses`` calls ``start`` once per
batch and ``weights`` once per exit, in order.
"""
import numpy

import chainer

from branchynet.model import exit_rule


class SoftExit:
    """Per-sample weights from the soft probability of leaving at each exit (module docstring)."""

    def __init__(self, alpha=0.5):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError("alpha must be in [0, 1], got %r" % (alpha,))
        self.alpha = float(alpha)

    def __repr__(self):
        return "SoftExit(alpha=%g)" % self.alpha

    def describe(self):
        return {"scheme": "soft_exit", "alpha": self.alpha}

    def start(self, n, xp=numpy):
        """The state at the first exit: every sample still fully in flight."""
        return xp.ones(n, dtype=numpy.float32)

    def weights(self, logits, k, num_exits, reach):
        """(weights (N,), state for exit k + 1) from exit k's logits (an array, no graph) and
        ``reach`` (prod_{j<k} (1 - s_j), per sample)."""
        xp = chainer.backend.get_array_module(logits)
        if k == num_exits - 1:
            leave = reach
            next_reach = reach
        else:
            s = exit_rule.softmax(logits).max(axis=1).astype(numpy.float32)
            leave = reach * s
            next_reach = reach * (1 - s)
        mean = leave.mean()
        ratio = leave / mean if float(mean) > 0 else xp.ones_like(leave)
        a = (1 - self.alpha) + self.alpha * ratio
        return a.astype(numpy.float32), next_reach

    @staticmethod
    def select(reach, index):
        return reach[index]


SCHEMES = {"soft_exit": SoftExit}


def get(spec):
    """A weighting from a name ("soft_exit"), "name:alpha", a scheme object, or None (fixed)."""
    if spec is None or spec == "none":
        return None
    if not isinstance(spec, str):
        return spec
    name, _, alpha = spec.partition(":")
    if name not in SCHEMES:
        raise ValueError("unknown sample weighting %r; known: %s" % (spec, ", ".join(SCHEMES)))
    return SCHEMES[name](float(alpha)) if alpha else SCHEMES[name]()
