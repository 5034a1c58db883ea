"""The README's results block (between ``<!-- results:begin -->`` and ``<!-- results:end -->``),
written from the committed result files so that no number there is typed by hand: Table I as
``branchynet.reporting.table1`` assembles it, compacted, the hardware and thread settings the
files record, and the prose that reads the table, every number in it taken from the same files.
``experiments/readme_results.py`` writes it into README.md or checks it."""
import glob
import json
import os
import re

from branchynet.reporting import paper, table1, tables

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _row(rows, device, network, label):
    for row in rows:
        if row.device == device and row.network == network and row.row == label:
            return row
    return None


def _devices_text(table):
    """Where the time part ran, from the results' environments."""
    cpu, gpu = set(), set()
    for s in table.networks.values():
        if s.found:
            hw = s.environment.hardware
            cpu.add("%s (%d CPUs), %s" % (hw.cpu, hw.cpu_threads["cpu_count"],
                                          table1.threads_text(hw.cpu_threads)))
        if s.gpu_environment is not None:
            gpu.add("%s, no cuDNN, batch 1 %s" % (s.gpu_environment.hardware.gpu,
                                                  s.gpu_settings.batch1_text()))
    return ("CPU rows: %s. GPU rows: %s (results/gpu)."
            % ("; ".join(sorted(cpu)) or "none", "; ".join(sorted(gpu)) or "none"))


def _benchmark_cpus_text(results_root, table):
    """Which speed benchmarks (results/benchmarks/*.json) ran on another CPU than Table I's CPU
    rows: their times and ratios are not comparable with the rows'."""
    row_cpus = {s.environment.hardware.cpu for s in table.networks.values() if s.found}
    other = {}
    for path in sorted(glob.glob(os.path.join(results_root, "benchmarks", "*.json"))):
        with open(path) as f:
            cpu = json.load(f).get("environment", {}).get("hardware", {}).get("cpu")
        if cpu and cpu not in row_cpus:
            other.setdefault(cpu, []).append(os.path.splitext(os.path.basename(path))[0])
    if not other:
        return ""
    return (" Speed benchmarks in results/benchmarks/ run on another CPU than these rows: %s."
            % "; ".join("%s (%s)" % (cpu, ", ".join(names)) for cpu, names in sorted(other.items())))


def _prose(table):
    """The paragraph that reads the table, its numbers from the same rows."""
    acc, time = table.accuracy_rows, table.time_rows
    parts = []
    for network, s in table.networks.items():
        if s.found and s.schedule["trained"] and not s.schedule["matches"]:
            name = paper.DISPLAY_NAMES[s.family][1] if s.family else network
            parts.append("**%s (%s) ran %s only** (the paper: %s), so its accuracies and exit "
                         "shares say nothing about the paper's (its per-exit costs do carry over)."
                         % (name, network, s.schedule["trained"], s.schedule["paper"]))
    lenet = _row(acc, "cpu", "B-LeNet", "paper T")
    base = _row(acc, "cpu", "LeNet", "baseline (main.npz)")
    if lenet and base and (lenet.runs or 1) > 1:
        parts.append("B-LeNet at the paper's T over %d runs: %.2f ± %.2f %% against its baseline's "
                     "%.2f ± %.2f %% (paper: %.2f against %.2f), with %.1f ± %.1f %% of the "
                     "digits leaving at exit 1; each run is in "
                     "[results/table1_runs.md](results/table1_runs.md)."
                     % (lenet.runs, lenet.accuracy, lenet.accuracy_sd, base.accuracy,
                        base.accuracy_sd, lenet.paper.accuracy, base.paper.accuracy,
                        lenet.exits[0], lenet.exits_sd[0]))
    parts += [n for n in table.notes if "exit mix" in n]
    slower = ["%s on the %s %.2fx" % (r.network, r.device.upper(), r.timed.gain_measured)
              for r in time if r.row == "paper T" and r.timed and r.timed.gain_measured < 1]
    if slower:
        parts.append("Measured gains are far below trunk-only ones because heads cost time; at the "
                     "paper's T some B-nets are slower end to end than their baselines (%s)."
                     % ", ".join(slower))
    return " ".join(parts)


COMPACT_COLUMNS = ("Network", "Row", "T", "Runs", "Acc %", "Paper acc %", "Exit %",
                   "Paper exit %", "CPU ms (timed)", "CPU gain", "Paper gain (trunk-only)")
COMPACT_ROWS = ("baseline (main.npz)", "paper T")


def compact_table(table):
    """The README's one table: each network's baseline and B-net at the paper's T, accuracy and
    exits on all test images beside the paper's, and the CPU's measured batch-1 time and gain."""
    cells = []
    for row in table.accuracy_rows:
        if row.row not in COMPACT_ROWS:
            continue
        timed = _row(table.time_rows, "cpu", row.network, row.row)
        paper_row = row.paper or tables.EMPTY
        cells.append((row.network, row.row, tables._t_cell(row), tables.runs_cell(row),
                      tables._mean_sd(row.accuracy, row.accuracy_sd),
                      tables._num(paper_row.accuracy), tables._exits_cell(row),
                      tables._list(paper_row.exits),
                      tables._num(timed.timed.ms_measured if timed and timed.timed else None, 3),
                      tables._gain(timed.gain_measured if timed else None),
                      tables._gain(paper_row.gain)))
    return tables.markdown(COMPACT_COLUMNS, cells)


def block(results_root):
    """The README's results block (the text between the markers, markers excluded)."""
    table = table1.assemble(results_root, list(table1.NETWORKS))
    lines = ["", "*Written by `python experiments/readme_results.py` from the committed "
             "results/\\*/results.json; the full two-part Table I (time part per device, GPU rows, "
             "predicted and trunk-only times, the notebooks' numbers) is "
             "[results/table1.md](results/table1.md).* " + _devices_text(table)
             + _benchmark_cpus_text(results_root, table), "",
             compact_table(table).rstrip("\n"), "",
             "Acc % and Exit % on all test images (mean ± sample standard deviation over comparable "
             "runs); CPU ms: a real batch-1 run end to end on the first test images, median of "
             "repeats; gains against the baseline's measured time. The paper's gains count the "
             "trunk only (B9). " + _prose(table), ""]
    return "\n".join(lines)


def replace_block(text, new_block):
    """``text`` with the block between the markers replaced; ValueError if a marker is missing."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError("no %s ... %s block" % (BEGIN, END))
    return pattern.sub(lambda _: BEGIN + new_block + END, text, count=1)


def current_block(text):
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end]
