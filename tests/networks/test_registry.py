"""The registry's metadata (dataset and paper family, given explicitly at registration), loading a
saved net through it, and the layering: the library never imports the networks package."""
import os
import subprocess
import sys

import pytest

import branchynet  # noqa: F401
import networks
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
    with pytest.raises(TypeError):
        networks.register("b-unlabelled")
    with pytest.raises(ValueError, match="dataset"):
        networks.register("b-x", dataset="imagenet", family="lenet")
    with pytest.raises(ValueError, match="family"):
        networks.register("b-x", dataset="mnist", family="vgg")
    with pytest.raises(KeyError, match="unknown network"):
        networks.family_of("b-nothing")


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
    script = ("import importlib\n"
              "for m in %r: importlib.import_module(m)\n"
              "print(sorted(m for m in sys.modules if m == 'networks' or m.startswith('networks.')))\n"
              % (modules,))
    proc = subprocess.run([sys.executable, "-c", "import sys\n" + script], capture_output=True,
                          text=True, cwd=str(ROOT), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert "branchynet.model.serialization" in modules and "branchynet.training.runs" in modules
