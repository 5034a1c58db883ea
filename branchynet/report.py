"""Result writers: a JSON of everything, a CSV of the sweep rows, and Markdown tables in the
layout of the paper's Table I with the authors' numbers (``branchynet.paper``) beside ours; for one
network's measurements (``branchynet.evaluation``), its Table I rows (``table_rows``), its results
folder with figures (``write_results``) and the console's summary (``summary``).

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

from branchynet import paper, plots, timing


# ------------------------------------------------------------------ environment
def _version(module_name):
    if importlib.util.find_spec(module_name) is None:
        return None
    try:
        module = __import__(module_name)
    except Exception as err:  # a broken install (e.g. cupy without CUDA) is reported, not raised
        return "unimportable (%s)" % type(err).__name__
    return getattr(module, "__version__", "unknown")


def versions(gpu=None):
    """Python's and the libraries' versions (CuPy's where a GPU is used or CuPy is imported)."""
    return {"python": platform.python_version(), "numpy": numpy.__version__,
            "chainer": _version("chainer"), "matplotlib": _version("matplotlib"),
            "cupy": _version("cupy") if (gpu is not None or "cupy" in sys.modules) else None}


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
        "versions": versions(gpu),
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


def paper_entry(family, device, branchy):
    """The Table I entry of a family's baseline (``branchy=False``) or B-net row, with the
    thresholds and exit % for the latter; None if the paper has no such row."""
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


MISSING_BASELINE_ROW = "baseline: MISSING (no main.npz)"
FINAL_AS_BASELINE_ROW = "final exit (branchy.npz), gains' reference"


def missing_baseline_warning(run_dir):
    return ("warning: %s has no main.npz (the main network saved when pretraining ended): there is "
            "no baseline to set beside the paper's, its row is marked MISSING, and gains and the knee "
            "are against branchy.npz's final exit instead" % run_dir)


def table_rows(family, dev, measured, acc, test_rows, paper_row, selection):
    """One device's Table I rows of a network (see the module docstring): the baseline, the final
    exit, and the B-net at the paper's T and at the knees chosen on the test and validation sets.

    ``measured``: the device's ``branchynet.evaluation.measure_costs`` and ``measure_runs``;
    ``acc``: the accuracies; ``selection``: the device's frontier/knee choices."""
    names = paper.DISPLAY_NAMES[family]
    base = measured["baseline"]
    baseline_ms = measured["baseline_ms"]
    check_ms = {tuple(c["thresholds"]): c["ms_measured"] for c in measured["checks"]}
    rows = []
    if "main" in base:
        rows.append({"device": dev, "network": names[0], "row": "baseline (main.npz)",
                     "accuracy": 100 * acc["main"], "ms_measured": base["main"]["ms"],
                     "paper": paper_entry(family, dev, False)})
    else:  # kept, and marked, so that the missing baseline is seen, not silently dropped
        rows.append({"device": dev, "network": names[0], "row": MISSING_BASELINE_ROW,
                     "accuracy": None, "ms_measured": None, "paper": paper_entry(family, dev, False)})
    rows.append({"device": dev, "network": names[0],
                 "row": "final exit (branchy.npz)" if "main" in base else FINAL_AS_BASELINE_ROW,
                 "accuracy": 100 * acc["branchy_final"], "ms_measured": base["branchy_final"]["ms"],
                 "gain_measured": baseline_ms / base["branchy_final"]["ms"],
                 "paper": None})  # never beside the paper's baseline: it is not that network
    picks = [("paper T", paper_row), ("knee (test)", test_rows[selection["test"]["knee"]])]
    if selection.get("val") is not None:
        picks.append(("knee (val)", selection["val"]["test_row"]))
    for label, row in picks:
        ms = check_ms.get(tuple(row["thresholds"]))
        rows.append({"device": dev, "network": names[1], "row": label,
                     "thresholds": row["thresholds"], "accuracy": 100 * row["accuracy"],
                     "ms_measured": ms, "ms_e2e": row["%s_ms_e2e" % dev],
                     "ms_trunk": row["%s_ms_trunk" % dev],
                     "gain_measured": baseline_ms / ms if ms else None,
                     "gain_e2e": row["%s_gain_e2e" % dev], "gain_trunk": row["%s_gain_trunk" % dev],
                     "exits": [100 * f for f in row["exit_fractions"]],
                     "paper": paper_entry(family, dev, True)})
    return rows


LEGEND = (
    "Acc %% and Exit %% are on the test set. *ms measured*: real inference one sample at a time "
    "(batch 1), end to end (input copy, every segment and head reached, softmax, entropy, exit "
    "decision, label), median over repeats of the mean per sample. *ms predicted e2e*: "
    "sum_k reach_k (seg_k + head_k) from per-exit timings; *ms trunk-only*: sum_k reach_k seg_k, "
    "the original's accounting (docs/original.md, B9), which leaves out every head. Gains divide the baseline's "
    "measured time (main network after pretraining, timed end to end, as the original did) by "
    "the row's time. The paper's ms and gains are its own (trunk-only) accounting on its "
    "hardware (%s); compare ratios, not absolute times.\n" % paper.PAPER_HARDWARE)


# ------------------------------------------------------------------ a network's results
ACCOUNTINGS = (("e2e", "end to end"), ("trunk", "trunk only (original's accounting)"))


def _details_markdown(result):
    lines = []
    macs = result["macs"]
    ref = paper.MACS_M[result["family"]]
    lines += ["", "## MACs per sample (millions)", "",
              "| | " + " | ".join("exit %d" % (k + 1) for k in range(len(macs["segments"]))) + " |",
              "|---|" + "---|" * len(macs["segments"])]
    for part in ("segments", "heads"):
        lines.append("| %s (ours) | %s |" % (part, " | ".join("%.3f" % (v / 1e6) for v in macs[part])))
        lines.append("| %s (docs/original.md#cost-per-segment) | %s |" % (part, " | ".join("%g" % v for v in ref[part])))
    for dev, m in result["devices"].items():
        lines += ["", "## %s: per-exit time at batch 1 (ms per sample, median of %d)"
                  % (dev.upper(), m["exits"]["repeats"]), "",
                  "| exit | segment | head (incl. softmax, entropy, decision) |", "|---|---|---|"]
        for k, (s, h) in enumerate(zip(m["exits"]["segment_ms"], m["exits"]["head_ms"])):
            lines.append("| %d | %.4f | %.4f |" % (k + 1, s, h))
        lines += ["", "## %s: real early-exit runs at batch 1 (first %d test samples)"
                  % (dev.upper(), m["exits"]["samples"]), "",
                  "| config | T | ms measured | ms predicted e2e | ms trunk-only | measured/predicted "
                  "| acc real | acc analytic | exits real | exits analytic | agree |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in m["checks"]:
            lines.append("| %s | %s | %.4f | %.4f | %.4f | %.3f | %.4f | %.4f | %s | %s | %s |" % (
                c["name"], ", ".join("%g" % v for v in c["thresholds"]), c["ms_measured"],
                c["ms_predicted_e2e"], c["ms_predicted_trunk"], c["measured_over_predicted"] or 0,
                c["accuracy_real"], c["accuracy_analytic"], c["exit_counts_real"],
                c["exit_counts_analytic"], c["agree"]))
        b = m["batched_baseline"]
        lines += ["", "## %s: batched runs (%d samples, batch %d; baseline %.1f samples/s)"
                  % (dev.upper(), b["samples"], b["batchsize"], b["per_second"]), "",
                  "| config | T | samples/s | speed-up | MAC bound | agree |", "|---|---|---|---|---|---|"]
        for e in m["batched"]:
            lines.append("| %s | %s | %.1f | %.2fx | %.2fx | %s |" % (
                e["name"], ", ".join("%g" % v for v in e["thresholds"]), e["per_second"],
                e["speedup"], e["mac_bound"] or 0, e["agree"]))
    return "\n".join(lines) + "\n"


def _threads_text(threads):
    parts = ["%d CPUs" % threads["cpu_count"]]
    if threads.get("affinity") is not None:
        parts.append("%d usable" % threads["affinity"])
    parts += ["%s=%s" % (k, threads.get(k) or "unset")
              for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")]
    for key, what in (("openblas_threads", "OpenBLAS threads"),
                      ("fast_kernel_threads", "fast-kernel threads")):
        if threads.get(key) is not None:
            parts.append("%s %s" % (threads[key], what))
    for pool in threads.get("threadpoolctl") or []:
        parts.append("%s %s threads" % (pool.get("internal_api"), pool.get("num_threads")))
    return ", ".join(parts)


def write_results(result, out, test_outputs, log, echo=print):
    """Writes a network's results into the folder ``out``: results.json, sweep.csv, table.md and
    the figures (trade-offs, training curves from the run's ``log``, entropies and exit fractions
    of ``test_outputs``, a ``sweep.ExitOutputs``)."""
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "results.json"), result)
    write_csv(os.path.join(out, "sweep.csv"), result["rows"])
    head = ["# %s on %s" % (result["network"], result["dataset"]), "",
            "Weights: `%s`. %d test samples, %d validation samples; timing on %d test samples, "
            "%d repeats. CPU: %s. %s" % (
                result["settings"]["run_dir"], result["settings"]["test_samples"],
                result["settings"]["val_samples"], result["settings"]["timing_samples"],
                result["settings"]["repeats"], result["environment"]["hardware"]["cpu"],
                ("GPU: %s." % result["environment"]["hardware"]["gpu"])
                if result["environment"]["hardware"]["gpu"] else ""), "",
            "CPU threads: %s." % _threads_text(result["environment"]["hardware"]["cpu_threads"]),
            "", LEGEND]
    text = "\n".join(head) + "\n" + markdown_table(result["table"]) + _details_markdown(result)
    write_text(os.path.join(out, "table.md"), text)

    rows = result["rows"]
    figures = []
    for dev, sel in result["selection"].items():
        m = result["devices"][dev]
        for key, label in ACCOUNTINGS:
            choice = sel["test"] if key == "e2e" else sel["test_trunk"]
            time_key = "%s_ms_%s" % (dev, key)
            pr = result["paper_row"]
            figures.append(plots.tradeoff(
                rows, time_key, choice["frontier"], choice["knee"], m["baseline_ms"],
                result["accuracy"]["main"] if result["accuracy"]["main"] is not None
                else result["accuracy"]["branchy_final"],
                os.path.join(out, "tradeoff_%s_%s.png" % (dev, key)),
                title="%s, %s, %s" % (result["network"], dev.upper(), label),
                xlabel="Runtime per sample, batch 1 (ms)",
                marks=[("paper T", pr[time_key], pr["accuracy"])]))
    figures.append(plots.training_curves(log, os.path.join(out, "training_curves.png"),
                                         title=result["network"]))
    figures.append(plots.entropy_distributions(test_outputs.entropies,
                                               os.path.join(out, "entropy.png"),
                                               title="%s: entropy per exit (test)" % result["network"]))
    if test_outputs.num_exits > 1:
        figures.append(plots.exit_fractions(test_outputs.entropies,
                                            paper.THRESHOLD_LISTS[result["family"]],
                                            os.path.join(out, "exit_fractions.png"),
                                            title="%s: exits against T (test)" % result["network"]))
    echo("results in %s: results.json, sweep.csv, table.md, %s"
         % (out, ", ".join(os.path.basename(f) for f in figures)))


def summary(result, out):
    """The console's account of a network's results written to ``out``: Table I rows and a note
    if a real run disagreed with the analytic sweep."""
    hardware = result["environment"]["hardware"]
    lines = ["", "Table I rows, %s: ours (CPU %s%s; batch 1, ms per sample) beside the paper's "
             "(details in %s)" % (result["network"], hardware["cpu"],
                                  ", GPU %s" % hardware["gpu"] if hardware["gpu"] else "",
                                  os.path.join(out, "table.md")),
             text_table(result["table"])]
    if any(not c["agree"] for m in result["devices"].values() for c in m["checks"] + m["batched"]):
        lines.append("note: some real runs differ from the analytic sweep (see table.md)")
    if result["accuracy"]["main"] is None:
        lines.append(missing_baseline_warning(result["settings"].get("run_dir", "the run folder")))
    return "\n".join(lines)
