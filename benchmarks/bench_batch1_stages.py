"""Where one B-LeNet sample's inference goes, stage by stage of the batch-1 programs
(branchynet.fast.compiler), against the multiply-accumulates each stage does. A least-squares fit
t = a + b * MACs over the stages gives the fixed cost of a stage (a) and the cost of a MAC (b);
with them, the early-exit gain a path of n stages and M MACs can reach, next to the MAC bound
(a = 0). This is why B-LeNet's gain at batch 1 stays far under the bound (README, "Fast CPU path").

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_batch1_stages.py \\
        --out results/benchmarks/batch1_stages_cpu.json --text-out results/benchmarks/batch1_stages_cpu.txt \\
        --plot results/benchmarks/batch1_stages_cpu.png

Each stage's run() is timed alone on its fixed buffers (the values do not change the time): the
median over --repeats rounds of --calls calls. The exit decision (exit_rule.leaves_one) and the
label (argmax) are timed as stages of 0 MACs; the call into ``predict`` around them is not.
"""
import time

import numpy

import chainer.links as L

import networks
from branchynet import benchmark
from branchynet.fast import compiler
from branchynet.model import exit_rule

p = benchmark.parser(__doc__)
p.add_argument("--plot", default=None, help="write the stage-time vs MACs figure here (png)")
p.add_argument("--repeats", type=int, default=7)
p.add_argument("--calls", type=int, default=2000, help="calls per timed round")
p.add_argument("--exit1-fraction", type=float, default=0.943, help="the paper's B-LeNet share")
args = benchmark.parse_args(p)


def _macs(layers, out):
    """Multiply-accumulates of a stage: its convolution or linear layer, if any."""
    total = 0
    for layer in layers:
        if isinstance(layer, L.Convolution2D):
            total += int(layer.W.size) * out.shape[2] * out.shape[3]
        elif isinstance(layer, L.Linear):
            total += int(layer.W.size)
    return total


def _name(layers):
    return " + ".join(getattr(layer, "__name__", type(layer).__name__) for layer in layers)


def _time(fn):
    def rounds():
        for _ in range(args.calls):
            fn()
    return benchmark.median_time(rounds, args.repeats, 1, time.perf_counter) / args.calls * 1e6


def main():
    out, env, blas = benchmark.start()
    numpy.random.seed(0)
    net = networks.build("b-lenet")
    x = numpy.random.rand(1, 1, 28, 28).astype(numpy.float32)
    segs, heads = compiler.chain([s.layers for s in net.segments], [h.layers for h in net.heads],
                                 x.shape, x.dtype)
    h = segs[0](x)
    logits = heads[0](h)
    heads[1](segs[1](h))
    stages = [{"program": "segment 1", "stage": "input copy", "macs": 0,
               "us": _time(lambda: numpy.copyto(segs[0].source, x))}]
    for name, program in (("segment 1", segs[0]), ("head 1", heads[0]), ("segment 2", segs[1]),
                          ("head 2", heads[1])):
        for layers, run, buf in program.stages:
            stages.append({"program": name, "stage": _name(layers), "macs": _macs(layers, buf),
                           "us": _time(run)})
    stages.append({"program": "head 1", "stage": "exit decision (leaves_one)", "macs": 0,
                   "us": _time(lambda: exit_rule.leaves_one(logits, 0.025))})
    stages.append({"program": "head 1", "stage": "label (argmax)", "macs": 0,
                   "us": _time(lambda: int(logits[0].argmax()))})

    us = numpy.array([s["us"] for s in stages])
    macs = numpy.array([s["macs"] for s in stages], dtype=float)
    (a, b), *_ = numpy.linalg.lstsq(numpy.stack([numpy.ones_like(macs), macs], 1), us, rcond=None)

    def path(programs, extra=()):
        rows = [s for s in stages if s["program"] in programs and
                (s["stage"] not in ("exit decision (leaves_one)", "label (argmax)")
                 or s["stage"] in extra)]
        return {"stages": len(rows), "macs": int(sum(s["macs"] for s in rows)),
                "us": float(sum(s["us"] for s in rows))}
    label = ("label (argmax)",)
    paths = {"main": path(("segment 1", "segment 2", "head 2"), label),
             "exit 1": path(("segment 1", "head 1"), label + ("exit decision (leaves_one)",)),
             "exit 2": path(("segment 1", "head 1", "segment 2", "head 2"),
                            label + ("exit decision (leaves_one)",))}
    f = args.exit1_fraction

    def gain(cost):
        return cost("main") / (f * cost("exit 1") + (1 - f) * cost("exit 2"))
    gains = {"measured (sum of stages)": gain(lambda k: paths[k]["us"]),
             "model a + b MACs": gain(lambda k: a * paths[k]["stages"] + b * paths[k]["macs"]),
             "MAC bound (a = 0)": gain(lambda k: paths[k]["macs"])}

    out("")
    out("B-LeNet, one sample, batch-1 program stages (median of %d rounds of %d calls), us"
        % (args.repeats, args.calls))
    out("%-10s %-40s %9s %9s" % ("program", "stage", "MACs", "us"))
    out("-" * 71)
    for s in stages:
        out("%-10s %-40s %9d %9.2f" % (s["program"], s["stage"][:40], s["macs"], s["us"]))
    out("")
    out("fit over the %d stages: t = %.2f us + %.3f us per 1000 MACs" % (len(stages), a, b * 1e3))
    for k, v in paths.items():
        out("  %-6s path: %2d stages, %8d MACs, %7.1f us (fixed part %.0f %%)"
            % (k, v["stages"], v["macs"], v["us"], 100.0 * a * v["stages"] / v["us"]))
    out("early-exit gain at %.1f / %.1f %%:" % (100 * f, 100 * (1 - f)))
    for k, v in gains.items():
        out("  %-26s %.2fx" % (k, v))
    summary = {"environment": env, "blas": blas, "stages": stages, "fit": {"a_us": a, "b_us": b},
               "paths": paths, "gains": gains, "exit1_fraction": f,
               "method": __doc__.split("\n\n")[-1]}
    benchmark.write_outputs(args, summary, out)
    if args.plot:
        _plot(stages, a, b, args.plot)
        out("wrote %s" % args.plot)


def _plot(stages, a, b, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"segment 1": "C0", "head 1": "C3", "segment 2": "C2", "head 2": "C1"}
    for program, color in colors.items():
        rows = [s for s in stages if s["program"] == program]
        ax.scatter([s["macs"] / 1e3 for s in rows], [s["us"] for s in rows], color=color,
                   label=program)
    top = max(s["macs"] for s in stages)
    xs = numpy.linspace(0, top, 50)
    ax.plot(xs / 1e3, a + b * xs, "k--", lw=1, label="fit: %.1f us + %.3f us / k MAC" % (a, b * 1e3))
    ax.set_xlabel("multiply-accumulates of the stage (thousands)")
    ax.set_ylabel("time of the stage (us)")
    ax.set_title("B-LeNet at batch 1: a stage's fixed cost against its arithmetic")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
