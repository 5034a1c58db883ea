"""Saving and loading: Chainer's npz serializers plus the configuration that rebuilds the net, and
the files of a run folder.

The original pickled the whole object with dill (docs/original.md, B21: fragile, optimizer state on the wrong
device). Here the npz holds the parameters and BN statistics under Chainer's usual keys, and one
extra entries: ``branchynet_config``, a JSON string naming the registered network and its factory
arguments (``networks.build``), and ``branchynet_thresholds``, the net's default exit thresholds
(``net.thresholds``, JSON: null, a number or one per non-final exit) when it was saved. A fresh
process rebuilds the net from the first with a builder (``load`` takes one; ``networks.load``
passes the registry's), loads the arrays and sets ``net.thresholds`` from the second (files saved
before it existed keep the factory's thresholds).

A file that cannot be read (truncated, corrupt, not an npz) raises ``ModelFileError`` naming the
file and what to do, not the zip or zlib error underneath.

A run folder (``branchynet.training.trainer.fit``'s ``out``) holds ``main.npz`` (the baseline, after
pretraining), ``branchy.npz`` (the jointly trained net) and ``run.json``, the settings it was trained
with (``branchynet.training.runs``).
"""
import json
import os
import tempfile
import zipfile
import zlib

import numpy

import chainer

CONFIG_KEY = "branchynet_config"
THRESHOLDS_KEY = "branchynet_thresholds"


class ModelFileError(ValueError):
    """A saved model cannot be read: truncated, corrupt or not a model; the message says what to do."""


def _unreadable(path, err):
    return ModelFileError(
        "%s cannot be read (%s: %s): it is truncated or corrupt, e.g. an interrupted copy or "
        "download. Copy it again from where it came from, or delete it and train it again "
        "(experiments/train.py --out FOLDER, see README.md)." % (path, type(err).__name__, err))


# what numpy and zipfile raise on a damaged npz (a truncated member: zlib.error or EOFError)
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


def _plain_thresholds(thresholds):
    """``net.thresholds`` as JSON-able data: None, a float, or a list of floats."""
    if thresholds is None:
        return None
    values = numpy.asarray(chainer.backend.CpuDevice().send(thresholds), dtype=numpy.float64)
    return float(values) if values.ndim == 0 else [float(v) for v in values.ravel()]


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
    arrays[THRESHOLDS_KEY] = numpy.array(json.dumps(_plain_thresholds(getattr(net, "thresholds", None))))
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


def _read_entries(path):
    """(config, thresholds entry or the string "absent") of a saved model."""
    if not os.path.exists(path):
        raise FileNotFoundError("no saved model at %s" % path)
    try:
        with numpy.load(path) as data:
            if CONFIG_KEY not in data.files:
                raise ModelFileError("%s has no %r entry: it was not written by "
                                     "branchynet.model.serialization.save" % (path, CONFIG_KEY))
            config = json.loads(str(data[CONFIG_KEY]))
            thresholds = (json.loads(str(data[THRESHOLDS_KEY])) if THRESHOLDS_KEY in data.files
                          else "absent")
    except ModelFileError:
        raise
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from err
    return config, thresholds


def read_config(path):
    """The configuration stored in a saved model."""
    return _read_entries(path)[0]


def read_thresholds(path):
    """The exit thresholds saved with a model (None, a float or a tuple), or None for a file
    saved before they were."""
    thresholds = _read_entries(path)[1]
    if thresholds == "absent":
        return None
    return tuple(thresholds) if isinstance(thresholds, list) else thresholds


def load_into(net, path):
    """Loads the arrays of a saved model into an existing net of the same architecture."""
    try:
        chainer.serializers.load_npz(path, net)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise _unreadable(path, err) from err
    return net


def load(path, build, **overrides):
    """Rebuilds and loads a saved model: ``build(network_name, **kwargs)`` makes the net from the
    stored configuration (``networks.build``; ``networks.load`` passes it), whose factory arguments
    ``overrides`` replace (e.g. controller settings such as ``thresholds``). ``net.thresholds`` is
    the saved one unless ``overrides`` give thresholds."""
    config, thresholds = _read_entries(path)
    kwargs = dict(config["kwargs"], **overrides)
    net = build(config["network"], **kwargs)
    load_into(net, path)
    if thresholds != "absent" and "thresholds" not in overrides:
        net.thresholds = tuple(thresholds) if isinstance(thresholds, list) else thresholds
    return net


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
