"""The command line shared by experiments/lenet_mnist.py, alex_cifar10.py and resnet_cifar10.py.

For one network: train the run folder first if it has no branchy.npz (``branchynet.training.runs``, with the
paper's schedule by default; a stopped training resumes), load its nets
(``networks.load_run``), measure them (``branchynet.evaluation.table1``), write the results and figures
(``branchynet.reporting.report``) and print the Table I rows.

Before any work the run folder is checked: one that holds another network (its run.json, else its
npz configuration) is refused, naming the network and the script or ``--network`` that measures it;
an explicit ``--run-dir`` without weights is trained only with ``--train-if-missing`` (a mistyped
folder must not start days of training), or resumed where it holds an unfinished training (run.json).
The default run folder, results/<network>/run, is trained when it has no weights.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy  # noqa: E402

import branchynet  # noqa: E402,F401  (compatibility shims before chainer)
import chainer  # noqa: E402
import networks  # noqa: E402
from branchynet import fast  # noqa: E402
from branchynet.evaluation import table1
from branchynet.model import serialization
from branchynet.reporting import paper, report
from branchynet.training import trainer
from branchynet.data.split import load_split, run_statistics  # noqa: E402

import train  # noqa: E402  (experiments/train.py: the training flags and their launch)


SCRIPTS = {"lenet": "experiments/lenet_mnist.py", "alexnet": "experiments/alex_cifar10.py",
           "resnet110": "experiments/resnet_cifar10.py"}


def network_in(run_dir):
    """The registered network a run folder holds (its run.json, else the configuration in its
    branchy.npz or main.npz), or None where it holds none. A damaged npz raises
    ``serialization.ModelFileError``."""
    info = serialization.read_run_info(run_dir)
    if info is not None and info.get("network"):
        return info["network"]
    for name in (serialization.BRANCHY, serialization.MAIN):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            return serialization.read_config(path)["network"]
    return None


def check_run_dir(args, family, explicit):
    """The reason the run folder cannot be used by this script for ``args.network``, or None."""
    try:
        held = network_in(args.run_dir)
    except serialization.ModelFileError as err:
        return str(err)
    if held is not None and held != args.network:
        if held not in networks.names():
            return "%s holds %r, which is not a registered network" % (args.run_dir, held)
        held_family = networks.family_of(held)
        if held_family != family:
            return ("%s holds %s (a %s network on %s), not a %s: measure it with %s --run-dir %s"
                    % (args.run_dir, held, held_family, networks.dataset_of(held), family,
                       SCRIPTS[held_family], args.run_dir))
        return "%s holds %s, not %s: add --network %s" % (args.run_dir, held, args.network, held)
    started = serialization.read_run_info(args.run_dir) is not None
    if explicit and not serialization.has_weights(args.run_dir) and not started \
            and not args.train_if_missing:
        what = "does not exist" if not os.path.exists(args.run_dir) else "has no branchy.npz"
        return ("--run-dir %s %s. Check the path; to train %s there (%d + %d epochs, which takes "
                "long) add --train-if-missing. Without --run-dir the default run folder %s is "
                "used, and trained when it has no weights."
                % (args.run_dir, what, args.network, args.main_epochs, args.joint_epochs,
                   os.path.relpath(default_run_dir(args.network), ROOT)))
    return None


def default_results_dir(network):
    """Where a script writes unless told: out/<network>, git-ignored; the committed results/<network>
    is rewritten only when named (``make results``)."""
    return os.path.join(ROOT, "out", network)


def default_run_dir(network):
    return os.path.join(ROOT, "results", network, "run")


def parse_args(family, argv=None, description=None):
    schedule = paper.SCHEDULES[family]
    defaults = table1.Options()
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", default=schedule["network"],
                   choices=[n for n in networks.names() if networks.family_of(n) == family],
                   help="which variant (default %(default)s)")
    p.add_argument("--run-dir", default=None,
                   help="run folder with branchy.npz and main.npz (default results/<network>/run); "
                        "an explicit folder without branchy.npz is trained only with --train-if-missing")
    p.add_argument("--train-if-missing", action="store_true",
                   help="train an explicit --run-dir that has no weights (the default run folder "
                        "is trained without it)")
    p.add_argument("--results", default=None,
                   help="output folder (default out/<network>, git-ignored; give results/<network> "
                        "to regenerate the committed results)")
    p.add_argument("--data-dir", default=None,
                   help="dataset folder (default $BRANCHYNET_DATA, then the cache)")
    p.add_argument("--device", default="@numpy",
                   help="Chainer device for the sweep and, if a GPU (@cupy:0), GPU timing too; "
                        "CPU timing is done too unless --gpu-only (default %(default)s)")
    p.add_argument("--gpu-only", action="store_true",
                   help="with a GPU --device, time on the GPU only (on the GPU machine, where the "
                        "CPU rows would take long and are measured on a CPU machine instead)")
    p.add_argument("--stock-chainer", action="store_true",
                   help="stock Chainer kernels, not the fast CPU path")
    p.add_argument("--timing-samples", type=int, default=defaults.timing_samples,
                   help="test samples timed at batch 1 (default %(default)s)")
    p.add_argument("--repeats", type=int, default=defaults.repeats,
                   help="timing repeats, the median is reported (default %(default)s: a shared "
                        "machine's stalls of tens of ms spoil some repeats' means)")
    p.add_argument("--warmup", type=int, default=defaults.warmup,
                   help="warm-up calls before each timing (default %(default)s)")
    p.add_argument("--throughput-batch", type=int, default=defaults.throughput_batch,
                   help="batch size of the batched runs (default %(default)s)")
    p.add_argument("--throughput-samples", type=int, default=defaults.throughput_samples,
                   help="test samples of the batched runs (default: the whole test set)")
    p.add_argument("--test-subset", type=int, default=0,
                   help="use the first N test images only (default: all)")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="OpenBLAS threads while measuring, set before any timing (default "
                        "%(default)s, what the committed timings used; 0: leave as it is)")
    p.add_argument("--kernel-threads", type=int, default=1,
                   help="threads the fast CPU kernels split a large batch over (default "
                        "%(default)s; 0: leave as it is, $BRANCHYNET_CPU_THREADS or the CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_training_arguments(
        p.add_argument_group("training (only if the run folder has no branchy.npz)"),
        schedule, val_size=None)
    args = p.parse_args(argv)
    for flag in ("blas_threads", "kernel_threads"):
        if getattr(args, flag) < 0:
            p.error("--%s must be 0 or more" % flag.replace("_", "-"))
    if args.gpu_only and chainer.get_device(args.device).xp is numpy:
        p.error("--gpu-only needs a GPU --device such as @cupy:0, not %s" % args.device)
    explicit = args.run_dir is not None
    args.run_dir = args.run_dir or default_run_dir(args.network)
    problem = check_run_dir(args, family, explicit)
    if problem is not None:
        p.error(problem)
    args.results = args.results or default_results_dir(args.network)
    return args


def ensure_weights(args, command, echo=print):
    """Trains the run folder if it has no branchy.npz (recording ``command`` as its command line);
    returns the validation size to use: the flag's, else the run's (run.json), else the default."""
    recorded = serialization.read_run_info(args.run_dir)
    trained_with = None if recorded is None else recorded["val_size"]
    val_size = next(v for v in (args.val_size, trained_with, paper.DEFAULT_VAL_SIZE) if v is not None)
    if serialization.has_weights(args.run_dir):
        if trained_with is not None and val_size != trained_with:
            echo("warning: %s was trained with --val-size %d; a validation split of %d overlaps "
                 "its training images" % (args.run_dir, trained_with, val_size))
        return val_size
    if serialization.read_run_info(args.run_dir) is not None:
        echo("resuming the unfinished training in %s" % args.run_dir)
    echo("no trained weights in %s: training %s (%d + %d epochs, batch %d%s); this takes long"
         % (args.run_dir, args.network, args.main_epochs, args.joint_epochs, args.batchsize,
            ", %d training images" % args.train_subset if args.train_subset else ""))
    train.launch(train.settings_from_args(args, val_size), args.run_dir, args, command)
    return val_size


def apply_threads(args, echo=print):
    """Fixes the CPU thread settings of the measurement (``--blas-threads``, ``--kernel-threads``;
    0 leaves one as it is) so that timings do not depend on the caller's environment; returns
    what was asked, for ``results.json``'s settings (what was got is in its environment)."""
    if args.blas_threads and fast.blas.set_threads(args.blas_threads) is None:
        echo("warning: numpy's BLAS is not an OpenBLAS found here; --blas-threads %d not applied"
             % args.blas_threads)
    if args.kernel_threads:
        fast.threads.set_threads(args.kernel_threads)
    return {"blas_threads": args.blas_threads or None, "kernel_threads": args.kernel_threads or None}


