"""The run folder a measurement reads: which network it holds, whether it can be measured, where
the measuring script reads and writes by default, and the data its net is measured on."""
import os

from branchynet.data import split as data_split
from branchynet.model import serialization


def network_in(run_dir):
    """The network a run folder holds (its run.json, else the configuration in its branchy.npz or
    main.npz), or None where it holds none. A damaged npz raises ``serialization.ModelFileError``."""
    info = serialization.read_run_info(run_dir)
    if info is not None and info.get("network"):
        return info["network"]
    for name in (serialization.BRANCHY, serialization.MAIN):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            return serialization.read_config(path)["network"]
    return None


def short_name(spec):
    """A folder name for a network: its registered name, or a factory's function name."""
    return spec.rsplit(":", 1)[-1]


def default_results_dir(root, spec):
    """Where measuring writes unless told: <root>/out/<network>, git-ignored; the committed
    <root>/results/<network> is rewritten only when named (``make results``)."""
    return os.path.join(root, "out", short_name(spec))


def default_run_dir(root, spec):
    """The run folder measured unless told (and trained first when it has no weights)."""
    return os.path.join(root, "results", short_name(spec), "run")


def problem(run_dir, network, explicit, train_if_missing, default_run=None):
    """The reason ``run_dir`` cannot be measured as ``network``, or None. ``explicit``: the folder
    was named (not the default ``default_run``); such a folder with no weights and no unfinished
    training is refused unless ``train_if_missing``, so that a mistyped path does not start a
    long training."""
    try:
        held = network_in(run_dir)
    except serialization.ModelFileError as err:
        return str(err)
    if held is not None and held != network:
        return ("%s holds %s, not %s: measure it with --network %s --run-dir %s"
                % (run_dir, held, network, held, run_dir))
    started = serialization.read_run_info(run_dir) is not None
    if explicit and not serialization.has_weights(run_dir) and not started and not train_if_missing:
        what = "does not exist" if not os.path.exists(run_dir) else "has no branchy.npz"
        return ("--run-dir %s %s. Check the path; to train %s there (which takes long) add "
                "--train-if-missing. Without --run-dir the default run folder %s is used, and "
                "trained when it has no weights." % (run_dir, what, network, default_run))
    return None


def run_split(dataset, val_size, run_dir, data_dir=None):
    """``(validation set, test set, description)`` a run folder's net is measured on: the split's
    own seed, and the preprocessing and statistics its run.json records (the inputs it was
    trained on); ``description``: ``data_split.load_split``'s."""
    info = serialization.read_run_info(run_dir) or {}
    chosen = {"preprocessing": info["preprocessing"]} if info.get("preprocessing") else {}
    if dataset == "cifar10":  # MNIST has no preprocessing statistics (a net fit() trained alone
        chosen["statistics"] = data_split.run_statistics(run_dir)  # has no run.json)
    split = data_split.load_split(dataset, val_size, data_dir, **chosen)
    return split[1], split[2], split.description
