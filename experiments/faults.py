#!/usr/bin/env python
"""Fault injection on small B-LeNet runs (a subset of MNIST: a trial takes seconds): does training
survive what happens to real runs, and does it say so when it cannot?

    python experiments/faults.py --out results/faults

Each trial runs experiments/train.py in a child process, as a user would, against the reference
(the same command run once without faults), and compares the results bit for bit (every array of
branchy.npz and main.npz, and log.jsonl but for its times):

* kills: SIGKILL, SIGTERM or SIGINT at a random moment (import, data, an epoch, a save), then the
  same command again until it finishes: must equal the reference;
* disk full: ``ulimit -f`` with a random size below a snapshot's: must fail (exit code and a
  message), then resume to the reference;
* corruption: random bit flips in main.npz and branchy.npz (loading must refuse them or read
  identical arrays), in the newest snapshot (set aside, or identical; a few resumed to the
  reference) and in main.npz before a resume (the resume must stop, naming it);
* two trainers: a second trainer (another seed) on a folder in use must be refused naming the
  first, which must finish as the reference.

Trials are named in ``TRIALS``; the data parallel ones (a killed or stopped MPI rank) are added
there as functions of the same form (``trial(context, count, rng)`` returning a list of records).
The counts go to OUT/faults.json and OUT/summary.txt; docs/faults.md has the committed figures.
"""
import argparse
import collections
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy

import chainer

import networks
from branchynet.model import serialization
from branchynet.training import snapshots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "experiments", "train.py")
FLAGS = ["--network", "b-lenet", "--main-epochs", "2", "--joint-epochs", "2", "--batchsize", "64",
         "--train-subset", "512", "--val-size", "100", "--no-progress"]


def command(out, seed=0):
    return [sys.executable, TRAIN] + FLAGS + ["--seed", str(seed), "--out", out]


def run(out, seed=0, limit_kb=None, timeout=600):
    """Runs the training command to its end; ``limit_kb``: ``ulimit -f`` for it (Python ignores
    SIGXFSZ, so an oversized write raises 'File too large')."""
    argv = command(out, seed)
    if limit_kb is not None:
        argv = ["bash", "-c", 'ulimit -f %d && exec "$@"' % limit_kb, "bash"] + argv
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def fingerprint(out):
    """What a finished run folder must hold: {file: {key: array}} of its weights, and its log
    without times."""
    found = {}
    for name in (serialization.BRANCHY, serialization.MAIN):
        with numpy.load(os.path.join(out, name)) as data:
            found[name] = {key: data[key] for key in data.files}
    with open(os.path.join(out, "log.jsonl")) as f:
        found["log"] = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in f]
    return found


def same(a, b):
    if a.keys() != b.keys() or a["log"] != b["log"]:
        return False
    return all(a[f].keys() == b[f].keys() and all(numpy.array_equal(a[f][k], b[f][k]) for k in a[f])
               for f in (serialization.BRANCHY, serialization.MAIN))


def finish(out, context, attempts=2):
    """Runs the command until it succeeds (at most ``attempts`` times); (equal to the reference,
    the last process)."""
    for _ in range(attempts):
        proc = run(out)
        if proc.returncode == 0:
            return same(fingerprint(out), context["reference"]), proc
    return False, proc


def tail(text, lines=3):
    return "\n".join(text.strip().splitlines()[-lines:])


def kill_trials(signum):
    def trial(context, count, rng):
        records = []
        for _ in range(count):
            out = tempfile.mkdtemp(dir=context["work"])
            delay = rng.uniform(0.2, context["seconds"])
            proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, cwd=ROOT)
            time.sleep(delay)
            proc.send_signal(signum)
            _, stderr = proc.communicate(timeout=600)
            identical, last = finish(out, context)
            records.append({"delay_s": round(delay, 2), "killed_rc": proc.returncode,
                            "ok": identical, "detail": "" if identical else tail(last.stderr)})
            shutil.rmtree(out)
        return records
    return trial


def disk_full(context, count, rng):
    records = []
    for _ in range(count):
        out = tempfile.mkdtemp(dir=context["work"])
        limit = rng.randint(1, context["snapshot_kb"] - 1)
        failed = run(out, limit_kb=limit)
        loud = failed.returncode != 0 and "File too large" in failed.stderr
        identical, last = finish(out, context)
        records.append({"limit_kb": limit, "rc": failed.returncode, "loud": loud,
                        "ok": loud and identical,
                        "detail": "" if loud and identical else tail(failed.stderr + last.stderr)})
        shutil.rmtree(out)
    return records


