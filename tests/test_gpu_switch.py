"""The GPU backend's switch and cache, as far as a machine without a GPU sees them."""
import copy

import numpy

import chainer

from branchynet import gpu
from tests.helpers import build


def test_graphs_only_for_one_sample_on_a_gpu():
    assert not gpu.enabled(numpy.zeros((1, 1, 28, 28), numpy.float32))
    with chainer.using_config("branchynet_cuda_graphs", False):
        assert not gpu.enabled(numpy.zeros((1, 1, 28, 28), numpy.float32))


def test_a_copied_net_captures_its_own_graphs():
    net = build("b-lenet")
    net._graphs._steps[("shape",)] = ("placement", "steps of the original")
    assert copy.deepcopy(net)._graphs._steps == {}
    assert net._graphs._steps  # the original keeps its own


def test_cpu_inference_captures_nothing(mnist_subset):
    net = build("b-lenet")
    net.predict(mnist_subset[0][:1], 0.1)
    net.predict(mnist_subset[0][:8], 0.1)
    assert net._graphs._steps == {}
