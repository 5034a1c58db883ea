"""The two input-gradient paths of branchynet.fast.conv side by side, on stride-1 shapes of the
three networks and a few with more output than input channels: the correlation with the flipped
kernel (run by the forward kernel) and gcol = W^T gy with col2im. The rule in ``_grad_x`` (the
correlation up to O = 2C) comes from this table.

    BRANCHYNET_CPU_THREADS=1 .venv/bin/python benchmarks/bench_grad_x_paths.py --blas-threads 1

Medians of --repeats calls after one warm-up, on the wall clock; both paths in turns.
"""
import _bench  # before numpy: parse_args sets the BLAS threads

p = _bench.parser(__doc__)
p.add_argument("--repeats", type=int, default=9)
args = _bench.parse_args(p)

import numpy  # noqa: E402

import branchynet  # noqa: E402,F401  (compatibility shims before chainer)
from branchynet.fast import conv  # noqa: E402

# (name, N, C, H, O, k, pad)
SHAPES = [
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


def main():
    out, env, blas = _bench.start()
    rng = numpy.random.default_rng(0)
    rows = []
    out("%-18s %5s %4s %4s %3s | %10s %10s | %s" % ("shape", "N", "C", "O", "k", "corr ms",
                                                    "col2im ms", "faster"))
    for name, N, C, H, O, k, pad in SHAPES:
        W = rng.standard_normal((O, C, k, k), dtype=numpy.float32)
        g = conv._Geom((N, C, H, H), W.shape, (1, 1), (pad, pad))
        gy = rng.standard_normal((N, O, g.OH, g.OW), dtype=numpy.float32)
        Wf = numpy.ascontiguousarray(W.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        gf = conv._Geom(gy.shape, Wf.shape, (1, 1), (k - 1 - pad, k - 1 - pad))
        fns = {"corr": lambda: conv._forward(gy, Wf, None, gf),
               "col2im": lambda: conv._col2im_grad_x(W, gy, g, numpy.float32)}
        timed = _bench.time_interleaved(fns, args.repeats, warmup=1)
        corr, col2im = timed["corr"]["wall_ms"], timed["col2im"]["wall_ms"]
        rows.append({"shape": name, "N": N, "C": C, "H": H, "O": O, "k": k, "pad": pad,
                     "corr_ms": corr, "col2im_ms": col2im})
        out("%-18s %5d %4d %4d %3d | %10.2f %10.2f | %s (O/C = %.1f)"
            % (name, N, C, O, k, corr, col2im, "corr" if corr < col2im else "col2im", O / C))
    _bench.write_outputs(args, {"environment": env, "blas": blas, "rows": rows}, out)


if __name__ == "__main__":
    main()
