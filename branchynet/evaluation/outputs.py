"""Every exit's logits on a set of samples, from one batched pass; any measure's early exit from them.

A sample's confidence value at exit k depends only on the logits of exits 0..k, never on the
thresholds, so one pass through every exit (``exit_logits_in_batches``) gives, for any measure and
any thresholds, the exits and labels a real early-exit run gives (``BranchyNet.predict`` with the
same ``measure``): every value is computed here by the measure's own function on the logits the
net gave (``branchynet.model.measures``), the function ``predict`` calls, which the tests hold equal.
"""
import numpy

import chainer

from branchynet.model import exit_rule, inputs, measures
from branchynet.progress import ProgressBar


def exit_logits_in_batches(net, x, batchsize=1000, progress=None, desc="all exits"):
    """``net.exit_logits`` of ``x``, ``batchsize`` samples at a time: K host (N, C) arrays."""
    parts = []
    with ProgressBar(len(x), desc, enabled=progress) as bar:
        for start in range(0, len(x), batchsize):
            parts.append(net.exit_logits(x[start:start + batchsize]))
            bar.update(len(parts[-1][0]))
    return [numpy.concatenate([p[k] for p in parts]) for k in range(net.numexits())]


def _as_grid(thresholds, num_exits):
    """(G, K-1) float64 threshold tuples from one tuple, a scalar or a (G, K-1) array."""
    grid = numpy.asarray(thresholds, dtype=numpy.float64)
    if grid.ndim == 0:
        grid = numpy.full((1, num_exits - 1), float(grid))
    elif grid.ndim == 1:
        grid = grid.reshape(1, -1)
    if grid.ndim != 2 or grid.shape[1] != num_exits - 1:
        raise ValueError("expected %d thresholds per setting (one per non-final exit), got %s"
                         % (num_exits - 1, grid.shape[1:] or grid.shape))
    if numpy.isnan(grid).any():
        raise ValueError("thresholds must not be NaN")
    return grid