def main(family, script, argv=None, description=None, echo=print):
    """Runs the whole experiment for one network family (the command line of ``script``, or
    ``argv``); returns the result dict."""
    args = parse_args(family, argv, description)
    chainer.global_config.branchynet_fast_cpu = not args.stock_chainer
    threads = apply_threads(args, echo)
    val_size = ensure_weights(args, train.command_line(argv, script), echo)
    dataset = networks.dataset_of(args.network)
    # the split's own seed (0), as the training uses: the same held-out images
    _, val, test = load_split(dataset, val_size, args.data_dir,
                              statistics=run_statistics(args.run_dir))
    if args.test_subset:
        test = tuple(a[:args.test_subset] for a in test)
    device = chainer.get_device(args.device)
    try:
        cpu_nets = networks.load_run(args.run_dir)
        gpu_nets = networks.load_run(args.run_dir, device) if device.xp is not numpy else None
    except serialization.ModelFileError as err:
        raise SystemExit("error: %s" % err)
    echo("%s: %d exits, %d test / %d validation samples, weights from %s"
         % (args.network, cpu_nets[0].numexits(), len(test[0]), len(val[0]), args.run_dir))
    options = table1.Options(
        timing_samples=args.timing_samples, repeats=args.repeats, warmup=args.warmup,
        throughput_batch=args.throughput_batch, throughput_samples=args.throughput_samples,
        gpu_only=args.gpu_only, progress=False if args.no_progress else None)
    settings = {"run_dir": os.path.relpath(args.run_dir, ROOT), "device": args.device,
                "stock_chainer": args.stock_chainer, "gpu_only": args.gpu_only,
                "val_size": val_size, "threads_requested": threads}
    result, test_outputs = table1.evaluate(args.network, family, dataset, cpu_nets, val, test,
                                               options, gpu_nets, settings, echo)
    log = trainer.read_log(args.run_dir) if os.path.exists(os.path.join(args.run_dir, "log.jsonl")) else []
    report.write_results(result, args.results, test_outputs, log, echo)
    echo(report.summary(result, args.results))
    return result
