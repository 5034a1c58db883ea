"""Whole training steps on the CPU, the fast kernels (branchynet.fast) against stock Chainer, in the
same run: B-LeNet and B-AlexNet at batch 512 (optionally B-ResNet-110 at batch 128), each as a
pretraining step of the main network (``train_main``) and a joint step of all exits (``train``).

    .venv/bin/python benchmarks/bench_training.py --cores 1 --out results/benchmarks/training_cpu.json
    .venv/bin/python benchmarks/bench_training.py --cores 2 --out results/benchmarks/training_cpu_2cores.json
    .venv/bin/python benchmarks/bench_training.py --cores 1 --resnet --skip-alexnet

``--cores K`` gives both sides K cores: stock Chainer runs its GEMMs on K OpenBLAS threads, the fast
kernels split each batch over K threads (branchynet.fast.threads; their GEMMs on one BLAS thread
each). K = 1 compares the kernels core for core.

A step is what the training loop runs per batch: forward, loss, ``cleargrads``, backward and the
Adam update. Fast and stock steps run in turns on the same net (fast main, fast joint, stock main,
stock joint, then again), so that changes in the machine's load hit both alike; each is timed on
the wall clock (time.perf_counter) and on this process's CPU time (time.process_time), after
warm-up steps, and the medians are reported. Ratios are stock / fast from the same rounds.

Inputs: B-LeNet trains on the first real MNIST training images when the data is there (else
random images in [0, 1]); B-AlexNet and B-ResNet-110 on random N(0, 1) images of CIFAR-10's shape
(the GCN-preprocessed images have zero mean and unit variance per image) and random labels; the
arithmetic, and so the time, does not depend on the values.

Achieved GFLOP/s count forward + backward as 3x the forward: 2 flop per multiply-accumulate, MACs
per sample from ``branchynet.evaluation.costs.count_macs`` (convolutions and linear layers only), so
flop/step = 2 * 3 * MACs * batch with MACs = whole trunk + last head for ``train_main`` and every
segment + every head for ``train``. The first convolution has no input gradient, so this slightly
overstates the work. The reference is numpy's float32 sgemm measured in this run with the same
BLAS threads. Epoch times are ms/step x (training-set size / batch): 55000/512 MNIST steps and
45000/512 CIFAR-10 steps (the paper's splits), training steps only (no evaluation, no shuffling).
"""
import os

import numpy

import chainer

import networks
from branchynet import benchmark, fast
from branchynet.evaluation import costs
from branchynet.training import optimizers


def _parse(argv=None):
    p = benchmark.parser(__doc__)
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds of every step first")
    p.add_argument("--lenet-batch", type=int, default=512)
    p.add_argument("--lenet-repeats", type=int, default=7, help="timed rounds for B-LeNet")
    p.add_argument("--alexnet-batch", type=int, default=512)
    p.add_argument("--alexnet-repeats", type=int, default=3, help="timed rounds for B-AlexNet")
    p.add_argument("--skip-alexnet", action="store_true")
    p.add_argument("--resnet", action="store_true", help="also B-ResNet-110 (slow: many seconds a step)")
    p.add_argument("--resnet-n", type=int, default=18, help="blocks per stage (18: ResNet-110)")
    p.add_argument("--resnet-batch", type=int, default=128)
    p.add_argument("--resnet-repeats", type=int, default=2)
    p.add_argument("--sgemm-n", type=int, default=2048)
    p.add_argument("--sgemm-repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cores", type=int, default=1,
                   help="cores for both sides: stock's BLAS threads and the fast kernels' threads")
    return benchmark.parse_args(p, argv)


ARGS = _parse() if __name__ == "__main__" else None


TRAIN_SIZE = {"mnist": 55000, "cifar10": 45000}
MODES = ("fast", "stock")
STEPS = ("main", "joint")


