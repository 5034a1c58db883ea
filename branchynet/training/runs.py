"""Training runs: the settings that define one (recorded as the run folder's ``run.json``), and
launching, or resuming, one (``train``).

``run.json`` holds the network (a registered name or "package.module:function") and its factory
arguments, its dataset and paper family (None for others), the loss weights (preset, None for the
``Branch`` list's own, and values), the CIFAR-10 preprocessing (None: the default, "gcn"), the
schedule, batch size, seed, validation split, training subset, the optimizer's settings, the main
network it started from (``main_from``), and where and with what it ran (device, stock or fast CPU
kernels, library versions, git commit, date, command). Each later launch that resumes the run is
appended to its ``resumes``. The experiment scripts read a run's settings from it; a resume whose
settings differ from the recorded ones is refused.
"""
import contextlib
import dataclasses
import datetime
import glob
import os
import shutil
import subprocess

import numpy

import chainer

from branchynet.data.split import VAL_SIZE, load_split, run_statistics
from branchynet.fast import denormals
from branchynet.model import sample_weights, serialization
from branchynet.model.loss import loss_weights
from branchynet.training import lock, trainer
from branchynet.training.optimizers import OptimizerSettings
from branchynet.versions import versions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class RunSettings:
    """What a training run is: a resume must have the same (device and kernels may change)."""
    network: str
    main_epochs: int
    joint_epochs: int
    batchsize: int = 512
    weights: str = None
    beta1: float = 0.9
    seed: int = 0
    val_size: int = VAL_SIZE
    train_subset: int = 0
    main_from: str = None
    net_kwargs: dict = dataclasses.field(default_factory=dict)
    preprocessing: str = None
    sample_weighting: str = None  # None: the paper's fixed weights; "soft_exit[:ALPHA]"
    flush_denormals: bool = True  # subnormal floats computed as zero on the CPU (fast.denormals)

    @classmethod
    def from_info(cls, info):
        """The settings recorded in a run.json (a dict)."""
        return cls(network=info["network"], main_epochs=info["schedule"]["main_epochs"],
                   joint_epochs=info["schedule"]["joint_epochs"], batchsize=info["batchsize"],
                   weights=info["loss_weights"]["preset"], beta1=info["optimizer"]["beta1"],
                   seed=info["seed"], val_size=info["val_size"],
                   train_subset=info["train_subset"], main_from=info["main_from"],
                   net_kwargs=dict(info["net_kwargs"]), preprocessing=info.get("preprocessing"),
                   sample_weighting=info.get("sample_weighting"),
                   flush_denormals=info.get("flush_denormals", False))  # older runs: not flushed


def differences(recorded, settings):
    """The settings that differ between a run.json (``recorded``) and ``settings``, as
    "name: recorded -> new" strings (empty if none)."""
    old, new = dataclasses.asdict(RunSettings.from_info(recorded)), dataclasses.asdict(settings)
    return ["%s: %r -> %r" % (key, old[key], new[key]) for key in old if old[key] != new[key]]


def git_commit(repo=REPO):
    """The commit checked out in ``repo`` (with "+dirty" if files differ from it), or None."""
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def launch_info(device, stock_chainer, command=None, dist=None):
    """Where and with what one launch of a training ran (``dist``: its processes, if several)."""
    gpu = chainer.get_device(device)
    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": device, "stock_chainer": stock_chainer,
            "versions": versions(gpu if gpu.xp is not numpy else None),
            "git_commit": git_commit(), "command": command}
    if dist is not None:
        info["processes"] = {"count": dist.size, "communicator": dist.communicator_name}
    return info


def optimizer_settings(settings):
    """The optimizer of a run: Adam with the run's beta1 (alpha 1e-3), as the paper."""
    return OptimizerSettings("Adam", beta1=settings.beta1)


def run_info(settings, net, dataset, family, launch, split):
    """The run.json of a new run: ``settings``, what ``net`` was built with, the data ``split``
    (its description: sizes, preprocessing and whose statistics), and its first ``launch``
    (``launch_info``)."""
    return dict({
        "network": settings.network, "dataset": dataset, "family": family, "split": split,
        "net_kwargs": settings.net_kwargs,
        "loss_weights": {"preset": settings.weights,
                         "values": [float(w) for w in net.loss.weights_of(net)]},
        "schedule": {"main_epochs": settings.main_epochs, "joint_epochs": settings.joint_epochs},
        "batchsize": settings.batchsize, "seed": settings.seed, "val_size": settings.val_size,
        "train_subset": settings.train_subset, "optimizer": optimizer_settings(settings).as_dict(),
        "main_from": settings.main_from, "preprocessing": settings.preprocessing,
        "sample_weighting": settings.sample_weighting, "flush_denormals": settings.flush_denormals},
        **launch, resumes=[])


class SettingsMismatch(ValueError):
    """A resume asked for other settings than the run folder was trained with, or the folder's
    settings are unknown (trained files but no run.json)."""


def trained_files(out, main_from=None):
    """The files of ``out`` that only training writes (snapshots, log, weights; main.npz unless
    it is the copy of ``main_from``): a folder without any has trained no epoch."""
    names = ["log.jsonl", serialization.BRANCHY] + ([] if main_from else [serialization.MAIN])
    found = [n for n in names if os.path.exists(os.path.join(out, n))]
    return found + sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "snapshot_epoch_*")))