def flip(path, rng):
    """Flips one random bit of the file at ``path``; returns (offset, bit)."""
    with open(path, "r+b") as f:
        size = os.path.getsize(path)
        offset, bit = rng.randrange(size), rng.randrange(8)
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))
    return offset, bit


def _same_arrays(net, saved):
    """Whether ``net`` holds the arrays and thresholds of the file read as ``saved``."""
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(net)
    arrays = serializer.target
    if set(arrays) != {k for k in saved if not k.startswith("branchynet_")}:
        return False
    thresholds = json.loads(str(saved[serialization.THRESHOLDS_KEY]))
    return (all(numpy.array_equal(arrays[k], saved[k]) for k in arrays)
            and serialization.entries(net)[serialization.THRESHOLDS_KEY] == json.dumps(thresholds))


def model_flips(context, count, rng):
    """Bit flips in main.npz and branchy.npz: ``serialization.load`` must refuse the file or
    read arrays identical to the reference's."""
    records = []
    for i in range(count):
        name = (serialization.MAIN, serialization.BRANCHY)[i % 2]
        path = os.path.join(context["work"], "flipped.npz")
        shutil.copyfile(os.path.join(context["reference_dir"], name), path)
        offset, bit = flip(path, rng)
        try:
            net = serialization.load(path, networks.build)
        except serialization.ModelFileError:
            outcome = "detected"
        else:
            outcome = "harmless" if _same_arrays(net, context["reference"][name]) else "silent"
        records.append({"file": name, "offset": offset, "bit": bit, "outcome": outcome,
                        "ok": outcome != "silent"})
    return records


def snapshot_flips(context, count, rng):
    """Bit flips in the newest snapshot: it must no longer read back (set aside on resume) or
    read back identical."""
    records = []
    newest = os.path.join(context["reference_dir"], "snapshot_epoch_0004.npz")
    with numpy.load(newest) as data:
        original = {key: data[key] for key in data.files}
    for _ in range(count):
        path = os.path.join(context["work"], "snapshot_epoch_0004.npz")
        shutil.copyfile(newest, path)
        offset, bit = flip(path, rng)
        if not snapshots.readable(path):
            outcome = "set aside"
        else:
            with numpy.load(path) as data:
                identical = (sorted(data.files) == sorted(original)
                             and all(numpy.array_equal(data[k], original[k]) for k in original))
            outcome = "harmless" if identical else "silent"
        records.append({"offset": offset, "bit": bit, "outcome": outcome, "ok": outcome != "silent"})
    return records


def _copy_reference(context):
    out = tempfile.mkdtemp(dir=context["work"])
    shutil.rmtree(out)
    shutil.copytree(context["reference_dir"], out)
    return out


def snapshot_resumes(context, count, rng):
    """A bit flipped in the newest snapshot, then the command again: the run must finish as the
    reference (from the snapshot before it where the flip is noticed)."""
    records = []
    for _ in range(count):
        out = _copy_reference(context)
        offset, bit = flip(os.path.join(out, "snapshot_epoch_0004.npz"), rng)
        identical, last = finish(out, context, attempts=1)
        aside = os.path.exists(os.path.join(out, "snapshot_epoch_0004.npz.unreadable"))
        records.append({"offset": offset, "bit": bit, "set_aside": aside, "ok": identical,
                        "detail": "" if identical else tail(last.stderr)})
        shutil.rmtree(out)
    return records


def baseline_flips(context, count, rng):
    """A bit flipped in main.npz, then the command again: the resume must stop naming main.npz
    (or the flip is harmless and the run finishes as the reference)."""
    records = []
    for _ in range(count):
        out = _copy_reference(context)
        main = os.path.join(out, serialization.MAIN)
        offset, bit = flip(main, rng)
        proc = run(out)
        lines = proc.stderr.strip().splitlines()
        if proc.returncode != 0:
            outcome = "refused" if len(lines) == 1 and main in lines[0] else "unclear"
        else:
            outcome = "harmless" if same(fingerprint(out), context["reference"]) else "silent"
        records.append({"offset": offset, "bit": bit, "outcome": outcome,
                        "ok": outcome in ("refused", "harmless"), "detail": tail(proc.stderr, 1)})
        shutil.rmtree(out)
    return records


