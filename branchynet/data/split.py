"""The held-out validation split: thresholds are chosen on it and then applied, unchanged, to the
test set (the honest number; the authors chose theirs on the test set).

CIFAR-10's preprocessing statistics ("gcn": per-pixel mean; "standardize": per-channel mean and
std) come from the training part only (``statistics="train"``), after the validation images are
set aside, so that no validation image shapes the inputs. ``statistics="all"`` takes them from all
50,000 official training images, validation included: what every run trained before this option
existed used (``LEGACY_STATISTICS``), so evaluating such a run needs it. MNIST uses no statistics.
What was done is in the split's ``description``.
"""
import json
import os

import numpy

from branchynet.data import datasets

DATASETS = ("mnist", "cifar10")  # what load_split loads
STATISTICS = ("train", "all")
LEGACY_STATISTICS = "all"


class Split(tuple):
    """``(train, val, test)`` pairs of arrays, with ``description``: a JSON-able dict of how they
    were made (dataset, sizes, split seed, preprocessing and where its statistics came from)."""

    def __new__(cls, parts, description):
        split = super().__new__(cls, parts)
        split.description = description
        return split


def load_split(dataset, val_size=5000, data_dir=None, seed=0, statistics="train",
               preprocessing="gcn"):
    """((x_train, t_train), (x_val, t_val), (x_test, t_test)) as numpy arrays, a ``Split``.

    The validation images are a fixed random subset of the official training set (``seed``), so
    the same split comes back in every process; ``val_size=0`` trains on the whole set, as the
    paper. ``statistics`` and ``preprocessing`` apply to CIFAR-10 (see the module docstring).
    """
    if statistics not in STATISTICS:
        raise ValueError(f"statistics must be one of {STATISTICS}, not {statistics!r}")
    if dataset == "mnist":
        train, test = datasets.get_mnist(data_dir=data_dir)
        x, t = datasets.arrays(train)
        x_test, t_test = datasets.arrays(test)
    elif dataset == "cifar10":
        datasets.check_preprocessing(preprocessing)
        x, t, x_test, t_test = datasets.load_cifar10_raw(data_dir)
        t, t_test = t.astype(numpy.int32), t_test.astype(numpy.int32)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    order = numpy.random.RandomState(seed).permutation(len(x))
    val, keep = numpy.sort(order[:val_size]), numpy.sort(order[val_size:])
    description = {"dataset": dataset, "val_size": int(val_size), "split_seed": int(seed),
                   "train_images": len(keep), "val_images": len(val), "test_images": len(x_test)}
    if dataset == "mnist":
        description.update(preprocessing="x / 255", statistics=None, statistics_images=0)
        return Split(((x[keep], t[keep]), (x[val], t[val]), (x_test, t_test)), description)
    fit_on = x[keep] if statistics == "train" else x
    stats = datasets.cifar10_statistics(fit_on, preprocessing)
    used = len(fit_on) if stats else 0
    del fit_on
    parts = [(datasets.preprocess_cifar10(images, preprocessing, stats), labels)
             for images, labels in ((x[keep], t[keep]), (x[val], t[val]), (x_test, t_test))]
    description.update(preprocessing=preprocessing,
                       statistics=statistics if stats else None, statistics_images=used)
    return Split(parts, description)


def run_statistics(run_dir):
    """The ``statistics`` a run folder was trained with: ``run.json``'s ``split.statistics`` where
    it is recorded, else ``LEGACY_STATISTICS`` (runs from before it was recorded)."""
    path = os.path.join(run_dir, "run.json")
    if os.path.exists(path):
        with open(path) as f:
            recorded = (json.load(f).get("split") or {}).get("statistics")
        if recorded in STATISTICS:
            return recorded
    return LEGACY_STATISTICS
