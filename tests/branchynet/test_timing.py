"""MAC counts against hand computation, the structure of timing results, the two accountings."""
import math
import types

import numpy
import pytest

import branchynet  # noqa: F401
import chainer
import networks
from branchynet.evaluation import sweep, timing
from branchynet.model import exit_rule
from branchynet.reporting import paper, report
from tests.helpers import build


def conv_out(size, k, stride=1, pad=0):
    return (size + 2 * pad - k) // stride + 1


def pool_out(size, k, stride):
    """Chainer's max pooling with cover_all=True (ceil mode)."""
    return -(-(size - k) // stride) + 1


def conv_macs(c_in, c_out, k, out):
    return c_out * out * out * c_in * k * k


def lenet_macs_by_hand():
    """From the layer table of B-LeNet (docs/original.md), input 1x28x28."""
    s1 = conv_out(28, 5, pad=3)  # 30
    seg1 = conv_macs(1, 5, 5, s1)
    h = pool_out(s1, 2, 2)  # 15
    head1_conv = conv_macs(5, 10, 3, conv_out(h, 3, pad=1))
    h = pool_out(conv_out(h, 3, pad=1), 2, 2)  # 8
    head1 = head1_conv + 10 * h * h * 10  # Linear 640 -> 10
    s = pool_out(s1, 2, 2)  # 15
    c2 = conv_out(s, 5, pad=3)  # 17
    seg2 = conv_macs(5, 10, 5, c2)
    s = pool_out(c2, 2, 2)  # 9
    c3 = conv_out(s, 5, pad=3)  # 11
    seg2 += conv_macs(10, 20, 5, c3)
    s = pool_out(c3, 2, 2)  # 6
    seg2 += 20 * s * s * 84  # Linear 720 -> 84
    head2 = 84 * 10
    return {"segments": [seg1, seg2], "heads": [head1, head2]}


@pytest.fixture(scope="module")
def lenet():
    return build("b-lenet")


@pytest.fixture(scope="module")
def images():
    return numpy.random.RandomState(0).rand(12, 1, 28, 28).astype(numpy.float32)


# ---------------------------------------------------------------- MACs
def test_lenet_macs_equal_hand_computation(lenet, images):
    expected = lenet_macs_by_hand()
    assert expected == {"segments": [112500, 1026730], "heads": [107650, 840]}
    assert timing.count_macs(lenet, images[:1]) == expected
    # and the MAC table of docs/original.md (paper.MACS_M), to its rounding
    for part in ("segments", "heads"):
        for ours, ref in zip(expected[part], paper.MACS_M["lenet"][part]):
            assert ours / 1e6 == pytest.approx(ref, abs=0.006)


def test_mac_count_sees_every_layer_with_the_fast_path_on(lenet, images):
    """count_macs must run stock Chainer: with the fast CPU kernels (the default here) the hook
    would miss the convolutions."""
    with chainer.using_config("branchynet_fast_cpu", True):
        assert timing.count_macs(lenet, images[:1]) == lenet_macs_by_hand()


def test_mac_count_of_a_tiny_network_from_its_layer_sizes():
    """A 3-exit network small enough to count by hand: conv 2->4 3x3 pad 1 on 6x6 (trunk 1),
    Linear 144->5 (trunk 2), Linear 5->3 (trunk 3); heads Linear 144->3, conv 4->2 1x1 ... """
    import chainer.links as L
    import chainer.functions as F
    from branchynet import Branch, BranchyNet
    net = BranchyNet([L.Convolution2D(2, 4, 3, pad=1), F.relu,
                      Branch([L.Convolution2D(4, 2, 1), L.Linear(72, 3)]),
                      L.Linear(144, 5), Branch([L.Linear(5, 3)]),
                      L.Linear(5, 7), Branch([L.Linear(7, 3)])])
    macs = timing.count_macs(net, numpy.zeros((1, 2, 6, 6), numpy.float32))
    assert macs == {"segments": [6 * 6 * 4 * 2 * 3 * 3, 144 * 5, 5 * 7],
                    "heads": [6 * 6 * 2 * 4 + 72 * 3, 5 * 3, 7 * 3]}


@pytest.mark.parametrize("name,kwargs,shape", [("b-alexnet", {}, (1, 3, 32, 32)),
                                               ("b-resnet110", {}, (1, 3, 32, 32))])
def test_cifar_network_macs_match_the_mac_table(name, kwargs, shape):
    net = networks.build(name, **kwargs)
    macs = timing.count_macs(net, numpy.zeros(shape, numpy.float32))
    ref = paper.MACS_M[networks.family_of(name)]
    for part in ("segments", "heads"):
        for ours, expected in zip(macs[part], ref[part]):
            assert ours / 1e6 == pytest.approx(expected, rel=0.01, abs=0.0006)


def test_mac_counter_formulas():
    import chainer.links as L
    conv = L.Convolution2D(3, 8, 3, stride=2, pad=1)
    linear = L.Linear(50, 7)
    x = numpy.zeros((2, 3, 9, 9), numpy.float32)
    with timing.MacCounter() as counter, chainer.using_config("branchynet_fast_cpu", False):
        conv(x)
        linear(numpy.zeros((2, 50), numpy.float32))
    out = conv_out(9, 3, 2, 1)  # 5
    assert counter.calls == [("Convolution2DFunction", 2 * 8 * out * out * 3 * 9),
                             ("LinearFunction", 2 * 50 * 7)]


def test_work_done_and_baseline_macs():
    macs = {"segments": [10, 100], "heads": [5, 1]}
    assert timing.baseline_macs(macs) == 111
    assert timing.macs_of([1.0, 0.25], macs) == 15 + 0.25 * 101


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


def test_the_two_accountings_on_a_sweep_by_hand():
    """Reach fractions from a sweep of known entropies, then both accountings, by hand."""
    entropies = numpy.array([[0.1, 0.2, 0.9, 1.5], [0.0, 0.0, 0.0, 0.0]])
    outputs = sweep.ExitOutputs(entropies, numpy.zeros((2, 4), numpy.int64), numpy.zeros(4))
    seg, head = [2.0, 3.0], [0.5, 0.25]
    rows = outputs.sweep([(0.0,), (0.5,), (10.0,)])
    assert [row["reach_fractions"] for row in rows] == [[1.0, 1.0], [1.0, 0.5], [1.0, 0.0]]
    got = [timing.predicted_ms(row["reach_fractions"], seg, head) for row in rows]
    # nobody leaves early: 2 + 0.5 + 3 + 0.25; trunk only 2 + 3
    assert got[0] == pytest.approx((5.75, 5.0))
    # half leave at exit 1: 2.5 + 0.5 * 3.25; trunk only 2 + 0.5 * 3
    assert got[1] == pytest.approx((4.125, 3.5))
    # everybody leaves at exit 1
    assert got[2] == pytest.approx((2.5, 2.0))


def test_predicted_ms_by_hand():
    e2e, trunk = timing.predicted_ms([1.0, 0.4, 0.1], [1.0, 2.0, 4.0], [0.5, 0.25, 0.125])
    assert e2e == pytest.approx(1.5 + 0.4 * 2.25 + 0.1 * 4.125)
    assert trunk == pytest.approx(1.0 + 0.8 + 0.4)


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
    assert isinstance(timing.cpu_model(), str) and timing.cpu_model()
    env = report.environment(["experiments/x.py", "--flag", "a b"])
    assert env["command"] == "python experiments/x.py --flag 'a b'"
    assert env["versions"]["chainer"] == chainer.__version__
    assert env["hardware"]["gpu"] is None
    assert not math.isnan(float(env["date"][:4]))
