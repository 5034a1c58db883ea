"""Shared test set-up: the real datasets in ../../shared/data (unless BRANCHYNET_DATA names others),
small real subsets, a briefly trained B-LeNet, and the ``slow`` marker."""
import copy
import os
from pathlib import Path

import numpy
import pytest

import branchynet  # noqa: F401  (its compatibility shims must run before the first `import chainer`)

# Kernel choices by their default rules, not by timing: the same on every machine, and nothing
# written to the home folder (tests/fast/test_calibration.py turns timing on where it tests it).
os.environ["BRANCHYNET_CALIBRATE"] = "0"

_SHARED_DATA = (Path(__file__).parent / ".." / ".." / "shared" / "data").resolve()
if _SHARED_DATA.is_dir():
    os.environ.setdefault("BRANCHYNET_DATA", str(_SHARED_DATA))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes minutes on a 2-core CPU; deselect with -m 'not slow'")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (chainer.testing's marker)")


# End-to-end tests of tens of seconds each on a 2-core CPU, in the slow tier so that `make test`
# stays within 3 minutes; a faster test covers the same code in the fast tier (named after each).
SLOW = {
    # the B-LeNet script and table1.py on it: test_script_writes_well_formed_results[b-lenet]
    "tests/experiments/test_experiments.py::test_script_writes_well_formed_results[b-alexnet]",
    "tests/experiments/test_experiments.py::test_script_writes_well_formed_results[b-resnet110]",
    "tests/experiments/test_experiments.py::test_table1_from_the_tiny_results",
    "tests/experiments/test_experiments.py::test_training_writes_run_json_and_the_scripts_read_it",
    # the beyond report's parts: tests/evaluation (measures, selection, report)
    "tests/experiments/test_beyond.py::test_beyond_train_and_report",
    # two processes training as one: test_two_processes_train_what_one_process_trains
    "tests/training/test_distributed.py::test_a_failing_rank_ends_the_job_and_the_run_resumes",
    # MPI jobs timed against the clock (a watchdog, Ctrl-C's grace), tens of seconds each, flaky on a
    # loaded machine: test_collective_timeout_reads_the_environment covers the watchdog's setting;
    # experiments/faults_mpi.py runs the killed and stopped ranks (results/faults/mpi_faults.txt)
    "tests/training/test_distributed.py::test_a_stopped_rank_ends_the_job_after_the_collective_timeout",
    "tests/training/test_distributed.py::test_a_refusal_is_printed_once_and_ctrl_c_names_the_snapshot_kept",
    # PyTorch and ours on six cases: test_bench_peer_pytorch_plans_the_cases
    "tests/experiments/test_benchmarks.py::test_bench_peer_pytorch_tiny",
    # the same blocks as b-resnet110, exit 1 elsewhere: test_resnet_variants_differ_only_in_where_exit_1_taps
    "tests/networks/test_networks.py::test_network_shapes_sizes_params_and_gradients[b-resnet110-paper]",
}


def pytest_collection_modifyitems(config, items):
    """Marks the ``SLOW`` tests slow; a listed test that is gone from a collected file is an error,
    so that the list follows renames."""
    found = set()
    for item in items:
        if item.nodeid in SLOW:
            item.add_marker(pytest.mark.slow)
            found.add(item.nodeid)
    files = {item.nodeid.split("::")[0] for item in items}
    gone = sorted(n for n in SLOW - found if n.split("::")[0] in files)
    if gone:
        raise pytest.UsageError("tests/conftest.py SLOW names tests that do not exist: %s" % ", ".join(gone))


@pytest.fixture(scope="session")
def mnist_subset():
    """The first 2,000 real MNIST training images (float32 N x 1 x 28 x 28 in [0, 1]) and labels."""
    from branchynet.data import datasets
    train, _ = datasets.get_mnist(download=False)
    x, t = datasets.arrays(train)
    return x[:2000], t[:2000]


@pytest.fixture(scope="session")
def cifar_subset():
    """The first 512 real CIFAR-10 training images (default preprocessing) and labels."""
    from branchynet.data import datasets, files
    try:
        train, _ = datasets.get_cifar10(download=False)
    except files.DatasetError as err:
        pytest.skip("CIFAR-10 not available: %s" % err)
    x, t = datasets.arrays(train)
    return numpy.ascontiguousarray(x[:512]), numpy.asarray(t[:512])


@pytest.fixture(scope="session")
def _trained_lenet_once(mnist_subset):
    from tests import helpers
    x, t = mnist_subset
    return helpers.train_steps(helpers.build("b-lenet"), x[:1500], t[:1500], steps=300, batch=16)


@pytest.fixture(scope="module")
def trained_lenet(_trained_lenet_once):
    """B-LeNet trained 300 steps (batch 16) on the first 1,500 images of ``mnist_subset``:
    entropies spread from ~1e-3 to ~1.3 nats, across most of the paper's thresholds. Each test
    module gets its own copy (images 1,500-2,000 are held out)."""
    return copy.deepcopy(_trained_lenet_once)


@pytest.fixture(scope="module")
def three_exit(mnist_subset):
    """The tiny 3-exit net (``helpers.tiny_three_exit_net``) trained 60 steps (batch 32, Adam at
    ``TINY_ALPHA``) on the first 1,500 images of ``mnist_subset``; one per test module."""
    from tests import helpers
    numpy.random.seed(1)
    x, t = mnist_subset
    return helpers.train_steps(helpers.tiny_three_exit_net(), x[:1500], t[:1500], steps=60,
                               batch=32, seed=1, alpha=helpers.TINY_ALPHA)
