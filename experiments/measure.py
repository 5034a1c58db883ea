#!/usr/bin/env python
"""Table I rows of any network: the paper's (b-lenet, b-alexnet, b-resnet110 and their variants) or
your own, by import path.

    python experiments/measure.py --network b-lenet                    # -> out/b-lenet/
    python experiments/measure.py --network b-lenet --results results/b-lenet   # `make results`
    python experiments/measure.py --network mypackage.nets:three_exits --dataset mnist \
        --run-dir runs/mine                                            # -> out/three_exits/

Loads the run folder's branchy.npz and main.npz (the default folder results/<network>/run of a
registered network is trained first with the paper's schedule when it has no weights; an explicit
--run-dir only with --train-if-missing, or where it holds an unfinished training), measures it
(``branchynet.evaluation.table1``: accuracies, the threshold sweep, every exit timed at batch 1 on
the CPU and, with --device @cupy:0, the GPU, real early-exit runs checked against the sweep) and
writes results.json, sweep.csv, table.md and the figures, then prints the Table I rows. The sweep
is the paper's threshold grid for a paper network, else the exact entropy frontier on the
validation split, or the grid of --grid. `make reproduce` runs it for b-lenet, then
experiments/compare.py.
"""
import argparse
import json
import os
import shlex
import sys

import numpy

import chainer

import branchynet  # noqa: F401  (compatibility shims before chainer)
import networks
from branchynet import devices, fast
from branchynet.data.split import VAL_SIZE
from branchynet.evaluation import frontier, run_folder, table1
from branchynet.evaluation.results import Macs
from branchynet.model import serialization
from branchynet.reporting import environment, figures, files, paper, rows
from branchynet.reporting import network as network_text
from branchynet.training import runs, trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNTINGS = (("e2e", "end to end"), ("trunk", "trunk only (original's accounting)"))


def _measuring_arguments(p):
    defaults = table1.Options()
    for flag, default, what in (
            ("--timing-samples", defaults.timing_samples, "test samples timed at batch 1"),
            ("--repeats", defaults.repeats, "timing repeats, the median is reported"),
            ("--warmup", defaults.warmup, "warm-up calls before each timing"),
            ("--throughput-batch", defaults.throughput_batch, "batch size of the batched runs"),
            ("--throughput-samples", defaults.throughput_samples,
             "test samples of the batched runs (0: the whole test set)"),
            ("--test-subset", 0, "use the first N test images only (0: all)"),
            ("--blas-threads", 1, "OpenBLAS threads while measuring (0: leave as it is)"),
            ("--kernel-threads", 1, "threads of the fast CPU kernels (0: leave as it is)")):
        p.add_argument(flag, type=int, default=default, help=what + " (default %(default)s)")
    p.add_argument("--grid", default=None, metavar="T1,T2,...",
                   help="thresholds swept at every non-final exit (their Cartesian product); "
                        "default: the paper's grid, or for another net the exact entropy frontier")
    p.add_argument("--device", default="@numpy",
                   help="Chainer device; a GPU (@cupy:0) adds GPU timing (default %(default)s)")
    p.add_argument("--gpu-only", action="store_true", help="with a GPU --device, time on the GPU only")
    p.add_argument("--stock-chainer", action="store_true",
                   help="stock Chainer kernels, not the fast CPU path")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _training_arguments(p, schedule):
    """Flags of the training done where the run folder has no weights (``runs.RunSettings``)."""
    g = p.add_argument_group("training (only if the run folder has no branchy.npz)")
    for flag, key in (("--main-epochs", "main_epochs"), ("--joint-epochs", "joint_epochs"),
                      ("--batchsize", "batchsize")):
        g.add_argument(flag, type=int, default=schedule.get(key),
                       help="default: the paper's for its networks (%s)" % schedule.get(key))
    g.add_argument("--weights", default=None, help="loss-weight preset (slides, code)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--val-size", type=int, default=None,
                   help="validation images (default: the run's, else %d)" % VAL_SIZE)
    g.add_argument("--train-subset", type=int, default=0, help="train on the first N images only")
    g.add_argument("--net-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="network factory argument (JSON value), repeatable")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", required=True,
                   help="a registered network (%s) or a factory as package.module:function"
                        % ", ".join(networks.names()))
    p.add_argument("--dataset", default=None, help="its dataset where the network does not name one")
    p.add_argument("--run-dir", default=None,
                   help="run folder with branchy.npz and main.npz (default results/<network>/run)")
    p.add_argument("--train-if-missing", action="store_true",
                   help="train an explicit --run-dir that has no weights")
    p.add_argument("--results", default=None, help="output folder (default out/<network>, git-ignored)")
    p.add_argument("--data-dir", default=None, help="dataset folder (default $BRANCHYNET_DATA)")
    _measuring_arguments(p)
    args, _ = p.parse_known_args(argv)
    family = networks.family_of(args.network)
    _training_arguments(p, paper.SCHEDULES[family] if family is not None else {})
    args = p.parse_args(argv)
    args.family = family
    args.dataset = networks.dataset_of(args.network) or args.dataset
    if args.dataset is None:
        p.error("--dataset is needed: %s names no dataset" % args.network)
    for flag in ("blas_threads", "kernel_threads"):
        if getattr(args, flag) < 0:
            p.error("--%s must be 0 or more" % flag.replace("_", "-"))
    try:
        device = devices.usable(args.device)
    except ValueError as err:
        p.error("--device: %s" % err)
    if args.gpu_only and device.xp is numpy:
        p.error("--gpu-only needs a GPU --device such as @cupy:0, not %s" % args.device)
    explicit = args.run_dir is not None
    default_run = run_folder.default_run_dir(ROOT, args.network)
    args.run_dir = args.run_dir or default_run
    problem = run_folder.problem(args.run_dir, args.network, explicit, args.train_if_missing,
                                 os.path.relpath(default_run, ROOT))
    if problem is not None:
        p.error(problem)
    args.results = args.results or run_folder.default_results_dir(ROOT, args.network)
    return args


