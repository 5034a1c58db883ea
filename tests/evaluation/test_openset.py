"""Open-set evaluation against brute force: AUROC as a pairwise count, matched-cost accuracy as
the best of every threshold, leave fractions and OpenMax rejections counted by hand."""
import numpy
import pytest

from branchynet.evaluation import openset
from branchynet.evaluation.outputs import ExitOutputs
from branchynet.model import measures, openmax


def _pairwise_auroc(scores, positive):
    pos, neg = scores[positive], scores[~positive]
    pos = numpy.where(numpy.isnan(pos), -numpy.inf, pos)
    neg = numpy.where(numpy.isnan(neg), -numpy.inf, neg)
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_is_the_pairwise_count():
    rng = numpy.random.RandomState(0)
    for trial in range(20):
        n = rng.randint(2, 60)
        scores = rng.randint(0, 6, size=n).astype(float) if trial % 2 else rng.randn(n)
        if trial % 3 == 0:
            scores[rng.randint(n)] = numpy.nan
        positive = rng.rand(n) < 0.4
        positive[:2] = [True, False]
        assert openset.auroc(scores, positive) == pytest.approx(_pairwise_auroc(scores, positive),
                                                                abs=1e-12)
    assert openset.auroc([3, 2, 1], [True, False, False]) == 1.0
    assert openset.auroc([1, 1], [True, False]) == 0.5
    with pytest.raises(ValueError, match="needs known and unknown samples, got 2 and 0"):
        openset.auroc([1.0, 2.0], [True, True])


def _cache(seed=1, n=80, c=4, exits=2):
    rng = numpy.random.RandomState(seed)
    labels = rng.randint(0, c, size=n)
    signal = rng.uniform(0, 4, (exits, n, 1)) * numpy.arange(1, exits + 1)[:, None, None]
    logits = rng.randn(exits, n, c) * 2 + numpy.eye(c)[labels][None] * signal  # later exits better
    return ExitOutputs(logits.astype(numpy.float32), labels)


def test_entropy_scores_are_negated_and_aurocs_per_exit():
    cache = _cache()
    known = cache.labels < 2
    numpy.testing.assert_array_equal(openset.confidence(cache, "entropy"), -cache.values("entropy"))
    numpy.testing.assert_array_equal(openset.confidence(cache, "margin"), cache.values("margin"))
    got = openset.exit_aurocs(cache, "max_prob", known)
    assert got == [pytest.approx(_pairwise_auroc(cache.values("max_prob")[k], known)) for k in range(2)]


def test_matched_cost_is_the_best_threshold_within_the_budget():
    cache = _cache(n=60)
    known = cache.labels < 3
    costs = numpy.array([1.0, 3.0])
    sub = cache.subset(numpy.flatnonzero(known))
    for name in ("entropy", "max_prob", "margin"):
        candidates = measures.get(name).candidates(sub.values(name)[0])
        rows = [sub.evaluate((t,), name, costs) for t in candidates]
        for budget, row in zip((0.5, 1.6, 2.2, 3.0), openset.matched_cost(cache, name, known, costs,
                                                                          (0.5, 1.6, 2.2, 3.0))):
            feasible = [r["correct"] for r in rows if r["cost"] <= budget + 1e-12]
            if not feasible:
                assert row is None
                continue
            assert row["accuracy"] * len(sub.labels) == pytest.approx(max(feasible))
            assert row["cost"] <= budget + 1e-12
            exits = cache.simulate(row["thresholds"], name)[1]
            assert row["leave_fractions"]["unknown"][0] == pytest.approx((exits[~known] == 0).mean())
            assert row["leave_fractions"]["known"][1] == pytest.approx((exits[known] == 1).mean())


def test_openmax_rejections_and_report():
    cache = _cache(n=120, c=3)
    known = cache.labels < 2
    fitted = openmax.fit(cache.subset(numpy.flatnonzero(known)).logits, cache.labels[known],
                         tailsize=10, alpharank=2, columns=[0, 1])
    got = openset.openmax_rejections(cache, fitted, known)
    for k in range(2):
        p = fitted.probabilities(cache.logits[k], k)
        assert got["unknown"][k] == pytest.approx(numpy.mean(p[~known].argmax(axis=1) == 2))
        assert got["known"][k] == pytest.approx(numpy.mean(p[known].argmax(axis=1) == 2))
    out = openset.report(cache, known, {"OpenMax": fitted, "entropy": "entropy"}, [1.0, 2.0], (1.5,))
    assert set(out) == {"OpenMax", "entropy"}
    assert out["OpenMax"]["auroc"] == openset.exit_aurocs(cache, fitted, known)
    assert out["entropy"]["matched"][0]["cost"] <= 1.5
