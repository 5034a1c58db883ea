"""Cost formulas against hand computations: MACs of non-square, strided, dilated convolutions and
batched linear layers, a 3-exit net counted part by part, and every cost of a setting, written to
kill the mutants of ``costs`` that the older tests let through (docs/mutation.md)."""
import numpy
import pytest

import chainer
import chainer.functions as F
import chainer.links as L

import branchynet  # noqa: F401
from branchynet import Branch, BranchyNet
from branchynet.evaluation import costs

PARTS = {"segments": [10, 20, 40], "heads": [3, 2, 1]}


def test_mac_counter_by_hand():
    x = numpy.zeros((2, 3, 12, 8), numpy.float32)
    w = numpy.zeros((5, 3, 3, 2), numpy.float32)
    with costs.MacCounter() as counter:
        F.convolution_2d(x, w, stride=(2, 1), pad=(1, 0))  # out 6 x 7
        F.convolution_2d(x, numpy.zeros((4, 3, 3, 3), numpy.float32), pad=2, dilate=2)  # out 12 x 8
        F.linear(numpy.zeros((2, 6), numpy.float32), numpy.zeros((7, 6), numpy.float32))
        F.relu(x)
    assert counter.calls == [("Convolution2DFunction", 2 * 6 * 7 * 5 * 3 * 3 * 2),
                             ("Convolution2DFunction", 2 * 12 * 8 * 4 * 3 * 3 * 3),
                             ("LinearFunction", 2 * 6 * 7)]
    assert counter.macs == sum(m for _, m in counter.calls)


def test_count_macs_of_a_three_exit_net_part_by_part():
    numpy.random.seed(0)
    net = BranchyNet([
        L.Convolution2D(1, 3, ksize=(3, 2), stride=(2, 1), pad=(1, 0)),  # 3 x 6 x 7
        Branch([L.Linear(3 * 6 * 7, 4)]),
        F.relu,
        L.Convolution2D(3, 2, 3, pad=1),  # 2 x 6 x 7
        Branch([L.Linear(2 * 6 * 7, 5), F.relu, L.Linear(5, 4)]),
        L.Linear(2 * 6 * 7, 6),
        Branch([L.Linear(6, 4)]),
    ])
    parts = costs.count_macs(net, numpy.zeros((1, 1, 12, 8), numpy.float32))
    assert parts == {"segments": [6 * 7 * 3 * 3 * 2, 6 * 7 * 2 * 3 * 9, 84 * 6],
                     "heads": [126 * 4, 84 * 5 + 5 * 4, 6 * 4]}
    assert chainer.config.train  # the configuration is restored
    with pytest.raises(ValueError, match="one sample"):
        costs.count_macs(net, numpy.zeros((2, 1, 12, 8), numpy.float32))


def test_count_macs_runs_in_inference_mode_and_leaves_the_net_as_it_was():
    numpy.random.seed(1)
    net = BranchyNet([L.Linear(4, 3), L.BatchNormalization(3), Branch([L.Linear(3, 2)]),
                      L.Linear(3, 3), Branch([L.Linear(3, 2)])])
    bn = net.segments[0][1]
    before = bn.avg_mean.copy(), bn.avg_var.copy()
    parts = costs.count_macs(net, numpy.full((1, 4), 5.0, numpy.float32))
    assert parts == {"segments": [12, 9], "heads": [6, 6]}
    numpy.testing.assert_array_equal(bn.avg_mean, before[0])  # training mode would update these
    numpy.testing.assert_array_equal(bn.avg_var, before[1])


def test_exit_and_baseline_costs_by_hand():
    numpy.testing.assert_array_equal(costs.exit_costs(PARTS), [13, 35, 76])
    assert costs.baseline_cost(PARTS) == 71.0
    ms = {"segment_ms": [1.0, 2.0], "head_ms": [0.5, 0.25], "segments": [[9.0], [9.0]]}
    numpy.testing.assert_allclose(costs.exit_costs(ms), [1.5, 3.75])
    assert costs.baseline_cost(ms) == 3.25
    for bad in ({"segments": [1, 2], "heads": [1]}, {"segments": [], "heads": []},
                {"segments": [[1, 2]], "heads": [[1, 2]]}):
        with pytest.raises(ValueError, match="one segment cost and one head cost per exit"):
            costs.exit_costs(bad)


def test_expected_cost_cost_table_and_predicted_ms_by_hand():
    assert costs.expected_cost([0.5, 0.25, 0.25], [13, 35, 76]) == pytest.approx(6.5 + 8.75 + 19)
    with pytest.raises(ValueError, match="2 exit fractions for 3 exit costs"):
        costs.expected_cost([0.5, 0.5], [13, 35, 76])
    table = costs.cost_table(PARTS)
    assert table["baseline"] == 71.0 and table["head_overhead"] == pytest.approx(5 / 71)
    assert table["exits"] == [
        {"exit": 1, "segment": 10.0, "head": 3.0, "exit_cost": 13.0, "of_baseline": pytest.approx(13 / 71)},
        {"exit": 2, "segment": 20.0, "head": 2.0, "exit_cost": 35.0, "of_baseline": pytest.approx(35 / 71)},
        {"exit": 3, "segment": 40.0, "head": 1.0, "exit_cost": 76.0, "of_baseline": pytest.approx(76 / 71)}]
    end_to_end, trunk = costs.predicted_ms([1.0, 0.5, 0.25], [10, 20, 40], [3, 2, 1])
    assert end_to_end == pytest.approx(13 + 11 + 10.25) and trunk == pytest.approx(10 + 10 + 10)
    # reach-weighted parts equal the exit-fraction-weighted cumulative costs
    assert end_to_end == pytest.approx(costs.expected_cost([0.5, 0.25, 0.25], [13, 35, 76]))
