"""ExitOutputs against a plain-loop early-exit simulation on 3- and 4-exit caches (sweeps in
several chunks, every row field, empty and one-exit caches, refusals), written to kill the mutants
of ``outputs`` that the older tests let through (docs/mutation.md)."""
import math

import numpy
import pytest

import branchynet  # noqa: F401
from branchynet.evaluation.outputs import ExitOutputs, exit_logits_in_batches
from branchynet.model import measures


def _cache(k=3, n=30, c=4, seed=0):
    rng = numpy.random.RandomState(seed)
    logits = (rng.randn(k, n, c) * rng.uniform(0.2, 4, size=(k, n, 1))).astype(numpy.float32)
    return ExitOutputs(logits, rng.randint(0, c, size=n))


def _loops(cache, thresholds, name):
    """(exit, label) of every sample by plain loops, with the measure's own value and rule."""
    m = measures.get(name)
    out = []
    for i in range(cache.num_samples):
        state = None
        for k in range(cache.num_exits):
            values, state = m.values(cache.logits[k][i:i + 1], state)
            if k == cache.num_exits - 1 or m.leaves(values, thresholds[k])[0]:
                break
        out.append((k, int(numpy.argmax(cache.logits[k][i]))))
    return out


def _row_by_loops(cache, thresholds, name, costs):
    k, n = cache.num_exits, cache.num_samples
    sim = _loops(cache, thresholds, name)
    counts = [sum(e == j for e, _ in sim) for j in range(k)]
    right = [sum(e == j and lab == cache.labels[i] for i, (e, lab) in enumerate(sim)) for j in range(k)]
    return {"measure": name, "thresholds": list(thresholds), "n": n, "exit_counts": counts,
            "exit_fractions": [c / n for c in counts],
            "reach_fractions": [sum(counts[j:]) / n for j in range(k)],
            "correct": sum(right), "accuracy": sum(right) / n,
            "exit_accuracy": [r / c if c else None for r, c in zip(right, counts)],
            "cost": pytest.approx(sum(c * x for c, x in zip(counts, costs)) / n)}


@pytest.mark.parametrize("name", ["entropy", "max_prob", "patience"])
@pytest.mark.parametrize("k", [3, 4])
def test_sweep_simulate_and_evaluate_against_loops(name, k):
    cache = _cache(k=k, seed=k)
    costs = [1.0, 2.5, 4.0, 7.0][:k]
    rng = numpy.random.RandomState(1)
    if name == "patience":
        grid = [tuple(rng.choice([1.0, 2.0, 3.0], size=k - 1)) for _ in range(7)]
    else:
        values = cache.values(name)[:-1]
        grid = [tuple(rng.choice(values[j]) + (1e-9 if name == "entropy" else 0.0) for j in range(k - 1))
                for _ in range(7)]
    rows = cache.sweep(grid, name, costs, chunk=3)  # three chunks: 3, 3, 1
    assert len(rows) == 7
    for thresholds, row in zip(grid, rows):
        assert row == _row_by_loops(cache, thresholds, name, costs)
        labels, exits = cache.simulate(thresholds, name)
        assert list(zip(exits.tolist(), labels.tolist())) == _loops(cache, thresholds, name)
    assert cache.evaluate(grid[-1], name, costs) == rows[-1]
    assert len({tuple(r["exit_counts"]) for r in rows}) > 1  # the settings differ


def test_rows_without_labels_or_costs_and_a_scalar_threshold():
    cache = _cache()
    unlabelled = ExitOutputs(cache.logits)
    row = unlabelled.evaluate(0.8)
    assert row["thresholds"] == [0.8, 0.8] and "correct" not in row and "cost" not in row
    assert row["exit_counts"] == cache.evaluate([0.8, 0.8])["exit_counts"]
    with pytest.raises(ValueError, match="no labels"):
        unlabelled.correct()
    with pytest.raises(ValueError, match="expected 3 exit costs"):
        cache.evaluate(0.8, exit_costs=[1.0, 2.0])


def test_empty_and_one_exit_caches():
    empty = ExitOutputs(numpy.zeros((2, 0, 3), numpy.float32), numpy.zeros(0, int))
    row = empty.evaluate(0.5, exit_costs=[1.0, 2.0])
    assert row["exit_fractions"] == [0.0, 0.0] and row["reach_fractions"] == [0.0, 0.0]
    assert math.isnan(row["accuracy"]) and math.isnan(row["cost"])
    one = ExitOutputs(numpy.array([[[0.0, 1.0], [2.0, 0.0]]], numpy.float32), [1, 1])
    assert one.exit_index([]).tolist() == [[0, 0]]
    assert one.exit_accuracy() == [0.5]


def test_values_correct_subset_and_probs():
    cache = _cache(n=10)
    v = cache.values("margin")
    assert v.shape == (3, 10) and v.dtype == numpy.float64 and cache.values("margin") is v
    numpy.testing.assert_allclose(cache.entropies, numpy.stack([measures.entropy(z) for z in cache.logits]))
    assert cache.correct().tolist() == [[int(numpy.argmax(cache.logits[k, i])) == cache.labels[i]
                                         for i in range(10)] for k in range(3)]
    assert cache.exit_accuracy() == pytest.approx(cache.correct().mean(axis=1).tolist())
    part = cache.subset(numpy.array([7, 2]))
    assert part.num_samples == 2 and part.num_exits == 3
    assert part.labels.tolist() == cache.labels[[7, 2]].tolist()
    numpy.testing.assert_array_equal(part.logits, cache.logits[:, [7, 2]])
    assert ExitOutputs(cache.logits).subset(slice(0, 3)).labels is None
    numpy.testing.assert_allclose(cache.probs(1).sum(axis=1), 1.0, rtol=1e-6)


def test_refusals_name_what_to_fix():
    with pytest.raises(ValueError, match="one .samples, classes. array per exit"):
        ExitOutputs([numpy.zeros((3, 2)), numpy.zeros((4, 2))])
    with pytest.raises(ValueError, match="one .samples, classes. array per exit"):
        ExitOutputs([numpy.zeros(3)])
    with pytest.raises(ValueError, match="expected 3 labels, got shape"):
        ExitOutputs(numpy.zeros((2, 3, 2)), [0, 1])
    cache = _cache()
    shape = r"expected 2 thresholds per setting .one per non-final exit., got \(3,\)"
    with pytest.raises(ValueError, match=shape):
        cache.exit_index([[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match="NaN"):
        cache.exit_index([0.1, float("nan")])
    assert cache.exit_index(0.3).shape == (1, 30)
    assert cache.exit_index([[0.1, 0.2], [0.3, 0.4]]).shape == (2, 30)


class _FakeNet:
    """exit_logits of a 2-exit 'net': x itself and 2x, recording the batch sizes."""

    def __init__(self):
        self.batches = []

    def numexits(self):
        return 2

    def exit_logits(self, x):
        self.batches.append(len(x))
        return [x.copy(), 2 * x]


def test_exit_logits_in_batches_and_from_net():
    x = numpy.arange(14, dtype=numpy.float32).reshape(7, 2)
    net = _FakeNet()
    parts = exit_logits_in_batches(net, x, batchsize=3)
    assert net.batches == [3, 3, 1]
    numpy.testing.assert_array_equal(parts[0], x)
    numpy.testing.assert_array_equal(parts[1], 2 * x)
    cache = ExitOutputs.from_net(_FakeNet(), x, labels=numpy.ones(7, int), batchsize=4)
    assert cache.logits.shape == (2, 7, 2) and cache.correct().all()
