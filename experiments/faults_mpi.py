#!/usr/bin/env python
"""Faults of data parallel training (issue 21, "Distributed"), measured with `mpiexec -n 2` on
B-LeNet and a few hundred MNIST images; writes results/faults/mpi_faults.txt and mpi_rounding.txt.

    .venv/bin/python experiments/faults_mpi.py faults --trials 3
    .venv/bin/python experiments/faults_mpi.py rounding

faults: in each trial rank 1 is killed (SIGKILL) or stopped (SIGSTOP) at a random moment of a
2-process job; the job must end by itself (a stopped rank: after BRANCHYNET_MPI_TIMEOUT), leave
readable snapshots, and, run again, finish with the parameters of an uninterrupted 2-process job
bit for bit.

rounding: how far 2 processes drift from 1 process, step by step, next to how far one process
drifts from itself when only the summation order in each batch changes, or its initial parameters
move by one ulp (a chaotic training amplifies any rounding difference alike). The steps are
taken by the library's pieces (BranchyNet.train_main, .train, the weighted multi-node optimizer)
on fixed batches; `rounding-worker` is the part that runs under mpiexec.
"""
import argparse
import glob
import os
import random
import signal
import subprocess
import sys
import time

import numpy

import branchynet  # noqa: F401
import networks
from branchynet.data import datasets
from branchynet.training import distributed, optimizers, trainer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TRAIN = os.path.join(HERE, "train.py")
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
FLAGS = ["--network", "b-lenet", "--batchsize", "101", "--train-subset", "330", "--val-size", "200",
         "--seed", "4", "--no-progress", "--main-epochs", "2", "--joint-epochs", "6"]
STOP_TIMEOUT = 10


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               BRANCHYNET_CPU_THREADS="1", **extra)
    for name in distributed._SIZE_VARIABLES:
        env.pop(name, None)
    return env


def _job(out, **env):
    command = [MPIEXEC, "-n", "2", sys.executable, TRAIN] + FLAGS + ["--out", out, "--mpi"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(**env), cwd=REPO, start_new_session=True)


def _descends(pid, ancestor):
    """Whether process ``pid`` is a descendant of ``ancestor`` (each rank has its own session)."""
    while pid > 1:
        try:
            with open("/proc/%d/stat" % pid) as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == ancestor:
            return True
    return False


def _rank1_pid(job):
    """The pid of the training process with PMI_RANK=1 under ``job`` (Linux /proc)."""
    for _ in range(600):
        for environ in glob.glob("/proc/[0-9]*/environ"):
            try:
                with open(environ, "rb") as f:
                    text = f.read().split(b"\0")
                pid = int(environ.split("/")[2])
            except (OSError, ValueError):
                continue
            if b"PMI_RANK=1" in text and _descends(pid, job.pid):
                return pid
        time.sleep(0.2)
    raise RuntimeError("rank 1 of the job never started")


def _params(path):
    return {name: p.array for name, p in networks.load(path).namedparams()}


def _same(a, b):
    pa, pb = _params(a), _params(b)
    return pa.keys() == pb.keys() and all(numpy.array_equal(pa[k], pb[k]) for k in pa)