def recorded_settings(out, settings, echo):
    """The run.json ``train`` resumes (None: a new run) and the statistics of its split; refuses
    (``SettingsMismatch``) other settings, or a trained folder without run.json. A run.json of
    launches that trained no epoch (failed or stopped before it) binds nothing: it is replaced."""
    recorded = serialization.read_run_info(out)
    trained = trained_files(out, settings.main_from)
    if recorded is None and trained:
        raise SettingsMismatch("%s holds %s but no run.json: the settings it was trained with are "
                               "unknown; restore its run.json or train in another folder"
                               % (out, ", ".join(trained)))
    if recorded is not None and not trained:
        echo("note: %s trained no epoch yet; its run.json is replaced by this launch's" % out)
        recorded = None
    if recorded is None:
        return None, "train"
    diffs = differences(recorded, settings)
    if diffs:
        hint = (" (it computed subnormal floats as such: resume it with train.py --denormals keep)"
                if settings.flush_denormals and not recorded.get("flush_denormals", False) else "")
        raise SettingsMismatch("%s was trained with other settings (recorded -> asked): %s%s"
                               % (out, "; ".join(diffs), hint))
    return recorded, run_statistics(out)


def train(settings, out, build, dataset, family, device="@numpy", stock_chainer=False,
          data_dir=None, progress=None, command=None, echo=None, dist=None):
    """Trains (or resumes) the run ``settings`` in the folder ``out`` and records it in run.json
    (and ``command``, the command line that launched it, in command.txt); returns the log entries.

    ``build(network, **kwargs)`` makes the net (``networks.build``); ``settings.weights``, a
    preset (``loss.loss_weights``), replaces the Branch list's loss weights. ``dataset`` is the
    name ``load_split`` loads, ``family`` the paper network's (or None). Raises
    ``SettingsMismatch`` (``recorded_settings``), and ``lock.FolderInUse`` where another process
    trains in ``out``. ``dist``: a ``distributed.Distributed`` to train data parallel (every
    process calls ``train``; rank 0 holds, reads and writes the run folder and tells the others
    what it found).
    """
    echo = echo or (lambda line: print(line, flush=True))
    root = dist is None or dist.is_root
    if settings.preprocessing is not None and dataset != "cifar10":
        raise ValueError(f"preprocessing {settings.preprocessing!r} applies to CIFAR-10, not {dataset}")
    with contextlib.ExitStack() as held:
        found = None
        if root:  # what it finds, or why it refuses, goes to every process
            try:
                held.enter_context(lock.hold(out, command, warn=echo))
                found = recorded_settings(out, settings, echo)
            except (lock.FolderInUse, SettingsMismatch, serialization.RunFileError,
                    ValueError) as err:
                found = err
        if dist is not None:
            found = dist.bcast(found)
        if isinstance(found, Exception):
            raise found
        recorded, statistics = found
        return _train(settings, out, build, dataset, family, device, stock_chainer, data_dir,
                      progress, command, echo, dist, recorded, statistics)


def _train(settings, out, build, dataset, family, device, stock_chainer, data_dir, progress,
           command, echo, dist, recorded, statistics):
    root = dist is None or dist.is_root
    chosen = {} if settings.preprocessing is None else {"preprocessing": settings.preprocessing}
    # a resumed run keeps the preprocessing statistics it was trained with
    split = load_split(dataset, settings.val_size, data_dir, statistics=statistics, **chosen)
    train_set, val_set, _ = split
    if settings.train_subset:
        if settings.train_subset > len(train_set[0]):
            raise ValueError("train_subset %d is more than the %d training images"
                             % (settings.train_subset, len(train_set[0])))
        train_set = tuple(a[:settings.train_subset] for a in train_set)
    numpy.random.seed(settings.seed)
    net = build(settings.network, **settings.net_kwargs)
    if settings.weights is not None:
        net.loss.weights = loss_weights(settings.weights, net.numexits())
    if settings.sample_weighting is not None:
        net.loss.sample_weighting = sample_weights.get(settings.sample_weighting)
    if settings.main_from is not None and root:  # (the others get rank 0's parameters)
        serialization.load_into(net, settings.main_from)
    net.to_device(device)
    if root:
        _record_launch(settings, out, net, dataset, family, split, recorded,
                       launch_info(device, stock_chainer, command, dist), command)
    if settings.flush_denormals and denormals.why_not() and root:
        echo("note: subnormal floats are not flushed to zero here (%s)" % denormals.why_not())
    with chainer.using_config("branchynet_fast_cpu", not stock_chainer), \
            denormals.flushed(settings.flush_denormals):
        return trainer.fit(net, train_set, val_set, out, settings.main_epochs,
                            settings.joint_epochs, settings.batchsize, seed=settings.seed,
                            progress=progress, echo=echo, dist=dist,
                            optimizer=optimizer_settings(settings))


def _record_launch(settings, out, net, dataset, family, split, recorded, launch, command):
    """Writes the launch into ``out``: the --main-from copy (anew for a new run), command.txt and
    run.json (a new run's, or ``recorded`` with the launch added to its resumes)."""
    os.makedirs(out, exist_ok=True)
    baseline = os.path.join(out, serialization.MAIN)
    if settings.main_from is not None and (recorded is None or not os.path.exists(baseline)):
        shutil.copyfile(settings.main_from, baseline)
    if command is not None:
        with open(os.path.join(out, "command.txt"), "a") as f:
            f.write(command + "\n")
    if recorded is None:
        info = run_info(settings, net, dataset, family, launch, split.description)
    else:
        info = dict(recorded, resumes=recorded.get("resumes", []) + [launch])
    serialization.write_run_info(out, info)
