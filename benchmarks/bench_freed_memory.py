"""Training steps with freed memory kept for the next step (``branchynet.fast.memory``) against
glibc's defaults, each in a fresh process (the setting is process-wide), in turns.

    .venv/bin/python benchmarks/bench_freed_memory.py --blas-threads 1 \
        --out results/benchmarks/freed_memory_cpu.json --text-out results/benchmarks/freed_memory_cpu.txt

For each network and thread count, every round starts one worker process with
``BRANCHYNET_KEEP_MEMORY=1`` and one with ``=0``; a worker builds the network, runs --warmup main
training steps (Adam, batch --batchsize of random N(0, 1) inputs), then times --steps more and
counts the page faults they take (minor faults of the process, per step). Medians over rounds of
the workers' medians; the ratio is the defaults' time over the kept one's.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from branchynet import benchmark

HERE = os.path.dirname(os.path.abspath(__file__))


def _parse(argv=None):
    p = benchmark.parser(__doc__)
    p.add_argument("--networks", default="b-lenet,b-alexnet")
    p.add_argument("--threads", default="1,2", help="kernel thread counts, comma-separated")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batchsize", type=int, default=512)
    p.add_argument("--worker", nargs=5, metavar=("NETWORK", "THREADS", "STEPS", "WARMUP", "BATCH"),
                   help=argparse.SUPPRESS)  # one worker process's job
    return benchmark.parse_args(p, argv)


def worker(network, threads, steps, warmup, batch):
    """Times ``steps`` main training steps in this process; prints one JSON line."""
    import resource
    import time

    import numpy

    import networks
    from branchynet import fast
    from branchynet.fast import memory
    from branchynet.training import optimizers
    fast.threads.set_threads(int(threads))
    numpy.random.seed(0)
    net = networks.build(network)
    shape = (1, 28, 28) if networks.dataset_of(network) == "mnist" else (3, 32, 32)
    x = numpy.random.standard_normal((int(batch),) + shape).astype(numpy.float32)
    t = numpy.random.randint(0, 10, int(batch)).astype(numpy.int32)
    optimizer = optimizers.adam()(net)
    for _ in range(int(warmup)):
        net.train_main(x, t, optimizer)
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(int(steps)):
        t0 = time.perf_counter()
        net.train_main(x, t, optimizer)
        times.append(1e3 * (time.perf_counter() - t0))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"ms": statistics.median(times), "faults_per_step": faults / int(steps),
                      "kept": memory.kept()}))


def _run_worker(args, network, threads, keep):
    env = dict(os.environ, BRANCHYNET_KEEP_MEMORY="1" if keep else "0")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", network, str(threads),
           str(args.steps), str(args.warmup), str(args.batchsize)]
    if args.blas_threads is not None:
        cmd += ["--blas-threads", str(args.blas_threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=os.path.dirname(HERE))
    if proc.returncode != 0:
        raise RuntimeError("worker failed: %s" % proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(args):
    out, env, blas = benchmark.start()
    rows = []
    for network in args.networks.split(","):
        for threads in (int(v) for v in args.threads.split(",")):
            runs = {True: [], False: []}
            for _ in range(args.rounds):
                for keep in (True, False):
                    runs[keep].append(_run_worker(args, network, threads, keep))
            assert all(r["kept"] for r in runs[True]) and not any(r["kept"] for r in runs[False])
            row = {"network": network, "threads": threads}
            for keep, name in ((True, "kept"), (False, "defaults")):
                row[name + "_ms"] = statistics.median(r["ms"] for r in runs[keep])
                row[name + "_faults"] = statistics.median(r["faults_per_step"] for r in runs[keep])
            row["ratio"] = row["defaults_ms"] / row["kept_ms"]
            rows.append(row)
    out("main training step, batch %d, medians of %d rounds (%d steps each, after %d warm-up)"
        % (args.batchsize, args.rounds, args.steps, args.warmup))
    out("%-10s %7s | %12s %12s %7s | %14s %14s" % ("network", "threads", "kept ms",
                                                   "defaults ms", "ratio", "faults kept",
                                                   "faults default"))
    for r in rows:
        out("%-10s %7d | %12.1f %12.1f %6.2fx | %14.0f %14.0f" % (
            r["network"], r["threads"], r["kept_ms"], r["defaults_ms"], r["ratio"],
            r["kept_faults"], r["defaults_faults"]))
    out("(faults: minor page faults of the process per timed step)")
    benchmark.write_outputs(args, {"environment": env, "blas": blas, "settings": vars(args),
                                   "method": __doc__.split("\n\n", 2)[2], "rows": rows}, out)
    return rows


if __name__ == "__main__":
    ARGS = _parse()
    if ARGS.worker:
        worker(*ARGS.worker)
    else:
        main(ARGS)
