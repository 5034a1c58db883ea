"""Kernel choices measured on the machine that runs them, once, instead of constants tuned on one
CPU: where two kernels compute the same thing (a convolution's input gradient as a correlation or
as col2im, its weight gradient per sample or per chunk), the first call of a shape times both on
its own data and keeps the faster, in this process and in a file per CPU model, so later runs
(and a resumed training) make the same choice without timing again.

The file is ``BRANCHYNET_CALIBRATION`` (default ``~/.cache/branchynet/kernels.json``); delete it
to measure again. ``BRANCHYNET_CALIBRATE=0`` turns timing off: every choice is then its default
rule (the tests run so, for choices that do not depend on the machine).
"""
import json
import os
import platform
import statistics
import threading
import time

__all__ = ["cpu_model", "enabled", "choose", "choices", "reset"]

_REPEATS = 5
# Another candidate replaces the default only when it is this much faster: on a shared machine
# timings move by several per cent between calls, and a choice that flips with the noise would make
# runs differ for nothing.
_MARGIN = 1.1
_lock = threading.RLock()  # a candidate may make a choice of its own (a gradient runs a forward)
_table = None  # key -> {"choice": name, "ms": {name: median ms}}, this CPU's part of the file
_used = set()  # the keys this process asked for: the choices that ran here


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name with its family, model and stepping numbers where ``cpuinfo`` gives
    them (virtual machines name several generations "Intel(R) Xeon(R) Processor"; the numbers tell
    them apart), else what ``platform`` says."""
    fields = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = (fields.get("model name") or platform.processor() or platform.machine()
            or "unknown CPU")
    numbers = [(label, fields.get(key)) for label, key in
               (("family", "cpu family"), ("model", "model"), ("stepping", "stepping"))]
    if all(value for _, value in numbers):
        name += " (%s)" % ", ".join("%s %s" % kv for kv in numbers)
    return name


def enabled():
    """Whether choices are timed (``BRANCHYNET_CALIBRATE`` is not 0)."""
    return os.environ.get("BRANCHYNET_CALIBRATE", "1") != "0"


def _path():
    return os.environ.get("BRANCHYNET_CALIBRATION") or os.path.join(
        os.path.expanduser("~"), ".cache", "branchynet", "kernels.json")


def _machine():
    import numpy
    return "%s | numpy %s | %d CPUs" % (cpu_model(), numpy.__version__, os.cpu_count() or 1)


def _read_file():
    try:
        with open(_path()) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no file yet, or a damaged one: measure again


def _load():
    global _table
    if _table is None:
        _table = dict(_read_file().get(_machine(), {}))
    return _table


def _save(key, entry):
    """Adds one choice to the file (re-read first: other processes may have added theirs)."""
    path = _path()
    data = _read_file()
    data.setdefault(_machine(), {})[key] = entry
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the choice still holds for this process


def _median_ms(fn):
    fn()  # warm-up: compilation, buffers, caches
    times = []
    for _ in range(_REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def choose(key, candidates, default):
    """The name of the fastest of ``candidates`` ({name: zero-argument callable}) for ``key`` (a
    string naming the shape), timed once per machine, where it beats ``default`` by _MARGIN;
    ``default`` where timing is off."""
    if default not in candidates:
        raise ValueError("default %r is not one of the candidates %s" % (default, sorted(candidates)))
    if not enabled() or len(candidates) == 1:
        return default
    with _lock:
        _used.add(key)
        entry = _load().get(key)
        if (entry is not None and entry.get("choice") in candidates
                and set(candidates) <= set(entry.get("ms", ()))):
            return entry["choice"]  # else timed again: a candidate is new since
        ms = {name: _median_ms(fn) for name, fn in sorted(candidates.items())}
        best = min(ms, key=ms.get)
        choice = best if ms[best] * _MARGIN < ms[default] else default
        entry = {"choice": choice, "ms": {k: round(v, 4) for k, v in ms.items()}}
        _table[key] = entry
        _save(key, entry)
        return entry["choice"]


def choices():
    """{key: choice} of the choices this process ran (for a benchmark's record; the file also holds
    other shapes' choices, made by other runs)."""
    with _lock:
        table = _load()
        return {k: table[k]["choice"] for k in sorted(_used) if k in table}


def reset():
    """Forgets this process's choices (the file is read again on the next choice)."""
    global _table
    with _lock:
        _table = None
        _used.clear()