def _trial(folder, fault, delay):
    """One faulted job, then its resume: a dict of what happened."""
    out = os.path.join(folder, "%s-%.1f" % (fault, delay))
    job = _job(out, BRANCHYNET_MPI_TIMEOUT=str(STOP_TIMEOUT))
    pid = _rank1_pid(job)
    time.sleep(delay)
    faulted = time.monotonic()
    applied = job.poll() is None
    if applied:
        os.kill(pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
    try:
        _, err = job.communicate(timeout=STOP_TIMEOUT + 120)
        ended = ("ended after %.0f s" % (time.monotonic() - faulted) if applied
                 else "finished before it")
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        _, err = job.communicate()
        ended = "HUNG (killed by the script)"
    snapshots = sorted(glob.glob(os.path.join(out, "snapshot_*.npz")))
    readable = all(trainer._readable(p) for p in snapshots)
    resumed = subprocess.run([MPIEXEC, "-n", "2", sys.executable, TRAIN] + FLAGS
                             + ["--out", out, "--mpi"], capture_output=True, text=True,
                             env=_env(), cwd=REPO, timeout=600)
    return {"fault": fault, "delay": delay, "code": job.returncode, "ended": ended,
            "message": "no answer from the other processes" in err, "snapshots": len(snapshots),
            "readable": readable, "resumed": resumed.returncode == 0, "out": out}


def faults(args):
    folder = os.path.abspath(args.work)
    reference = os.path.join(folder, "reference")
    whole = _job(reference)
    _rank1_pid(whole)
    started = time.monotonic()
    whole.communicate(timeout=1200)
    assert whole.returncode == 0, "the uninterrupted job failed"
    duration = time.monotonic() - started
    rng = random.Random(args.seed)
    rows = []
    for fault in ("kill", "stop"):
        for _ in range(args.trials):  # a moment of the job's run
            row = _trial(folder, fault, rng.uniform(0.1, 0.9) * duration)
            branchy = os.path.join(row["out"], "branchy.npz")
            row["identical"] = row["resumed"] and _same(branchy, os.path.join(reference, "branchy.npz"))
            rows.append(row)
            print(row, flush=True)
    lines = ["# rank 1 of `mpiexec -n 2` killed (SIGKILL) or stopped (SIGSTOP) at a random moment",
             "# command: python experiments/faults_mpi.py faults --trials %d --seed %d"
             % (args.trials, args.seed),
             "# B-LeNet, 330 MNIST images, batch 101, 2 + 6 epochs; an uninterrupted job takes %.0f s"
             " after rank 1 starts, the fault comes 0.1-0.9 of that after; BRANCHYNET_MPI_TIMEOUT=%d"
             % (duration, STOP_TIMEOUT), "",
             "fault  delay_s  exit  ended                 timeout_message  snapshots  readable  "
             "resumed  bit_identical_to_uninterrupted"]
    for r in rows:
        lines.append("%-6s %7.1f  %4s  %-21s %-16s %9d  %-8s  %-7s  %s" % (
            r["fault"], r["delay"], r["code"], r["ended"], r["message"], r["snapshots"],
            r["readable"], r["resumed"], r["identical"]))
    for fault in ("kill", "stop"):
        ok = [r for r in rows if r["fault"] == fault and r["ended"].startswith("ended after")
              and r["readable"] and r["identical"]]
        lines.append("%s: %d/%d ended by themselves, resumed bit-identical"
                     % (fault, len(ok), sum(r["fault"] == fault for r in rows)))
    _write(args.result or os.path.join(REPO, "results", "faults", "mpi_faults.txt"), lines)


def _write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def _flat(net):
    return numpy.concatenate([p.array.ravel().astype(numpy.float64) for _, p in sorted(net.namedparams())])


def rounding_worker(args):
    """Runs the fixed step schedule in this process (under mpiexec: data parallel) and, on rank
    0, saves the flattened parameters after every step."""
    dist = distributed.connect(args.processes > 1)
    x, t = datasets.arrays(datasets.get_mnist()[0])
    x, t = x[:args.images], t[:args.images]
    numpy.random.seed(0)
    net = networks.build("b-lenet")
    net.initialize(x[:1])
    if args.ulp:
        for _, param in net.namedparams():
            param.array[...] = numpy.nextafter(param.array, numpy.float32(numpy.inf))
    trajectory = [_flat(net)]
    for stage, epochs in (("main", args.main_epochs), ("joint", args.joint_epochs)):
        optimizer = optimizers.OptimizerSettings()(net)
        if dist is not None:
            optimizer = dist.optimizer(optimizer)
        step = net.train_main if stage == "main" else net.train
        for _ in range(epochs):
            for start in range(0, len(x), args.batchsize):
                batch = numpy.arange(start, min(start + args.batchsize, len(x)))
                part = batch if dist is None else numpy.array_split(batch, dist.size)[dist.rank]
                part = part[::-1] if args.reverse else part
                if dist is not None:
                    optimizer.set_share(len(part), len(batch))
                step(x[part], t[part], optimizer)
                trajectory.append(_flat(net))
    if dist is None or dist.is_root:
        numpy.save(args.save, numpy.array(trajectory))


def rounding(args):
    folder = os.path.abspath(args.work)
    os.makedirs(folder, exist_ok=True)
    runs = {}
    for name, processes, flag in (("one", 1, None), ("two", 2, None), ("one_reversed", 1, "--reverse"),
                                  ("one_ulp", 1, "--ulp")):
        path = os.path.join(folder, name + ".npy")
        command = [sys.executable, os.path.abspath(__file__), "rounding-worker", "--save", path,
                   "--processes", str(processes), "--images", str(args.images),
                   "--batchsize", str(args.batchsize), "--main-epochs", str(args.main_epochs),
                   "--joint-epochs", str(args.joint_epochs)] + ([flag] if flag else [])
        if processes > 1:
            command = [MPIEXEC, "-n", str(processes)] + command
        subprocess.run(command, check=True, env=_env(), cwd=REPO, timeout=1200)
        runs[name] = numpy.load(path)
    steps_per_epoch = -(-args.images // args.batchsize)
    lines = ["# largest |parameter difference| after each epoch, B-LeNet, %d MNIST images, batch %d,"
             " %d pretraining + %d joint epochs (%d steps each), Adam" % (
                 args.images, args.batchsize, args.main_epochs, args.joint_epochs, steps_per_epoch),
             "# command: python experiments/faults_mpi.py rounding --images %d --batchsize %d "
             "--main-epochs %d --joint-epochs %d" % (args.images, args.batchsize, args.main_epochs,
                                                     args.joint_epochs), "",
             "# columns: the largest difference from one process of: 2 processes; one process with",
             "# each batch's samples in reverse order (only the summation order changes); one",
             "# process whose initial parameters are one ulp larger", "",
             "after      2 processes  reversed order  initial +1 ulp"]
    marks = [(1, "step 1")] + [(e * steps_per_epoch, "epoch %d" % e)
                               for e in range(1, args.main_epochs + args.joint_epochs + 1)]
    for step, label in marks:
        two = numpy.abs(runs["two"][step] - runs["one"][step]).max()
        rev = numpy.abs(runs["one_reversed"][step] - runs["one"][step]).max()
        ulp = numpy.abs(runs["one_ulp"][step] - runs["one"][step]).max()
        lines.append("%-10s %-12.3g %-15.3g %.3g" % (label, two, rev, ulp))
    lines.append("initial parameters: 2 processes vs 1: %.3g (equal)"
                 % numpy.abs(runs["two"][0] - runs["one"][0]).max())
    _write(args.result or os.path.join(REPO, "results", "faults", "mpi_rounding.txt"), lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("section", choices=("faults", "rounding", "rounding-worker"))
    p.add_argument("--work", default="/tmp/faults_mpi", help="scratch folder (default %(default)s)")
    p.add_argument("--result", default=None, help="result file (default: results/faults/mpi_*.txt)")
    p.add_argument("--trials", type=int, default=3, help="faults per kind (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault moments")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--batchsize", type=int, default=100)
    p.add_argument("--main-epochs", type=int, default=2)
    p.add_argument("--joint-epochs", type=int, default=2)
    p.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--save", default=None, help=argparse.SUPPRESS)
    p.add_argument("--ulp", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--reverse", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    {"faults": faults, "rounding": rounding, "rounding-worker": rounding_worker}[args.section](args)


if __name__ == "__main__":
    main()
