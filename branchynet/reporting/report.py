"""Result writers: a JSON of everything, a CSV of the sweep rows, and Markdown tables in the
layout of the paper's Table I with the authors' numbers (``branchynet.reporting.paper``) beside ours; for one
network's measurements (``branchynet.evaluation.table1``), its Table I rows (``table_rows``), its results
folder with figures (``write_results``) and the console's summary (``summary``).

A *table row* (what ``accuracy_table``, ``time_table``, ``markdown_table`` and ``text_table``
print) is a dict with keys ``device`` ("cpu"/"gpu"), ``network`` (Table I's name), ``row`` (what it
is, e.g. "paper T"), ``thresholds`` (list or None); on the whole test set (``test_samples``
images): ``accuracy`` (%), ``exits`` (% per exit), ``ms_e2e`` and ``ms_trunk`` (predicted from
per-exit timings, end to end and in the original's trunk-only accounting) and their gains; on the
timed images only, ``timed`` (``samples``, ``accuracy``, ``exits``, ``ms_measured``, a real batch-1
run end to end, ``ms_e2e``, ``ms_trunk``, ``gain_measured``, ``gain_e2e``, ``gain_trunk``), with
``ms_measured`` and ``gain_measured`` repeated at the top level; ``paper`` and ``notebook`` (the
matching entries of the paper's Table I and of the authors' notebooks, or None). Rows of several
runs (``combine_runs``) add ``runs``, ``accuracy_sd``, ``exits_sd`` and ``thresholds_per_run``.
Missing values are None and print as "–".
"""
import csv
import datetime
import importlib.util
import json
import math
import os
import platform
import shlex
import statistics
import sys

import numpy

from branchynet.evaluation import timing
from branchynet.reporting import figures, paper


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


def _entry(source, family, device, branchy):
    table = source.get(family)
    if table is None or device not in table:
        return None
    entry = dict(table[device]["branchy" if branchy else "baseline"])
    if branchy:
        entry["thresholds"] = list(table["thresholds"])
        entry["exits"] = list(table["exits"])
    return entry


def paper_entry(family, device, branchy):
    """The paper's Table I entry of a family's baseline (``branchy=False``) or B-net row, with the
    thresholds and exit % for the latter; None if the paper has no such row."""
    return _entry(paper.TABLE1, family, device, branchy)


def notebook_entry(family, device, branchy):
    """The same from the authors' notebooks' saved outputs (``paper.NOTEBOOK``): CPU only, no
    ResNet; None where they have no such entry."""
    return _entry(paper.NOTEBOOK, family, device, branchy)


MISSING_BASELINE_ROW = "baseline: MISSING (no main.npz)"
FINAL_AS_BASELINE_ROW = "final exit (branchy.npz), gains' reference"


def missing_baseline_warning(run_dir):
    return ("warning: %s has no main.npz (the main network saved when pretraining ended): there is "
            "no baseline to set beside the paper's, its row is marked MISSING, and gains and the knee "
            "are against branchy.npz's final exit instead" % run_dir)


