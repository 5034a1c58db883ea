"""Early-exit gain on the CPU against batch size, beside the MAC bound: the committed B-LeNet and
B-AlexNet on their real test images, at the paper's thresholds.

    BRANCHYNET_CPU_THREADS=1 .venv/bin/python benchmarks/bench_gain_batch.py --blas-threads 1 \
        --out results/benchmarks/gain_batch_cpu.json --text-out results/benchmarks/gain_batch_cpu.txt \
        --plot results/benchmarks/gain_batch_cpu.png

For each batch size B the same test images (the first ``--samples``) go through, B at a time,
``net.predict_main`` (the main network) and ``net.predict(x, T)`` (early exit, end to end: segments,
heads, exit decisions, the split of the batch), and, as a third variant, ``net.predict(x, T_all)``
with T = 10 nats at the first exit, which lets every sample out there (the exit-1 path alone). The
variants and batch sizes run in turns, one pass over the images each, and the medians of the
passes are reported, so that load changes on this shared machine hit all alike. Gain = main-path
time / early-exit time. MAC bound = the main network's MACs per sample / the MACs of the early-exit
work at the exit fractions these images and thresholds give (every segment and head a sample
reaches; ``branchynet.evaluation.costs.count_macs``): what the gain would be if time followed the MACs.
MAC rates are MACs per second of a variant's whole call (exit decisions, copies and pooling
included; pooling has no MACs).

B-AlexNet's test images are preprocessed with the statistics its run was trained with
(``data_split.run_statistics``). The fast kernels run on one thread unless
BRANCHYNET_CPU_THREADS says otherwise.
"""
import os

import numpy

import chainer  # noqa: F401

import networks
from branchynet import benchmark, fast
from branchynet.evaluation import costs, frontier

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "..", "results")


def _parse(argv=None):
    p = benchmark.parser(__doc__)
    p.add_argument("--batches", default="1,8,64,256,1000", help="batch sizes, comma-separated")
    p.add_argument("--samples", type=int, default=1000, help="B-LeNet test images per pass")
    p.add_argument("--alexnet-samples", type=int, default=500, help="B-AlexNet test images per pass")
    p.add_argument("--repeats", type=int, default=7, help="timed passes (B-LeNet)")
    p.add_argument("--alexnet-repeats", type=int, default=3, help="timed passes (B-AlexNet)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--skip-alexnet", action="store_true")
    p.add_argument("--plot", default=None, help="write the gain-against-batch figure (PNG)")
    return benchmark.parse_args(p, argv)


ARGS = _parse() if __name__ == "__main__" else None


ALL_OUT = 10.0  # nats: every sample leaves at the first exit (entropy <= ln 10 < 10)


def _batches(x, b):
    return [x[i:i + b] for i in range(0, len(x), b)]


def _pass(fn, chunks):
    def run():
        for xb in chunks:
            fn(xb)
    return run


def load(name, samples):
    """(net, test images, test labels, thresholds, run folder) of a committed run."""
    from branchynet.data import datasets
    from branchynet.data import split as data_split
    if name == "B-LeNet":
        run = os.path.join(RESULTS, "b-lenet", "run")
        _, test = datasets.get_mnist(download=False)
        x, t = datasets.arrays(test)
        family = "lenet"
    else:
        run = os.path.join(RESULTS, "b-alexnet", "run")
        (_, _, (x, t)) = data_split.load_split("cifar10", statistics=data_split.run_statistics(run))
        family = "alexnet"
    net = networks.load(os.path.join(run, "branchy.npz"))
    x = numpy.ascontiguousarray(x[:samples], dtype=numpy.float32)
    return net, x, numpy.asarray(t[:samples]), list(frontier.paper_thresholds(family)), run


