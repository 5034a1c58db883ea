"""The alternative paths of branchynet.fast.conv side by side, on stride-1 shapes of the three
networks and a few more: for the forward, im2col + GEMM, the compiled direct convolution and the
micro-kernel's packed and unpacked paths; for the input gradient, the correlation with the
flipped kernel (run by the forward kernel) against gcol = W^T gy with col2im (by GEMM or on the
micro-kernel); for the weight gradient, one GEMM per sample, one per chunk, and the micro-kernel
with the im2col matrix packed or read in place. ``calibration`` times the same candidates per
shape on the machine that runs them; the default rules (timing off) came from these tables on an
AMD EPYC.

    BRANCHYNET_CPU_THREADS=1 .venv/bin/python benchmarks/bench_conv_paths.py --blas-threads 1

Medians of --repeats calls after one warm-up, on the wall clock, one thread unless
BRANCHYNET_CPU_THREADS says otherwise; each kind's paths in turns. GMAC/s counts the layer's
multiply-adds (N O K OH OW) over the call's time.
"""
import functools

import numpy

from branchynet import benchmark
from branchynet.fast import conv, layout, microkernel

p = benchmark.parser(__doc__)
p.add_argument("--repeats", type=int, default=9)
args = benchmark.parse_args(p)


# (name, N, C, H, O, k, pad)
SHAPES = [
    ("lenet conv1", 512, 1, 28, 5, 5, 3),
    ("lenet conv2", 512, 5, 15, 10, 5, 3),
    ("lenet conv3", 512, 10, 9, 20, 5, 3),
    ("lenet branch conv", 512, 5, 15, 10, 3, 1),
    ("alexnet conv1", 128, 3, 32, 32, 5, 2),
    ("alexnet conv2", 128, 32, 16, 64, 5, 2),
    ("alexnet conv3", 128, 64, 8, 96, 3, 1),
    ("alexnet conv5", 128, 96, 8, 64, 3, 1),
    ("resnet 16", 128, 16, 32, 16, 3, 1),
    ("resnet 64", 128, 64, 8, 64, 3, 1),
    ("O = 4C", 128, 8, 16, 32, 3, 1),
    ("O = 8C", 128, 4, 16, 32, 5, 2),
]


def _paths(x, W, gy, g):
    """{kind: {path: fn}} for one shape."""
    k, pad = g.kh, g.ph
    Wf = numpy.ascontiguousarray(W.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    gf = layout.Geom(gy.shape, Wf.shape, (1, 1), (k - 1 - pad, k - 1 - pad))
    forward = {path: functools.partial(conv._run_forward, x, W, None, g, path)
               for path in ("gemm", "direct", "packed", "unpacked")}
    grad_x = {"corr": lambda: conv._forward(gy, Wf, None, gf),
              "col2im": lambda: conv._col2im_grad_x(W, gy, g, numpy.float32),
              "col2im_packed": lambda: conv._col2im_grad_x(W, gy, g, numpy.float32, packed=True)}
    grad_w = {"per_sample": lambda: conv._grad_w_slice(x, gy, g, True),
              "per_chunk": lambda: conv._grad_w_slice(x, gy, g, False),
              "packed": lambda: conv._grad_w_packed_slice(x, gy, g),
              "unpacked": lambda: conv._grad_w_packed_slice(x, gy, g, unpacked=True)}
    if not microkernel.available():
        for paths in (forward, grad_x, grad_w):
            for name in [n for n in paths if "packed" in n]:
                del paths[name]
    return {"forward": forward, "input gradient": grad_x, "weight gradient": grad_w}


def _table(out, kind, rows):
    names = list(rows[0][kind])
    out("")
    out(kind + ": ms (GMAC/s)")
    out("%-18s %5s %4s %4s %3s %5s | %s | %s" % (
        "shape", "N", "C", "O", "k", "K", " ".join("%16s" % n for n in names), "fastest"))
    for r in rows:
        ms = r[kind]
        out("%-18s %5d %4d %4d %3d %5d | %s | %s" % (
            r["shape"], r["N"], r["C"], r["O"], r["k"], r["K"],
            " ".join("%16s" % ("%.2f (%.0f)" % (ms[n], r["macs"] / ms[n] / 1e6)) for n in names),
            min(names, key=ms.get)))


def main():
    out, env, blas = benchmark.start()
    rng = numpy.random.default_rng(0)
    rows = []
    for name, N, C, H, n_out, k, pad in SHAPES:
        W = rng.standard_normal((n_out, C, k, k), dtype=numpy.float32)
        x = rng.standard_normal((N, C, H, H), dtype=numpy.float32)
        g = layout.Geom(x.shape, W.shape, (1, 1), (pad, pad))
        gy = rng.standard_normal((N, n_out, g.OH, g.OW), dtype=numpy.float32)
        row = {"shape": name, "N": N, "C": C, "H": H, "O": n_out, "k": k, "pad": pad,
               "K": C * k * k, "macs": N * n_out * C * k * k * g.OH * g.OW}
        for kind, fns in _paths(x, W, gy, g).items():
            timed = benchmark.time_interleaved(fns, args.repeats, warmup=1)
            row[kind] = {path: t["wall_ms"] for path, t in timed.items()}
        rows.append(row)
    for kind in ("forward", "input gradient", "weight gradient"):
        _table(out, kind, rows)
    benchmark.write_outputs(args, {"environment": env, "blas": blas, "rows": rows}, out)


if __name__ == "__main__":
    main()
