"""Saving and loading: Chainer's npz serializers plus the configuration that rebuilds the net.

The original pickled the whole object with dill (bug B21: fragile, optimizer state on the wrong
device). Here the npz holds the parameters and BN statistics under Chainer's usual keys, and one
extra entry, ``branchynet_config``, a JSON string naming the registered network and its factory
arguments (``networks.build``). A fresh process rebuilds the net from it and loads the arrays.
"""
import json
import os
import tempfile

import numpy

import chainer

CONFIG_KEY = "branchynet_config"


def save(net, path):
    """Writes ``net`` (built with ``networks.build``) to ``path`` atomically."""
    config = getattr(net, "config", None)
    if config is None:
        raise ValueError("this BranchyNet has no .config: build it with networks.build(name, ...) "
                         "so that it can be rebuilt when loaded")
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(net)
    arrays = {key: chainer.backend.CpuDevice().send(value) for key, value in serializer.target.items()}
    arrays[CONFIG_KEY] = numpy.array(json.dumps(config))
    _atomic_savez(path, arrays)


def _atomic_savez(path, arrays):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp.npz")
    os.close(fd)
    try:
        numpy.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def read_config(path):
    """The configuration stored in a saved model."""
    if not os.path.exists(path):
        raise FileNotFoundError("no saved model at %s" % path)
    with numpy.load(path) as data:
        if CONFIG_KEY not in data.files:
            raise ValueError("%s has no %r entry: it was not written by branchynet.serialization.save"
                             % (path, CONFIG_KEY))
        return json.loads(str(data[CONFIG_KEY]))


def load_into(net, path):
    """Loads the arrays of a saved model into an existing net of the same architecture."""
    chainer.serializers.load_npz(path, net)
    return net


def load(path, **overrides):
    """Rebuilds and loads a saved model; ``overrides`` replace stored factory arguments
    (e.g. controller settings such as ``thresholds``)."""
    import networks

    config = read_config(path)
    kwargs = dict(config["kwargs"], **overrides)
    net = networks.build(config["network"], **kwargs)
    return load_into(net, path)