def bench_network(name, net, x, t, T, batches, repeats, warmup, out):
    k = net.numexits()
    T_all = [ALL_OUT] + [0.0] * (k - 2)  # everyone out at exit 1
    labels, exits = net.predict(x, T)
    fractions = (numpy.bincount(exits, minlength=k) / len(x)).tolist()
    reach = numpy.asarray(fractions)[::-1].cumsum()[::-1].tolist()
    macs = costs.count_macs(net, x[:1])
    base = costs.baseline_cost(macs)
    early = costs.predicted_ms(reach, macs["segments"], macs["heads"])[0]
    exit1 = macs["segments"][0] + macs["heads"][0]
    bound = base / early
    fns = {}
    for b in batches:
        chunks = _batches(x, b)
        fns[(b, "main")] = _pass(net.predict_main, chunks)
        fns[(b, "early")] = _pass(lambda xb: net.predict(xb, T), chunks)
        fns[(b, "exit1")] = _pass(lambda xb: net.predict(xb, T_all), chunks)
    timed = benchmark.time_interleaved(fns, repeats, warmup)
    n = len(x)
    rows = []
    for b in batches:
        main, early_t, e1 = (timed[(b, v)]["wall_ms"] for v in ("main", "early", "exit1"))
        rows.append({"batch": b, "main_ms": main, "early_ms": early_t, "exit1_ms": e1,
                     "gain": main / early_t, "gain_vs_bound": main / early_t / bound,
                     "gain_cpu": timed[(b, "main")]["cpu_ms"] / timed[(b, "early")]["cpu_ms"],
                     "main_gmacs": base * n / (main / 1e3) / 1e9,
                     "early_gmacs": early * n / (early_t / 1e3) / 1e9,
                     "exit1_gmacs": exit1 * n / (e1 / 1e3) / 1e9,
                     "cpu_ms": {v: timed[(b, v)]["cpu_ms"] for v in ("main", "early", "exit1")},
                     "wall_all_ms": {v: timed[(b, v)]["wall_all_ms"] for v in ("main", "early", "exit1")}})
    res = {"network": name, "samples": n, "thresholds": T, "exit_fractions": fractions,
           "accuracy": float((labels == t).mean()), "macs": macs, "main_macs": base,
           "early_macs": early, "exit1_macs": exit1, "mac_bound": bound, "rows": rows,
           "repeats": repeats}
    out("")
    out("%s, %d test images, T = %s: exits %s %%, accuracy %.2f %%; MACs per sample: main %.3f M, "
        "exit-1 path %.3f M, early exit %.3f M; MAC bound %.2fx" % (
            name, n, T, "/".join("%.1f" % (100 * f) for f in fractions), 100 * res["accuracy"],
            base / 1e6, exit1 / 1e6, early / 1e6, bound))
    hdr = "%6s %10s %10s %10s | %6s %8s %9s | %13s %13s %13s" % (
        "batch", "main ms", "early ms", "exit-1 ms", "gain", "of bound", "gain cpu", "main GMAC/s",
        "early GMAC/s", "exit-1 GMAC/s")
    out(hdr)
    out("-" * len(hdr))
    for r in rows:
        out("%6d %10.2f %10.2f %10.2f | %5.2fx %7.0f%% %8.2fx | %13.2f %13.2f %13.2f" % (
            r["batch"], r["main_ms"], r["early_ms"], r["exit1_ms"], r["gain"],
            100 * r["gain_vs_bound"], r["gain_cpu"], r["main_gmacs"], r["early_gmacs"], r["exit1_gmacs"]))
    out("(ms: wall clock of the whole pass over the %d images, medians of %d passes; gain cpu: the "
        "same on this process's CPU time, which a busy machine disturbs less)" % (n, repeats))
    return res


def eighty_five_percent(res):
    """The dotted guide of the CPU figure: 85 % of the MAC bound."""
    return 0.85 * res["mac_bound"], "85 % of the bound"


def plot(results, path, title="Early-exit gain on the CPU (one thread) against batch size",
         cpu_time=True, guide=eighty_five_percent):
    """Gain against batch size beside the MAC bound, a panel per network; ``cpu_time`` adds the
    gain on process CPU time, ``guide(res)`` gives a dotted line's height and label."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4), squeeze=False)
    for ax, res in zip(axes[0], results):
        b = [r["batch"] for r in res["rows"]]
        ax.plot(b, [r["gain"] for r in res["rows"]], "o-",
                label="measured gain (wall clock)" if cpu_time else "measured gain")
        if cpu_time:
            ax.plot(b, [r["gain_cpu"] for r in res["rows"]], "s--", ms=4, alpha=0.7,
                    label="measured gain (CPU time)")
        ax.axhline(res["mac_bound"], color="k", ls="--", label="MAC bound %.2fx" % res["mac_bound"])
        height, label = guide(res)
        ax.axhline(height, color="grey", ls=":", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("gain over the main network")
        ax.set_ylim(0, res["mac_bound"] * 1.15)
        ax.set_title("%s, T = %s, exits %s %%" % (
            res["network"], ", ".join("%g" % v for v in res["thresholds"]),
            "/".join("%.1f" % (100 * f) for f in res["exit_fractions"])), fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(args):
    out, env, blas = benchmark.start()
    batches = [int(v) for v in args.batches.split(",")]
    out("fast kernels' threads: %d; batch sizes %s" % (fast.threads.get_threads(), batches))
    summary = {"environment": env, "blas": blas, "settings": vars(args),
               "kernel_threads": fast.threads.get_threads(),
               "method": __doc__.split("\n\n", 2)[2], "networks": []}
    todo = [("B-LeNet", args.samples, args.repeats)]
    if not args.skip_alexnet:
        todo.append(("B-AlexNet", args.alexnet_samples, args.alexnet_repeats))
    for name, samples, repeats in todo:
        net, x, t, T, run = load(name, samples)
        res = bench_network(name, net, x, t, T, batches, repeats, args.warmup, out)
        res["run"] = os.path.relpath(run, os.path.join(HERE, ".."))
        summary["networks"].append(res)
    out("")
    out("load average at the end: %s" % " ".join("%.2f" % v for v in os.getloadavg()))
    summary["load_average_end"] = list(os.getloadavg())
    if args.plot:
        plot(summary["networks"], args.plot)
        out("wrote %s" % args.plot)
    benchmark.write_outputs(args, summary, out)
    return summary


if __name__ == "__main__":
    main(ARGS)
