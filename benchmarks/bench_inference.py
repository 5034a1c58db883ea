"""Batch-1 inference on the CPU, the batch-1 numpy programs (``branchynet.fast.compiler``) against stock
Chainer, in the same run: B-LeNet's main path, its per-exit segment and head times,
its end-to-end early-exit gain against the MAC bound, and the same for B-AlexNet.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_inference.py \
        --out results/benchmarks/inference_cpu.json --text-out results/benchmarks/inference_cpu.txt
    .venv/bin/python benchmarks/bench_inference.py --blas-threads 1 --skip-alexnet

Every number is per sample, one sample at a time (batch 1). The fast and the stock variants of a
measurement run in turns (a pass over the samples with each, then again), and each pass is timed on
the wall clock (time.perf_counter) and on this process's CPU time (time.process_time); the medians
over passes are reported, after warm-up passes. Stock means ``chainer.using_config(
'branchynet_fast_cpu', False)``: ``predict``/``predict_main`` then run the Chainer links.

Early exit is timed end to end: ``net.predict(x1, T)`` (trunk segments, heads, softmax, entropy,
exit decision, label). As trained weights may not exist, the exit fraction is emulated: T = 10
nats lets every sample out at exit 1 (entropy <= ln 10 < 10), T = 0 none (entropy < 0 never holds);
the time of a configuration where a fraction p_k leaves at exit k is sum_k p_k t_k, with t_k the
measured time of "everyone leaves at exit k" (B-AlexNet: T = (10, 10), (0, 10), (0, 0)). The paper's
fractions (Table I: B-LeNet 94.3 % at exit 1, the rest at exit 2; B-AlexNet 65.6 / 25.2 / 9.2 %)
give the gain over the main network (``predict_main``), set against the MAC bound: baseline MACs /
sum_k reach_k (MACs seg_k + MACs head_k), reach_k the fraction reaching exit k. When a trained
B-LeNet is saved (default results/b-lenet/run/branchy.npz) real MNIST test samples are also timed
with ``predict(x1, T=0.025)``, the paper's threshold.

Inputs: B-LeNet, real MNIST test images; B-AlexNet, random N(0, 1) images of CIFAR-10's shape (the
GCN-preprocessed images have zero mean and unit variance per image); the untrained nets' weights
are random (seeded), which does not change the time of the arithmetic.
"""
import os
import statistics
import time

import numpy

import chainer

import networks
from branchynet import benchmark
from branchynet.evaluation import costs, frontier, timing
from branchynet.reporting import paper

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(HERE, "..", "results", "b-lenet", "run", "branchy.npz")


