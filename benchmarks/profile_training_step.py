"""Where a training step's time goes: Chainer's TimerHook over a few steps of one network, per
function (forward, and backward as the *Grad functions), fast path or stock Chainer.

    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_training_step.py --network b-lenet --step main

A profile, not a benchmark: the hook adds a little per call; compare functions within one run.
bench_training.py gives the step times to report. Random inputs of the network's input shape.
"""
import numpy

import chainer
from chainer.function_hooks import TimerHook

import networks
from branchynet import benchmark
from branchynet.training import optimizers

p = benchmark.parser(__doc__, outputs=False)
p.add_argument("--network", default="b-lenet")
p.add_argument("--step", choices=("main", "joint"), default="main",
               help="train_main (pretraining) or train (joint) step")
p.add_argument("--batchsize", type=int, default=512)
p.add_argument("--steps", type=int, default=10, help="profiled steps, after 3 warm-up steps")
p.add_argument("--stock-chainer", action="store_true", help="stock Chainer kernels")
args = benchmark.parse_args(p)


chainer.global_config.branchynet_fast_cpu = not args.stock_chainer
numpy.random.seed(0)
net = networks.build(args.network)
shape = (1, 28, 28) if networks.dataset_of(args.network) == "mnist" else (3, 32, 32)
x = numpy.random.standard_normal((args.batchsize,) + shape).astype(numpy.float32)
t = numpy.random.randint(0, 10, args.batchsize).astype(numpy.int32)
optimizer = optimizers.adam()(net)
train = net.train_main if args.step == "main" else net.train


def step(x, t):
    train(x, t, optimizer)


for _ in range(3):
    step(x, t)
print(benchmark.header())
print("CPU: %s" % benchmark.kernels()["cpu"])
print("%s %s step, batch %d, %s, %d steps; ms per step by function (a backward is counted in its "
      "forward function's row too)" % (args.network, args.step, args.batchsize,
                                      "stock Chainer" if args.stock_chainer else "fast path",
                                      args.steps))
hook = TimerHook()
with hook:
    for _ in range(args.steps):
        step(x, t)
rows = sorted(hook.summary().items(), key=lambda kv: -kv[1]["elapsed_time"])
for name, entry in rows:
    print("  %-45s %8.2f ms  %5d calls" % (name, 1e3 * entry["elapsed_time"] / args.steps,
                                            entry["occurrence"]))
print(benchmark.kernels_text(benchmark.kernels()))
