"""Networks by name: the registered ones (the paper's three and any a user registers) and any
factory given by import path, ``"package.module:function"``.

``build(spec, **kwargs)`` records the spec and its arguments on the network (``net.config``) so that
a saved model can be rebuilt in a fresh process (``load``). A registered network may be tagged with
the dataset it is built for and, for the paper's networks, its *family* ("lenet", "alexnet",
"resnet110"; the key of ``branchynet.reporting.paper``'s tables).
"""
import importlib
import inspect

from branchynet.data.split import SAMPLE_SHAPES
from branchynet.model import serialization

_FACTORIES = {}  # name -> (factory, fixed kwargs)
_METADATA = {}  # name -> {"dataset": ..., "family": ...}
_MODULES = ("networks.lenet_mnist", "networks.alex_cifar10", "networks.resnet_cifar10")
# optimizer settings that models saved while BranchyNet owned its optimizer recorded among the
# factory's arguments (training runs recorded beta1)
_FORMER_OPTIMIZER_ARGS = ("opt", "alpha", "beta1", "lr", "momentum", "weight_decay")


class UnknownNetwork(LookupError):
    """A network spec that names no registered network nor an importable factory."""


def register(name, dataset=None, family=None, **fixed_kwargs):
    """Registers a factory under ``name``, optionally tagged with its ``dataset`` (a name
    ``branchynet.data.split.load_split`` loads) and, for a paper network, its ``family``;
    ``fixed_kwargs`` make a named variant of it."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError("a network name is a non-empty string without ':', got %r" % (name,))

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
        raise UnknownNetwork("unknown network %r; registered: %s, or give a factory as "
                             "package.module:function" % (name, ", ".join(sorted(_FACTORIES))))
    return name


def _imported(spec):
    """The function a "package.module:function" spec names."""
    module_name, _, function = spec.partition(":")
    if not module_name or not function:
        raise UnknownNetwork("network %r: a factory is given as package.module:function" % spec)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is None or not module_name.startswith(err.name):
            raise  # the module exists but imports something missing
        raise UnknownNetwork("network %r: no module %r can be imported (install it, or put its "
                             "folder on PYTHONPATH)" % (spec, module_name)) from None
    factory = getattr(module, function, None)
    if not callable(factory):
        raise UnknownNetwork("network %r: module %r has no function %r"
                             % (spec, module_name, function))
    return factory


def names():
    _load_all()
    return sorted(_FACTORIES)


def factory_of(spec):
    """(factory, fixed keyword arguments) of a registered name or a "package.module:function"."""
    if ":" in spec:
        return _imported(spec), {}
    return _FACTORIES[_known(spec)]


def build(spec, **kwargs):
    """Builds the network ``spec`` (a registered name or "package.module:function"); keyword
    arguments go to its factory and are recorded with it (``net.config``)."""
    factory, fixed = factory_of(spec)
    net = factory(**fixed, **kwargs)
    net.config = {"network": spec, "kwargs": kwargs}
    return net


def _metadata(spec, key):
    if ":" in spec:
        _imported(spec)
        return None
    return _METADATA[_known(spec)][key]


def dataset_of(spec):
    """The dataset a registered network is tagged with ("mnist", "cifar10", ...), or None (an
    untagged name, or a factory given by import path)."""
    return _metadata(spec, "dataset")


def family_of(spec):
    """The paper's network a registered network reproduces: "lenet", "alexnet" or "resnet110"
    (``b-alexnet-paper`` is an AlexNet, ``b-resnet110-paper`` a ResNet-110), or None for any other."""
    return _metadata(spec, "family")


def rebuild(spec, **kwargs):
    """``build`` for a saved model: less the optimizer settings a model saved while BranchyNet
    owned its optimizer recorded (e.g. ``beta1``), where the factory takes no such argument."""
    factory, _ = factory_of(spec)
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {key: value for key, value in kwargs.items()
                  if key in params or key not in _FORMER_OPTIMIZER_ARGS}
    net = build(spec, **kwargs)
    # a model saved before its input shape was (every committed run) still refuses other images
    net.input_shape = SAMPLE_SHAPES.get(dataset_of(spec))
    return net


def load(path, **overrides):
    """Rebuilds and loads a model saved by ``branchynet.model.serialization.save``; ``overrides`` replace
    stored factory arguments (e.g. controller settings such as ``thresholds``)."""
    return serialization.load(path, rebuild, **overrides)


def load_run(run_dir, device="@numpy"):
    """(branchy net, main net or None) of a run folder, on ``device``."""
    return serialization.load_run(run_dir, rebuild, device)
