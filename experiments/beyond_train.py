#!/usr/bin/env python
"""Joint training from a pretrained trunk with fixed or sample-dependent loss weights.

    python experiments/beyond_train.py --network b-lenet --main-from results/b-lenet/run/main.npz \
        --joint-epochs 15 --sample-weighting soft_exit:0.5 --out results/b-lenet/beyond/runs/soft_exit

Thin: the run is ``branchynet.training.runs.train`` (run.json, resumable) on a net whose
``sample_weighting`` is set (``branchynet.model.sample_weights``; "none": the paper's fixed weights);
the weighting is recorded in the run folder's sample_weighting.json.
"""
import argparse
import json
import os
import shlex
import sys

import branchynet  # noqa: F401
import networks
from branchynet.model import sample_weights
from branchynet.training import runs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True, choices=networks.names())
    p.add_argument("--main-from", required=True, metavar="MAIN_NPZ")
    p.add_argument("--joint-epochs", type=int, required=True)
    p.add_argument("--batchsize", type=int, default=512)
    p.add_argument("--weights", default="slides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--sample-weighting", default="none", help="none, soft_exit or soft_exit:ALPHA")
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    weighting = sample_weights.get(args.sample_weighting)
    settings = runs.RunSettings(network=args.network, main_epochs=0, joint_epochs=args.joint_epochs,
                                batchsize=args.batchsize, weights=args.weights, seed=args.seed,
                                train_subset=args.train_subset, main_from=args.main_from)

    def build(name, **kwargs):
        net = networks.build(name, **kwargs)
        net.loss.sample_weighting = weighting
        return net

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "sample_weighting.json"), "w") as f:
        json.dump(weighting.describe() if weighting else {"scheme": "none"}, f)
    command = "python " + " ".join(shlex.quote(a) for a in (sys.argv if argv is None else
                                                            ["experiments/beyond_train.py"] + argv))
    runs.train(settings, args.out, build, networks.dataset_of(args.network),
               networks.family_of(args.network), data_dir=args.data_dir, progress=False,
               command=command)


if __name__ == "__main__":
    main()
