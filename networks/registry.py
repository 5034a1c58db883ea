"""A registry of the networks, shared by scripts and tests, and the loss-weight presets.

Each network is registered with its dataset ("mnist", "cifar10") and the paper's network it
reproduces, its *family* ("lenet", "alexnet", "resnet110"; the key of ``branchynet.reporting.paper``'s tables).
``build(name, **kwargs)`` records its arguments on the network (``net.config``) so that a saved
model can be rebuilt in a fresh process (``load``).
"""
import importlib

from branchynet.model import serialization
from branchynet.reporting import paper

DATASETS = ("mnist", "cifar10")

_FACTORIES = {}  # name -> (factory, fixed kwargs)
_METADATA = {}  # name -> {"dataset": ..., "family": ...}
_MODULES = ("networks.lenet_mnist", "networks.alex_cifar10", "networks.resnet_cifar10")


def register(name, dataset, family, **fixed_kwargs):
    """Registers a factory under ``name`` for ``dataset`` as a network of the paper's ``family``;
    ``fixed_kwargs`` make a named variant of it."""
    if dataset not in DATASETS:
        raise ValueError("dataset must be one of %s, got %r" % (", ".join(DATASETS), dataset))
    if family not in paper.FAMILIES:
        raise ValueError("family must be one of %s, got %r" % (", ".join(paper.FAMILIES), family))

    def wrap(factory):
        if name in _FACTORIES:
            raise ValueError("network %r is registered twice" % name)
        _FACTORIES[name] = (factory, fixed_kwargs)
        _METADATA[name] = {"dataset": dataset, "family": family}
        return factory
    return wrap


def _load_all():
    for module in _MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def _known(name):
    _load_all()
    if name not in _FACTORIES:
        raise KeyError("unknown network %r; registered: %s" % (name, ", ".join(sorted(_FACTORIES))))
    return name


def names():
    _load_all()
    return sorted(_FACTORIES)


def build(name, **kwargs):
    """Builds the registered network ``name``; keyword arguments go to its factory."""
    factory, fixed = _FACTORIES[_known(name)]
    net = factory(**fixed, **kwargs)
    net.config = {"network": name, "kwargs": kwargs}
    return net


def loss_weights(preset, num_exits):
    """Per-exit loss weights: "slides" (early exits 1.0, last exit 0.3, the paper's and slides'
    choice; the default), "code" (all 1.0, what the original code ran), or an explicit list."""
    if preset == "slides":
        return [1.0] * (num_exits - 1) + [0.3]
    if preset == "code":
        return [1.0] * num_exits
    weights = [float(w) for w in preset]
    if len(weights) != num_exits:
        raise ValueError("expected %d loss weights, got %d" % (num_exits, len(weights)))
    return weights


def dataset_of(name):
    """The dataset a registered network is built for: "mnist" or "cifar10"."""
    return _METADATA[_known(name)]["dataset"]


def family_of(name):
    """The paper's network a registered network reproduces: "lenet", "alexnet" or "resnet110"
    (``b-alexnet-paper`` is an AlexNet, ``b-resnet110-paper`` a ResNet-110)."""
    return _METADATA[_known(name)]["family"]


def load(path, **overrides):
    """Rebuilds and loads a model saved by ``branchynet.model.serialization.save``; ``overrides`` replace
    stored factory arguments (e.g. controller settings such as ``thresholds``)."""
    return serialization.load(path, build, **overrides)


def load_run(run_dir, device="@numpy"):
    """(branchy net, main net or None) of a run folder, on ``device``."""
    return serialization.load_run(run_dir, build, device)
