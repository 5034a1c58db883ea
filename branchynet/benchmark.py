"""Timing helpers for the benchmark scripts (benchmarks/): their common options, the BLAS thread
setting and report, the record of which CPU kernels run, medians of wall and CPU time over
interleaved runs, the numpy sgemm reference rate, a one-line header and the writing of results.
"""
import argparse
import os
import platform
import statistics
import time

import numpy

import chainer

from branchynet.fast import blas

_BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def set_blas_threads(n):
    """Runs numpy's OpenBLAS on ``n`` threads from now on (``blas.set_threads``), and sets the BLAS
    thread variables for the processes this one starts. None leaves everything as it is."""
    if n is not None:
        for var in _BLAS_VARS:
            os.environ[var] = str(n)
        blas.set_threads(n)


def parser(doc, outputs=True):
    """An ArgumentParser described by the first paragraph of ``doc``, with the options the
    benchmarks share: --blas-threads and, with ``outputs``, --out and --text-out."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if outputs:
        p.add_argument("--out", default=None, help="write all numbers and the environment to this JSON")
        p.add_argument("--text-out", default=None, help="also write the printed tables to this file")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="set OPENBLAS_NUM_THREADS/OMP_NUM_THREADS/MKL_NUM_THREADS before numpy "
                        "loads (default: leave the environment as it is)")
    return p


def parse_args(p, argv=None):
    """Parses the options and sets the BLAS threads they ask for."""
    args = p.parse_args(argv)
    set_blas_threads(args.blas_threads)
    return args


def start():
    """(out, environment, BLAS info) for a benchmark's report: ``out`` a Tee that has printed the
    one-line header and the CPU."""
    from branchynet.reporting import environment
    out = Tee()
    env = environment.environment()
    blas = blas_threads()
    out(header())
    out("CPU: %s" % env["hardware"]["cpu"])
    return out, env, blas


def kernels():
    """Which CPU kernels this process runs, for a benchmark's record: the fast-kernel switch, how
    many threads they split a batch over, whether the compiled (Numba) kernels are on (else why
    not), the sizes up to which those are chosen (``branchynet.fast.jit``'s limits), and the kernel
    choices timed on this CPU so far (``branchynet.fast.calibration``: call this after the work)."""
    from branchynet.fast import calibration, jit, memory, threads
    return {"fast_cpu": bool(chainer.config.branchynet_fast_cpu), "threads": threads.get_threads(),
            "freed_memory_kept": memory.kept(),
            "jit": jit.available(), "jit_why_not": jit.why_not(),
            "jit_limits": {k: v for k, v in vars(jit).items() if k.isupper() and isinstance(v, int)},
            "cpu": calibration.cpu_model(), "calibration": calibration.enabled(),
            "choices": calibration.choices()}


def kernels_text(record):
    """One line naming the CPU, the fast kernels' threads and each kernel choice the process ran."""
    made = "; ".join("%s -> %s" % kv for kv in record["choices"].items())
    return ("kernels on %s: fast path %s, %d thread(s), compiled %s, freed memory %s; "
            "choices run: %s") % (
        record["cpu"], "on" if record["fast_cpu"] else "off", record["threads"],
        "on" if record["jit"] else "off (%s)" % record["jit_why_not"],
        "kept" if record.get("freed_memory_kept") else "returned",
        made or ("none" if record["calibration"] else "default rules (timing off)"))


def write_outputs(args, summary, out):
    """The summary, with the kernels this process ran (``kernels()``, printed too), to ``args.out``
    (JSON) and the printed text to ``args.text_out``, if given."""
    from branchynet.reporting import files
    summary["kernels"] = kernels()
    out(kernels_text(summary["kernels"]))
    if args.out:
        files.write_json(args.out, summary)
        out("wrote %s" % args.out)
    if args.text_out:
        files.write_text(args.text_out, out.text())


def blas_threads():
    """How many threads BLAS runs with, and how that was found: threadpoolctl if importable, else
    numpy's bundled OpenBLAS asked through ctypes, else the environment variables."""
    info = {"env": {var: os.environ.get(var) for var in _BLAS_VARS}}
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            info.update(source="threadpoolctl", num_threads=pools[0].get("num_threads"),
                        library=pools[0].get("internal_api"), pools=pools)
            return info
    threads, config = blas.threads(), blas.config()
    if threads is not None:
        info.update(source="openblas_get_num_threads (ctypes)", num_threads=threads, library=config)
        return info
    env = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    info.update(source="environment", num_threads=int(env) if env else None, library=None)
    return info


def header(clock="wall+cpu"):
    """One line: versions, CPUs, BLAS threads, clock, load average."""
    b = blas_threads()
    return ("python %s  numpy %s  chainer %s  cpus %d  BLAS threads %s (%s)  clock %s  load avg %s"
            % (platform.python_version(), numpy.__version__, chainer.__version__, os.cpu_count(),
               b["num_threads"], b["source"], clock,
               " ".join("%.2f" % v for v in os.getloadavg())))


def time_once(fn):
    """(wall seconds, CPU seconds of this process) of one call."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    w1, c1 = time.perf_counter(), time.process_time()
    return w1 - w0, c1 - c0


def summarize(wall, cpu, scale=1e3):
    """Medians (and the raw values) of per-repeat wall and CPU seconds, in ms by default."""
    return {"wall_ms": statistics.median(wall) * scale, "cpu_ms": statistics.median(cpu) * scale,
            "wall_min_ms": min(wall) * scale, "wall_max_ms": max(wall) * scale,
            "wall_all_ms": [w * scale for w in wall], "cpu_all_ms": [c * scale for c in cpu],
            "repeats": len(wall)}


def time_interleaved(fns, repeats, warmup=1, inner=1):
    """Times several callables in turns (A B C A B C ...) so that load changes hit all alike.

    ``fns``: {name: callable}. Each of ``warmup`` untimed rounds and ``repeats`` timed rounds
    calls every function ``inner`` times; a timed round gives the mean per call. Returns
    {name: summarize(...)} (ms per call, medians over rounds).
    """
    for _ in range(warmup):
        for fn in fns.values():
            for _ in range(inner):
                fn()
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            def run(fn=fn):
                for _ in range(inner):
                    fn()
            w, c = time_once(run)
            wall[name].append(w / inner)
            cpu[name].append(c / inner)
    return {name: summarize(wall[name], cpu[name]) for name in fns}


def median_time(fn, repeats, warmup, clock=time.perf_counter):
    """Median seconds of ``repeats`` calls after ``warmup`` untimed ones, on one clock."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        ts.append(clock() - t0)
    return statistics.median(ts)


def sgemm_gflops(n=2048, repeats=5, clock=time.perf_counter):
    """numpy float32 n x n x n matmul rate in GFLOP/s (2 n^3 flop), median of ``repeats``."""
    rng = numpy.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=numpy.float32)
    b = rng.standard_normal((n, n), dtype=numpy.float32)
    c = numpy.empty((n, n), numpy.float32)
    return 2.0 * n ** 3 / median_time(lambda: numpy.matmul(a, b, out=c), repeats, 1, clock) / 1e9


def sgemm_both(n=2048, repeats=5):
    """The sgemm rate on both clocks, from the same runs: {"n", "wall_gflops", "cpu_gflops"}."""
    rng = numpy.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=numpy.float32)
    b = rng.standard_normal((n, n), dtype=numpy.float32)
    c = numpy.empty((n, n), numpy.float32)
    t = time_interleaved({"sgemm": lambda: numpy.matmul(a, b, out=c)}, repeats, 1)["sgemm"]
    flop = 2.0 * n ** 3
    return {"n": n, "repeats": repeats, "wall_gflops": flop / (t["wall_ms"] / 1e3) / 1e9,
            "cpu_gflops": flop / (t["cpu_ms"] / 1e3) / 1e9, "timing": t}


class Tee:
    """print() that also keeps the text (to store it beside the JSON)."""

    def __init__(self):
        self.lines = []

    def __call__(self, *args):
        line = " ".join(str(a) for a in args)
        print(line, flush=True)
        self.lines.append(line)

    def text(self):
        return "\n".join(self.lines) + "\n"
