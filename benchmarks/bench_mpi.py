"""Data parallel training steps per second on this machine: one process against two under
mpiexec (ChainerMN), each with its thread settings, for B-LeNet (batch 512) and B-ResNet-110
(batch 128).

    .venv/bin/python benchmarks/bench_mpi.py --out results/benchmarks/mpi_cpu.json \
        --text-out results/benchmarks/mpi_cpu.txt

Each configuration runs in fresh processes: ``P`` processes (``mpiexec -n P``, ChainerMN's naive
communicator) with ``T`` threads each, set before numpy loads (OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS, MKL_NUM_THREADS and BRANCHYNET_CPU_THREADS, the fast kernels' batch split). The
default configurations on a 2-core machine: 1 process x 1 thread, 1 process x 2 threads and 2
processes x 1 thread.

A step is one step of ``branchynet.training.updater.BranchyUpdater`` on a global batch, as training runs it:
each process its part of the batch (forward, loss, backward), the gradients' mean over the
processes, the Adam update, and the per-exit statistics summed over the processes. Pretraining
steps (``train_main``) and joint steps (``train``) are timed separately, after warm-up steps of
each, with a barrier before each timed step; the median of rank 0's wall times is reported, and
the median CPU time of all processes together per step (time.process_time, summed over ranks):
on a shared, oversubscribed machine the wall time also measures how much of the CPU the other
users left, and P processes get a larger share of it than one; the CPU time does not.
Inputs: random images of the dataset's shape (the arithmetic, and so the time, does not depend
on the values). Not counted: data loading, the evaluation of each epoch, snapshots.

``--worker`` is the mode mpiexec runs; the driver starts one per configuration and network.
"""
import json
import os
import subprocess
import sys
import time

from branchynet import benchmark

NETWORKS = {"b-lenet": ("b-lenet", {}, (1, 28, 28), 512, 55000),
            "b-resnet110": ("b-resnet110", {}, (3, 32, 32), 128, 45000)}
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BRANCHYNET_CPU_THREADS")


def _parse(argv=None):
    p = benchmark.parser(__doc__)
    p.add_argument("--networks", default="b-lenet,b-resnet110")
    p.add_argument("--configs", default="1x1,1x2,2x1",
                   help="PROCESSESxTHREADS, comma-separated (default %(default)s)")
    p.add_argument("--lenet-steps", type=int, default=10, help="timed steps per stage, B-LeNet")
    p.add_argument("--resnet-steps", type=int, default=3, help="timed steps per stage, B-ResNet-110")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per stage first")
    p.add_argument("--worker", default=None, help=argparse_hidden())
    return benchmark.parse_args(p, argv)


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


def worker(spec):
    """One configuration's measurement (run under mpiexec); rank 0 prints a JSON line."""
    name, steps, warmup = spec["network"], spec["steps"], spec["warmup"]
    import numpy

    import chainer

    import branchynet  # noqa: F401  (before chainer)
    import networks
    from branchynet.training import distributed, optimizers, updater

    network, kwargs, shape, batch, _ = NETWORKS[name]
    dist = distributed.connect(mpi=spec["processes"] > 1)
    numpy.random.seed(0)
    net = networks.build(network, **kwargs)
    rng = numpy.random.RandomState(1)
    n = batch * (warmup + steps)  # one epoch per stage: pretraining, then joint steps
    x = rng.rand(n, *shape).astype(numpy.float32)
    t = rng.randint(0, 10, n).astype(numpy.int32)
    rank, size = (0, 1) if dist is None else (dist.rank, dist.size)
    iterator = updater.EpochIterator((x, t), batch, updater.SeededOrder(0), rank, size)
    up = updater.BranchyUpdater(iterator, net, optimizers.adam(), main_epochs=1, seed=0,
                                wrap_optimizer=None if dist is None else dist.optimizer,
                                allreduce=None if dist is None else dist.allreduce,
                                rank=None if dist is None else rank)
    reporter = chainer.Reporter()
    times = {"main": [], "joint": []}
    cpu = {"main": [], "joint": []}  # CPU seconds of all processes together
    with chainer.using_config("branchynet_fast_cpu", True):
        for stage in ("main", "joint"):
            for i in range(warmup + steps):
                if dist is not None:
                    dist.mpi_comm.Barrier()
                start, start_cpu = time.perf_counter(), time.process_time()
                with reporter.scope({}):
                    up.update()
                used = time.process_time() - start_cpu
                if dist is not None:
                    dist.mpi_comm.Barrier()
                    used = dist.mpi_comm.allreduce(used)
                if i >= warmup:
                    times[stage].append(time.perf_counter() - start)
                    cpu[stage].append(used)
            assert up.stage == stage
    if rank == 0:
        print("RESULT " + json.dumps({"times": times, "cpu": cpu, "processes": size}), flush=True)


def run_config(args, name, processes, threads):
    steps = args.lenet_steps if name == "b-lenet" else args.resnet_steps
    spec = json.dumps({"network": name, "steps": steps, "warmup": args.warmup,
                       "processes": processes})
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    for var in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE"):
        env.pop(var, None)
    command = [sys.executable, os.path.abspath(__file__), "--worker", spec]
    if processes > 1:
        command = [os.path.join(os.path.dirname(sys.executable), "mpiexec"), "-n", str(processes)] \
            + command
    started = time.time()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (" ".join(command), proc.stderr[-3000:]))
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["wall_seconds"] = time.time() - started
    return result


def main():
    args = ARGS
    if args.worker:
        return worker(json.loads(args.worker))
    import statistics
    out, env, _ = benchmark.start()
    out("load average before: %.2f %.2f %.2f (a shared machine: other processes take cores too)"
        % os.getloadavg())
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    summary = {"environment": env, "command": "python " + " ".join(sys.argv), "networks": {}}
    out("%-12s %-16s %12s %12s %12s %12s %14s %14s" % (
        "network", "processes x thr", "main ms/step", "joint ms/step", "main steps/s",
        "joint steps/s", "main cpu ms", "joint cpu ms"))
    for name in args.networks.split(","):
        network, _, _, batch, train_size = NETWORKS[name]
        rows = []
        for processes, threads in configs:
            result = run_config(args, name, processes, threads)
            row = {"processes": processes, "threads_per_process": threads, "batch": batch,
                   "times": result["times"], "cpu_times": result["cpu"]}
            for stage in ("main", "joint"):
                row["%s_ms" % stage] = 1e3 * statistics.median(result["times"][stage])
                row["%s_steps_per_s" % stage] = 1e3 / row["%s_ms" % stage]
                row["%s_cpu_ms" % stage] = 1e3 * statistics.median(result["cpu"][stage])
            rows.append(row)
            out("%-12s %-16s %12.1f %12.1f %12.2f %12.2f %14.1f %14.1f" % (
                name, "%d x %d" % (processes, threads), row["main_ms"], row["joint_ms"],
                row["main_steps_per_s"], row["joint_steps_per_s"], row["main_cpu_ms"],
                row["joint_cpu_ms"]))
        summary["networks"][name] = {"batch": batch, "train_size": train_size, "rows": rows}
    out("load average after: %.2f %.2f %.2f" % os.getloadavg())
    benchmark.write_outputs(args, summary, out)


ARGS = _parse() if __name__ == "__main__" else None

if __name__ == "__main__":
    main()
