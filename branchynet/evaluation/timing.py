"""Honest timing of early-exit inference: clocks, per-exit batch-1 times, real runs.

What the original got wrong (docs/original.md, B8-B10): ``time.time()``, no device
synchronisation, no warm-up, one pass, and only the trunk segments timed (no heads, softmax,
entropy or exit decision) while the baseline was timed whole. Here:

* Clocks are ``time.perf_counter``; on a GPU the device is synchronised before every clock read.
  Every measurement is preceded by a warm-up, repeated ``repeats`` times, and reported as the
  median over repeats of the mean time per sample (all repeats are kept too).
* Batch size 1, as the paper: ``time_exits`` runs each sample alone through every trunk segment
  and every head, and times separately segment k (``seg_k``, including the input's copy to the
  device for k = 1) and head k (``head_k``: the head's layers, softmax, entropy and the exit
  decision read back on the host, plus the argmax label: what a user waits for at that exit).
  The decision is made at the thresholds of the configuration being costed, as ``predict``
  makes it: its cost depends on them (see ``time_exits``).
* Two accountings of the runtime of a threshold configuration whose samples reach exit k with
  frequency ``reach_k`` (``costs.predicted_ms``):

  - end to end:  sum_k reach_k * (seg_k + head_k);
  - trunk only (the original's, docs/original.md, B9): sum_k reach_k * seg_k, against a
    baseline that is the whole main network (trunk + last head) timed end to end, as the
    original did.

  Both use the same baseline, the main network timed on its own at batch 1 (``time_calls`` of
  ``predict_main``).
* ``time_calls`` also times real early-exit runs (``BranchyNet.predict`` one sample at a time)
  to set against the predictions, and batched calls for throughput.
* MACs and every formula turning per-part costs into a setting's cost: ``branchynet.evaluation.costs``.
"""
import os
import statistics
import time

import numpy

import chainer

from branchynet import fast
from branchynet.model import exit_rule
from branchynet.progress import ProgressBar


# ------------------------------------------------------------------ clocks and machine facts
def synchronize(xp):
    """Waits for the device of array module ``xp`` (no-op for numpy)."""
    if xp is not numpy:
        xp.cuda.Device().synchronize()


def clock(xp=numpy):
    """``time.perf_counter()`` after synchronising the device of ``xp``."""
    synchronize(xp)
    return time.perf_counter()


