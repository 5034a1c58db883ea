"""The held-out validation split: thresholds are chosen on it and then applied, unchanged, to the
test set (the honest number; the authors chose theirs on the test set)."""
import numpy

from branchynet import datasets


def load_split(dataset, val_size=5000, data_dir=None, seed=0):
    """((x_train, t_train), (x_val, t_val), (x_test, t_test)) as numpy arrays.

    The validation images are a fixed random subset of the official training set (``seed``), so
    the same split comes back in every process; ``val_size=0`` trains on the whole set, as the paper.
    """
    loader = {"mnist": datasets.get_mnist, "cifar10": datasets.get_cifar10}[dataset]
    train, test = loader(data_dir=data_dir)
    x, t = train._datasets
    order = numpy.random.RandomState(seed).permutation(len(x))
    val, keep = numpy.sort(order[:val_size]), numpy.sort(order[val_size:])
    return (x[keep], t[keep]), (x[val], t[val]), tuple(test._datasets)
