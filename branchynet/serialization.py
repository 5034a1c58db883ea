"""Saving and loading: Chainer's npz serializers plus the configuration that rebuilds the net, and
the files of a run folder.

The original pickled the whole object with dill (docs/original.md, B21: fragile, optimizer state on the wrong
device). Here the npz holds the parameters and BN statistics under Chainer's usual keys, and one
extra entry, ``branchynet_config``, a JSON string naming the registered network and its factory
arguments (``networks.build``). A fresh process rebuilds the net from it with a builder (``load``
takes one; ``networks.load`` passes the registry's) and loads the arrays.

A run folder (``branchynet.training.fit``'s ``out``) holds ``main.npz`` (the baseline, after
pretraining), ``branchy.npz`` (the jointly trained net) and ``run.json``, the settings it was trained
with (``branchynet.runs``).
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


def load(path, build, **overrides):
    """Rebuilds and loads a saved model: ``build(network_name, **kwargs)`` makes the net from the
    stored configuration (``networks.build``; ``networks.load`` passes it), whose factory arguments
    ``overrides`` replace (e.g. controller settings such as ``thresholds``)."""
    config = read_config(path)
    kwargs = dict(config["kwargs"], **overrides)
    net = build(config["network"], **kwargs)
    return load_into(net, path)


# ------------------------------------------------------------------ run folders
RUN_INFO = "run.json"
BRANCHY = "branchy.npz"
MAIN = "main.npz"


def weight_paths(run_dir):
    """(path of branchy.npz, path of main.npz or None where the run has no baseline)."""
    main = os.path.join(run_dir, MAIN)
    return os.path.join(run_dir, BRANCHY), (main if os.path.exists(main) else None)


def has_weights(run_dir):
    """Whether the run folder holds a finished run's net (branchy.npz)."""
    return os.path.exists(os.path.join(run_dir, BRANCHY))


def load_run(run_dir, build, device="@numpy"):
    """(branchy net, main net or None) of a run folder, rebuilt with ``build`` (see ``load``) and
    sent to ``device``."""
    branchy_path, main_path = weight_paths(run_dir)
    nets = [None if path is None else load(path, build) for path in (branchy_path, main_path)]
    for net in nets:
        if net is not None:
            net.to_device(device)
    return tuple(nets)


def write_run_info(run_dir, info):
    """Writes ``info`` (a JSON-able dict) as the run folder's run.json, atomically."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, RUN_INFO)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def read_run_info(run_dir):
    """The run folder's run.json as a dict, or None where it has none."""
    path = os.path.join(run_dir, RUN_INFO)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
