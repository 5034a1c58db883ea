#!/usr/bin/env python
"""Trains a registered network with the paper's two-stage schedule, resumably.

    python experiments/train.py --network b-lenet --main-epochs 100 --joint-epochs 100 \
        --batchsize 512 --out results/b-lenet/run

Run it again with the same --out to resume from the last finished epoch. The folder receives
checkpoint.npz and optimizer.npz, log.jsonl, main.npz (baseline, after pretraining), branchy.npz
and command.txt.
"""
import argparse
import json
import os
import shlex
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy  # noqa: E402

import branchynet  # noqa: E402,F401
import chainer  # noqa: E402
import networks  # noqa: E402
from branchynet import serialization, training  # noqa: E402
from branchynet.data_split import load_split  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True, choices=networks.names())
    p.add_argument("--main-epochs", type=int, required=True, help="pretraining epochs of the main network")
    p.add_argument("--joint-epochs", type=int, required=True, help="joint training epochs of all exits")
    p.add_argument("--batchsize", type=int, default=512)
    p.add_argument("--weights", default="slides", help="loss-weight preset: slides (1..1, 0.3) or code (all 1)")
    p.add_argument("--beta1", type=float, default=0.9, help="Adam beta1 (code 0.9, paper text 0.99)")
    p.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    p.add_argument("--main-from", default=None, metavar="MAIN_NPZ",
                   help="start from this pretrained main network (another run's main.npz, copied "
                        "into --out as its baseline) instead of pretraining; use with "
                        "--main-epochs 0, e.g. to compare joint-training settings on one trunk")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-size", type=int, default=5000, help="training images held out for validation")
    p.add_argument("--train-subset", type=int, default=0, help="train on the first N images only (smoke runs)")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: $BRANCHYNET_DATA, then the cache)")
    p.add_argument("--device", default="@numpy", help="Chainer device spec, e.g. @numpy or @cupy:0")
    p.add_argument("--stock-chainer", action="store_true", help="use stock Chainer kernels, not the fast CPU path")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--net-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra network factory argument, e.g. n=1 (ResNet blocks per stage); repeatable")
    args = p.parse_args(argv)
    if args.main_from is not None:
        if args.main_epochs != 0:
            p.error("--main-from replaces pretraining: give --main-epochs 0")
        if not os.path.isfile(args.main_from):
            p.error("--main-from: no file %s" % args.main_from)
    return args


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


def main(argv=None):
    args = parse_args(argv)
    chainer.global_config.branchynet_fast_cpu = not args.stock_chainer
    train, val, _ = load_split(networks.dataset_of(args.network), args.val_size, args.data_dir)
    if args.train_subset:
        train = (train[0][:args.train_subset], train[1][:args.train_subset])
    numpy.random.seed(args.seed)
    net = networks.build(args.network, weights=args.weights, beta1=args.beta1, **net_kwargs(args.net_arg))
    os.makedirs(args.out, exist_ok=True)
    if args.main_from is not None:
        serialization.load_into(net, args.main_from)
        baseline = os.path.join(args.out, "main.npz")
        if not os.path.exists(baseline):
            shutil.copyfile(args.main_from, baseline)
    net.to_device(args.device)
    with open(os.path.join(args.out, "command.txt"), "a") as f:
        # the equivalent train.py command, also when main(argv) is called by another script
        command = sys.argv if argv is None else [os.path.relpath(__file__)] + list(argv)
        f.write("python " + " ".join(shlex.quote(a) for a in command) + "\n")
    training.fit(net, train, val, args.out, args.main_epochs, args.joint_epochs, args.batchsize,
                 seed=args.seed, progress=False if args.no_progress else None)


if __name__ == "__main__":
    main()
