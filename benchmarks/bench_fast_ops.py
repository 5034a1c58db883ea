"""Times branchynet.fast against stock Chainer on every conv/pool layer shape of B-LeNet, B-AlexNet
and B-ResNet-110 (training batch: forward+backward; batch 1: forward only), next to the numpy
sgemm rate measured in the same run.

    .venv/bin/python benchmarks/bench_fast_ops.py                # all layers, about 2-3 minutes
    .venv/bin/python benchmarks/bench_fast_ops.py --only alexnet --repeats 3
    .venv/bin/python benchmarks/bench_fast_ops.py --blas-threads 1

Times are medians after warm-up, wall-clock (time.perf_counter) unless --clock cpu; on a shared
machine look at the load average printed in the header: OpenBLAS's threads stall badly when the
cores are oversubscribed, so compare with --blas-threads 1 --clock cpu there.
"""
import time

import numpy

import chainer
import chainer.functions as F

from branchynet import benchmark, fast


def _parse():
    p = benchmark.parser(__doc__, outputs=False)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per op (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--b1-repeats", type=int, default=200, help="timed runs per batch-1 forward")
    p.add_argument("--only", default="", help="only layers whose name contains this")
    p.add_argument("--no-batch1", action="store_true", help="skip the batch-1 forward table")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: time.perf_counter; cpu: time.process_time (steadier on a busy "
                        "machine, meaningful with --blas-threads 1)")
    return benchmark.parse_args(p)


ARGS = _parse()


# (name, kind, batch, params). conv: (C, H, O, k, stride, pad, x needs grad); pools: (C, H, k, s).
LAYERS = [
    ("lenet conv1 1>5 k5p3 28", "conv", 512, (1, 28, 5, 5, 1, 3, False)),
    ("lenet pool k2s2 5x30", "max", 512, (5, 30, 2, 2)),
    ("lenet conv2 5>10 k5p3 15", "conv", 512, (5, 15, 10, 5, 1, 3, True)),
    ("lenet pool k2s2 10x17", "max", 512, (10, 17, 2, 2)),
    ("lenet conv3 10>20 k5p3 9", "conv", 512, (10, 9, 20, 5, 1, 3, True)),
    ("lenet pool k2s2 20x11", "max", 512, (20, 11, 2, 2)),
    ("lenet branch conv 5>10 k3p1 15", "conv", 512, (5, 15, 10, 3, 1, 1, True)),
    ("lenet branch pool k2s2 10x15", "max", 512, (10, 15, 2, 2)),
    ("alexnet conv1 3>32 k5p2 32", "conv", 512, (3, 32, 32, 5, 1, 2, False)),
    ("alexnet pool k3s2 32x32", "max", 512, (32, 32, 3, 2)),
    ("alexnet conv2 32>64 k5p2 16", "conv", 512, (32, 16, 64, 5, 1, 2, True)),
    ("alexnet pool k3s2 64x16", "max", 512, (64, 16, 3, 2)),
    ("alexnet conv3 64>96 k3p1 8", "conv", 512, (64, 8, 96, 3, 1, 1, True)),
    ("alexnet conv4 96>96 k3p1 8", "conv", 512, (96, 8, 96, 3, 1, 1, True)),
    ("alexnet conv5 96>64 k3p1 8", "conv", 512, (96, 8, 64, 3, 1, 1, True)),
    ("alexnet pool k3s2 64x8", "max", 512, (64, 8, 3, 2)),
    ("alexnet head1 conv 64>32 k3p1 8", "conv", 512, (64, 8, 32, 3, 1, 1, True)),
    ("alexnet head1 conv 32>32 k3p1 8", "conv", 512, (32, 8, 32, 3, 1, 1, True)),
    ("alexnet head1 pool k3s2 32x8", "max", 512, (32, 8, 3, 2)),
    ("alexnet head2 pool k3s2 96x8", "max", 512, (96, 8, 3, 2)),
    ("alexnet head2 conv 96>32 k3p1 4", "conv", 512, (96, 4, 32, 3, 1, 1, True)),
    ("alexnet head2 pool k3s2 32x4", "max", 512, (32, 4, 3, 2)),
    ("resnet conv1 3>16 k3p0 32", "conv", 128, (3, 32, 16, 3, 1, 0, False)),
    ("resnet conv 16>16 k3p1 30", "conv", 128, (16, 30, 16, 3, 1, 1, True)),
    ("resnet conv 16>32 k3s2p1 30", "conv", 128, (16, 30, 32, 3, 2, 1, True)),
    ("resnet conv 32>32 k3p1 15", "conv", 128, (32, 15, 32, 3, 1, 1, True)),
    ("resnet conv 32>64 k3s2p1 15", "conv", 128, (32, 15, 64, 3, 2, 1, True)),
    ("resnet conv 64>64 k3p1 8", "conv", 128, (64, 8, 64, 3, 1, 1, True)),
    ("resnet head conv 16>64 k5p2 30", "conv", 128, (16, 30, 64, 5, 1, 2, True)),
    ("resnet head conv 64>32 k3p1 30", "conv", 128, (64, 30, 32, 3, 1, 1, True)),
    ("resnet head conv 32>32 k3p1 30", "conv", 128, (32, 30, 32, 3, 1, 1, True)),
    ("resnet avgpool k6s1 64x8", "avg", 128, (64, 8, 6, 1)),
    ("resnet avgpool k1s2 16x30", "avg", 128, (16, 30, 1, 2)),
    ("resnet avgpool k1s2 32x15", "avg", 128, (32, 15, 1, 2)),
]


def _median_time(f, repeats, warmup):
    return benchmark.median_time(f, repeats, warmup,
                              time.perf_counter if ARGS.clock == "wall" else time.process_time)


def _sgemm_gflops(n=2048, repeats=5):
    return benchmark.sgemm_gflops(n, repeats,
                               time.perf_counter if ARGS.clock == "wall" else time.process_time)


def _setup(kind, batch, params, rng):
    """Arrays, the stock and fast training steps, the batch-1 forwards, and GFLOP per step."""
    if kind == "conv":
        C, H, n_out, k, s, p, x_grad = params
        x = rng.standard_normal((batch, C, H, H), dtype=numpy.float32)
        W = (rng.standard_normal((n_out, C, k, k), dtype=numpy.float32) / numpy.sqrt(C * k * k))
        b = rng.standard_normal(n_out, dtype=numpy.float32)
        OH = (H + 2 * p - k) // s + 1
        flop = 2.0 * batch * n_out * C * k * k * OH * OH * (3 if x_grad else 2)

        def step(fn):
            def run():
                xv = chainer.Variable(x, requires_grad=x_grad)
                Wv, bv = chainer.Variable(W), chainer.Variable(b)
                y = fn(xv, Wv, bv, stride=s, pad=p)
                y.grad = numpy.ones_like(y.array)
                y.backward()
            return run
        x1 = x[:1].copy()
        stock1 = lambda: F.convolution_2d(x1, W, b, stride=s, pad=p)  # noqa: E731
        fast1 = lambda: fast.conv2d_numpy(x1, W, b, s, p)  # noqa: E731
        return step(F.convolution_2d), step(fast.convolution_2d), stock1, fast1, flop
    C, H, k, s = params
    x = numpy.maximum(rng.standard_normal((batch, C, H, H), dtype=numpy.float32), 0)  # post-ReLU
    stock_fn = F.max_pooling_2d if kind == "max" else F.average_pooling_2d
    fast_fn = fast.max_pooling_2d if kind == "max" else fast.average_pooling_2d
    kernel = fast.max_pool_numpy if kind == "max" else fast.avg_pool_numpy

    def step(fn):
        def run():
            xv = chainer.Variable(x)
            y = fn(xv, k, s)
            y.grad = numpy.ones_like(y.array)
            y.backward()
        return run
    x1 = x[:1].copy()
    return (step(stock_fn), step(fast_fn), lambda: stock_fn(x1, k, s), lambda: kernel(x1, k, s),
            None)


def main():
    print(benchmark.header(ARGS.clock))
    gemm = _sgemm_gflops()
    print("numpy sgemm 2048x2048 float32: %.1f GFLOP/s" % gemm)
    print()
    rng = numpy.random.default_rng(0)
    layers = [L for L in LAYERS if ARGS.only in L[0]]
    rows = []
    hdr = "%-34s %5s %10s %10s %7s %8s %6s" % ("layer (train step: fwd+bwd)", "batch",
                                             "stock ms", "fast ms", "speedup", "GFLOP/s", "%gemm")
    print(hdr)
    print("-" * len(hdr))
    tot_stock = tot_fast = 0.0
    for name, kind, batch, params in layers:
        stock, fastf, stock1, fast1, flop = _setup(kind, batch, params, rng)
        ts = _median_time(stock, ARGS.repeats, ARGS.warmup)
        tf = _median_time(fastf, ARGS.repeats, ARGS.warmup)
        tot_stock += ts
        tot_fast += tf
        gf = "%8.1f %6.0f" % (flop / tf / 1e9, 100 * flop / tf / 1e9 / gemm) if flop else \
            "%8s %6s" % ("-", "-")
        print("%-34s %5d %10.1f %10.1f %6.1fx %s" % (name, batch, ts * 1e3, tf * 1e3, ts / tf, gf),
              flush=True)
        rows.append((name, stock1, fast1))
    print("%-34s %5s %10.1f %10.1f %6.1fx" % ("sum of the layers above", "", tot_stock * 1e3,
                                             tot_fast * 1e3, tot_stock / max(tot_fast, 1e-12)))
    if ARGS.no_batch1:
        return
    print()
    hdr = "%-34s %14s %14s %7s" % ("layer (batch-1 forward)", "stock us", "fast numpy us",
                                   "speedup")
    print(hdr)
    print("-" * len(hdr))
    with chainer.no_backprop_mode():
        for name, stock1, fast1 in rows:
            ts = _median_time(stock1, ARGS.b1_repeats, 20)
            tf = _median_time(fast1, ARGS.b1_repeats, 20)
            print("%-34s %14.1f %14.1f %6.1fx" % (name, ts * 1e6, tf * 1e6, ts / tf), flush=True)


if __name__ == "__main__":
    main()
