"""A network's results as text: its table.md (Table I rows and the measurements behind them) and
the console's summary."""
import os

from branchynet.reporting.rows import missing_baseline_warning, result_rows
from branchynet.reporting.tables import LEGEND, markdown_table, text_table


def _macs_markdown(result):
    macs, ref = result["macs"], result.get("macs_reference_M")
    lines = ["", "## MACs per sample (millions)", "",
             "| | " + " | ".join("exit %d" % (k + 1) for k in range(len(macs["segments"]))) + " |",
             "|---|" + "---|" * len(macs["segments"])]
    for part in ("segments", "heads"):
        lines.append("| %s (ours) | %s |" % (part, " | ".join("%.3f" % (v / 1e6) for v in macs[part])))
        if ref is not None:
            lines.append("| %s (docs/original.md#cost-per-segment) | %s |"
                         % (part, " | ".join("%g" % v for v in ref[part])))
    return lines


def _details_markdown(result):
    lines = _macs_markdown(result)
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