class ExitOutputs:
    """Every exit's logits on a set of samples (one pass), with their labels if known.

    Args:
        logits: (K, N, C) array (or a list of K (N, C) arrays, host or device): exit k's logits
            of sample n, as the net gave them (float32).
        labels: (N,) true labels, or None (then no accuracies).
    """

    def __init__(self, logits, labels=None):
        logits = [numpy.asarray(chainer.backend.CpuDevice().send(z)) for z in logits]
        if not logits or any(z.ndim != 2 for z in logits) or len({z.shape for z in logits}) != 1:
            raise ValueError("logits must be one (samples, classes) array per exit, got %s"
                             % [getattr(z, "shape", None) for z in logits])
        self.logits = numpy.stack(logits)
        self.labels = None if labels is None else numpy.asarray(labels)
        if self.labels is not None and self.labels.shape != (self.num_samples,):
            raise ValueError("expected %d labels, got shape %s"
                             % (self.num_samples, self.labels.shape))
        if self.labels is not None:  # a label past the last class would count as a silent error
            inputs.check_labels(self.labels, self.logits.shape[2])
        self.predictions = self.logits.argmax(axis=2)
        self._values = {}

    @property
    def num_exits(self):
        return self.logits.shape[0]

    @property
    def num_samples(self):
        return self.logits.shape[1]

    @classmethod
    def from_net(cls, net, x, labels=None, batchsize=1000, progress=None, desc="all exits"):
        """Runs ``x`` once through every exit of ``net`` (inference mode), ``batchsize`` at a time."""
        return cls(exit_logits_in_batches(net, x, batchsize, progress, desc), labels)

    def subset(self, index):
        """The outputs of some samples only (a slice or an index array)."""
        return ExitOutputs(self.logits[:, index], None if self.labels is None else self.labels[index])

    def probs(self, k):
        """Exit k's softmax, (N, C) float32, as ``BranchyNet.exit_probs`` gives it."""
        return exit_rule.softmax(self.logits[k])

    def values(self, measure="entropy"):
        """(K, N) float64 values of ``measure`` at every exit (cached)."""
        m = measures.get(measure)
        if m.name not in self._values:
            state, rows = None, []
            for k in range(self.num_exits):
                v, state = m.values(self.logits[k], state)
                rows.append(numpy.asarray(v, dtype=numpy.float64))
            self._values[m.name] = numpy.stack(rows)
        return self._values[m.name]

    @property
    def entropies(self):
        """(K, N) softmax entropies in nats, the paper's measure."""
        return self.values("entropy")

    def correct(self):
        """(K, N) bool: exit k's prediction of sample n is right."""
        if self.labels is None:
            raise ValueError("no labels: pass labels= to compute accuracies")
        return self.predictions == self.labels[None, :]

    def exit_accuracy(self):
        """Accuracy of every exit on every sample (no early exit), a list of K fractions."""
        return self.correct().mean(axis=1).tolist()

    def exit_index(self, thresholds, measure="entropy"):
        """(G, N) exit of every sample under each of G threshold tuples ((G, K-1) array, or one
        tuple or scalar, giving (1, N))."""
        m = measures.get(measure)
        k = self.num_exits
        grid = _as_grid(thresholds, k)
        if k == 1:
            return numpy.zeros((len(grid), self.num_samples), dtype=numpy.int64)
        leave = m.leaves(self.values(m)[None, :k - 1, :], grid[:, :, None])
        return numpy.where(leave.any(axis=1), leave.argmax(axis=1), k - 1)

    def simulate(self, thresholds, measure="entropy"):
        """(labels, exits) that early exit with these thresholds gives, as ``BranchyNet.predict``."""
        exits = self.exit_index(exit_rule.as_thresholds(thresholds, self.num_exits), measure)[0]
        return self.predictions[exits, numpy.arange(self.num_samples)], exits

    def evaluate(self, thresholds, measure="entropy", exit_costs=None):
        """One row (see ``sweep``) for one threshold tuple (or a scalar, broadcast to every exit)."""
        t = exit_rule.as_thresholds(thresholds, self.num_exits)
        return self.sweep([t], measure, exit_costs)[0]

    def sweep(self, grid, measure="entropy", exit_costs=None, chunk=64):
        """One row per threshold tuple of ``grid``: a dict with ``measure``, ``thresholds``, ``n``,
        ``exit_counts``, ``exit_fractions`` and ``reach_fractions`` (the fraction of samples that
        get to exit k, i.e. leave at k or later); with labels also ``correct``, ``accuracy`` (a
        fraction) and ``exit_accuracy`` (per exit, None where nobody left); with ``exit_costs``
        (the cumulative cost of leaving at each exit, ``costs.exit_costs``) the mean ``cost``."""
        name = measures.get(measure).name
        k = self.num_exits
        grid = [tuple(float(v) for v in numpy.atleast_1d(t)) for t in grid]
        correct = None if self.labels is None else self.correct()
        cost = None if exit_costs is None else numpy.asarray(exit_costs, dtype=numpy.float64)
        rows = []
        for start in range(0, len(grid), chunk):
            block = grid[start:start + chunk]
            index = self.exit_index(numpy.array(block).reshape(len(block), k - 1), name)
            onehot = index[:, None, :] == numpy.arange(k)[None, :, None]  # (G, K, N)
            counts = onehot.sum(axis=2)
            if correct is not None:
                per_exit_correct = (onehot & correct[None, :, :]).sum(axis=2)
            for g, thresholds in enumerate(block):
                rows.append(self._row(name, thresholds, counts[g],
                                      None if correct is None else per_exit_correct[g], cost))
        return rows

    def _row(self, name, thresholds, counts, right, cost):
        k, n = self.num_exits, self.num_samples
        row = {"measure": name, "thresholds": list(thresholds), "n": n,
               "exit_counts": counts.tolist(),
               "exit_fractions": (counts / n).tolist() if n else [0.0] * k,
               "reach_fractions": (counts[::-1].cumsum()[::-1] / n).tolist() if n else [0.0] * k}
        if right is not None:
            row["correct"] = int(right.sum())
            row["accuracy"] = row["correct"] / n if n else float("nan")
            row["exit_accuracy"] = [float(r / m) if m else None for r, m in zip(right, counts)]
        if cost is not None:
            if cost.shape != (k,):
                raise ValueError("expected %d exit costs, got %s" % (k, cost.shape))
            row["cost"] = float(counts @ cost / n) if n else float("nan")
        return row
