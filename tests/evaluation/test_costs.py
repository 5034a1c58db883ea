"""Cost formulas: MAC counts against hand computation, per-exit and expected costs, the two
accountings of predicted time."""
import numpy
import pytest

import chainer

import branchynet  # noqa: F401
import networks
from branchynet.evaluation import costs
from branchynet.reporting import paper
from tests.evaluation.synthetic import outputs_with
from tests.helpers import build

MACS = {"segments": [100, 300, 500], "heads": [40, 20, 10]}


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


def test_lenet_macs_equal_hand_computation(lenet, images):
    expected = lenet_macs_by_hand()
    assert expected == {"segments": [112500, 1026730], "heads": [107650, 840]}
    assert costs.count_macs(lenet, images[:1]) == expected
    # and the MAC table of docs/original.md (paper.MACS_M), to its rounding
    for part in ("segments", "heads"):
        for ours, ref in zip(expected[part], paper.MACS_M["lenet"][part]):
            assert ours / 1e6 == pytest.approx(ref, abs=0.006)


def test_mac_count_sees_every_layer_with_the_fast_path_on(lenet, images):
    """count_macs must run stock Chainer: with the fast CPU kernels (the default here) the hook
    would miss the convolutions."""
    with chainer.using_config("branchynet_fast_cpu", True):
        assert costs.count_macs(lenet, images[:1]) == lenet_macs_by_hand()


def test_mac_count_of_a_tiny_network_from_its_layer_sizes():
    """A 3-exit network small enough to count by hand: conv 2->4 3x3 pad 1 on 6x6 (trunk 1),
    Linear 144->5 (trunk 2), Linear 5->3 (trunk 3); heads Linear 144->3, conv 4->2 1x1 ... """
    import chainer.functions as F
    import chainer.links as L

    from branchynet import Branch, BranchyNet
    net = BranchyNet([L.Convolution2D(2, 4, 3, pad=1), F.relu,
                      Branch([L.Convolution2D(4, 2, 1), L.Linear(72, 3)]),
                      L.Linear(144, 5), Branch([L.Linear(5, 3)]),
                      L.Linear(5, 7), Branch([L.Linear(7, 3)])])
    macs = costs.count_macs(net, numpy.zeros((1, 2, 6, 6), numpy.float32))
    assert macs == {"segments": [6 * 6 * 4 * 2 * 3 * 3, 144 * 5, 5 * 7],
                    "heads": [6 * 6 * 2 * 4 + 72 * 3, 5 * 3, 7 * 3]}


@pytest.mark.parametrize("name,kwargs,shape", [("b-alexnet", {}, (1, 3, 32, 32)),
                                               ("b-resnet110", {}, (1, 3, 32, 32))])
def test_cifar_network_macs_match_the_mac_table(name, kwargs, shape):
    net = networks.build(name, **kwargs)
    macs = costs.count_macs(net, numpy.zeros(shape, numpy.float32))
    ref = paper.MACS_M[networks.family_of(name)]
    for part in ("segments", "heads"):
        for ours, expected in zip(macs[part], ref[part]):
            assert ours / 1e6 == pytest.approx(expected, rel=0.01, abs=0.0006)


def test_mac_counter_formulas():
    import chainer.links as L
    conv = L.Convolution2D(3, 8, 3, stride=2, pad=1)
    linear = L.Linear(50, 7)
    x = numpy.zeros((2, 3, 9, 9), numpy.float32)
    with costs.MacCounter() as counter, chainer.using_config("branchynet_fast_cpu", False):
        conv(x)
        linear(numpy.zeros((2, 50), numpy.float32))
    out = conv_out(9, 3, 2, 1)  # 5
    assert counter.calls == [("Convolution2DFunction", 2 * 8 * out * out * 3 * 9),
                             ("LinearFunction", 2 * 50 * 7)]


def test_work_done_and_baseline_macs():
    macs = {"segments": [10, 100], "heads": [5, 1]}
    assert costs.baseline_cost(macs) == 111
    assert costs.expected_cost([0.75, 0.25], costs.exit_costs(macs)) == 15 + 0.25 * 101


def test_the_two_accountings_on_a_sweep_by_hand():
    """Reach fractions from a sweep of known entropies, then both accountings, by hand."""
    entropies = numpy.array([[0.1, 0.2, 0.9, 1.5], [0.0, 0.0, 0.0, 0.0]])
    outputs = outputs_with(entropies, numpy.zeros((2, 4), numpy.int64), numpy.zeros(4))
    seg, head = [2.0, 3.0], [0.5, 0.25]
    rows = outputs.sweep([(0.0,), (0.5,), (10.0,)])
    assert [row["reach_fractions"] for row in rows] == [[1.0, 1.0], [1.0, 0.5], [1.0, 0.0]]
    got = [costs.predicted_ms(row["reach_fractions"], seg, head) for row in rows]
    # nobody leaves early: 2 + 0.5 + 3 + 0.25; trunk only 2 + 3
    assert got[0] == pytest.approx((5.75, 5.0))
    # half leave at exit 1: 2.5 + 0.5 * 3.25; trunk only 2 + 0.5 * 3
    assert got[1] == pytest.approx((4.125, 3.5))
    # everybody leaves at exit 1
    assert got[2] == pytest.approx((2.5, 2.0))


def test_predicted_ms_by_hand():
    e2e, trunk = costs.predicted_ms([1.0, 0.4, 0.1], [1.0, 2.0, 4.0], [0.5, 0.25, 0.125])
    assert e2e == pytest.approx(1.5 + 0.4 * 2.25 + 0.1 * 4.125)
    assert trunk == pytest.approx(1.0 + 0.8 + 0.4)


def test_exit_costs_include_every_head_on_the_way():
    numpy.testing.assert_array_equal(costs.exit_costs(MACS), [140, 460, 970])
    assert costs.baseline_cost(MACS) == 910
    ms = {"segment_ms": [0.1, 0.2], "head_ms": [0.05, 0.01]}
    numpy.testing.assert_allclose(costs.exit_costs(ms), [0.15, 0.36])
    table = costs.cost_table(MACS)
    assert [r["exit_cost"] for r in table["exits"]] == [140, 460, 970]
    assert table["head_overhead"] == pytest.approx(60 / 910)


@pytest.mark.parametrize("fractions", [[1, 0, 0], [0, 0, 1], [0.5, 0.3, 0.2]])
def test_expected_cost_equals_the_reach_accounting(fractions):
    reach = numpy.cumsum(numpy.asarray(fractions, float)[::-1])[::-1]
    assert costs.expected_cost(fractions, costs.exit_costs(MACS)) == pytest.approx(
        costs.predicted_ms(reach, MACS["segments"], MACS["heads"])[0])
    with pytest.raises(ValueError, match="2 exit fractions for 3"):
        costs.expected_cost([0.5, 0.5], costs.exit_costs(MACS))


