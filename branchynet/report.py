"""Result writers: a JSON of everything, a CSV of the sweep rows, and Markdown tables in the
layout of the paper's Table I with the authors' numbers (``branchynet.paper``) beside ours.

A *table row* (what ``markdown_table`` and ``text_table`` print) is a dict with keys ``device``
("cpu"/"gpu"), ``network`` (Table I's name), ``row`` (what it is, e.g. "paper T"),
``thresholds`` (list or None), ``accuracy`` (%), ``ms_measured`` (a real batch-1 run, end to
end), ``ms_e2e`` (predicted from per-exit timings, end to end), ``ms_trunk`` (predicted, the
original's trunk-only accounting), ``gain_measured``, ``gain_e2e``, ``gain_trunk`` (baseline ms
/ these), ``exits`` (% per exit) and ``paper`` (the matching Table I entry or None). Missing
values are None and print as "–".
"""
import csv
import datetime
import importlib.util
import json
import math
import os
import platform
import shlex
import sys

import numpy

from branchynet import paper, timing


# ------------------------------------------------------------------ environment
def _version(module_name):
    if importlib.util.find_spec(module_name) is None:
        return None
    try:
        module = __import__(module_name)
    except Exception as err:  # a broken install (e.g. cupy without CUDA) is reported, not raised
        return "unimportable (%s)" % type(err).__name__
    return getattr(module, "__version__", "unknown")


def environment(argv=None, gpu=None):
    """Where and how a result was made: date, command line, hardware, thread settings, versions.

    ``gpu``: a CuPy ``chainer.backend.Device`` whose name to record, or None.
    """
    argv = sys.argv if argv is None else argv
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in argv),
        "cwd": os.getcwd(),
        "hardware": {"cpu": timing.cpu_model(), "machine": platform.machine(),
                     "cpu_threads": timing.cpu_threads(), "gpu": None},
        "platform": platform.platform(),
        "versions": {"python": platform.python_version(), "numpy": numpy.__version__,
                     "chainer": _version("chainer"), "matplotlib": _version("matplotlib"),
                     "cupy": _version("cupy") if (gpu is not None or "cupy" in sys.modules) else None},
    }
    try:
        info["numpy_blas"] = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:
        info["numpy_blas"] = None
    if gpu is not None:
        info["hardware"]["gpu"] = timing.gpu_name(gpu)
    return info


# ------------------------------------------------------------------ files
def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, numpy.ndarray):
        return _plain(value.tolist())
    if isinstance(value, numpy.integer):
        return int(value)
    if isinstance(value, numpy.floating):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    return value


def write_json(path, obj):
    """Writes ``obj`` as indented JSON (numpy values converted, NaN/inf as null)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_plain(obj), f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def _flatten(row):
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            for sub, v in _flatten(value).items():
                flat["%s_%s" % (key, sub)] = v
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value, 1):
                flat["%s_%d" % (key, i)] = v
        else:
            flat[key] = value
    return flat


def write_csv(path, rows):
    """One line per row; list values become numbered columns (``exit_fractions_1`` ...)."""
    flat = [_flatten(_plain(row)) for row in rows]
    columns = []
    for row in flat:
        columns += [c for c in row if c not in columns]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(flat)


def write_text(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# ------------------------------------------------------------------ tables
def _num(value, digits=2):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return "%.*f" % (digits, value)


def _list(values, digits=2):
    if values is None:
        return "–"
    return ", ".join(_num(v, digits) if isinstance(v, float) else "%g" % v for v in values)


def _thresholds(values):
    return "–" if values is None else ", ".join("%g" % v for v in values)


def _gain(value):
    return "–" if value is None else "%.2fx" % value


def paper_entry(network, device, branchy):
    """The Table I entry of a network's baseline (``branchy=False``) or B-net row, with the
    thresholds and exit % for the latter; None if the paper has no such row."""
    family = paper.family_of(network)
    table = paper.TABLE1[family]
    if device not in table:
        return None
    entry = dict(table[device]["branchy" if branchy else "baseline"])
    if branchy:
        entry["thresholds"] = list(table["thresholds"])
        entry["exits"] = list(table["exits"])
    return entry


COLUMNS = ("Dev", "Network", "Row", "T", "Acc %", "Paper acc %", "Δ acc (pp)", "ms measured",
           "ms predicted e2e", "ms trunk-only", "Paper ms", "Gain measured", "Gain trunk-only",
           "Paper gain", "Exit %", "Paper exit %")


def _cells(row):
    p = row.get("paper") or {}
    acc, pacc = row.get("accuracy"), p.get("accuracy")
    delta = None if acc is None or pacc is None else acc - pacc
    return (row["device"].upper(), row["network"], row["row"], _thresholds(row.get("thresholds")),
            _num(acc), _num(pacc), ("%+.2f" % delta) if delta is not None else "–",
            _num(row.get("ms_measured"), 3), _num(row.get("ms_e2e"), 3),
            _num(row.get("ms_trunk"), 3), _num(p.get("ms")), _gain(row.get("gain_measured")),
            _gain(row.get("gain_trunk")), _gain(p.get("gain")), _list(row.get("exits")),
            _list(p.get("exits")) if p.get("exits") is not None else "–")


def markdown_table(rows):
    """Table I layout, ours beside the authors' (see the module docstring for the row keys)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cells(row)) + " |")
    return "\n".join(lines) + "\n"


def text_table(rows):
    """A compact fixed-width version for the terminal."""
    keep = (0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    header = [COLUMNS[i] for i in keep]
    body = [[_cells(row)[i] for i in keep] for row in rows]
    widths = [max(len(r[j]) for r in [header] + body) for j in range(len(header))]
    fmt = "  ".join("%%-%ds" % w for w in widths)
    return "\n".join([fmt % tuple(header), fmt % tuple("-" * w for w in widths)]
                     + [fmt % tuple(r) for r in body]) + "\n"


LEGEND = (
    "Acc %% and Exit %% are on the test set. *ms measured*: real inference one sample at a time "
    "(batch 1), end to end (input copy, every segment and head reached, softmax, entropy, exit "
    "decision, label), median over repeats of the mean per sample. *ms predicted e2e*: "
    "sum_k reach_k (seg_k + head_k) from per-exit timings; *ms trunk-only*: sum_k reach_k seg_k, "
    "the original's accounting (bug B9), which leaves out every head. Gains divide the baseline's "
    "measured time (main network after pretraining, timed end to end, as the original did) by "
    "the row's time. The paper's ms and gains are its own (trunk-only) accounting on its "
    "hardware (%s); compare ratios, not absolute times.\n" % paper.PAPER_HARDWARE)
