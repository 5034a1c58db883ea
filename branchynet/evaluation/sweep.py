"""Exact threshold sweeps, the accuracy/runtime frontier, its knee, and threshold selection.

The original re-ran all 10,000 test samples one at a time for every threshold configuration
(docs/original.md, B10). Here the set runs once through every exit (``BranchyNet.exit_probs``); each exit's
entropies and predicted labels are kept, and any threshold tuple is then evaluated analytically
with the network's own exit rule (``branchynet.model.exit_rule``): a sample leaves at the first exit k
whose entropy is strictly below T_k, else at the last exit. Accuracy and exit counts are exactly
those of a real early-exit run (``BranchyNet.predict``), which the tests and the experiment scripts
check. Runtimes come from per-exit timings (``branchynet.evaluation.timing``).
"""
import itertools

import numpy

import chainer

from branchynet.model import exit_rule
from branchynet.reporting import paper
from branchynet.progress import ProgressBar

def threshold_grid(lists):
    """The Cartesian product of per-exit threshold lists, as a list of float tuples; the first
    exit's threshold varies slowest."""
    return [tuple(float(v) for v in combo) for combo in itertools.product(*lists)]


def paper_grid(family, num_exits):
    """The original's sweep for a network of the paper's ``family`` ("lenet", "alexnet",
    "resnet110"; ``networks.family_of`` names a registered network's): the family's list for each
    non-final exit."""
    values = paper.THRESHOLD_LISTS[family]
    return threshold_grid([values] * (num_exits - 1))


def exit_probs_in_batches(net, x, batchsize=1000, progress=None, desc="all exits"):
    """``net.exit_probs`` of ``x``, ``batchsize`` samples at a time: K host (N, C) arrays."""
    parts = []
    with ProgressBar(len(x), desc, enabled=progress) as bar:
        for start in range(0, len(x), batchsize):
            parts.append(net.exit_probs(x[start:start + batchsize]))
            bar.update(len(parts[-1][0]))
    return [numpy.concatenate([p[k] for p in parts]) for k in range(net.numexits())]


