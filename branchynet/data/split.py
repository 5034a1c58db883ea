"""The held-out validation split: thresholds are chosen on it and then applied, unchanged, to the
test set (the honest number; the authors chose theirs on the test set).

CIFAR-10's preprocessing statistics ("gcn": per-pixel mean; "standardize": per-channel mean and
std) come from the training part only (``statistics="train"``), after the validation images are
set aside, so that no validation image shapes the inputs. ``statistics="all"`` takes them from all
50,000 official training images, validation included: what every run trained before this option
existed used (the committed B-AlexNet and B-ResNet-110 runs), so evaluating such a run needs it.
MNIST uses no statistics. What was done is in the split's ``description``, which a run folder's
run.json records (``run_statistics`` reads it back).
"""
import json
import os

import numpy

from branchynet.data import cifar10, datasets

DATASETS = ("mnist", "cifar10")  # what load_split loads
SAMPLE_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}  # one image of each
STATISTICS = ("train", "all")
# the training images held out as the validation split on which thresholds are chosen (ours, not
# the paper's, which chose its thresholds on the test set): the one default of every script and run
VAL_SIZE = 5000


class Split(tuple):
    """``(train, val, test)`` pairs of arrays, with ``description``: a JSON-able dict of how they
    were made (dataset, sizes, split seed, preprocessing and where its statistics came from)."""

    def __new__(cls, parts, description):
        split = super().__new__(cls, parts)
        split.description = description
        return split


def load_split(dataset, val_size=VAL_SIZE, data_dir=None, seed=0, statistics="train",
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
        x, t, x_test, t_test = cifar10.load_cifar10_raw(data_dir)
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
    """The ``statistics`` a run folder was trained with, as its run.json records them
    (``split.statistics``), so that it is evaluated on the inputs it was trained on; "train" (the
    default) where the split used none (MNIST; CIFAR-10 scaled to [0, 1])."""
    path = os.path.join(run_dir, "run.json")
    try:
        with open(path) as f:
            split = json.load(f).get("split")
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: the run folder does not say which preprocessing "
                         "statistics its net was trained with (experiments/train.py writes it)") from None
    except (ValueError, AttributeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} cannot be read ({err}): it is truncated or damaged; restore it "
                         "from a copy") from None
    if not isinstance(split, dict) or "statistics" not in split:
        raise ValueError(f"{path} records no split.statistics: add the split its net was trained on "
                         "(the description branchynet.data.split.load_split returns)")
    recorded = split["statistics"]
    if recorded is not None and recorded not in STATISTICS:
        raise ValueError(f"{path}: split.statistics must be one of {STATISTICS} or null, not {recorded!r}")
    return recorded or "train"