def _inputs(dataset, batch, rng, note):
    if dataset == "mnist":
        try:
            from branchynet.data import datasets
            train, _ = datasets.get_mnist(download=False)
            x, t = datasets.arrays(train)
            if len(x) >= batch:
                note.append("B-LeNet: the first %d real MNIST training images" % batch)
                return numpy.ascontiguousarray(x[:batch]), numpy.asarray(t[:batch], numpy.int32)
        except Exception as err:  # no data here: the time does not depend on the values
            note.append("B-LeNet: random images (MNIST not loadable: %s)" % type(err).__name__)
        x = rng.random((batch, 1, 28, 28), dtype=numpy.float32)
    else:
        x = rng.standard_normal((batch, 3, 32, 32), dtype=numpy.float32)
    t = rng.integers(0, 10, batch).astype(numpy.int32)
    return x, t


def _step(net, step, mode, x, t):
    fast = mode == "fast"
    train = net.train_main if step == "main" else net.train
    optimizer = optimizers.adam()(net)

    def run():
        with chainer.using_config("branchynet_fast_cpu", fast):
            train(x, t, optimizer)
    return run


def bench_network(name, kwargs, batch, repeats, warmup, seed, sgemm, notes):
    rng = numpy.random.default_rng(seed)
    numpy.random.seed(seed)
    net = networks.build(name, **kwargs)
    dataset = networks.dataset_of(name)
    x, t = _inputs(dataset, batch, rng, notes)
    macs = costs.count_macs(net, x[:1])
    step_macs = {"main": costs.baseline_cost(macs),
                 "joint": int(sum(macs["segments"]) + sum(macs["heads"]))}
    fns = {(mode, step): _step(net, step, mode, x, t) for mode in MODES for step in STEPS}
    timed = benchmark.time_interleaved(fns, repeats, warmup)
    iters = TRAIN_SIZE[dataset] / batch
    rows = []
    for step in STEPS:
        flop = 2.0 * 3.0 * step_macs[step] * batch
        row = {"network": name, "kwargs": kwargs, "step": step, "batch": batch,
               "macs_per_sample": step_macs[step], "flop_per_step": flop,
               "epoch_steps": iters, "dataset": dataset}
        for mode in MODES:
            tm = timed[(mode, step)]
            row[mode] = dict(tm, epoch_s_wall=tm["wall_ms"] * iters / 1e3,
                             epoch_s_cpu=tm["cpu_ms"] * iters / 1e3,
                             gflops_wall=flop / (tm["wall_ms"] / 1e3) / 1e9,
                             gflops_cpu=flop / (tm["cpu_ms"] / 1e3) / 1e9)
            row[mode]["pct_sgemm_wall"] = 100.0 * row[mode]["gflops_wall"] / sgemm["wall_gflops"]
            row[mode]["pct_sgemm_cpu"] = 100.0 * row[mode]["gflops_cpu"] / sgemm["cpu_gflops"]
        row["speedup_wall"] = row["stock"]["wall_ms"] / row["fast"]["wall_ms"]
        row["speedup_cpu"] = row["stock"]["cpu_ms"] / row["fast"]["cpu_ms"]
        rows.append(row)
    joint_over_main = {mode: {"wall": timed[(mode, "joint")]["wall_ms"] / timed[(mode, "main")]["wall_ms"],
                              "cpu": timed[(mode, "joint")]["cpu_ms"] / timed[(mode, "main")]["cpu_ms"]}
                       for mode in MODES}
    joint_over_main["macs"] = step_macs["joint"] / step_macs["main"]
    return {"network": name, "macs": macs, "rows": rows, "joint_over_main": joint_over_main,
            "repeats": repeats, "warmup": warmup}