class ExitOutputs:
    """Per-exit entropies and predicted labels of a set of samples, every exit on every sample.

    Args:
        entropies: (K, N) array, exit k's softmax entropy (nats) of sample n.
        predictions: (K, N) int array, exit k's predicted label of sample n.
        labels: (N,) int array of true labels (needed for accuracies), or None.
    """

    def __init__(self, entropies, predictions, labels=None):
        self.entropies = numpy.asarray(entropies)
        self.predictions = numpy.asarray(predictions)
        if self.entropies.ndim != 2 or self.entropies.shape != self.predictions.shape:
            raise ValueError("entropies and predictions must both be (exits, samples) arrays, got "
                             "%s and %s" % (self.entropies.shape, self.predictions.shape))
        self.labels = None if labels is None else numpy.asarray(labels)
        if self.labels is not None and self.labels.shape != (self.num_samples,):
            raise ValueError("expected %d labels, got shape %s" % (self.num_samples, self.labels.shape))

    @property
    def num_exits(self):
        return self.entropies.shape[0]

    @property
    def num_samples(self):
        return self.entropies.shape[1]

    @classmethod
    def from_probs(cls, probs, labels=None):
        """From a list of K (N, C) softmax arrays (what ``BranchyNet.exit_probs`` returns; device
        arrays are brought to the host first)."""
        probs = [chainer.backend.CpuDevice().send(p) for p in probs]
        entropies = numpy.stack([exit_rule.entropy(p) for p in probs])
        predictions = numpy.stack([p.argmax(axis=1) for p in probs])
        return cls(entropies, predictions, labels)

    @classmethod
    def from_net(cls, net, x, labels=None, batchsize=1000, progress=None, desc="all exits"):
        """Runs ``x`` once through every exit of ``net`` (inference mode), ``batchsize`` at a time."""
        return cls.from_probs(exit_probs_in_batches(net, x, batchsize, progress, desc), labels)

    def subset(self, index):
        """The outputs of some samples only (a slice or an index array)."""
        return ExitOutputs(self.entropies[:, index], self.predictions[:, index],
                           None if self.labels is None else self.labels[index])

    def exit_index(self, grid):
        """(G, N) exit index of every sample under each of G threshold tuples (a (G, K-1) array
        or one tuple, giving (1, N))."""
        grid = numpy.asarray(grid, dtype=numpy.float64)
        k = self.num_exits
        if grid.ndim == 1:
            grid = grid[None, :] if k > 1 else grid.reshape(1, 0)
        if grid.shape[1] != k - 1:
            raise ValueError("expected %d thresholds per configuration (one per non-final exit), "
                             "got %d" % (k - 1, grid.shape[1]))
        if numpy.isnan(grid).any():
            raise ValueError("thresholds must not be NaN")
        if k == 1:
            return numpy.zeros((len(grid), self.num_samples), dtype=numpy.int64)
        leave = exit_rule.exits_here(self.entropies[None, :k - 1, :], grid[:, :, None])
        return numpy.where(leave.any(axis=1), leave.argmax(axis=1), k - 1)

    def evaluate(self, thresholds):
        """One row (see ``sweep``) for one threshold tuple (or scalar, broadcast to every exit)."""
        return self.sweep([exit_rule.as_thresholds(thresholds, self.num_exits)])[0]

    def sweep(self, grid, chunk=64):
        """One row per threshold tuple of ``grid``: a dict with ``thresholds``, ``n``,
        ``exit_counts``, ``exit_fractions`` and ``reach_fractions`` (the fraction of samples that
        get to exit k, i.e. leave at k or later), and with labels also ``correct``, ``accuracy``
        (a fraction) and ``exit_accuracy`` (per exit, None where nobody left)."""
        grid = [tuple(float(v) for v in numpy.atleast_1d(t)) for t in grid]
        k, n = self.num_exits, self.num_samples
        correct = None if self.labels is None else self.predictions == self.labels[None, :]
        rows = []
        for start in range(0, len(grid), chunk):
            block = grid[start:start + chunk]
            index = self.exit_index(numpy.array(block).reshape(len(block), k - 1))
            onehot = index[:, None, :] == numpy.arange(k)[None, :, None]  # (G, K, N)
            counts = onehot.sum(axis=2)
            if correct is not None:
                per_exit_correct = (onehot & correct[None, :, :]).sum(axis=2)
            for g, thresholds in enumerate(block):
                c = counts[g]
                row = {"thresholds": list(thresholds), "n": n, "exit_counts": c.tolist(),
                       "exit_fractions": (c / n).tolist() if n else [0.0] * k,
                       "reach_fractions": (c[::-1].cumsum()[::-1] / n).tolist() if n else [0.0] * k}
                if correct is not None:
                    right = per_exit_correct[g]
                    row["correct"] = int(right.sum())
                    row["accuracy"] = row["correct"] / n if n else float("nan")
                    row["exit_accuracy"] = [float(r / m) if m else None for r, m in zip(right, c)]
                rows.append(row)
        return rows

    def exit_accuracy(self):
        """Accuracy of every exit on every sample (no early exit), a list of K fractions."""
        return (self.predictions == self.labels[None, :]).mean(axis=1).tolist()


def frontier(times, accuracies, inc_amt=paper.INC_AMT):
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


def choose(rows, time_key, baseline_accuracy, inc_amt=paper.INC_AMT):
    """Frontier and knee of sweep rows by one runtime column: {"frontier": [...], "knee": i}."""
    times = [row[time_key] for row in rows]
    accs = [row["accuracy"] for row in rows]
    front = frontier(times, accs, inc_amt)
    return {"time_key": time_key, "frontier": front,
            "knee": knee(times, accs, front, baseline_accuracy)}


def select_on_validation(val_rows, test_rows, time_key, val_baseline_accuracy, inc_amt=paper.INC_AMT):
    """Threshold selection on the held-out validation split, applied unchanged to the test set.

    ``val_rows`` and ``test_rows`` are sweeps of the same grid (same order) on the two sets, each
    with its own ``time_key`` column. The knee is chosen on validation (frontier, knee rule and
    the baseline's validation accuracy); its thresholds' test row is returned as ``test_row``.
    """
    if [r["thresholds"] for r in val_rows] != [r["thresholds"] for r in test_rows]:
        raise ValueError("validation and test sweeps must cover the same grid in the same order")
    chosen = choose(val_rows, time_key, val_baseline_accuracy, inc_amt)
    chosen["val_row"] = val_rows[chosen["knee"]]
    chosen["test_row"] = test_rows[chosen["knee"]]
    chosen["thresholds"] = val_rows[chosen["knee"]]["thresholds"]
    return chosen
