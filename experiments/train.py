#!/usr/bin/env python
"""Trains a network with the paper's two-stage schedule, resumably: a registered one, or any
factory returning a BranchyNet, by import path (then --dataset names its data).

    python experiments/train.py --network b-lenet --main-epochs 100 --joint-epochs 100 \
        --batchsize 512 --out results/b-lenet/run
    python experiments/train.py --network mypackage.nets:three_exits --dataset mnist \
        --net-arg width=32 --main-epochs 10 --joint-epochs 10 --out runs/mine

Run it again with the same --out to resume from the last finished epoch (Ctrl-C keeps the last
snapshot); a resume with other settings than the run.json records is refused, and so is a second
trainer on a folder in use (one line naming the first: pid, host, start time, command). The folder receives
snapshot_epoch_NNNN.npz (Chainer Trainer snapshots, the last two), log.jsonl, main.npz (baseline,
after pretraining), branchy.npz, run.json (the settings, branchynet.training.runs) and command.txt.

Data parallel over N processes (ChainerMN; pip install -e ".[mpi]"; docs/distributed.md):

    .venv/bin/mpiexec -n 2 .venv/bin/python experiments/train.py --network b-lenet ... --out RUN
"""
import argparse
import inspect
import json
import os
import shlex
import sys

import numpy

import chainer

import branchynet  # noqa: F401
import networks
from branchynet import devices
from branchynet.data import datasets
from branchynet.data.split import DATASETS, VAL_SIZE
from branchynet.model import sample_weights, serialization
from branchynet.training import distributed, lock, runs, snapshots


