"""GPU path (CuPy): same predictions, exits and losses as the CPU. Skips cleanly without a GPU."""
import copy
import warnings

import numpy
import pytest

import chainer

from branchynet.training.optimizers import adam
from tests.helpers import build

cupy = pytest.importorskip("cupy")
if not chainer.backends.cuda.available:
    pytest.skip("no CUDA device available to Chainer", allow_module_level=True)

PROB_TOLERANCE = dict(rtol=1e-3, atol=1e-5)  # float32 kernels differ between cuBLAS and OpenBLAS
GRAPH_TOLERANCE = dict(rtol=1e-4, atol=1e-5)  # graphs sum their products in another order than cuBLAS


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


# ------------------------------------------------------------------ CUDA graphs at batch 1
def _plain(fn):
    with chainer.using_config("branchynet_cuda_graphs", False):
        return fn()


def test_graphs_replay_what_chainer_computes(nets, mnist_subset):
    _, gpu = nets
    gpu = copy.deepcopy(gpu)
    x = mnist_subset[0][1024:1064]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed capture warns and falls back: not here
        for i in range(len(x)):
            replayed = gpu.exit_logits(x[i:i + 1])
            plain = _plain(lambda: gpu.exit_logits(x[i:i + 1]))
            for a, b in zip(replayed, plain):
                numpy.testing.assert_allclose(a, b, **GRAPH_TOLERANCE)
    assert [steps is not None for _, steps in gpu._graphs._steps.values()] == [True]


def test_graphs_decide_as_plain_chainer(nets, mnist_subset):
    _, gpu = nets
    x = mnist_subset[0][1024:1224]
    ent = numpy.sort(branchy_entropy(gpu.exit_probs(x)[0]))
    gap = 80 + int(numpy.argmax(numpy.diff(ent[80:121])))  # widest gap near the middle
    threshold = float((ent[gap] + ent[gap + 1]) / 2)
    for i in range(len(x)):
        got = gpu.predict(x[i:i + 1], threshold)
        want = _plain(lambda: gpu.predict(x[i:i + 1], threshold))
        for a, b in zip(got, want):
            numpy.testing.assert_array_equal(a, b)
        assert numpy.array_equal(gpu.predict_main(x[i:i + 1]),
                                 _plain(lambda: gpu.predict_main(x[i:i + 1])))


def test_graphs_follow_updated_and_moved_parameters(nets, mnist_subset):
    _, gpu = nets
    gpu = copy.deepcopy(gpu)
    x, t = mnist_subset
    sample = x[1500:1501]
    before = gpu.exit_logits(sample)
    gpu.train(x[:256], t[:256], adam(alpha=0.01)(gpu))  # parameters updated in place
    after = gpu.exit_logits(sample)
    assert not numpy.allclose(before[0], after[0])
    for a, b in zip(after, _plain(lambda: gpu.exit_logits(sample))):
        numpy.testing.assert_allclose(a, b, **GRAPH_TOLERANCE)
    gpu.to_device("@numpy")
    gpu.to_device("@cupy:0")  # new arrays: the graphs must be captured again
    for a, b in zip(gpu.exit_logits(sample), after):
        numpy.testing.assert_allclose(a, b, **GRAPH_TOLERANCE)


def test_graph_outputs_stay_on_the_device(nets, mnist_subset):
    _, gpu = nets
    x = cupy.asarray(mnist_subset[0][:1])
    segment, head, context = gpu.inference_steps(x)
    with context:
        logits = head(0, segment(0, x))
        assert isinstance(logits, cupy.ndarray)
        numpy.testing.assert_allclose(
            cupy.asnumpy(logits), _plain(lambda: gpu.exit_logits(mnist_subset[0][:1]))[0],
            **GRAPH_TOLERANCE)
