"""Saving and loading: Chainer's npz serializers plus the configuration that rebuilds the net, and
the files of a run folder.

The original pickled the whole object with dill (docs/original.md, B21: fragile, optimizer state on the wrong
device). Here the npz holds the parameters and BN statistics under Chainer's usual keys, and two
extra entries: ``branchynet_config``, a JSON string naming the network's factory and its arguments
(``{"network": spec, "kwargs": ...}``, recorded by ``networks.build``; null for a net built by hand),
and ``branchynet_thresholds``, the net's default exit thresholds (``net.thresholds``, JSON: null, a
number or one per non-final exit) when it was saved. ``load`` rebuilds the net from the first with a
builder (``networks.load`` passes ``networks.build``), loads the arrays and sets ``net.thresholds``
from the second. A net built by hand is rebuilt by its author: ``load_into(net, path)``.

A file that cannot be read (truncated, corrupt, not an npz) raises ``ModelFileError`` naming the
file and what to do, not the zip or zlib error underneath.

A run folder (``branchynet.training.trainer.fit``'s ``out``) holds ``main.npz`` (the baseline, after
pretraining), ``branchy.npz`` (the jointly trained net) and ``run.json``, the settings it was trained
with (``branchynet.training.runs``).
"""
import json
import os
import tempfile
import tokenize
import zipfile
import zlib

import numpy

import chainer

from branchynet.model import openmax

CONFIG_KEY = "branchynet_config"
THRESHOLDS_KEY = "branchynet_thresholds"
INPUT_SHAPE_KEY = "branchynet_input_shape"
OPENMAX_KEY = "branchynet_openmax"  # a fitted OpenMax exit measure (net.openmax), JSON, if any


class ModelFileError(ValueError):
    """A saved model cannot be read: truncated, corrupt or not a model; the message says what to do."""


def _unreadable(path, err):
    return ModelFileError(
        "%s cannot be read (%s: %s): it is truncated or corrupt, e.g. an interrupted copy or "
        "download. Copy it again from where it came from, or delete it and train it again "
        "(experiments/train.py --out FOLDER, see README.md)." % (path, type(err).__name__, err))


# what numpy and zipfile raise on a damaged npz (a truncated member: zlib.error or EOFError; a
# damaged array header, read before the member's checksum: SyntaxError or tokenize.TokenError)
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, SyntaxError, tokenize.TokenError)
READ_ERRORS = _DAMAGE + (OSError, ValueError)


def _plain_thresholds(thresholds):
    """``net.thresholds`` as JSON-able data: None, a float, or a list of floats."""
    if thresholds is None:
        return None
    values = numpy.asarray(chainer.backend.CpuDevice().send(thresholds), dtype=numpy.float64)
    return float(values) if values.ndim == 0 else [float(v) for v in values.ravel()]


class NoFactoryError(ValueError):
    """A saved model records no factory to rebuild it from (its net was built by hand)."""


def entries(net):
    """The JSON entries ``save`` writes besides the arrays ({key: text}); raises ValueError naming
    what cannot be written (``fit`` calls it before training, so that no epoch is lost)."""
    config = getattr(net, "config", None)
    try:
        config_text = json.dumps(config)
    except (TypeError, ValueError) as err:
        raise ValueError("net.config %r cannot be saved as JSON (%s): give the factory JSON values "
                         "(numbers, strings, lists, dicts) as arguments" % (config, err)) from None
    thresholds = _plain_thresholds(getattr(net, "thresholds", None))
    shape = getattr(net, "input_shape", None)
    texts = {CONFIG_KEY: config_text, THRESHOLDS_KEY: json.dumps(thresholds),
             INPUT_SHAPE_KEY: json.dumps(None if shape is None else [int(n) for n in shape])}
    if getattr(net, "openmax", None) is not None:
        texts[OPENMAX_KEY] = json.dumps(net.openmax.to_dict())
    return texts


def save(net, path):
    """Writes ``net``'s arrays, its factory (``net.config``, if built with ``networks.build``) and
    its thresholds to ``path`` atomically."""
    texts = entries(net)
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(net)
    arrays = {key: chainer.backend.CpuDevice().send(value) for key, value in serializer.target.items()}
    arrays.update({key: numpy.array(text) for key, text in texts.items()})
    _atomic_savez(path, arrays)