def table_rows(family, dev, measured, acc, test_rows, paper_row, selection):
    """One device's Table I rows of a network (see the module docstring): the baseline, the final
    exit, and the B-net at the paper's T and at the knees chosen on the test and validation sets.

    ``measured``: the device's ``branchynet.evaluation.table1.measure_costs`` and ``measure_runs``;
    ``acc``: the accuracies; ``selection``: the device's frontier/knee choices. ``accuracy`` and
    ``exits`` are on the whole test set (``test_samples``); ``timed`` holds what was measured on the
    timed images (the first ``timed["samples"]``): their accuracy and exit %, the measured ms and
    the ms predicted for them from the per-exit costs, and the gains."""
    names = paper.DISPLAY_NAMES[family]
    base = measured["baseline"]
    baseline_ms = measured["baseline_ms"]
    n_test = int(sum(paper_row["exit_counts"]))
    n_timed = measured["exits"]["samples"]
    checks = {tuple(c["thresholds"]): c for c in measured["checks"]}

    def baseline_timed(b):
        return {"samples": n_timed, "accuracy": 100 * b["accuracy_timed_samples"], "exits": None,
                "ms_measured": b["ms"], "gain_measured": baseline_ms / b["ms"]}

    rows = []
    if "main" in base:
        rows.append({"device": dev, "network": names[0], "row": "baseline (main.npz)",
                     "test_samples": n_test, "accuracy": 100 * acc["main"],
                     "ms_measured": base["main"]["ms"], "timed": dict(baseline_timed(base["main"]),
                                                                      gain_measured=None),
                     "paper": paper_entry(family, dev, False),
                     "notebook": notebook_entry(family, dev, False)})
    else:  # kept, and marked, so that the missing baseline is seen, not silently dropped
        rows.append({"device": dev, "network": names[0], "row": MISSING_BASELINE_ROW,
                     "test_samples": n_test, "accuracy": None, "ms_measured": None,
                     "paper": paper_entry(family, dev, False),
                     "notebook": notebook_entry(family, dev, False)})
    rows.append({"device": dev, "network": names[0],
                 "row": "final exit (branchy.npz)" if "main" in base else FINAL_AS_BASELINE_ROW,
                 "test_samples": n_test, "accuracy": 100 * acc["branchy_final"],
                 "ms_measured": base["branchy_final"]["ms"],
                 "gain_measured": baseline_ms / base["branchy_final"]["ms"],
                 "timed": baseline_timed(base["branchy_final"]),
                 "paper": None, "notebook": None})  # never beside the paper's baseline
    picks = [("paper T", paper_row), ("knee (test)", test_rows[selection["test"]["knee"]])]
    if selection.get("val") is not None:
        picks.append(("knee (val)", selection["val"]["test_row"]))
    for label, row in picks:
        check = checks.get(tuple(row["thresholds"]))
        timed = None
        if check is not None:
            e2e, trunk = check["ms_predicted_e2e"], check["ms_predicted_trunk"]
            timed = {"samples": check["samples"], "accuracy": 100 * check["accuracy_real"],
                     "exits": [100.0 * c / check["samples"] for c in check["exit_counts_real"]],
                     "ms_measured": check["ms_measured"], "ms_e2e": e2e, "ms_trunk": trunk,
                     "gain_measured": baseline_ms / check["ms_measured"],
                     "gain_e2e": baseline_ms / e2e if e2e > 0 else None,
                     "gain_trunk": baseline_ms / trunk if trunk > 0 else None}
        ms = None if check is None else check["ms_measured"]
        rows.append({"device": dev, "network": names[1], "row": label,
                     "thresholds": row["thresholds"], "test_samples": n_test,
                     "accuracy": 100 * row["accuracy"],
                     "ms_measured": ms, "ms_e2e": row["%s_ms_e2e" % dev],
                     "ms_trunk": row["%s_ms_trunk" % dev],
                     "gain_measured": baseline_ms / ms if ms else None,
                     "gain_e2e": row["%s_gain_e2e" % dev], "gain_trunk": row["%s_gain_trunk" % dev],
                     "exits": [100 * f for f in row["exit_fractions"]], "timed": timed,
                     "paper": paper_entry(family, dev, True),
                     "notebook": notebook_entry(family, dev, True)})
    return rows


def result_rows(result, device):
    """A results.json's Table I rows of one device (``table_rows`` rebuilt from what the file
    holds, so that results written by older versions render the same way); [] if not measured."""
    if device not in result["devices"]:
        return []
    return table_rows(result["family"], device, result["devices"][device], result["accuracy"],
                      result["rows"], result["paper_row"], result["selection"][device])


# ------------------------------------------------------------------ several runs
def combine_runs(runs):
    """Accuracy and exit shares of several runs of one network (lists of ``table_rows`` rows of
    one device, the same rows in the same order, first the run whose timings are shown): one row
    per row with ``accuracy`` and ``exits`` the means, ``accuracy_sd`` and ``exits_sd`` the sample
    standard deviations (None for one run), ``runs`` the number of runs and ``thresholds_per_run``
    each run's thresholds (the knees differ between runs); the rest is the first run's."""
    first = runs[0]
    for rows in runs[1:]:
        if [r["row"] for r in rows] != [r["row"] for r in first]:
            raise ValueError("runs with different rows: %s against %s"
                             % ([r["row"] for r in rows], [r["row"] for r in first]))
    combined = []
    for i, row in enumerate(first):
        same = [rows[i] for rows in runs]
        accs = [r["accuracy"] for r in same]
        out = dict(row, runs=len(same), accuracy=statistics.mean(accs),
                   accuracy_sd=statistics.stdev(accs) if len(same) > 1 else None,
                   thresholds_per_run=[r.get("thresholds") for r in same])
        if row.get("exits") is not None:
            shares = list(zip(*[r["exits"] for r in same]))
            out["exits"] = [statistics.mean(s) for s in shares]
            out["exits_sd"] = [statistics.stdev(s) for s in shares] if len(same) > 1 else None
        combined.append(out)
    return combined


