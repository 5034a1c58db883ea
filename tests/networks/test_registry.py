"""Networks by name or import path: the registry's metadata (dataset and paper family, given
explicitly at registration, both optional), factories by "package.module:function", loading a saved
net through them, and the layering: the library never imports the networks package."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy
import pytest

import chainer.functions as F
import chainer.links as L

import branchynet  # noqa: F401
import networks
from branchynet import Branch, BranchyNet
from branchynet.model import serialization
from networks import registry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_five_networks_carry_their_dataset_and_family():
    assert {n: (networks.dataset_of(n), networks.family_of(n)) for n in networks.names()} == {
        "b-lenet": ("mnist", "lenet"), "b-alexnet": ("cifar10", "alexnet"),
        "b-alexnet-paper": ("cifar10", "alexnet"), "b-resnet110": ("cifar10", "resnet110"),
        "b-resnet110-paper": ("cifar10", "resnet110")}


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_METADATA", dict(registry._METADATA))


def test_metadata_is_what_register_was_given_not_derived_from_names(scratch_registry):
    # a name and a module that say the opposite of the metadata
    @networks.register("b-lenet-cifar10-resnet110", dataset="mnist", family="alexnet")
    def factory():
        raise AssertionError("not built")
    assert networks.dataset_of("b-lenet-cifar10-resnet110") == "mnist"
    assert networks.family_of("b-lenet-cifar10-resnet110") == "alexnet"
    with pytest.raises(networks.UnknownNetwork, match="unknown network"):
        networks.family_of("b-nothing")


def two_exits(width=4):
    """A 2-exit factory no registry knows, with lazily sized layers; takes no weights= nor beta1=."""
    return BranchyNet([L.Convolution2D(None, width, 3), F.relu, Branch([L.Linear(None, 10)]),
                       L.Linear(None, 16), F.relu, Branch([L.Linear(None, 10)])])


def test_any_names_register_and_tags_are_optional(scratch_registry):
    networks.register("mine")(two_exits)
    networks.register("mine-on-svhn", dataset="svhn", width=2)(two_exits)
    assert (networks.dataset_of("mine"), networks.family_of("mine")) == (None, None)
    assert networks.dataset_of("mine-on-svhn") == "svhn"
    net = networks.build("mine-on-svhn")
    assert net.config == {"network": "mine-on-svhn", "kwargs": {}}
    assert net.segments[0][0].out_channels == 2
    with pytest.raises(ValueError, match="without ':'"):
        networks.register("a:b")


def test_a_factory_by_import_path_is_built_recorded_and_reloaded(tmp_path):
    spec = "tests.networks.test_registry:two_exits"
    net = networks.build(spec, width=3)
    assert net.config == {"network": spec, "kwargs": {"width": 3}}
    assert (networks.dataset_of(spec), networks.family_of(spec)) == (None, None)
    x = numpy.random.RandomState(0).rand(4, 1, 12, 12).astype(numpy.float32)
    probs = net.exit_probs(x)
    path = str(tmp_path / "m.npz")
    serialization.save(net, path)
    loaded = networks.load(path)
    assert loaded.segments[0][0].out_channels == 3
    for a, b in zip(probs, loaded.exit_probs(x)):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec, message", [
    ("tests.networks.no_such_module:f", "no module 'tests.networks.no_such_module'"),
    ("tests.networks.test_registry:no_such_function", "has no function 'no_such_function'"),
    ("tests.networks.test_registry:", "package.module:function"),
    ("b-nothing", "unknown network 'b-nothing'"),
])
def test_a_bad_spec_says_what_is_wrong(spec, message):
    with pytest.raises(networks.UnknownNetwork, match=re.escape(message)):
        networks.build(spec)


def test_load_rebuilds_with_the_builder_it_is_given(tmp_path):
    net = networks.build("b-lenet", weights="code")
    path = str(tmp_path / "m.npz")
    serialization.save(net, path)
    calls = []

    def build(name, **kwargs):
        calls.append((name, kwargs))
        return networks.build(name, **kwargs)
    loaded = serialization.load(path, build, thresholds=[0.1])
    assert calls == [("b-lenet", {"weights": "code", "thresholds": [0.1]})]
    assert loaded.thresholds == [0.1] and networks.load(path).weights == [1.0, 1.0]


def test_the_library_does_not_import_the_networks_package():
    package = os.path.join(ROOT, "branchynet")
    modules = sorted(os.path.relpath(os.path.join(folder, f), ROOT)[:-3].replace(os.sep, ".")
                     for folder, _, files in os.walk(package) for f in files
                     if f.endswith(".py") and f != "__init__.py")
    if importlib.util.find_spec("cupy") is None:  # the GPU backend's graphs need CuPy to import
        modules.remove("branchynet.gpu.graphs")
    script = ("import importlib\n"
              "for m in %r: importlib.import_module(m)\n"
              "print(sorted(m for m in sys.modules if m == 'networks' or m.startswith('networks.')))\n"
              % (modules,))
    proc = subprocess.run([sys.executable, "-c", "import sys\n" + script], capture_output=True,
                          text=True, cwd=str(ROOT), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert "branchynet.model.serialization" in modules and "branchynet.training.runs" in modules


def test_a_model_saved_while_the_net_owned_its_optimizer_still_loads(tmp_path):
    """Such files recorded Adam's beta1 among the factory's arguments (every committed run did);
    a factory that takes no beta1 is rebuilt without it."""
    import json
    path = str(tmp_path / "old.npz")
    serialization.save(networks.build("b-lenet", weights="code"), path)
    with numpy.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays[serialization.CONFIG_KEY] = numpy.array(json.dumps(
        {"network": "b-lenet", "kwargs": {"weights": "code", "beta1": 0.9}}))
    numpy.savez(path, **arrays)
    net = networks.load(path)
    assert net.config == {"network": "b-lenet", "kwargs": {"weights": "code"}}
    assert net.weights == [1.0, 1.0]


def test_a_loaded_committed_net_refuses_images_of_another_shape():
    """The committed weights predate the saved input shape: the registry's dataset gives it."""
    net = networks.load(os.path.join(ROOT, "results", "b-lenet", "run", "branchy.npz"))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\) expected, got \(2, 1, 28, 27\)"):
        net.predict(numpy.zeros((2, 1, 28, 27), numpy.float32), 0.025)
    assert len(net.predict(numpy.zeros((2, 1, 28, 28), numpy.float32), 0.025)[0]) == 2
