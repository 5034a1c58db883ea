"""The report's sections from cached outputs (no net): a measure's section holds the exact
search's picks and those that generalise, each fitted on val and evaluated on test, typed; the
report's rendering shows them with the split of every cost."""
import numpy

import branchynet  # noqa: F401
from branchynet.evaluation import beyond, frontier, generalise, selection
from branchynet.evaluation.beyond_report import MeasureSection, Pick
from tests.evaluation.test_generalise import COSTS, population


def test_a_measure_section_holds_the_picks_of_every_rule():
    val, base_val = population(800, 1)
    test, _ = population(3000, 2)
    section, front = beyond.measure_section(val, test, "max_prob", COSTS, 3.0, base_val.mean(),
                                            base_val)
    assert isinstance(section, MeasureSection) and section.measure == "max_prob"
    assert all(isinstance(p, Pick) for p in section.fastest_within + section.generalising)
    exact = section.fastest_within[0]
    i = selection.fastest_within(front, base_val.mean(), 0.0)
    assert exact.thresholds == front.thresholds[i].tolist() and exact.val_cost == front.costs[i]
    cv, boot = section.generalising
    j, margin, _ = generalise.cv_margin(val, front, base_val)
    assert (cv.margin, cv.thresholds, cv.val_accuracy) == (margin, front.thresholds[j].tolist(),
                                                           front.accuracies[j])
    k, lower = generalise.bootstrap_fastest(val, front, base_val)
    assert (boot.lower_bound, boot.thresholds) == (lower, front.thresholds[k].tolist())
    row = test.evaluate(front.thresholds[k], "max_prob", COSTS)  # the test numbers are test's
    assert (boot.accuracy, boot.cost) == (row["accuracy"], row["cost"])
    assert boot.val_cost == front.costs[k] and boot.cost != boot.val_cost
    # no baseline answers: no rules that generalise
    assert beyond.measure_section(val, test, "max_prob", COSTS, 3.0, base_val.mean())[0].generalising == []


def test_an_infeasible_rule_is_reported_not_raised():
    val, _ = population(300, 3)
    test, _ = population(300, 4)
    front = frontier.exact_frontier(val, "max_prob", COSTS)
    picks = beyond.generalising(front, val, test, numpy.ones(300, dtype=bool))
    assert picks[1].infeasible and "lower bound" in picks[1].infeasible and picks[1].accuracy is None
