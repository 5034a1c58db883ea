"""The compiled (Numba) inference kernels against the numpy ones on the networks' own layer shapes,
at batch 1 and at a large batch, in the same run: direct convolution against im2col + GEMM (which
sets ``branchynet.fast.jit.DIRECT_MAX_K``), max pooling (+ ReLU) against the numpy pooling, and
in a batch the 2x2 stride-2 pooling of ``branchynet.fast.halving`` against the numpy pooling.

    BRANCHYNET_CPU_THREADS=1 .venv/bin/python benchmarks/bench_jit.py --blas-threads 1 \
        --text-out results/benchmarks/jit_kernels_cpu.txt

Each pair runs in turns; medians of the rounds, us per call (batch 1) or ms per call (batch N).
Both sides include what an inference program does per call: the numpy convolution pads its input
and writes a full-row output (``conv.conv2d_numpy``); the direct one reads an already padded
buffer, as the compiled programs do (a pooling writes into it).
"""
import os

import numpy

from branchynet import benchmark
from branchynet.fast import conv as fconv
from branchynet.fast import halving, jit, layout
from branchynet.fast import pooling as fpool


def _parse(argv=None):
    p = benchmark.parser(__doc__)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--calls", type=int, default=300, help="batch-1 calls per round")
    return benchmark.parse_args(p, argv)


ARGS = _parse() if __name__ == "__main__" else None


# (name, C, H, O, k, pad): B-LeNet's convolutions, B-AlexNet's first and a head's, B-ResNet's first.
CONVS = [("lenet conv1", 1, 28, 5, 5, 3), ("lenet head1 conv", 5, 15, 10, 3, 1),
         ("lenet conv2", 5, 15, 10, 5, 3), ("lenet conv3", 10, 9, 20, 5, 3),
         ("alexnet conv1", 3, 32, 32, 5, 2), ("alexnet head conv", 32, 8, 32, 3, 1),
         ("resnet conv1", 3, 32, 16, 3, 1)]
# (name, C, H, k, stride): the max poolings that follow them (ceil mode).
POOLS = [("lenet 5x30x30 2/2", 5, 30, 2, 2), ("lenet 10x15x15 2/2", 10, 15, 2, 2),
         ("lenet 10x17x17 2/2", 10, 17, 2, 2), ("alexnet 32x32x32 3/2", 32, 32, 3, 2)]


class _Link:
    def __init__(self, W, b):
        self.W, self.b = _Arr(W), _Arr(b)


class _Arr:
    def __init__(self, a):
        self.array, self.shape = a, a.shape


