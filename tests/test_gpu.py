"""GPU path (CuPy): same predictions, exits and losses as the CPU. Skips cleanly without a GPU."""
import copy

import numpy
import pytest

import chainer

from branchynet.training.optimizers import adam
from tests.helpers import build

cupy = pytest.importorskip("cupy")
if not chainer.backends.cuda.available:
    pytest.skip("no CUDA device available to Chainer", allow_module_level=True)

PROB_TOLERANCE = dict(rtol=1e-3, atol=1e-5)  # float32 kernels differ between cuBLAS and OpenBLAS


@pytest.fixture(scope="module")
def nets(mnist_subset):
    cpu = build("b-lenet")
    x, t = mnist_subset
    optimizer = adam()(cpu)
    for start in range(0, 1024, 64):
        cpu.train(x[start:start + 64], t[start:start + 64], optimizer)
    gpu = copy.deepcopy(cpu)
    gpu.to_device("@cupy:0")
    return cpu, gpu


def test_probabilities_agree(nets, mnist_subset):
    cpu, gpu = nets
    x = mnist_subset[0][1024:1524]
    for p_cpu, p_gpu in zip(cpu.exit_probs(x), gpu.exit_probs(x)):
        assert isinstance(p_gpu, numpy.ndarray)
        numpy.testing.assert_allclose(p_gpu, p_cpu, **PROB_TOLERANCE)


@pytest.mark.parametrize("batch", [1, 500])
def test_predictions_and_exits_agree(nets, mnist_subset, batch):
    cpu, gpu = nets
    x = mnist_subset[0][1024:1524]
    ent = numpy.sort(branchy_entropy(cpu.exit_probs(x)[0]))
    threshold = float((ent[249] + ent[250]) / 2)  # halfway between samples: rounding cannot flip it
    got = [gpu.predict(x[s:s + batch], threshold) for s in range(0, len(x), batch)]
    labels_cpu, exits_cpu = cpu.predict(x, threshold)
    numpy.testing.assert_array_equal(numpy.concatenate([g[1] for g in got]), exits_cpu)
    numpy.testing.assert_array_equal(numpy.concatenate([g[0] for g in got]), labels_cpu)


def branchy_entropy(p):
    from branchynet import entropy
    return entropy(p)


def test_training_step_gives_the_same_losses(nets, mnist_subset):
    cpu, gpu = (copy.deepcopy(n) for n in nets)
    opt_cpu, opt_gpu = adam()(cpu), adam()(gpu)
    x, t = mnist_subset[0][1524:1652], mnist_subset[1][1524:1652]
    losses_cpu, _ = cpu.train(x, t, opt_cpu)
    losses_gpu, _ = gpu.train(x, t, opt_gpu)
    numpy.testing.assert_allclose(losses_gpu, losses_cpu, rtol=1e-4)
    losses_cpu, _ = cpu.train(x, t, opt_cpu)
    losses_gpu, _ = gpu.train(x, t, opt_gpu)
    numpy.testing.assert_allclose(losses_gpu, losses_cpu, rtol=1e-3)


def test_predict_leaves_arrays_on_the_device(nets, mnist_subset):
    _, gpu = nets
    x = cupy.asarray(mnist_subset[0][:4])
    segment, _, context = gpu.inference_steps(x)
    with context:
        h = segment(0, x)
    assert isinstance(h, cupy.ndarray)
