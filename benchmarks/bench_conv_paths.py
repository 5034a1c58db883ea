"""The alternative paths of branchynet.fast.conv side by side, on stride-1 shapes of the three
networks and a few more: for the input gradient, the correlation with the flipped kernel (run by the
forward kernel) against gcol = W^T gy with col2im; for the weight gradient, one GEMM per sample
against one GEMM per chunk. The rules in ``_grad_x`` (the correlation up to O = 2C) and
``_grad_w_slice`` (per-sample GEMMs for K = C*kh*kw <= 64) come from these tables.

    BRANCHYNET_CPU_THREADS=1 .venv/bin/python benchmarks/bench_conv_paths.py --blas-threads 1

Medians of --repeats calls after one warm-up, on the wall clock; both paths in turns.
"""
import numpy

from branchynet import benchmark
from branchynet.fast import conv, layout

p = benchmark.parser(__doc__)
p.add_argument("--repeats", type=int, default=9)
args = benchmark.parse_args(p)


# (name, N, C, H, O, k, pad)
SHAPES = [
    ("lenet conv1", 512, 1, 28, 5, 5, 3),
    ("lenet conv2", 512, 5, 15, 10, 5, 3),
    ("lenet conv3", 512, 10, 9, 20, 5, 3),
    ("lenet branch conv", 512, 5, 15, 10, 3, 1),
    ("alexnet conv2", 128, 32, 16, 64, 5, 2),
    ("alexnet conv3", 128, 64, 8, 96, 3, 1),
    ("alexnet conv5", 128, 96, 8, 64, 3, 1),
    ("resnet 16", 128, 16, 32, 16, 3, 1),
    ("resnet 64", 128, 64, 8, 64, 3, 1),
    ("O = 4C", 128, 8, 16, 32, 3, 1),
    ("O = 8C", 128, 4, 16, 32, 5, 2),
]


def _table(out, title, names, rows, a, b):
    out("")
    out(title)
    out("%-18s %5s %4s %4s %3s %5s | %12s %12s | %s" % ("shape", "N", "C", "O", "k", "K",
                                                        names[0] + " ms", names[1] + " ms",
                                                        "faster"))
    for r in rows:
        out("%-18s %5d %4d %4d %3d %5d | %12.2f %12.2f | %s"
            % (r["shape"], r["N"], r["C"], r["O"], r["k"], r["K"], r[a], r[b],
               names[0] if r[a] < r[b] else names[1]))


def main():
    out, env, blas = benchmark.start()
    rng = numpy.random.default_rng(0)
    rows = []
    for name, N, C, H, n_out, k, pad in SHAPES:
        W = rng.standard_normal((n_out, C, k, k), dtype=numpy.float32)
        x = rng.standard_normal((N, C, H, H), dtype=numpy.float32)
        g = layout.Geom(x.shape, W.shape, (1, 1), (pad, pad))
        gy = rng.standard_normal((N, n_out, g.OH, g.OW), dtype=numpy.float32)
        Wf = numpy.ascontiguousarray(W.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        gf = layout.Geom(gy.shape, Wf.shape, (1, 1), (k - 1 - pad, k - 1 - pad))
        fns = {"corr": lambda: conv._forward(gy, Wf, None, gf),
               "col2im": lambda: conv._col2im_grad_x(W, gy, g, numpy.float32),
               "per_sample": lambda: conv._grad_w_slice(x, gy, g, True),
               "per_chunk": lambda: conv._grad_w_slice(x, gy, g, False)}
        timed = benchmark.time_interleaved(fns, args.repeats, warmup=1)
        row = {"shape": name, "N": N, "C": C, "H": H, "O": n_out, "k": k, "pad": pad, "K": C * k * k}
        row.update({key + "_ms": t["wall_ms"] for key, t in timed.items()})
        rows.append(row)
    _table(out, "input gradient (rule: corr when O <= 2C)", ("corr", "col2im"), rows,
           "corr_ms", "col2im_ms")
    _table(out, "weight gradient (rule: per sample when K <= 64)", ("per_sample", "per_chunk"),
           rows, "per_sample_ms", "per_chunk_ms")
    benchmark.write_outputs(args, {"environment": env, "blas": blas, "rows": rows}, out)


if __name__ == "__main__":
    main()