def main(args):
    out, env, blas = benchmark.start()
    if not jit.available():
        out("Numba kernels unavailable: %s" % jit.why_not())
        return
    rng = numpy.random.default_rng(0)
    out("direct convolution (jit) against im2col + GEMM (numpy); it runs for K <= %d and O <= %d "
        "up to %d samples, K <= %d and O <= %d beyond" % (
            jit.DIRECT_MAX_K, jit.DIRECT_MAX_O, jit.DIRECT_SMALL_BATCH, jit.DIRECT_MAX_K_BATCH,
            jit.DIRECT_MAX_O_BATCH))
    hdr = "%-20s %5s | %10s %10s %7s | %10s %10s %7s" % (
        "layer", "K", "jit us", "numpy us", "x", "jit ms", "numpy ms", "x")
    out(hdr)
    out("-" * len(hdr))
    rows = []
    for name, C, H, n_out, k, p in CONVS:
        r = {"layer": name, "K": C * k * k}
        for n, key in ((1, "b1"), (args.batch, "bN")):
            x = rng.standard_normal((n, C, H, H), dtype=numpy.float32)
            W = rng.standard_normal((n_out, C, k, k), dtype=numpy.float32)
            b = rng.standard_normal(n_out, dtype=numpy.float32)
            g = layout.Geom(x.shape, W.shape, (1, 1), (p, p))
            xbuf = layout.padded(x, g)
            y = numpy.empty((n, n_out, g.L), numpy.float32)
            ref = fconv.conv2d_numpy(x, W, b, 1, p)
            jit.conv_direct(xbuf, W, b, y, g)
            assert numpy.allclose(layout.output(y, g), ref, rtol=1e-4, atol=1e-4)
            calls = args.calls if n == 1 else 1
            t = benchmark.time_interleaved({"jit": lambda: jit.conv_direct(xbuf, W, b, y, g),
                                         "numpy": lambda: fconv.conv2d_numpy(x, W, b, 1, p)},
                                        args.repeats, 1, calls)
            r[key] = {s: t[s]["cpu_ms"] for s in t}
        rows.append(r)
        out("%-20s %5d | %10.2f %10.2f %6.2fx | %10.2f %10.2f %6.2fx" % (
            name, r["K"], 1e3 * r["b1"]["jit"], 1e3 * r["b1"]["numpy"],
            r["b1"]["numpy"] / r["b1"]["jit"], r["bN"]["jit"], r["bN"]["numpy"],
            r["bN"]["numpy"] / r["bN"]["jit"]))
    out("")
    out("max pooling + ReLU (jit, one call) against numpy max_pool_numpy + maximum")
    out(hdr.replace("K", " ").replace("layer", "pooling"))
    out("-" * len(hdr))
    for name, C, H, k, s in POOLS:
        r = {"pooling": name}
        for n, key in ((1, "b1"), (args.batch, "bN")):
            x = rng.standard_normal((n, C, H, H), dtype=numpy.float32)
            ref = numpy.maximum(fpool.max_pool_numpy(x, k, s, 0, True), 0)
            y = numpy.empty_like(ref)
            jit.max_pool(x, y, (k, k), (s, s), (0, 0), True)
            assert numpy.array_equal(y, ref)
            calls = args.calls if n == 1 else 1
            t = benchmark.time_interleaved(
                {"jit": lambda: jit.max_pool(x, y, (k, k), (s, s), (0, 0), True),
                 "numpy": lambda: numpy.maximum(fpool.max_pool_numpy(x, k, s, 0, True), 0)},
                args.repeats, 1, calls)
            r[key] = {side: t[side]["cpu_ms"] for side in t}
        rows.append(r)
        out("%-20s %5s | %10.2f %10.2f %6.2fx | %10.2f %10.2f %6.2fx" % (
            name, "", 1e3 * r["b1"]["jit"], 1e3 * r["b1"]["numpy"],
            r["b1"]["numpy"] / r["b1"]["jit"], r["bN"]["jit"], r["bN"]["numpy"],
            r["bN"]["numpy"] / r["bN"]["jit"]))
    out("")
    out("2x2 max pooling + ReLU of a batch of N (halving: vector code, reading a convolution's "
        "full-row output) against numpy max_pool_numpy + maximum; ms per call, ns per input value")
    for name, C, H, k, s in POOLS:
        if (k, s) != (2, 2):
            continue
        pitch = H + 4  # a convolution's output row pitch (Wq) is wider than its rows
        x = rng.standard_normal((args.batch, C, H * pitch), dtype=numpy.float32).reshape(
            args.batch, C, H, pitch)[..., :H]
        ref = numpy.maximum(fpool.max_pool_numpy(x, k, s, 0, True), 0)
        assert numpy.array_equal(halving.max_pool(x, True, True), ref)
        t = benchmark.time_interleaved(
            {"halving": lambda: halving.max_pool(x, True, True),
             "numpy": lambda: numpy.maximum(fpool.max_pool_numpy(x, k, s, 0, True), 0)},
            args.repeats, 1, 1)
        r = {"pooling": name, "halving_bN": {side: t[side]["cpu_ms"] for side in t}}
        rows.append(r)
        ns = {side: 1e6 * v / x.size for side, v in r["halving_bN"].items()}
        out("%-20s | halving %8.3f ms (%.2f ns) | numpy %8.3f ms (%.2f ns) | %6.2fx" % (
            name, r["halving_bN"]["halving"], ns["halving"], r["halving_bN"]["numpy"],
            ns["numpy"], r["halving_bN"]["numpy"] / r["halving_bN"]["halving"]))
    out("")
    out("batch N = %d; CPU time of this process, medians of %d rounds in turns; x = numpy / jit; "
        "load average at the end: %s" % (args.batch, args.repeats,
                                        " ".join("%.2f" % v for v in os.getloadavg())))
    benchmark.write_outputs(args, {"environment": env, "blas": blas, "settings": vars(args),
                                "rows": rows}, out)


if __name__ == "__main__":
    main(ARGS)