def two_trainers(context, count, rng):
    """A second trainer (seed 1) started on a folder where the first (seed 0) trains (stopped
    while the second starts, so that it is still in use whatever the machine's load)."""
    records = []
    for _ in range(count):
        out = tempfile.mkdtemp(dir=context["work"])
        first = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, cwd=ROOT)
        lock = os.path.join(out, "lock")
        while first.poll() is None and not (os.path.exists(lock) and os.path.getsize(lock)):
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))  # (a small run may end within a second of taking it)
        first.send_signal(signal.SIGSTOP)  # in use, however slow the second is to start
        try:
            second = run(out, seed=1)
        finally:
            first.send_signal(signal.SIGCONT)
        first.communicate(timeout=600)
        lines = second.stderr.strip().splitlines()
        refused = (second.returncode != 0 and len(lines) == 1
                   and "pid %d" % first.pid in lines[0])
        identical = first.returncode == 0 and same(fingerprint(out), context["reference"])
        records.append({"refused": refused, "first_intact": identical, "ok": refused and identical,
                        "detail": tail(second.stderr, 1)})
        shutil.rmtree(out)
    return records


# name: (trial, default count, what "ok" means in the summary)
TRIALS = {
    "SIGKILL": (kill_trials(signal.SIGKILL), 4, "resumed bit-identical"),
    "SIGTERM": (kill_trials(signal.SIGTERM), 4, "resumed bit-identical"),
    "SIGINT": (kill_trials(signal.SIGINT), 4, "resumed bit-identical"),
    "disk-full": (disk_full, 3, "failed loudly and resumed bit-identical"),
    "model-flips": (model_flips, 200, "detected or harmless (identical arrays)"),
    "snapshot-flips": (snapshot_flips, 200, "set aside or harmless (identical arrays)"),
    "snapshot-resumes": (snapshot_resumes, 3, "resumed bit-identical after a flipped snapshot"),
    "baseline-flips": (baseline_flips, 3, "resume refused naming main.npz, or harmless"),
    "two-trainers": (two_trainers, 3, "second refused naming the first, first bit-identical"),
}


def reference(work):
    """Runs the command once without faults: the fingerprint, its folder, its wall time."""
    out = os.path.join(work, "reference")
    start = time.time()
    proc = run(out)
    if proc.returncode != 0:
        raise SystemExit("error: the reference run failed:\n%s" % proc.stderr[-3000:])
    kb = os.path.getsize(os.path.join(out, "snapshot_epoch_0004.npz")) // 1024
    return {"reference": fingerprint(out), "reference_dir": out, "seconds": time.time() - start,
            "snapshot_kb": kb, "work": work}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="folder for faults.json and summary.txt")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault schedule")
    p.add_argument("--trials", nargs="+", choices=sorted(TRIALS), default=list(TRIALS),
                   help="which trials (default: all)")
    p.add_argument("--count", action="append", default=[], metavar="TRIAL=N",
                   help="trials of one kind (default: %s)" % ", ".join(
                       "%s=%d" % (name, t[1]) for name, t in TRIALS.items()))
    args = p.parse_args(argv)
    try:
        args.counts = {k: int(v) for k, v in (c.split("=", 1) for c in args.count)}
    except ValueError:
        p.error("--count expects TRIAL=N, got %s" % args.count)
    if set(args.counts) - set(TRIALS):
        p.error("--count: no trial %s" % ", ".join(sorted(set(args.counts) - set(TRIALS))))
    return args


def write(args, argv, context, results, lines):
    os.makedirs(args.out, exist_ok=True)
    info = {"command": " ".join(["python", os.path.relpath(__file__, ROOT)] + (argv or sys.argv[1:])),
            "train_flags": FLAGS, "seed": args.seed, "host": platform.node(),
            "reference_seconds": round(context["seconds"], 1), "results": results}
    with open(os.path.join(args.out, "faults.json"), "w") as f:
        json.dump(info, f, indent=1, default=str)
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    args = parse_args(argv)
    rng = random.Random(args.seed)
    results, lines = {}, []
    with tempfile.TemporaryDirectory(prefix="faults-") as work:
        context = reference(work)
        for name in args.trials:
            trial, default, meaning = TRIALS[name]
            records = trial(context, args.counts.get(name, default), rng)
            ok = sum(r["ok"] for r in records)
            results[name] = {"ok": ok, "trials": len(records), "meaning": meaning, "records": records}
            outcomes = collections.Counter(r["outcome"] for r in records if "outcome" in r)
            lines.append("%s %d/%d %s%s" % (name, ok, len(records), meaning, "".join(
                " (%s)" % ", ".join("%d %s" % (n, o) for o, n in sorted(outcomes.items()))
                if outcomes else "")))
            print(lines[-1], flush=True)
            if args.out:  # after each kind: what was measured survives a later crash
                write(args, argv, context, results, lines)
    return 0 if all(r["ok"] == r["trials"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
