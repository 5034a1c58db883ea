"""Confidence measures against plain-loop values, and their threshold candidates against brute
force, written to kill the mutants of ``measures`` that the older tests let through
(docs/mutation.md)."""
import math

import numpy
import pytest

import branchynet  # noqa: F401
from branchynet.model import measures


def _probs_loops(row):
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return sorted((e / sum(exps) for e in exps), reverse=True)


def test_values_against_loops():
    rng = numpy.random.RandomState(3)
    z = (rng.randn(25, 6) * 4).astype(numpy.float32)
    rows = [_probs_loops(r) for r in z.tolist()]
    numpy.testing.assert_allclose(measures.max_prob(z), [p[0] for p in rows], rtol=1e-12)
    numpy.testing.assert_allclose(measures.margin(z), [p[0] - p[1] for p in rows], rtol=1e-9, atol=1e-15)
    h = [-sum(q * math.log(q) for q in p if q > 0) for p in rows]
    numpy.testing.assert_allclose(measures.entropy(z), h, rtol=1e-4, atol=1e-6)
    numpy.testing.assert_allclose(measures.normalized_entropy(z), numpy.array(h) / math.log(6),
                                  rtol=1e-4, atol=1e-6)
    assert measures.max_prob(z).dtype == numpy.float64 and measures.margin(z).dtype == numpy.float64


def test_margin_of_one_class_and_non_finite_rows():
    one = numpy.array([[3.0], [-1.0]], numpy.float32)
    numpy.testing.assert_array_equal(measures.margin(one), [1.0, 1.0])  # no second class: p_(2) = 0
    z = numpy.array([[1.0, numpy.nan, 0.0], [numpy.inf, 0.0, 0.0], [2.0, 2.0, 0.0]], numpy.float32)
    with numpy.errstate(invalid="ignore"):
        m = measures.margin(z)
    assert math.isnan(m[0]) and m[2] == 0.0


def test_patience_with_a_non_finite_logit_never_leaves():
    patience = measures.get("patience")
    z = numpy.array([[5.0, 0.0], [numpy.inf, 0.0], [0.0, -numpy.inf], [numpy.nan, 1.0]], numpy.float32)
    values, state = patience.values(z)
    assert values[0] == 1.0 and numpy.isnan(values[1:]).all()
    values, _ = patience.values(z, state)
    assert values[0] == 2.0 and not patience.leaves(values, 1.0)[1:].any()


def test_measure_object_and_its_leave_rules():
    for name in measures.NAMES:
        m = measures.get(name)
        assert repr(m) == "Measure(%r)" % name and measures.get(m) is m
    v = numpy.array([0.1, 0.5, 0.9, numpy.nan])
    assert measures.get("entropy").leaves(v, 0.5).tolist() == [True, False, False, False]
    assert measures.get("max_prob").leaves(v, 0.5).tolist() == [False, True, True, False]
    values, state = measures.get("max_prob").values(numpy.zeros((2, 4), numpy.float32))
    assert state is None and values.tolist() == [0.25, 0.25]
    assert measures.Measure.select(None, [0]) is None
    a, b = measures.Measure.select((numpy.arange(4), numpy.arange(4) * 10), numpy.array([1, 3]))
    assert a.tolist() == [1, 3] and b.tolist() == [10, 30]


@pytest.mark.parametrize("name", ["entropy", "max_prob"])
def test_candidates_realise_every_set_of_leavers_by_brute_force(name):
    m = measures.get(name)
    values = numpy.array([0.3, 0.1, 0.3, 0.7, numpy.nan, 0.2])
    cands = m.candidates(values)
    numpy.testing.assert_allclose(cands, [0.1 - 1.0, 0.15, 0.25, 0.5, 0.7 + 1.0])
    realised = {tuple(m.leaves(values, t).tolist()) for t in cands}
    every = {tuple(m.leaves(values, t).tolist()) for t in numpy.linspace(-2, 2, 4001)}
    assert realised == every and len(realised) == 5
    for t in cands[1:-1]:  # a midpoint: values a few ulp off still decide alike
        assert (m.leaves(values, t) == m.leaves(values * (1 + 1e-12), t)).all()


def test_candidates_of_one_value_and_of_no_finite_value():
    m = measures.get("margin")
    numpy.testing.assert_array_equal(m.candidates([0.4, 0.4]), [0.4 - 1.0, 0.4 + 1.0])
    numpy.testing.assert_array_equal(m.candidates([numpy.nan, numpy.inf]), [0.0])
    numpy.testing.assert_array_equal(m.candidates([0.2, numpy.inf]), [0.2 - 1.0, 0.2 + 1.0])