def _integer(minimum, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError("must be %s, got %r" % (what, text))
        return value
    return parse


positive_int = _integer(1, "a whole number >= 1")
nonnegative_int = _integer(0, "a whole number >= 0")


def beta1_value(text):
    """Adam's beta1: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError("must be a number in [0, 1), got %r" % text)
    return value


WEIGHT_PRESETS = ("slides", "code")


def add_training_arguments(p, schedule=None, val_size=VAL_SIZE):
    """The flags that make a run's settings (``settings_from_args``). ``schedule``: a
    ``paper.SCHEDULES`` entry giving the epochs' and batch size's defaults, else the epochs are
    required; ``val_size``: --val-size's default (None: the caller decides)."""
    for flag, key, what in (("--main-epochs", "main_epochs", "pretraining epochs of the main network"),
                            ("--joint-epochs", "joint_epochs", "joint training epochs of all exits")):
        if schedule is None:
            p.add_argument(flag, type=nonnegative_int, required=True, help=what)
        else:
            p.add_argument(flag, type=nonnegative_int, default=schedule[key],
                           help=what + " (default %(default)s, the paper's)")
    p.add_argument("--batchsize", type=positive_int,
                   default=512 if schedule is None else schedule["batchsize"],
                   help="training batch size (default %(default)s)")
    p.add_argument("--weights", default=None, choices=WEIGHT_PRESETS,
                   help="loss-weight preset: slides (1..1, 0.3) or code (all 1); default: slides "
                        "for the paper's networks, the Branch list's own weights for others")
    p.add_argument("--beta1", type=beta1_value, default=0.9,
                   help="Adam beta1 (default %(default)s, the code's; the paper's text says 0.99)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default %(default)s)")
    p.add_argument("--val-size", type=positive_int, default=val_size,
                   help="training images held out for validation (default %s)"
                        % (val_size if val_size is not None
                           else "the run's, else %d" % VAL_SIZE))
    p.add_argument("--train-subset", type=positive_int, default=None,
                   help="train on the first N images only (N >= 1; smoke runs; default: all)")
    p.add_argument("--net-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="network factory argument, e.g. n=1 (ResNet blocks per stage); repeatable")


class FlagError(ValueError):
    """A flag's value that argparse's types cannot check alone; the message names the flag."""


def net_kwargs(pairs):
    """{"n": 1, ...} from ["n=1", ...]; values are read as JSON where they parse (numbers, lists)."""
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise FlagError("argument --net-arg: expects KEY=VALUE with KEY a Python name, got %r"
                            % pair)
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    return kwargs


def check_network(spec, kwargs):
    """Raises FlagError naming --network or --net-arg unless ``spec`` names a factory that takes
    the arguments ``kwargs``."""
    try:
        factory, fixed = networks.factory_of(spec)
    except networks.UnknownNetwork as err:
        raise FlagError("argument --network: %s" % err) from None
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in names or key in fixed:
            raise FlagError("argument --net-arg: %s takes no argument %r (it takes: %s)"
                            % (spec, key, ", ".join(n for n in names if n not in fixed) or "none"))


def network_dataset(spec, dataset):
    """The dataset to train ``spec`` on: its registered one (--dataset, if given, must agree),
    else --dataset; FlagError if neither."""
    registered = networks.dataset_of(spec)
    if registered is not None and dataset not in (None, registered):
        raise FlagError("argument --dataset: %s is registered for %s, not %s"
                        % (spec, registered, dataset))
    if registered is None and dataset is None:
        raise FlagError("argument --dataset: required for %s, which is registered with no "
                        "dataset (one of: %s)" % (spec, ", ".join(DATASETS)))
    return registered or dataset


def default_weights(spec):
    """--weights' default: the paper's "slides" for its networks, the Branch list's (None) else."""
    return "slides" if networks.family_of(spec) is not None else None


def _sample_weighting(spec):
    """--sample-weighting's value, checked: None for "none", else the spec as given."""
    try:
        return None if sample_weights.get(spec) is None else spec
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def settings_from_args(args, val_size=None):
    """The run settings of parsed training flags (``val_size`` replaces --val-size if given)."""
    weights = args.weights if args.weights is not None else default_weights(args.network)
    return runs.RunSettings(
        network=args.network, main_epochs=args.main_epochs, joint_epochs=args.joint_epochs,
        batchsize=args.batchsize, weights=weights, beta1=args.beta1, seed=args.seed,
        val_size=args.val_size if val_size is None else val_size, train_subset=args.train_subset or 0,
        main_from=getattr(args, "main_from", None), net_kwargs=net_kwargs(args.net_arg),
        preprocessing=getattr(args, "preprocessing", None),
        sample_weighting=getattr(args, "sample_weighting", None),
        flush_denormals=getattr(args, "denormals", "flush") == "flush")


def launch(settings, out, args, command, dist=None):
    """Trains (or resumes) ``settings`` in ``out`` with the flags' device, kernels, data folder and
    progress bars (``dist``: the processes of a data parallel run); a run.json with other settings
    stops the script with their names. Ctrl-C stops it with one line: the snapshot kept."""
    device = args.device
    if dist is not None and chainer.get_device(device).xp is not numpy:
        device = "@cupy:%d" % dist.comm.intra_rank  # one GPU per process of a machine
    try:
        dataset = network_dataset(settings.network, getattr(args, "dataset", None))
        return runs.train(settings, out, networks.build, dataset,
                          networks.family_of(settings.network), device=device,
                          stock_chainer=args.stock_chainer, data_dir=args.data_dir,
                          progress=False if args.no_progress else None, command=command,
                          dist=dist)
    except runs.SettingsMismatch as err:  # every process refuses: rank 0 says it
        distributed.say_once(dist, "refused: %s; use another run folder" % err)
        raise SystemExit(1)
    except lock.FolderInUse as err:
        distributed.say_once(dist, "refused: %s" % err)
        raise SystemExit(1)
    except (serialization.RunFileError, serialization.ModelFileError) as err:
        if dist is not None and dist.size > 1:
            dist.abort(err)
        raise SystemExit("error: %s" % err)
    except KeyboardInterrupt:
        kept = snapshots.latest(out) if dist is None or dist.is_root else None
        note = ("interrupted: %s; run the same command again to resume"
                % ("%s kept (%d epochs done)" % (kept, snapshots.snapshot_epoch(kept))
                   if kept else "no epoch finished, nothing kept"))
        if dist is not None and dist.size > 1:
            dist.abort(KeyboardInterrupt(), 130, note)  # rank 0 writes the note
        else:
            sys.stderr.write(note + "\n")
        raise SystemExit(130)
    except Exception as err:
        if dist is not None and dist.size > 1:
            dist.abort(err)  # the other processes would wait for this one forever
        raise


def command_line(argv, script):
    """The command that ran: ``sys.argv``, or ``script`` with ``argv`` where main(argv) is called."""
    command = sys.argv if argv is None else [os.path.relpath(script)] + list(argv)
    return "python " + " ".join(shlex.quote(a) for a in command)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True,
                   help="a registered network (%s) or a factory as package.module:function"
                        % ", ".join(networks.names()))
    p.add_argument("--dataset", default=None, choices=DATASETS,
                   help="the data to train on; required where the network is registered with none")
    add_training_arguments(p)
    p.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    p.add_argument("--main-from", default=None, metavar="MAIN_NPZ",
                   help="start from this pretrained main network (another run's main.npz, copied "
                        "into --out as its baseline) instead of pretraining; use with "
                        "--main-epochs 0, e.g. to compare joint-training settings on one trunk")
    p.add_argument("--preprocessing", default=None, choices=datasets.PREPROCESSINGS,
                   help="CIFAR-10 preprocessing (default gcn; branchynet.data.datasets), in run.json")
    p.add_argument("--sample-weighting", default=None, type=_sample_weighting,
                   help="per-sample loss weights in joint training: soft_exit or soft_exit:ALPHA "
                        "(branchynet.model.sample_weights; default: the paper's fixed weights), in run.json")
    p.add_argument("--denormals", default="flush", choices=("flush", "keep"),
                   help="subnormal floats on the CPU: computed as zero (flush, fast; default) or as "
                        "such (keep, as runs before this flag did), in run.json")
    p.add_argument("--data-dir", default=None,
                   help="dataset folder (default: $BRANCHYNET_DATA, then the cache)")
    p.add_argument("--device", default="@numpy", help="Chainer device spec, e.g. @numpy or @cupy:0")
    p.add_argument("--stock-chainer", action="store_true",
                   help="use stock Chainer kernels, not the fast CPU path")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--mpi", action="store_true", default=None,
                   help="data parallel over the processes of mpiexec (ChainerMN); automatic when "
                        "mpiexec starts more than one")
    p.add_argument("--communicator", default=None, choices=("naive", "flat", "pure_nccl"),
                   help="ChainerMN communicator (default: pure_nccl on GPUs with NCCL, else naive)")
    args = p.parse_args(argv)
    try:
        check_network(args.network, net_kwargs(args.net_arg))
        args.dataset = network_dataset(args.network, args.dataset)
    except FlagError as err:
        p.exit(2, "%s: error: %s\n" % (p.prog, err))
    try:
        devices.usable(args.device)
    except ValueError as err:
        p.error("--device: %s" % err)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error("--out %s is a file, not a run folder" % args.out)
    if args.main_from is not None:
        if args.main_epochs != 0:
            p.error("--main-from replaces pretraining: give --main-epochs 0")
        if not os.path.isfile(args.main_from):
            p.error("--main-from: no file %s" % args.main_from)
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        dist = distributed.connect(args.mpi, args.device, args.communicator)
    except distributed.MPIUnavailable as err:
        raise SystemExit("error: %s" % err)
    return launch(settings_from_args(args), args.out, args, command_line(argv, __file__), dist)


if __name__ == "__main__":
    main()