def _table(results, sgemm, out):
    out("")
    hdr = ("%-12s %-5s %5s | %9s %9s | %9s %9s | %6s %6s | %8s %8s | %7s %5s %5s | %7s %5s %5s"
           % ("network", "step", "batch", "fast ms", "(cpu)", "stock ms", "(cpu)", "x wall", "x cpu",
              "fast ep", "stock ep", "fast GF", "%gem", "(cpu)", "stockGF", "%gem", "(cpu)"))
    out(hdr)
    out("-" * len(hdr))
    for res in results:
        for r in res["rows"]:
            f, s = r["fast"], r["stock"]
            out("%-12s %-5s %5d | %9.1f %9.1f | %9.1f %9.1f | %5.2fx %5.2fx | %7.1fs %7.1fs | "
                "%7.2f %4.0f%% %4.0f%% | %7.2f %4.0f%% %4.0f%%"
                % (r["network"], r["step"], r["batch"], f["wall_ms"], f["cpu_ms"], s["wall_ms"],
                   s["cpu_ms"], r["speedup_wall"], r["speedup_cpu"], f["epoch_s_wall"],
                   s["epoch_s_wall"], f["gflops_wall"], f["pct_sgemm_wall"], f["pct_sgemm_cpu"],
                   s["gflops_wall"], s["pct_sgemm_wall"], s["pct_sgemm_cpu"]))
    out("")
    out("x wall / x cpu: stock / fast step time (wall clock / process CPU time). ep: one epoch of "
        "training steps at the wall-clock median (MNIST 55000/batch, CIFAR-10 45000/batch steps).")
    out("GF: achieved GFLOP/s on the wall clock, 2*3*MACs*batch per step; %%gem: of numpy sgemm "
        "measured in this run, %.1f GFLOP/s on the wall clock; (cpu): both on CPU time, sgemm %.1f "
        "GFLOP/s." % (sgemm["wall_gflops"], sgemm["cpu_gflops"]))
    out("")
    out("joint step / main-only step (the shared trunk: one forward, one backward):")
    for res in results:
        j = res["joint_over_main"]
        extra = ""
        if res["network"] == "b-lenet":
            extra = "   target < 1.3x (fast): %s" % ("met" if j["fast"]["wall"] < 1.3 else "NOT met")
        out("  %-12s fast %.2fx (cpu %.2fx)   stock %.2fx (cpu %.2fx)   MACs %.2fx%s"
            % (res["network"], j["fast"]["wall"], j["fast"]["cpu"], j["stock"]["wall"],
               j["stock"]["cpu"], j["macs"], extra))


def main(args):
    if args.cores < 1:
        raise SystemExit("--cores must be at least 1")
    if fast.blas.set_threads(args.cores) is None and args.cores > 1:
        raise SystemExit("--cores > 1 needs numpy's bundled OpenBLAS, whose threads it sets")
    fast.threads.set_threads(args.cores)
    out, env, blas = benchmark.start()
    out("cores: %d (stock: %d BLAS threads; fast: %d kernel threads, one BLAS thread each)"
        % (args.cores, args.cores, args.cores))
    sgemm = benchmark.sgemm_both(args.sgemm_n, args.sgemm_repeats)
    out("numpy sgemm %dx%d float32: %.1f GFLOP/s wall, %.1f GFLOP/s CPU time"
        % (args.sgemm_n, args.sgemm_n, sgemm["wall_gflops"], sgemm["cpu_gflops"]))
    plan = [("b-lenet", {}, args.lenet_batch, args.lenet_repeats)]
    if not args.skip_alexnet:
        plan.append(("b-alexnet", {}, args.alexnet_batch, args.alexnet_repeats))
    if args.resnet:
        plan.append(("b-resnet110", {"n": args.resnet_n}, args.resnet_batch, args.resnet_repeats))
    notes, results = [], []
    for name, kwargs, batch, repeats in plan:
        out("timing %s at batch %d: %d warm-up + %d timed rounds of 4 steps ..."
            % (name, batch, args.warmup, repeats))
        results.append(bench_network(name, kwargs, batch, repeats, args.warmup, args.seed, sgemm,
                                     notes))
    if not any(n.startswith("B-LeNet") for n in notes):
        notes.append("B-LeNet: random images")
    notes.append("B-AlexNet / B-ResNet-110: random N(0,1) images of CIFAR-10 shape, random labels")
    _table(results, sgemm, out)
    out("")
    out("inputs: " + "; ".join(notes))
    out("BLAS: %s threads (%s); load average at the end: %s"
        % (blas["num_threads"], blas["source"], " ".join("%.2f" % v for v in os.getloadavg())))
    summary = {"environment": env, "blas": blas, "sgemm": sgemm,
               "load_average_end": list(os.getloadavg()), "inputs": notes,
               "settings": vars(args), "results": results,
               "method": __doc__.split("\n\n", 2)[2]}
    benchmark.write_outputs(args, summary, out)
    return summary


if __name__ == "__main__":
    main(ARGS)