def _net_kwargs(pairs):
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit("error: --net-arg expects KEY=VALUE, got %r" % pair)
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    return kwargs


def ensure_weights(args, command, echo=print):
    """Trains the run folder if it has no branchy.npz (``runs.train``, recording ``command``);
    returns the validation size to use: the flag's, else the run's (run.json), else the default."""
    recorded = serialization.read_run_info(args.run_dir)
    trained_with = None if recorded is None else recorded["val_size"]
    val_size = next(v for v in (args.val_size, trained_with, VAL_SIZE) if v is not None)
    if serialization.has_weights(args.run_dir):
        if trained_with is not None and val_size != trained_with:
            echo("warning: %s was trained with --val-size %d; a validation split of %d overlaps "
                 "its training images" % (args.run_dir, trained_with, val_size))
        return val_size
    if args.main_epochs is None or args.joint_epochs is None or args.batchsize is None:
        raise SystemExit("error: %s has no weights: give --main-epochs, --joint-epochs and "
                         "--batchsize to train %s there" % (args.run_dir, args.network))
    echo("no trained weights in %s: training %s (%d + %d epochs, batch %d); this takes long"
         % (args.run_dir, args.network, args.main_epochs, args.joint_epochs, args.batchsize))
    weights = args.weights or ("slides" if args.family is not None else None)
    settings = runs.RunSettings(network=args.network, main_epochs=args.main_epochs,
                                joint_epochs=args.joint_epochs, batchsize=args.batchsize,
                                weights=weights, seed=args.seed, val_size=val_size,
                                train_subset=args.train_subset, net_kwargs=_net_kwargs(args.net_arg))
    try:
        runs.train(settings, args.run_dir, networks.build, args.dataset, args.family,
                   device=args.device, stock_chainer=args.stock_chainer, data_dir=args.data_dir,
                   progress=False if args.no_progress else None, command=command)
    except runs.SettingsMismatch as err:
        raise SystemExit("refused: %s; use another run folder" % err)
    return val_size


def apply_threads(args, echo=print):
    """Fixes the CPU thread settings of the measurement (0 leaves one as it is), so that timings
    do not depend on the caller's environment; returns what was asked, for results.json."""
    if args.blas_threads and fast.blas.set_threads(args.blas_threads) is None:
        echo("warning: numpy's BLAS is not an OpenBLAS found here; --blas-threads %d not applied"
             % args.blas_threads)
    if args.kernel_threads:
        fast.threads.set_threads(args.kernel_threads)
    return {"blas_threads": args.blas_threads or None, "kernel_threads": args.kernel_threads or None}


def _grid(args, num_exits):
    if args.grid is None:
        return None
    values = [float(v) for v in args.grid.split(",")]
    return frontier.threshold_grid([values] * (num_exits - 1))


