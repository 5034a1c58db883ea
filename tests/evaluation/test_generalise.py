"""Selection rules that generalise: on a synthetic population where the exact search's pick at the
baseline's validation accuracy falls below the baseline on new data, the cross-validated margin and
the bootstrap lower bound hold it; both are deterministic and refuse bad input clearly."""
import numpy
import pytest

import branchynet  # noqa: F401
from branchynet.evaluation import frontier, generalise, selection
from tests.evaluation.synthetic import outputs_of_probs


def population(n, seed):
    """Two exits, 3 classes. Exit 1's top probability p ~ U(0.4, 1); it is right with probability
    0.98 where p >= 0.9 and 0.72 elsewhere; exit 2 and the baseline are the same, right with
    probability 0.8. Letting out the samples with p >= T gains 3 points at T = 0.9 and loses
    accuracy below T = 0.62: on a small sample, the cheapest setting that reaches the baseline
    often lies there by chance."""
    rng = numpy.random.RandomState(seed)
    labels = rng.randint(0, 3, size=n)
    p = rng.uniform(0.4, 1.0, size=n)
    right1 = rng.rand(n) < numpy.where(p >= 0.9, 0.98, 0.72)
    guess1 = numpy.where(right1, labels, (labels + rng.randint(1, 3, size=n)) % 3)
    right2 = rng.rand(n) < 0.8
    guess2 = numpy.where(right2, labels, (labels + 1) % 3)
    probs = numpy.zeros((2, n, 3))
    probs[0] = ((1 - p) / 2)[:, None]
    probs[0, numpy.arange(n), guess1] = p
    probs[1] = 0.1
    probs[1, numpy.arange(n), guess2] = 0.8
    return outputs_of_probs(probs, labels), right2


COSTS = numpy.array([1.0, 3.0])


def _test_gains(seed, test, test_base):
    """Each rule's pick fitted on a 400-sample validation set: test accuracy minus the baseline's
    (None where the rule has no pick)."""
    val, val_base = population(400, seed)
    front = frontier.exact_frontier(val, "max_prob", COSTS)
    picks = {"exact": lambda: selection.fastest_within(front, val_base.mean(), 0.0),
             "cv": lambda: generalise.cv_margin(val, front, val_base, seed=seed)[0],
             "bootstrap": lambda: generalise.bootstrap_fastest(val, front, val_base, resamples=400,
                                                               seed=seed)[0]}
    gains = {}
    for rule, pick in picks.items():
        try:
            i = pick()
        except selection.Infeasible:
            gains[rule] = None
            continue
        gains[rule] = test.evaluate(front.thresholds[i], "max_prob")["accuracy"] - test_base.mean()
    return gains


def test_the_exact_search_overfits_where_the_bootstrap_bound_does_not():
    test, test_base = population(200000, 1000)  # new data: the population's accuracies to 0.1 pp
    runs = [_test_gains(seed, test, test_base) for seed in range(16)]
    gains = {rule: [g[rule] for g in runs if g[rule] is not None] for rule in runs[0]}
    assert len(gains["exact"]) == 16 and len(gains["bootstrap"]) >= 14
    mean = {rule: numpy.mean(v) for rule, v in gains.items()}
    held = {rule: numpy.mean(numpy.array(v) >= -0.001) for rule, v in gains.items()}
    assert mean["exact"] < -0.005 and held["exact"] <= 0.5  # the winner's curse
    assert mean["bootstrap"] > 0.005 and held["bootstrap"] >= 0.85
    # cross-validation inside 400 samples (folds of 80) is noisy: better than exact, not safe
    assert mean["exact"] < mean["cv"] < mean["bootstrap"]


def test_the_rules_are_deterministic_and_hold_their_constraint_on_the_fitted_data():
    val, base = population(1500, 3)
    front = frontier.exact_frontier(val, "max_prob", COSTS)
    first = generalise.cv_margin(val, front, base, seed=5)
    again = generalise.cv_margin(val, front, base, seed=5)
    assert first[:2] == again[:2] and numpy.array_equal(first[2], again[2], equal_nan=True)
    i, margin, mean = first
    assert front.accuracies[i] >= base.mean() + margin - 1e-12
    assert mean[list(generalise.MARGINS).index(margin)] >= 0
    assert all(not m >= 0 for m in mean[:list(generalise.MARGINS).index(margin)])
    j, lower = generalise.bootstrap_fastest(val, front, base, resamples=300, seed=5)
    assert (j, lower) == generalise.bootstrap_fastest(val, front, base, resamples=300, seed=5)
    assert lower >= 0 and front.accuracies[j] >= base.mean()
    # the bound by brute force: resample indices, recount
    rng = numpy.random.RandomState(0)
    right = generalise.settings_right(val, front.thresholds[j:j + 1], "max_prob")[0]
    diffs = [right[s].mean() - base[s].mean()
             for s in (rng.randint(0, 1500, 1500) for _ in range(2000))]
    assert numpy.quantile(diffs, 0.05) == pytest.approx(lower, abs=0.003)
    cheaper = front.costs < front.costs[j]  # every cheaper setting's bound falls short
    right = generalise.settings_right(val, front.thresholds[cheaper], "max_prob")
    assert all(numpy.quantile([(r[s].astype(float) - base[s]).mean() for s in samples], 0.05) < 0
               for r, samples in zip(right[:5], [[rng.randint(0, 1500, 1500) for _ in range(500)]] * 5))


def test_held_out_gains_by_hand():
    val, base = population(600, 4)
    gains = generalise.held_out_gains(val, "max_prob", COSTS, base, margins=(0.0, 0.01), k=3, seed=2)
    for i, held in enumerate(generalise.folds(600, 3, seed=2)):
        fit = numpy.setdiff1d(numpy.arange(600), held)
        front = frontier.exact_frontier(val.subset(fit), "max_prob", COSTS)
        for j, margin in enumerate((0.0, 0.01)):
            ok = front.correct >= (base[fit].mean() + margin) * len(fit) - 1e-9
            p = numpy.flatnonzero(ok)[numpy.argmin(front.costs[ok])]
            _, exits = val.subset(held).simulate(front.thresholds[p], "max_prob")
            right = val.subset(held).correct()[exits, numpy.arange(len(held))]
            assert gains[i, j] == pytest.approx(right.mean() - base[held].mean())


def test_bad_input_is_a_clear_error():
    val, base = population(200, 0)
    front = frontier.exact_frontier(val, "max_prob", COSTS)
    with pytest.raises(ValueError, match="baseline_right must be a \\(200,\\) bool array"):
        generalise.cv_margin(val, front, base[:10])
    with pytest.raises(ValueError, match="baseline_right must be"):
        generalise.bootstrap_fastest(val, front, base.astype(int))
    with pytest.raises(ValueError, match="level must be"):
        generalise.bootstrap_fastest(val, front, base, level=1.0)
    with pytest.raises(ValueError, match="k must be between 2"):
        generalise.folds(5, 1)
    everything = numpy.ones(200, dtype=bool)  # a baseline no setting can match with a margin
    with pytest.raises(selection.Infeasible, match="lower bound"):
        generalise.bootstrap_fastest(val, front, everything, resamples=50)