def _parse(argv=None):
    p = benchmark.parser(__doc__)
    p.add_argument("--repeats", type=int, default=7, help="timed passes over the samples")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes first")
    p.add_argument("--lenet-samples", type=int, default=500, help="MNIST test images per pass")
    p.add_argument("--exit1-fraction", type=float, default=0.943,
                   help="B-LeNet: fraction leaving at exit 1 (the paper's 94.3 %%)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="a trained B-LeNet (branchynet.model.serialization.save); skipped if missing")
    p.add_argument("--threshold", type=float, default=0.025, help="T for the trained B-LeNet")
    p.add_argument("--real-samples", type=int, default=1000, help="MNIST test images, trained net")
    p.add_argument("--real-repeats", type=int, default=3)
    p.add_argument("--skip-alexnet", action="store_true")
    p.add_argument("--alexnet-samples", type=int, default=50)
    p.add_argument("--alexnet-repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    return benchmark.parse_args(p, argv)


ARGS = _parse() if __name__ == "__main__" else None


MODES = ("fast", "stock")
ALL_OUT, NONE_OUT = 10.0, 0.0  # thresholds (nats): every sample / no sample leaves at an exit


def _mode(fast):
    return chainer.using_config("branchynet_fast_cpu", fast)


def _pass(fn, xs, fast):
    """One pass: ``fn`` on every batch-1 array of ``xs``, in the given mode."""
    def run():
        with _mode(fast):
            for x1 in xs:
                fn(x1)
    return run


def _timed_passes(named, xs, repeats, warmup):
    """{name: (fn, fast)} -> medians of ms per sample over interleaved passes over ``xs``."""
    fns = {name: _pass(fn, xs, fast) for name, (fn, fast) in named.items()}
    res = benchmark.time_interleaved(fns, repeats, warmup)
    n = len(xs)
    for r in res.values():
        for key in ("wall_ms", "cpu_ms", "wall_min_ms", "wall_max_ms"):
            r[key] /= n
        r["wall_all_ms"] = [v / n for v in r["wall_all_ms"]]
        r["cpu_all_ms"] = [v / n for v in r["cpu_all_ms"]]
        r["samples"] = n
    return res


def _exits_of(net, xs, thresholds, fast):
    with _mode(fast):
        return numpy.concatenate([net.predict(x1, thresholds)[1] for x1 in xs])


def _per_exit(net, x, repeats, warmup, thresholds):
    """``timing.time_exits`` in both modes, in turns, one pass per call: medians over passes of
    each segment's and head's ms per sample, and of the CPU ms of a whole pass per sample."""
    k = net.numexits()
    seg = {m: [] for m in MODES}
    head = {m: [] for m in MODES}
    cpu = {m: [] for m in MODES}
    for r in range(repeats + 1):
        for mode in MODES:
            c0 = time.process_time()
            with _mode(mode == "fast"):
                res = timing.time_exits(net, x, repeats=1, warmup=warmup if r == 0 else 0,
                                        thresholds=thresholds)
            c1 = time.process_time()
            if r == 0:  # warm-up round
                continue
            seg[mode].append(res["segment_ms"])
            head[mode].append(res["head_ms"])
            cpu[mode].append((c1 - c0) * 1e3 / len(x))
    out = {"samples": len(x), "repeats": repeats}
    for mode in MODES:
        out[mode] = {"segment_ms": [statistics.median(s[i] for s in seg[mode]) for i in range(k)],
                     "head_ms": [statistics.median(h[i] for h in head[mode]) for i in range(k)],
                     "pass_cpu_ms": statistics.median(cpu[mode]),
                     "segment_all_ms": seg[mode], "head_all_ms": head[mode]}
    return out


def _mac_bound(macs, reach):
    return costs.baseline_cost(macs) / costs.predicted_ms(reach, macs["segments"], macs["heads"])[0]


def _reach(exit_fractions):
    """Fraction of samples reaching each exit, from the fractions leaving at each."""
    f = numpy.asarray(exit_fractions, dtype=float)
    return (f[::-1].cumsum()[::-1]).tolist()


def bench_early_exit(name, net, xs, exit_fractions, repeats, warmup, out):
    """Main path and "everyone leaves at exit k" runs in both modes; the emulated mix."""
    k = net.numexits()
    # thresholds that send every sample out at exit j: none out before it, all out at it
    configs = [[NONE_OUT] * j + [ALL_OUT] * (k - 1 - j) for j in range(k)]
    named = {}
    for mode in MODES:
        fast = mode == "fast"
        named[(mode, "main")] = (net.predict_main, fast)
        for j, T in enumerate(configs):
            named[(mode, "exit%d" % (j + 1))] = (lambda x1, T=T: net.predict(x1, T), fast)
    for j, T in enumerate(configs):  # check the emulation: everyone leaves where intended
        for mode in MODES:
            exits = _exits_of(net, xs[:5], T, mode == "fast")
            assert (exits == j).all(), (name, mode, T, exits)
    timed = _timed_passes(named, xs, repeats, warmup)
    macs = costs.count_macs(net, xs[0])
    reach = _reach(exit_fractions)
    bound = _mac_bound(macs, reach)
    res = {"network": name, "samples": len(xs), "thresholds_per_exit": configs,
           "exit_fractions": list(exit_fractions), "reach": reach, "macs": macs,
           "mac_bound_gain": bound, "timed": {"%s/%s" % key: v for key, v in timed.items()}}
    for mode in MODES:
        r = {}
        for clock in ("wall", "cpu"):
            main = timed[(mode, "main")][clock + "_ms"]
            per_exit = [timed[(mode, "exit%d" % (j + 1))][clock + "_ms"] for j in range(k)]
            mix = float(numpy.dot(exit_fractions, per_exit))
            r[clock] = {"main_ms": main, "all_at_exit_ms": per_exit, "mix_ms": mix,
                        "gain": main / mix}
        res[mode] = r
    res["main_speedup_wall"] = res["stock"]["wall"]["main_ms"] / res["fast"]["wall"]["main_ms"]
    res["main_speedup_cpu"] = res["stock"]["cpu"]["main_ms"] / res["fast"]["cpu"]["main_ms"]
    res["mix_speedup_wall"] = res["stock"]["wall"]["mix_ms"] / res["fast"]["wall"]["mix_ms"]
    return res


def _print_early_exit(res, out, target=None):
    name, k = res["network"], len(res["exit_fractions"])
    out("")
    out("%s, batch 1, %d samples, ms per sample (wall / CPU), medians of %d passes"
        % (name, res["samples"], res["timed"]["fast/main"]["repeats"]))
    hdr = "%-30s %9s %9s | %9s %9s | %7s %7s" % ("", "fast", "(cpu)", "stock", "(cpu)",
                                                "x wall", "x cpu")
    out(hdr)
    out("-" * len(hdr))
    rows = [("main path (predict_main)", "main")] + [
        ("predict, all leave at exit %d" % (j + 1), "exit%d" % (j + 1)) for j in range(k)]
    for label, key in rows:
        f, s = res["timed"]["fast/" + key], res["timed"]["stock/" + key]
        out("%-30s %9.4f %9.4f | %9.4f %9.4f | %6.2fx %6.2fx" % (
            label, f["wall_ms"], f["cpu_ms"], s["wall_ms"], s["cpu_ms"],
            s["wall_ms"] / f["wall_ms"], s["cpu_ms"] / f["cpu_ms"]))
    frac = "/".join("%.1f" % (100 * p) for p in res["exit_fractions"])
    f, s = res["fast"], res["stock"]
    out("%-30s %9.4f %9.4f | %9.4f %9.4f | %6.2fx %6.2fx" % (
        "early exit at %s %%" % frac, f["wall"]["mix_ms"], f["cpu"]["mix_ms"], s["wall"]["mix_ms"],
        s["cpu"]["mix_ms"], s["wall"]["mix_ms"] / f["wall"]["mix_ms"],
        s["cpu"]["mix_ms"] / f["cpu"]["mix_ms"]))
    if target:
        out("main path fast vs stock: %.2fx (target >= %.0fx: %s)" % (
            res["main_speedup_wall"], target, "met" if res["main_speedup_wall"] >= target else "NOT met"))
    out("early-exit gain over the main path at %s %% (end to end, emulated mix): fast %.2fx "
        "(cpu %.2fx), stock %.2fx (cpu %.2fx); MAC bound %.2fx" % (
            frac, f["wall"]["gain"], f["cpu"]["gain"], s["wall"]["gain"], s["cpu"]["gain"],
            res["mac_bound_gain"]))


def _print_per_exit(name, pe, macs, reach, base, out):
    out("")
    out("%s per-exit batch-1 times (timing.time_exits, %d samples, medians of %d passes), ms"
        % (name, pe["samples"], pe["repeats"]))
    hdr = "%-8s %10s | %9s %9s %7s" % ("part", "MACs", "fast", "stock", "x")
    out(hdr)
    out("-" * len(hdr))
    for kind, key in (("seg", "segment_ms"), ("head", "head_ms")):
        for j in range(len(macs["segments"])):
            f, s = pe["fast"][key][j], pe["stock"][key][j]
            m = macs["segments" if kind == "seg" else "heads"][j]
            out("%-8s %10d | %9.4f %9.4f %6.2fx" % ("%s %d" % (kind, j + 1), m, f, s, s / f))
    for mode in MODES:
        e2e, trunk = costs.predicted_ms(reach, pe[mode]["segment_ms"], pe[mode]["head_ms"])
        pe[mode]["predicted_e2e_ms"], pe[mode]["predicted_trunk_ms"] = e2e, trunk
        pe[mode]["predicted_gain_e2e"] = base[mode] / e2e
        pe[mode]["predicted_gain_trunk"] = base[mode] / trunk
        out("%-5s predicted at reach %s: end to end %.4f ms (gain %.2fx), trunk only %.4f ms "
            "(gain %.2fx; the original's accounting)" % (
                mode, "/".join("%.3f" % r for r in reach), e2e, base[mode] / e2e, trunk,
                base[mode] / trunk))


def _overheads(res, out):
    """Wall ms of the whole calls beyond the sum of their parts as ``time_exits`` timed them: the
    calls' own bookkeeping (threshold parsing, output arrays, config switches, device sends)."""
    pe, k = res["per_exit"], len(res["exit_fractions"])
    over = {}
    for mode in MODES:
        seg, head = pe[mode]["segment_ms"], pe[mode]["head_ms"]
        main = res["timed"][mode + "/main"]["wall_ms"] - (sum(seg) + head[-1])
        exits = [res["timed"]["%s/exit%d" % (mode, j + 1)]["wall_ms"]
                 - sum(seg[:j + 1]) - sum(head[:j + 1]) for j in range(k)]
        over[mode] = {"predict_main_ms": main, "predict_all_at_exit_ms": exits}
        out("%-5s call overhead beyond the timed parts (wall ms): predict_main %.4f; predict, "
            "all at exit k: %s" % (mode, main, ", ".join("%.4f" % e for e in exits)))
    res["call_overhead"] = over


def bench_trained(path, args, out):
    from branchynet.data import datasets
    net = networks.load(path)
    _, test = datasets.get_mnist(download=False)
    x, t = datasets.arrays(test)
    n = min(args.real_samples, len(x))
    xs = [x[i:i + 1] for i in range(n)]
    t = numpy.asarray(t[:n])
    T = [args.threshold] * (net.numexits() - 1)
    exits = _exits_of(net, xs, T, True)
    with _mode(True):
        labels = numpy.concatenate([net.predict(x1, T)[0] for x1 in xs])
        labels_main = numpy.concatenate([net.predict_main(x1) for x1 in xs])
    with _mode(False):  # the stock path makes the same decisions
        exits_stock = _exits_of(net, xs[:100], T, False)
    named = {}
    for mode in MODES:
        named[(mode, "main")] = (net.predict_main, mode == "fast")
        named[(mode, "early")] = (lambda x1: net.predict(x1, T), mode == "fast")
    timed = _timed_passes(named, xs, args.real_repeats, args.warmup)
    k = net.numexits()
    fractions = (numpy.bincount(exits, minlength=k) / n).tolist()
    macs = costs.count_macs(net, xs[0])
    res = {"model": os.path.abspath(path), "threshold": T, "samples": n,
           "exit_fractions": fractions, "accuracy": float((labels == t).mean()),
           "accuracy_main": float((labels_main == t).mean()),
           "stock_exits_agree_first_100": bool((exits_stock == exits[:100]).all()),
           "mac_bound_gain": _mac_bound(macs, _reach(fractions)),
           "timed": {"%s/%s" % key: v for key, v in timed.items()}}
    for mode in MODES:
        for clock in ("wall", "cpu"):
            res["%s_gain_%s" % (mode, clock)] = (timed[(mode, "main")][clock + "_ms"]
                                               / timed[(mode, "early")][clock + "_ms"])
    out("")
    out("trained B-LeNet %s, %d real MNIST test images, T = %s, batch 1:" % (path, n, T))
    out("  exits %s %%, accuracy %.2f %% (main path %.2f %%), stock path decides alike: %s" % (
        "/".join("%.1f" % (100 * f) for f in fractions), 100 * res["accuracy"],
        100 * res["accuracy_main"], res["stock_exits_agree_first_100"]))
    for mode in MODES:
        m, e = timed[(mode, "main")], timed[(mode, "early")]
        out("  %-5s main %.4f ms (cpu %.4f), early exit %.4f ms (cpu %.4f): gain %.2fx (cpu %.2fx)"
            % (mode, m["wall_ms"], m["cpu_ms"], e["wall_ms"], e["cpu_ms"],
               res[mode + "_gain_wall"], res[mode + "_gain_cpu"]))
    out("  MAC bound at these exit fractions: %.2fx; fast vs stock early exit: %.2fx" % (
        res["mac_bound_gain"], timed[("stock", "early")]["wall_ms"] / timed[("fast", "early")]["wall_ms"]))
    return res


def main(args):
    out, env, blas = benchmark.start()
    summary = {"environment": env, "blas": blas, "settings": vars(args),
               "method": __doc__.split("\n\n", 2)[2]}

    # ---------------------------------------------------------------- B-LeNet
    from branchynet.data import datasets
    _, test = datasets.get_mnist(download=False)
    x = numpy.ascontiguousarray(datasets.arrays(test)[0][:args.lenet_samples])
    xs = [x[i:i + 1] for i in range(len(x))]
    numpy.random.seed(args.seed)
    net = networks.build("b-lenet")
    p1 = args.exit1_fraction
    out("timing B-LeNet (%d MNIST test images) ..." % len(xs))
    lenet = bench_early_exit("B-LeNet", net, xs, [p1, 1 - p1], args.repeats, args.warmup, out)
    pe = _per_exit(net, x, args.repeats, 20, frontier.paper_thresholds("lenet"))
    lenet["per_exit"] = pe
    lenet["paper_exits_pct"] = list(paper.TABLE1["lenet"]["exits"])
    _print_early_exit(lenet, out, target=3)
    base = {m: lenet[m]["wall"]["main_ms"] for m in MODES}
    _print_per_exit("B-LeNet", pe, lenet["macs"], lenet["reach"], base, out)
    _overheads(lenet, out)
    summary["b_lenet"] = lenet

    # ---------------------------------------------------------------- trained B-LeNet
    if args.model and os.path.exists(args.model):
        summary["b_lenet_trained"] = bench_trained(args.model, args, out)
    else:
        out("")
        out("no trained B-LeNet at %s: real-sample early exit skipped" % args.model)
        summary["b_lenet_trained"] = None

    # ---------------------------------------------------------------- B-AlexNet
    if not args.skip_alexnet:
        rng = numpy.random.default_rng(args.seed)
        xa = rng.standard_normal((args.alexnet_samples, 3, 32, 32), dtype=numpy.float32)
        xas = [xa[i:i + 1] for i in range(len(xa))]
        numpy.random.seed(args.seed)
        anet = networks.build("b-alexnet")
        fractions = [f / 100.0 for f in paper.TABLE1["alexnet"]["exits"]]
        fractions[-1] = 1.0 - sum(fractions[:-1])
        out("")
        out("timing B-AlexNet (%d random CIFAR-shaped images) ..." % len(xas))
        alex = bench_early_exit("B-AlexNet", anet, xas, fractions, args.alexnet_repeats,
                                args.warmup, out)
        pe = _per_exit(anet, xa, args.alexnet_repeats, 5, frontier.paper_thresholds("alexnet"))
        alex["per_exit"] = pe
        _print_early_exit(alex, out)
        base = {m: alex[m]["wall"]["main_ms"] for m in MODES}
        _print_per_exit("B-AlexNet", pe, alex["macs"], alex["reach"], base, out)
        _overheads(alex, out)
        summary["b_alexnet"] = alex

    out("")
    out("x: stock / fast. Gains: main-path time / early-exit time, both end to end in the same mode. "
        "MAC bound: baseline MACs / MACs of the early-exit work at those fractions.")
    out("BLAS: %s threads (%s); load average at the end: %s" % (
        blas["num_threads"], blas["source"], " ".join("%.2f" % v for v in os.getloadavg())))
    summary["load_average_end"] = list(os.getloadavg())
    benchmark.write_outputs(args, summary, out)
    return summary


if __name__ == "__main__":
    main(ARGS)
