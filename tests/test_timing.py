"""MAC counts against hand computation, the structure of timing results, the two accountings."""
import math
import types

import numpy
import pytest

import branchynet  # noqa: F401
import chainer
import networks
from branchynet import paper, report, sweep, timing


def conv_out(size, k, stride=1, pad=0):
    return (size + 2 * pad - k) // stride + 1


def pool_out(size, k, stride):
    """Chainer's max pooling with cover_all=True (ceil mode)."""
    return -(-(size - k) // stride) + 1


def conv_macs(c_in, c_out, k, out):
    return c_out * out * out * c_in * k * k


def lenet_macs_by_hand():
    """From the layer table of B-LeNet (reference section 2.4), input 1x28x28."""
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
    numpy.random.seed(0)
    return networks.build("b-lenet")


@pytest.fixture(scope="module")
def images():
    return numpy.random.RandomState(0).rand(12, 1, 28, 28).astype(numpy.float32)


# ---------------------------------------------------------------- MACs
def test_lenet_macs_equal_hand_computation(lenet, images):
    expected = lenet_macs_by_hand()
    assert expected == {"segments": [112500, 1026730], "heads": [107650, 840]}
    assert timing.count_macs(lenet, images[:1]) == expected
    # and the reference's table (section 2.7), to its rounding
    for part in ("segments", "heads"):
        for ours, ref in zip(expected[part], paper.MACS_M["lenet"][part]):
            assert ours / 1e6 == pytest.approx(ref, abs=0.006)


def test_mac_count_does_not_depend_on_the_fast_path(lenet, images):
    with chainer.using_config("branchynet_fast_cpu", True):
        a = timing.count_macs(lenet, images[:1])
    assert a == timing.count_macs(lenet, images[1:2])


@pytest.mark.parametrize("name,kwargs,shape", [("b-alexnet", {}, (1, 3, 32, 32)),
                                               ("b-resnet110", {}, (1, 3, 32, 32))])
def test_cifar_network_macs_match_the_reference_table(name, kwargs, shape):
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
    result = timing.time_exits(lenet, images, repeats=2, warmup=2)
    assert result["samples"] == len(images) and result["repeats"] == 2
    for key in ("segment_ms", "head_ms"):
        assert len(result[key]) == 2 and all(v > 0 for v in result[key])
    for part in ("segments", "heads"):
        for summary in result[part]:
            assert len(summary["repeats"]) == 2
            assert summary["min"] <= summary["median"] <= summary["max"]


def test_baseline_and_early_exit_timings(lenet, images):
    base = timing.time_baseline(lenet, images, repeats=2, warmup=1)
    assert base["ms"] > 0 and base["per_second"] > 0 and base["batchsize"] == 1
    numpy.testing.assert_array_equal(base["labels"], lenet.predict_main(images))
    real = timing.time_early_exit(lenet, images, 0.5, batchsize=5, repeats=1, warmup=0)
    labels, exits = lenet.predict(images, 0.5)
    numpy.testing.assert_array_equal(real["exits"], exits)
    numpy.testing.assert_array_equal(real["labels"], labels)
    assert real["samples"] == len(images) and real["ms"] > 0


def test_the_two_accountings(lenet, images):
    measured = timing.time_exits(lenet, images, repeats=1, warmup=1)
    seg, head = measured["segment_ms"], measured["head_ms"]
    outputs = sweep.ExitOutputs.from_net(lenet, images, numpy.zeros(len(images), numpy.int32))
    entropies = numpy.sort(outputs.entropies[0])
    grid = [(0.0,), (float(entropies[len(entropies) // 2]),), (10.0,)]
    for row in outputs.sweep(grid):
        e2e, trunk = timing.predicted_ms(row["reach_fractions"], seg, head)
        assert e2e >= trunk > 0
        reach = row["reach_fractions"]
        assert e2e == pytest.approx(sum(r * (s + h) for r, s, h in zip(reach, seg, head)))
        assert trunk == pytest.approx(sum(r * s for r, s in zip(reach, seg)))
    # nobody exits early: every segment and every head is paid
    assert timing.predicted_ms([1.0, 1.0], seg, head)[0] == pytest.approx(sum(seg) + sum(head))
    # everybody exits at exit 1: trunk-only counts only the first segment
    assert timing.predicted_ms([1.0, 0.0], seg, head) == pytest.approx((seg[0] + head[0], seg[0]))


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