def _umask_mode():
    """The mode a plain ``open`` would give a new file (0666 less the umask): mkstemp's 0600
    would make weights the one file of a run folder that others cannot read."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


TMP_SUFFIX = ".tmp"  # temporary files of atomic writes: ".<name>.<random>.tmp[.npz]"


def atomic_write(path, write, binary=False):
    """Calls ``write(file)`` on a uniquely named temporary file beside ``path``, then renames it
    to ``path`` (mode as any new file's): two writers never share a temporary file, and a write
    cut short never leaves a file that a later run trusts."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = TMP_SUFFIX + (".npz" if path.endswith(".npz") else "")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=suffix)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _atomic_savez(path, arrays):
    atomic_write(path, lambda f: numpy.savez_compressed(f, **arrays), binary=True)


def _read_entries(path):
    """(config, thresholds entry or the string "absent", input shape or None, OpenMax dict or
    None) of a saved model."""
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
            shape = (json.loads(str(data[INPUT_SHAPE_KEY])) if INPUT_SHAPE_KEY in data.files
                     else None)
            fitted = json.loads(str(data[OPENMAX_KEY])) if OPENMAX_KEY in data.files else None
    except ModelFileError:
        raise
    except READ_ERRORS as err:
        raise _unreadable(path, err) from err
    return config, thresholds, shape, fitted


def read_config(path):
    """The configuration stored in a saved model."""
    return _read_entries(path)[0]


def load_into(net, path):
    """Loads the arrays of a saved model, and its thresholds and fitted OpenMax (``net.openmax``)
    where saved, into an existing net of the same architecture (lazily sized layers take the saved
    sizes)."""
    _, thresholds, shape, fitted = _read_entries(path)
    try:
        chainer.serializers.load_npz(path, net)
    except _DAMAGE as err:
        raise _unreadable(path, err) from err
    except KeyError as err:  # a member's name damaged, or the file of another network
        raise ModelFileError("%s lacks an array this net has (%s): it is damaged, or saved from "
                             "another network" % (path, err.args[0] if err.args else err)) from err
    except ValueError as err:  # numpy's "could not broadcast": name the array
        raise ValueError("%s does not fit this net: %s" % (path, _mismatch(path, net) or err)) from err
    if thresholds != "absent":
        net.thresholds = tuple(thresholds) if isinstance(thresholds, list) else thresholds
    if shape is not None:
        net.input_shape = tuple(shape)
    if fitted is not None:
        net.openmax = openmax.OpenMax.from_dict(fitted)
    return net


def _mismatch(path, net):
    """The first array (by name) whose saved shape differs from the net's, as "name: saved (..),
    this net (..)", or None."""
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(net)
    with numpy.load(path) as data:
        for key, value in sorted(serializer.target.items()):
            if value is not None and key in data.files and data[key].shape != value.shape:
                return "%s: saved %s, this net %s" % (key, data[key].shape, value.shape)
    return None


def load(path, build, **overrides):
    """Rebuilds and loads a saved model: ``build(network_name, **kwargs)`` makes the net from the
    stored configuration (``networks.build``; ``networks.load`` passes it), whose factory arguments
    ``overrides`` replace (e.g. controller settings such as ``thresholds``). ``net.thresholds`` is
    the saved one unless ``overrides`` give thresholds."""
    config = _read_entries(path)[0]
    if config is None:
        raise NoFactoryError(
            "%s holds the weights of a BranchyNet built by hand, with no factory to rebuild it "
            "from: build the same net again, then call "
            "branchynet.model.serialization.load_into(net, %r) (or build it with "
            "networks.build(\"package.module:function\", ...) so that load can)" % (path, path))
    net = build(config["network"], **dict(config["kwargs"], **overrides))
    thresholds = net.thresholds
    load_into(net, path)
    if "thresholds" in overrides:
        net.thresholds = thresholds
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


class RunFileError(ValueError):
    """A file of a run folder cannot be read (truncated, edited); the message names it."""


def write_run_info(run_dir, info):
    """Writes ``info`` (a JSON-able dict) as the run folder's run.json, atomically."""
    path = os.path.join(run_dir, RUN_INFO)
    atomic_write(path, lambda f: f.write(json.dumps(info, indent=1) + "\n"))


def read_run_info(run_dir):
    """The run folder's run.json as a dict, or None where it has none; ``RunFileError`` naming
    it where it is not a JSON object (truncated or edited)."""
    path = os.path.join(run_dir, RUN_INFO)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            info = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise RunFileError("%s cannot be read (%s): it is truncated or damaged; restore it from a "
                           "copy, or train again in a new run folder" % (path, err)) from None
    if not isinstance(info, dict):
        raise RunFileError("%s holds a %s, not the JSON object of a run's settings"
                           % (path, type(info).__name__))
    return info
