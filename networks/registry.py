"""A registry of the networks, shared by scripts and tests, and the loss-weight presets.

``build(name, **kwargs)`` records its arguments on the network (``net.config``) so that a saved
model can be rebuilt in a fresh process (``branchynet.serialization.load``).
"""
import importlib

_FACTORIES = {}
_MODULES = ("networks.lenet_mnist", "networks.alex_cifar10", "networks.resnet_cifar10")


def register(name, **fixed_kwargs):
    """Registers a factory under ``name``; ``fixed_kwargs`` make a named variant of it."""
    def wrap(factory):
        if name in _FACTORIES:
            raise ValueError("network %r is registered twice" % name)
        _FACTORIES[name] = (factory, fixed_kwargs)
        return factory
    return wrap


def _load_all():
    for module in _MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def names():
    _load_all()
    return sorted(_FACTORIES)


def build(name, **kwargs):
    """Builds the registered network ``name``; keyword arguments go to its factory."""
    _load_all()
    if name not in _FACTORIES:
        raise KeyError("unknown network %r; registered: %s" % (name, ", ".join(sorted(_FACTORIES))))
    factory, fixed = _FACTORIES[name]
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
    """The dataset a registered network is built for: "mnist" or "cifar10" (its module's suffix)."""
    _load_all()
    factory, _ = _FACTORIES[name]
    return factory.__module__.rsplit("_", 1)[1]
