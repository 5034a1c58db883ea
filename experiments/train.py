#!/usr/bin/env python
"""Trains a registered network with the paper's two-stage schedule, resumably.

    python experiments/train.py --network b-lenet --main-epochs 100 --joint-epochs 100 \
        --batchsize 512 --out results/b-lenet/run

Run it again with the same --out to resume from the last finished epoch; a resume with other
settings than the run.json records is refused. The folder receives checkpoint.npz and
optimizer.npz, log.jsonl, main.npz (baseline, after pretraining), branchy.npz, run.json (the
settings, branchynet.runs) and command.txt.
"""
import argparse
import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import branchynet  # noqa: E402,F401
import networks  # noqa: E402
from branchynet import paper, runs  # noqa: E402


def add_training_arguments(p, schedule=None, val_size=paper.DEFAULT_VAL_SIZE):
    """The flags that make a run's settings (``settings_from_args``). ``schedule``: a
    ``paper.SCHEDULES`` entry giving the epochs' and batch size's defaults, else the epochs are
    required; ``val_size``: --val-size's default (None: the caller decides)."""
    for flag, key, what in (("--main-epochs", "main_epochs", "pretraining epochs of the main network"),
                            ("--joint-epochs", "joint_epochs", "joint training epochs of all exits")):
        if schedule is None:
            p.add_argument(flag, type=int, required=True, help=what)
        else:
            p.add_argument(flag, type=int, default=schedule[key],
                           help=what + " (default %(default)s, the paper's)")
    p.add_argument("--batchsize", type=int, default=512 if schedule is None else schedule["batchsize"],
                   help="training batch size (default %(default)s)")
    p.add_argument("--weights", default="slides",
                   help="loss-weight preset: slides (1..1, 0.3; the default) or code (all 1)")
    p.add_argument("--beta1", type=float, default=0.9,
                   help="Adam beta1 (default %(default)s, the code's; the paper's text says 0.99)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default %(default)s)")
    p.add_argument("--val-size", type=int, default=val_size,
                   help="training images held out for validation (default %s)"
                        % (val_size if val_size is not None
                           else "the run's, else %d" % paper.DEFAULT_VAL_SIZE))
    p.add_argument("--train-subset", type=int, default=0,
                   help="train on the first N images only (smoke runs; default: all)")
    p.add_argument("--net-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="network factory argument, e.g. n=1 (ResNet blocks per stage); repeatable")


def net_kwargs(pairs):
    """{"n": 1, ...} from ["n=1", ...]; values are read as JSON where they parse (numbers, lists)."""
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit("--net-arg expects KEY=VALUE, got %r" % pair)
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    return kwargs


def settings_from_args(args, val_size=None):
    """The run settings of parsed training flags (``val_size`` replaces --val-size if given)."""
    return runs.RunSettings(
        network=args.network, main_epochs=args.main_epochs, joint_epochs=args.joint_epochs,
        batchsize=args.batchsize, weights=args.weights, beta1=args.beta1, seed=args.seed,
        val_size=args.val_size if val_size is None else val_size, train_subset=args.train_subset,
        main_from=getattr(args, "main_from", None), net_kwargs=net_kwargs(args.net_arg))


def launch(settings, out, args, command):
    """Trains (or resumes) ``settings`` in ``out`` with the flags' device, kernels, data folder and
    progress bars; a run.json with other settings stops the script with their names."""
    try:
        return runs.train(settings, out, networks.build, networks.dataset_of(settings.network),
                          networks.family_of(settings.network), device=args.device,
                          stock_chainer=args.stock_chainer, data_dir=args.data_dir,
                          progress=False if args.no_progress else None, command=command)
    except runs.SettingsMismatch as err:
        raise SystemExit("refused: %s; use another run folder" % err)


def command_line(argv, script):
    """The command that ran: ``sys.argv``, or ``script`` with ``argv`` where main(argv) is called."""
    command = sys.argv if argv is None else [os.path.relpath(script)] + list(argv)
    return "python " + " ".join(shlex.quote(a) for a in command)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True, choices=networks.names())
    add_training_arguments(p)
    p.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    p.add_argument("--main-from", default=None, metavar="MAIN_NPZ",
                   help="start from this pretrained main network (another run's main.npz, copied "
                        "into --out as its baseline) instead of pretraining; use with "
                        "--main-epochs 0, e.g. to compare joint-training settings on one trunk")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: $BRANCHYNET_DATA, then the cache)")
    p.add_argument("--device", default="@numpy", help="Chainer device spec, e.g. @numpy or @cupy:0")
    p.add_argument("--stock-chainer", action="store_true", help="use stock Chainer kernels, not the fast CPU path")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.main_from is not None:
        if args.main_epochs != 0:
            p.error("--main-from replaces pretraining: give --main-epochs 0")
        if not os.path.isfile(args.main_from):
            p.error("--main-from: no file %s" % args.main_from)
    return args


def main(argv=None):
    args = parse_args(argv)
    return launch(settings_from_args(args), args.out, args, command_line(argv, __file__))


if __name__ == "__main__":
    main()
