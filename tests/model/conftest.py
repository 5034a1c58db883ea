"""Fixtures of the controller's and the loss's tests."""
import numpy
import pytest

from branchynet import entropy


@pytest.fixture(scope="module")
def split_threshold(trained_lenet, mnist_subset):
    """A threshold that sends about half of 200 real images out at exit 1, placed halfway between
    two observed entropies so that float rounding cannot flip a decision."""
    ent = numpy.sort(entropy(trained_lenet.exit_probs(mnist_subset[0][:200])[0]))
    return float((ent[99] + ent[100]) / 2)
