"""SoftExit's weights on a 3-exit chain against the module docstring's formula by plain loops,
and its defaults and names, written to kill the mutants that the older tests let through
(docs/mutation.md)."""
import math

import numpy
import pytest

import branchynet  # noqa: F401
from branchynet.model import sample_weights


def _expected(logits, alpha):
    """a_kn = (1 - alpha) + alpha q_kn / mean_n q_kn, q from the top probabilities, by loops."""
    k_exits, n = len(logits), len(logits[0])
    top = [[max(math.exp(v - max(row)) for v in row) / sum(math.exp(v - max(row)) for v in row)
            for row in logits[k].tolist()] for k in range(k_exits)]
    out = []
    for k in range(k_exits):
        q = []
        for i in range(n):
            reach = 1.0
            for j in range(k):
                reach *= 1 - top[j][i]
            q.append(reach * top[k][i] if k < k_exits - 1 else reach)
        mean = sum(q) / n
        out.append([(1 - alpha) + alpha * (qi / mean if mean > 0 else 1.0) for qi in q])
    return out


@pytest.mark.parametrize("alpha", [0.25, 1.0])
def test_weights_of_three_exits_against_the_formula(alpha):
    rng = numpy.random.RandomState(4)
    logits = (rng.randn(3, 8, 5) * 2).astype(numpy.float32)
    scheme = sample_weights.SoftExit(alpha)
    reach = scheme.start(8)
    assert reach.dtype == numpy.float32 and reach.tolist() == [1.0] * 8
    expected = _expected(logits, alpha)
    for k in range(3):
        a, reach = scheme.weights(logits[k], k, 3, reach)
        assert a.dtype == numpy.float32
        numpy.testing.assert_allclose(a, expected[k], rtol=1e-4)
        assert a.mean() == pytest.approx(1.0, rel=1e-5)  # the batch mean stays 1


def test_the_last_exit_keeps_its_reach_and_a_zero_reach_weighs_uniformly():
    scheme = sample_weights.SoftExit(1.0)
    reach = numpy.array([0.5, 0.25, 0.25], numpy.float32)
    a, after = scheme.weights(numpy.zeros((3, 4), numpy.float32), 2, 3, reach)
    numpy.testing.assert_allclose(a, [1.5, 0.75, 0.75])
    assert after is reach
    a, _ = scheme.weights(numpy.zeros((3, 4), numpy.float32), 2, 3, numpy.zeros(3, numpy.float32))
    assert a.tolist() == [1.0, 1.0, 1.0]
    assert scheme.select(numpy.array([1.0, 2.0, 3.0]), numpy.array([2, 0])).tolist() == [3.0, 1.0]


def test_names_defaults_and_refusals():
    default = sample_weights.SoftExit()
    assert default.alpha == 0.5 and repr(default) == "SoftExit(alpha=0.5)"
    assert default.describe() == {"scheme": "soft_exit", "alpha": 0.5}
    assert sample_weights.get("soft_exit").alpha == 0.5
    assert sample_weights.get("soft_exit:0.25").alpha == 0.25
    assert sample_weights.get(None) is None and sample_weights.get("none") is None
    assert sample_weights.get(default) is default
    assert sample_weights.SoftExit(0.0).alpha == 0.0 and sample_weights.SoftExit(1).alpha == 1.0
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError, match="alpha must be in"):
            sample_weights.SoftExit(bad)
    with pytest.raises(ValueError, match="unknown sample weighting 'hard'; known: soft_exit"):
        sample_weights.get("hard")