# ------------------------------------------------------------------ tables
ACCURACY_COLUMNS = ("Network", "Row", "T", "Runs", "Acc %", "Paper acc %", "Notebook acc %",
                    "Δ acc vs paper (pp)", "Exit %", "Paper exit %", "Notebook exit %")
TIME_COLUMNS = ("Dev", "Network", "Row", "T", "Timed images", "Acc % (timed)", "Exit % (timed)",
                "ms measured", "ms predicted e2e", "ms trunk-only", "Gain measured",
                "Gain trunk-only", "Paper ms", "Paper gain", "Notebook ms", "Notebook gain")


def _mean_sd(mean, sd, digits=2):
    if mean is None:
        return "–"
    return _num(mean, digits) if sd is None else "%s ± %s" % (_num(mean, digits), _num(sd, digits))


def _exits_cell(row):
    exits = row.get("exits")
    if exits is None:
        return "–"
    sds = row.get("exits_sd") or [None] * len(exits)
    return ", ".join(_mean_sd(m, s) for m, s in zip(exits, sds))


def _t_cell(row):
    per_run = row.get("thresholds_per_run")
    if per_run and len(per_run) > 1 and row.get("thresholds") is not None and \
            any(t != per_run[0] for t in per_run):
        return " / ".join("(%s)" % _thresholds(t) if len(t) > 1 else _thresholds(t) for t in per_run)
    return _thresholds(row.get("thresholds"))


def _accuracy_cells(row):
    p, nb = row.get("paper") or {}, row.get("notebook") or {}
    acc, pacc = row.get("accuracy"), p.get("accuracy")
    delta = None if acc is None or pacc is None else acc - pacc
    return (row["network"], row["row"], _t_cell(row), str(row.get("runs", 1) if acc is not None else "–"),
            _mean_sd(acc, row.get("accuracy_sd")), _num(pacc), _num(nb.get("accuracy")),
            ("%+.2f" % delta) if delta is not None else "–", _exits_cell(row),
            _list(p.get("exits")), _list(nb.get("exits")))


def _time_cells(row):
    p, nb, timed = row.get("paper") or {}, row.get("notebook") or {}, row.get("timed") or {}
    samples = timed.get("samples")
    return (row["device"].upper(), row["network"], row["row"], _thresholds(row.get("thresholds")),
            "first %d" % samples if samples else "–", _num(timed.get("accuracy")),
            _list(timed.get("exits")), _num(timed.get("ms_measured"), 3),
            _num(timed.get("ms_e2e"), 3), _num(timed.get("ms_trunk"), 3),
            _gain(timed.get("gain_measured")), _gain(timed.get("gain_trunk")),
            _num(p.get("ms")), _gain(p.get("gain")), _num(nb.get("ms")), _gain(nb.get("gain")))


def _markdown(columns, cells):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def accuracy_table(rows):
    """Table I's accuracy part, Markdown: accuracy and exit % on the whole test set, a mean ± sample
    standard deviation where rows come from ``combine_runs`` of several runs, beside the paper's
    and the notebooks' numbers."""
    return _markdown(ACCURACY_COLUMNS, [_accuracy_cells(r) for r in rows])


def time_table(rows):
    """Table I's time part, Markdown: per device, everything on the timed images only (accuracy,
    exit %, measured and predicted ms, gains), beside the paper's and the notebooks' times."""
    return _markdown(TIME_COLUMNS, [_time_cells(r) for r in rows])


def markdown_table(rows):
    """Both parts of Table I for one run's rows (``table_rows``; the accuracy part from the first
    device's rows)."""
    first = [r for r in rows if r["device"] == rows[0]["device"]] if rows else []
    return ("Accuracy and exits on all %s test images:\n\n" % (first[0].get("test_samples") if first else "–")
            + accuracy_table(first) + "\nBatch-1 time, and accuracy and exits on the timed images "
            "only:\n\n" + time_table(rows))


