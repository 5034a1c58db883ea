"""The structure of timing results, what each time includes, the clocks."""
import types

import numpy
import pytest

import chainer

import branchynet  # noqa: F401
from branchynet.evaluation import timing
from branchynet.model import exit_rule
from tests.helpers import build


@pytest.fixture(scope="module")
def lenet():
    return build("b-lenet")


@pytest.fixture(scope="module")
def images():
    return numpy.random.RandomState(0).rand(12, 1, 28, 28).astype(numpy.float32)


# ---------------------------------------------------------------- timings
def test_time_exits_structure(lenet, images):
    result = timing.time_exits(lenet, images, repeats=2, warmup=2, thresholds=0.5)
    assert result["samples"] == len(images) and result["repeats"] == 2
    assert result["thresholds"] == [0.5]
    for key in ("segment_ms", "head_ms"):
        assert len(result[key]) == 2 and all(v > 0 for v in result[key])
    for part in ("segments", "heads"):
        for summary in result[part]:
            assert len(summary["repeats"]) == 2
            assert summary["min"] <= summary["median"] <= summary["max"]


def test_time_exits_needs_the_configuration_it_costs(lenet, images):
    assert lenet.thresholds is None
    with pytest.raises(ValueError, match="no exit thresholds"):
        timing.time_exits(lenet, images[:2], repeats=1, warmup=0)
    lenet.thresholds = (0.25,)
    try:
        assert timing.time_exits(lenet, images[:2], repeats=1, warmup=0)["thresholds"] == [0.25]
    finally:
        lenet.thresholds = None


class _FakeClock:
    """A clock that only moves when the fake steps say so (seconds)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self, xp=numpy):
        return self.now


class _ScriptedNet:
    """Three exits whose segments and heads take fixed (fake) times and return fixed logits."""

    SEG_MS, HEAD_MS = (3.0, 5.0, 7.0), (0.5, 0.25, 0.125)
    xp, device, thresholds = numpy, chainer.backend.CpuDevice(), None

    def __init__(self, clock, logits):
        self.clock, self.logits = clock, logits

    def numexits(self):
        return 3

    def inference_steps(self, x):
        import contextlib

        def segment(k, h):
            self.clock.now += self.SEG_MS[k] / 1000
            return h

        def head(k, h):
            self.clock.now += self.HEAD_MS[k] / 1000
            return self.logits
        return segment, head, contextlib.nullcontext()


CONFIDENT = numpy.array([[30.0, 0.0, 0.0, 0.0]], numpy.float32)  # entropy ~ 3e-12 nats


def test_head_time_includes_the_exit_decision_at_the_configuration_thresholds(monkeypatch):
    """Head k's time is its layers plus softmax, entropy and the decision (``leaves_one``, which
    computes all three) at T_k, not at some other T; the last head makes no decision."""
    clock = _FakeClock()
    monkeypatch.setattr(timing, "clock", clock)
    decisions = []
    real_leaves_one = exit_rule.leaves_one

    def leaves_one(logits, threshold):
        decisions.append(float(threshold))
        clock.now += 0.002  # 2 ms, only inside the window the decision is timed in
        return real_leaves_one(logits, threshold)
    monkeypatch.setattr(exit_rule, "leaves_one", leaves_one)
    net = _ScriptedNet(clock, CONFIDENT)
    result = timing.time_exits(net, numpy.zeros((4, 1), numpy.float32), repeats=2, warmup=1,
                               thresholds=(0.5, 0.75))
    assert result["segment_ms"] == pytest.approx([3.0, 5.0, 7.0])
    assert result["head_ms"] == pytest.approx([2.5, 2.25, 0.125])
    assert sorted(set(decisions)) == [0.5, 0.75]
    assert len(decisions) == 2 * (1 + 2 * 4)  # warm-up sample + 2 passes of 4, two decisions each


def test_head_time_of_confident_samples_takes_the_fast_decision(monkeypatch):
    """At a T close to zero every confident sample is within leaves_one's margin and pays the slow
    float32 rule; at a real threshold none does. time_exits must pay what predict pays at that T."""
    counted = []
    real_leaves = exit_rule.leaves
    monkeypatch.setattr(exit_rule, "leaves",
                        lambda logits, t: counted.append(t) or real_leaves(logits, t))
    net = _ScriptedNet(_FakeClock(), CONFIDENT)
    timing.time_exits(net, numpy.zeros((5, 1), numpy.float32), repeats=1, warmup=0,
                      thresholds=0.025)
    assert counted == []
    timing.time_exits(net, numpy.zeros((5, 1), numpy.float32), repeats=1, warmup=0,
                      thresholds=1e-6)
    assert len(counted) == 2 * 5  # the slow rule at both decisions of every sample


def test_baseline_and_early_exit_timings(lenet, images):
    base = timing.time_baseline(lenet, images, repeats=2, warmup=1)
    assert base["ms"] > 0 and base["per_second"] > 0 and base["batchsize"] == 1
    numpy.testing.assert_array_equal(base["labels"], lenet.predict_main(images))
    real = timing.time_early_exit(lenet, images, 0.5, batchsize=5, repeats=1, warmup=0)
    labels, exits = lenet.predict(images, 0.5)
    numpy.testing.assert_array_equal(real["exits"], exits)
    numpy.testing.assert_array_equal(real["labels"], labels)
    assert real["samples"] == len(images) and real["ms"] > 0


def test_time_calls_counts_every_sample_once():
    calls = []
    result = timing.time_calls(lambda xb: calls.append(len(xb)) or len(xb), numpy.zeros(10),
                               batchsize=4, repeats=3, warmup=0)
    assert calls == [4] + [4, 4, 2] * 3  # one warm-up call, then three passes
    assert result["outputs"] == [4, 4, 2]
    assert len(result["detail"]["repeats"]) == 3 and result["ms"] >= 0


def test_clock_synchronizes_a_gpu_module():
    synced = []
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(
        Device=lambda: types.SimpleNamespace(synchronize=lambda: synced.append(1))))
    t0 = timing.clock(fake)
    t1 = timing.clock(numpy)
    assert synced == [1] and t1 >= t0


def test_machine_description():
    threads = timing.cpu_threads()
    assert threads["cpu_count"] >= 1 and "OMP_NUM_THREADS" in threads

