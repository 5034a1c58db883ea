"""The exit rule's batch-1 decision (exit_rule.leaves_one) against the batched float32 rule."""
import numpy as np

import branchynet  # noqa: F401  (compatibility shims before chainer)
from branchynet.model import exit_rule


def _float32_entropy(logits):
    return exit_rule.entropy(exit_rule.softmax(logits))


def test_leaves_one_decides_as_leaves_at_and_around_the_threshold():
    """Thresholds at a sample's own float32 entropy and one ulp either side: where the float64
    screen cannot tell, the float32 rule decides, so the answers are identical."""
    rng = np.random.RandomState(0)
    checked = 0
    for scale in (0.01, 1.0, 5.0, 30.0, 200.0):
        logits = (scale * rng.randn(200, 10)).astype(np.float32)
        H = _float32_entropy(logits)
        for i in range(len(logits)):
            row = logits[i:i + 1]
            h = np.float64(H[i])
            for T in (h, np.nextafter(h, np.inf), np.nextafter(h, -np.inf), h + 1e-6, h - 1e-6,
                      h + 0.01, h - 0.01, 0.0, np.inf, -np.inf):
                assert exit_rule.leaves_one(row, T) == bool(exit_rule.leaves(row, T)[0])
                checked += 1
    assert checked == 5 * 200 * 10


def test_leaves_one_with_non_finite_logits():
    rows = [[0.0, -np.inf] + [0.0] * 8, [np.inf] + [0.0] * 9, [np.nan] * 10,
            [1e30, 0.0] + [0.0] * 8]
    for row in rows:
        logits = np.array([row], dtype=np.float32)
        for T in (0.0, 0.5, 3.0):
            with np.errstate(invalid="ignore", over="ignore"):
                assert exit_rule.leaves_one(logits, T) == bool(exit_rule.leaves(logits, T)[0])


def test_compiled_batch_decisions_are_the_float32_formulas_even_at_the_threshold():
    """``leaves`` on numpy decides rows by a float64 entropy first; at T equal to a row's own
    float32 entropy (strict <: stays) and just above it (leaves), for NaN and infinite logits and
    T <= 0, the decisions are those of the float32 formula."""
    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal((300, 10))).astype(np.float32)
    logits[0, 3], logits[1, :] = np.nan, np.inf
    own = exit_rule.entropy(exit_rule.softmax(logits))
    for i in range(2, 300, 3):
        for T in (own[i], np.nextafter(own[i], np.float32(np.inf)), 0.0, -1.0, 2.0):
            want = exit_rule.exits_here(own, T)
            np.testing.assert_array_equal(exit_rule.leaves(logits, T), want)


def test_recorded_labels_and_stayers_are_numpys():
    """The compiled bookkeeping of an exit gives numpy's argmax labels (ties: the first maximum;
    NaN: the first NaN), the exit index at the leaving samples' places, and the stayers' rows."""
    from branchynet.fast import jit
    if not jit.available():
        return
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((40, 6)).astype(np.float32)
    logits[3] = [1, 5, 5, 0, 5, 2]
    logits[4, [1, 4]] = np.nan
    logits[5] = [-np.inf, np.inf, 0, np.inf, 1, 1]
    logits[6] = -np.inf
    leave = rng.random(40) < 0.6
    leave[3:7] = True
    remaining = np.sort(rng.choice(100, 40, replace=False))
    got, want = [(np.full(100, -1, np.int32), np.full(100, -1, np.int32)) for _ in range(2)]
    stay = exit_rule._record(logits, leave, remaining, 2, *got)
    want[0][remaining[leave]] = logits[leave].argmax(axis=1)
    want[1][remaining[leave]] = 2
    np.testing.assert_array_equal(stay, np.flatnonzero(~leave))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[0][remaining[3]] == 1 and got[0][remaining[4]] == 1 and got[0][remaining[5]] == 1