def cpu_threads():
    """How many threads the CPU kernels may use, as far as can be told without new dependencies:
    threadpoolctl's report if it is installed, the usual environment variables, numpy's OpenBLAS
    asked directly, the fast kernels' batch-split threads, and the CPUs this process may run on."""
    info = {"cpu_count": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        info["affinity"] = len(os.sched_getaffinity(0))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BRANCHYNET_CPU_THREADS"):
        info[var] = os.environ.get(var)
    info["openblas_threads"] = fast.blas.threads()
    info["fast_kernel_threads"] = fast.threads.get_threads()
    try:
        import threadpoolctl
    except ImportError:
        info["threadpoolctl"] = None
    else:
        info["threadpoolctl"] = [
            {k: pool.get(k) for k in ("user_api", "internal_api", "num_threads", "version")}
            for pool in threadpoolctl.threadpool_info()]
    return info


def gpu_name(device=None):
    """The name of a CuPy device (a ``chainer.backend.Device`` or None for the current one)."""
    import cupy
    index = getattr(getattr(device, "device", None), "id", None)
    if index is None:
        index = cupy.cuda.Device().id
    name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _summary(per_repeat):
    """Median and spread of per-repeat values (ms per sample)."""
    return {"median": statistics.median(per_repeat), "min": min(per_repeat),
            "max": max(per_repeat), "repeats": list(per_repeat)}


# ------------------------------------------------------------------ per-exit timing
def _sample_pass(net, x_host, steps, thresholds, record):
    """One sample through every segment and head (``steps``: ``net.inference_steps``, the ones
    ``predict`` runs), each non-final head deciding at its threshold as ``predict`` does at batch 1;
    ``record(kind, k, seconds)``."""
    segment, head = steps
    xp = net.xp
    num_exits = net.numexits()
    last = num_exits - 1
    start = clock(xp)
    h = net.device.send(x_host)
    for k in range(num_exits):
        h = segment(k, h)
        mid = clock(xp)
        record("segment", k, mid - start)
        logits = exit_rule.host(head(k, h))  # predict's one copy to the host
        if k < last:
            exit_rule.leaves_one(logits, thresholds[k])  # predict's batch-1 decision
        int(logits.argmax(axis=1)[0])
        start = clock(xp)
        record("head", k, start - mid)


def time_exits(net, x, repeats=3, warmup=20, progress=None, desc="per-exit timing",
               thresholds=None):
    """Per-sample (batch 1) time of every trunk segment and every head, in ms.

    Each of ``repeats`` passes runs every sample of ``x`` alone through every segment and head;
    a pass gives the mean ms per sample of each; the result holds, per segment and per head, the
    median over passes (``segment_ms``, ``head_ms``), the detail (``segments``, ``heads``) and the
    thresholds the heads decided with (``thresholds``).

    ``thresholds`` (one per non-final exit, or a scalar; None: ``net.thresholds``, as ``predict``)
    are those of the configuration being costed. The decision's cost depends on them:
    ``exit_rule.leaves_one`` decides in float64 unless the entropy is within about 1e-4 of T, where
    it falls back to the slower float32 rule. At T = 0 that is every confident sample, so head
    times taken at one T hold for another only where few samples lie that close to either.
    """
    num_exits = net.numexits()
    thresholds = exit_rule.as_thresholds(
        getattr(net, "thresholds", None) if thresholds is None else thresholds, num_exits)
    n = len(x)
    if n == 0:
        raise ValueError("no samples to time")
    seg = numpy.zeros((repeats, num_exits))
    head = numpy.zeros((repeats, num_exits))
    run_segment, run_head, context = net.inference_steps(net.device.send(x[:1]))
    steps = (run_segment, run_head)
    with context:
        for i in range(min(warmup, n)):
            _sample_pass(net, x[i:i + 1], steps, thresholds, lambda *a: None)
        with ProgressBar(repeats * n, desc, enabled=progress) as bar:
            for r in range(repeats):
                def record(kind, k, seconds, r=r):
                    (seg if kind == "segment" else head)[r, k] += seconds
                for i in range(n):
                    _sample_pass(net, x[i:i + 1], steps, thresholds, record)
                    bar.update()
    seg *= 1000.0 / n
    head *= 1000.0 / n
    segments = [_summary(seg[:, k].tolist()) for k in range(num_exits)]
    heads = [_summary(head[:, k].tolist()) for k in range(num_exits)]
    return {"samples": n, "repeats": repeats, "warmup": min(warmup, n),
            "thresholds": thresholds.tolist(),
            "segment_ms": [s["median"] for s in segments], "head_ms": [h["median"] for h in heads],
            "segments": segments, "heads": heads}


def time_calls(fn, x, batchsize=1, repeats=3, warmup=20, xp=numpy, progress=None, desc="timing"):
    """Times ``fn(x[s:s + batchsize])`` over all of ``x``, end to end, device synchronised.

    ``warmup`` calls (on the first samples) come first. Returns the median over ``repeats``
    passes of the ms per sample (``ms``), samples per second (``per_second``), the detail, and the
    outputs of the first pass (``outputs``: one entry per call, whatever ``fn`` returned).
    """
    n = len(x)
    if n == 0:
        raise ValueError("no samples to time")
    calls = range(0, n, batchsize)
    for s in list(calls)[:max(1, -(-warmup // batchsize))]:
        fn(x[s:s + batchsize])
    per_repeat, outputs = [], []
    with ProgressBar(repeats * n, desc, enabled=progress) as bar:
        for r in range(repeats):
            start = clock(xp)
            for s in calls:
                out = fn(x[s:s + batchsize])
                if r == 0:
                    outputs.append(out)
                bar.update(min(batchsize, n - s))
            per_repeat.append((clock(xp) - start) * 1000.0 / n)
    summary = _summary(per_repeat)
    return {"samples": n, "batchsize": batchsize, "repeats": repeats, "ms": summary["median"],
            "per_second": 1000.0 / summary["median"] if summary["median"] > 0 else float("inf"),
            "detail": summary, "outputs": outputs}


def time_baseline(net, x, repeats=3, warmup=20, progress=None, desc="baseline"):
    """The main network (whole trunk + last head) at batch 1, timed end to end: ms per sample,
    with its predicted labels (``labels``)."""
    with chainer.using_config("train", False):
        result = time_calls(net.predict_main, x, 1, repeats, warmup, net.xp, progress, desc)
    result["labels"] = numpy.concatenate(result.pop("outputs"))
    return result


def time_early_exit(net, x, thresholds, batchsize=1, repeats=3, warmup=20, progress=None,
                    desc="early exit", measure="entropy"):
    """Real early-exit inference (``net.predict`` with this confidence ``measure``) at
    ``batchsize``, timed end to end; ms per sample, with the predicted labels and exit indices of
    the first pass."""
    result = time_calls(lambda xb: net.predict(xb, thresholds, measure=measure), x, batchsize,
                        repeats, warmup, net.xp, progress, desc)
    outputs = result.pop("outputs")
    result["labels"] = numpy.concatenate([o[0] for o in outputs])
    result["exits"] = numpy.concatenate([o[1] for o in outputs])
    return result