def write_figures(result, out, test_outputs, log):
    """The trade-off figures (per device and accounting), training curves, entropies and exit
    fractions; returns the paths."""
    written = []
    accuracies = [r.accuracy for r in result.rows]
    for dev, measured in result.devices.items():
        for key, label in ACCOUNTINGS:
            choice = measured.selection.test if key == "e2e" else measured.selection.test_trunk
            paper_times = measured.paper_times
            fig, ax = figures.new_figure()
            figures.plot_tradeoff(
                ax, measured.times(key), accuracies, choice.frontier, choice.knee,
                measured.baseline_ms, result.accuracy.baseline(),
                title="%s, %s, %s" % (result.network, dev.upper(), label),
                xlabel="Runtime per sample, batch 1 (ms)",
                marks=[("paper T", getattr(paper_times, "ms_" + key), result.paper_row.accuracy)]
                if paper_times is not None else [])
            written.append(figures.save(fig, os.path.join(out, "tradeoff_%s_%s.png" % (dev, key))))
    fig, axes = figures.new_figure(2)
    figures.plot_training_curves(axes, log, title=result.network)
    written.append(figures.save(fig, os.path.join(out, "training_curves.png")))
    fig, ax = figures.new_figure()
    figures.plot_entropies(ax, test_outputs.entropies,
                           title="%s: entropy per exit (test)" % result.network)
    written.append(figures.save(fig, os.path.join(out, "entropy.png")))
    if test_outputs.num_exits > 1:
        fig, ax = figures.new_figure()
        figures.plot_exit_fractions(ax, test_outputs.entropies, result.settings.threshold_list
                                    or sorted({t for row in result.rows for t in row.thresholds}),
                                    title="%s: exits against T (test)" % result.network)
        written.append(figures.save(fig, os.path.join(out, "exit_fractions.png")))
    return written


def sweep_rows(result):
    """The sweep's rows for sweep.csv: each row's numbers and, per device, its predicted times
    (columns such as ``cpu_ms_e2e``)."""
    out = []
    for i, row in enumerate(result.rows):
        line = row.to_json()
        for dev, measured in result.devices.items():
            line[dev] = measured.row_times[i].to_json()
        out.append(line)
    return out


def write_results(result, out, test_outputs, log, echo=print):
    """results.json, sweep.csv, table.md and the figures into ``out``."""
    os.makedirs(out, exist_ok=True)
    files.write_json(os.path.join(out, "results.json"), result.to_json())
    files.write_csv(os.path.join(out, "sweep.csv"), sweep_rows(result))
    files.write_text(os.path.join(out, "table.md"), network_text.table_markdown(result))
    written = write_figures(result, out, test_outputs, log)
    echo("results in %s: results.json, sweep.csv, table.md, %s"
         % (out, ", ".join(os.path.basename(f) for f in written)))


def _load(args, val_size):
    """(validation set, test set, CPU nets, GPU nets or None) of the run."""
    val, test, described = run_folder.run_split(args.dataset, val_size, args.run_dir, args.data_dir)
    if args.test_subset:
        test = tuple(a[:args.test_subset] for a in test)
    device = chainer.get_device(args.device)
    try:
        cpu_nets = networks.load_run(args.run_dir)
        gpu_nets = networks.load_run(args.run_dir, device) if device.xp is not numpy else None
    except serialization.ModelFileError as err:
        raise SystemExit("error: %s" % err)
    return val, test, described["preprocessing"], cpu_nets, gpu_nets


def main(argv=None, echo=print):
    """Measures one network (the command line, or ``argv``); returns the result dict."""
    args = parse_args(argv)
    chainer.global_config.branchynet_fast_cpu = not args.stock_chainer
    threads = apply_threads(args, echo)
    command = "python " + " ".join(shlex.quote(a) for a in (
        sys.argv if argv is None else ["experiments/measure.py"] + list(argv)))
    val_size = ensure_weights(args, command, echo)
    val, test, preprocessing, cpu_nets, gpu_nets = _load(args, val_size)
    echo("%s: %d exits, %d test / %d validation samples, weights from %s"
         % (args.network, cpu_nets[0].numexits(), len(test[0]), len(val[0]), args.run_dir))
    if cpu_nets[1] is None:
        echo(rows.missing_baseline_warning(args.run_dir))
    options = table1.Options(
        timing_samples=args.timing_samples, repeats=args.repeats, warmup=args.warmup,
        throughput_batch=args.throughput_batch, throughput_samples=args.throughput_samples,
        gpu_only=args.gpu_only, progress=False if args.no_progress else None)
    settings = {"run_dir": os.path.relpath(args.run_dir, ROOT), "device": args.device,
                "stock_chainer": args.stock_chainer, "gpu_only": args.gpu_only,
                "val_size": val_size, "preprocessing": preprocessing, "threads_requested": threads}
    gpu = gpu_nets[0].device if gpu_nets is not None else None
    result, test_outputs = table1.evaluate(
        args.network, args.family, args.dataset, cpu_nets, val, test, options, gpu_nets, settings,
        environment.environment(gpu=gpu), _grid(args, cpu_nets[0].numexits()), echo)
    reference = paper.MACS_M.get(args.family)
    result.macs_reference_M = Macs.from_json(reference) if reference is not None else None
    result.table = [row for dev in result.devices for row in rows.result_rows(result, dev)]
    log = trainer.read_log(args.run_dir) if os.path.exists(os.path.join(args.run_dir, "log.jsonl")) else []
    write_results(result, args.results, test_outputs, log, echo)
    echo(network_text.summary(result, args.results))
    return result


if __name__ == "__main__":
    main()