def _text(columns, cells):
    widths = [max(len(r[j]) for r in [columns] + cells) for j in range(len(columns))]
    fmt = "  ".join("%%-%ds" % w for w in widths)
    return "\n".join([fmt % tuple(columns), fmt % tuple("-" * w for w in widths)]
                     + [fmt % tuple(r) for r in cells]) + "\n"


def text_table(rows):
    """A compact fixed-width version of ``markdown_table`` for the terminal."""
    first = [r for r in rows if r["device"] == rows[0]["device"]] if rows else []
    return (_text(ACCURACY_COLUMNS, [_accuracy_cells(r) for r in first]) + "\n"
            + _text(TIME_COLUMNS, [_time_cells(r) for r in rows]))


LEGEND = (
    "Two sample sets, each column on one. **Accuracy part**: Acc %% and Exit %% on the whole test "
    "set; where several comparable runs of a network exist, their mean ± sample standard deviation "
    "(Runs: how many; each run's knee T is its own, listed per run). **Time part**: one run, one "
    "device; every column on the *timed images* only (the first N test images, N in the column "
    "Timed images): their accuracy and exit %%, *ms measured*, a real inference one sample at a "
    "time (batch 1), end to end (input copy, every segment and head reached, softmax, entropy, exit "
    "decision, label), median over repeats of the mean per sample; *ms predicted e2e*: "
    "sum_k reach_k (seg_k + head_k) from per-exit timings and those images' exits; *ms "
    "trunk-only*: sum_k reach_k seg_k, the original's accounting (docs/original.md, B9), which "
    "leaves out every head. Gains divide the baseline's measured time (main network after "
    "pretraining, timed end to end on the same images, as the original did) by the row's time. "
    "*Paper*: the paper's Table I; *Notebook*: the outputs saved in the authors' notebooks "
    "(another training run, CPU only, unknown hardware, at the paper's T). The authors' ms and "
    "gains are their own trunk-only accounting on their hardware (paper: %s); compare ratios, not "
    "absolute times.\n" % paper.PAPER_HARDWARE)

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


def table_markdown(result):
    """A network's table.md: its Table I rows (rebuilt from the result, ``result_rows``) and the
    measurements behind them."""
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
    rows = [row for dev in result["devices"] for row in result_rows(result, dev)]
    return "\n".join(head) + "\n" + markdown_table(rows) + _details_markdown(result)


def write_results(result, out, test_outputs, log, echo=print):
    """Writes a network's results into the folder ``out``: results.json, sweep.csv, table.md and
    the figures (trade-offs, training curves from the run's ``log``, entropies and exit fractions
    of ``test_outputs``, an ``outputs.ExitOutputs``)."""
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "results.json"), result)
    write_csv(os.path.join(out, "sweep.csv"), result["rows"])
    text = table_markdown(result)
    write_text(os.path.join(out, "table.md"), text)

    rows = result["rows"]
    written = []
    for dev, sel in result["selection"].items():
        m = result["devices"][dev]
        for key, label in ACCOUNTINGS:
            choice = sel["test"] if key == "e2e" else sel["test_trunk"]
            time_key = "%s_ms_%s" % (dev, key)
            pr = result["paper_row"]
            written.append(figures.tradeoff(
                rows, time_key, choice["frontier"], choice["knee"], m["baseline_ms"],
                result["accuracy"]["main"] if result["accuracy"]["main"] is not None
                else result["accuracy"]["branchy_final"],
                os.path.join(out, "tradeoff_%s_%s.png" % (dev, key)),
                title="%s, %s, %s" % (result["network"], dev.upper(), label),
                xlabel="Runtime per sample, batch 1 (ms)",
                marks=[("paper T", pr[time_key], pr["accuracy"])]))
    written.append(figures.training_curves(log, os.path.join(out, "training_curves.png"),
                                         title=result["network"]))
    written.append(figures.entropy_distributions(test_outputs.entropies,
                                               os.path.join(out, "entropy.png"),
                                               title="%s: entropy per exit (test)" % result["network"]))
    if test_outputs.num_exits > 1:
        written.append(figures.exit_fractions(test_outputs.entropies,
                                            paper.THRESHOLD_LISTS[result["family"]],
                                            os.path.join(out, "exit_fractions.png"),
                                            title="%s: exits against T (test)" % result["network"]))
    echo("results in %s: results.json, sweep.csv, table.md, %s"
         % (out, ", ".join(os.path.basename(f) for f in written)))


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
