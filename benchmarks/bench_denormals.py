"""Training steps with subnormal floats kept or flushed to zero: a fresh B-LeNet against a trained one.

    BRANCHYNET_CPU_THREADS=2 .venv/bin/python benchmarks/bench_denormals.py \
        --out results/benchmarks/denormals_cpu.json --text-out results/benchmarks/denormals_cpu.txt

Joint training steps (``net.train``, Adam) on the first ``--batch`` MNIST training images, for two
nets: the committed run's pretrained main network at the start of joint training (``main.npz``)
and its jointly trained net after 100 epochs (``branchy.npz``). Each step runs with subnormals
computed as such (``keep``) and flushed to zero (``flush``, ``branchynet.fast.denormals``); the
four variants run in turns, each from a copy of its net and a fresh optimizer per round, medians
over rounds. The share of subnormal values among one step's parameter gradients and of the
per-exit softmax outputs tells where they come from.
"""
import copy
import os

import numpy

import chainer

import networks
from branchynet import benchmark
from branchynet.data import datasets
from branchynet.fast import denormals
from branchynet.model import exit_rule
from branchynet.training.optimizers import adam

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "..", "results", "b-lenet", "run")
SMALLEST_NORMAL = numpy.finfo(numpy.float32).tiny


def _parse(argv=None):
    p = benchmark.parser(__doc__)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=4, help="training steps per timed round")
    p.add_argument("--repeats", type=int, default=5)
    return benchmark.parse_args(p, argv)


ARGS = _parse() if __name__ == "__main__" else None


def subnormal_share(arrays):
    """Share of the values that are subnormal (non-zero, below float32's smallest normal)."""
    values = numpy.concatenate([numpy.abs(numpy.ravel(a)) for a in arrays])
    return float(((values > 0) & (values < SMALLEST_NORMAL)).mean())


def gradient_shares(net, x, t):
    """Subnormal shares of one step's parameter gradients and of each exit's softmax output."""
    net = copy.deepcopy(net)
    net.cleargrads()
    with chainer.using_config("train", True):
        loss, _, _ = net.loss(net, x, t)
    loss.backward()
    grads = [p.grad for p in net.params() if p.grad is not None]
    probs = [exit_rule.softmax(z) for z in net.exit_logits(x)]
    return {"gradients": subnormal_share(grads),
            "softmax": [subnormal_share([p]) for p in probs]}


def main(args):
    out, env, blas = benchmark.start()
    train, _ = datasets.get_mnist(download=False)
    x, t = (a[:args.batch] for a in datasets.arrays(train))
    nets = {"start of joint training (main.npz)": networks.load(os.path.join(RUN, "main.npz")),
            "after 100 joint epochs (branchy.npz)": networks.load(os.path.join(RUN, "branchy.npz"))}
    fns = {}
    for name, net in nets.items():
        for mode in ("keep", "flush"):
            def run(net=net, mode=mode):
                trained = copy.deepcopy(net)
                optimizer = adam()(trained)
                with denormals.flushed(mode == "flush"):
                    for _ in range(args.steps):
                        trained.train(x, t, optimizer)
            fns[(name, mode)] = run
    timed = benchmark.time_interleaved(fns, args.repeats, warmup=1)
    out("subnormals flushed here: %s" % ("yes" if denormals.why_not() is None else denormals.why_not()))
    out("B-LeNet joint training step, batch %d, ms (median of %d rounds of %d steps)"
        % (args.batch, args.repeats, args.steps))
    rows = []
    for name, net in nets.items():
        keep, flush = (timed[(name, m)]["wall_ms"] / args.steps for m in ("keep", "flush"))
        shares = gradient_shares(net, x, t)
        rows.append({"net": name, "keep_ms": keep, "flush_ms": flush, "speedup": keep / flush,
                     "subnormal_share": shares,
                     "detail": {m: timed[(name, m)] for m in ("keep", "flush")}})
        out("%-38s keep %7.1f  flush %7.1f  (%.2fx); subnormal share: gradients %.2e, softmax %s"
            % (name, keep, flush, keep / flush, shares["gradients"],
               " / ".join("%.2e" % s for s in shares["softmax"])))
    summary = {"environment": env, "blas": blas, "settings": vars(args), "rows": rows,
               "method": __doc__.split("\n\n", 2)[2]}
    benchmark.write_outputs(args, summary, out)
    return summary


if __name__ == "__main__":
    main(ARGS)
