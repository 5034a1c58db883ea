"""Table I rows of a network's measurements, beside the authors' numbers (``paper``).

A *table row* (what ``branchynet.reporting.tables`` prints) is a dict with keys ``device``
("cpu"/"gpu"), ``network`` (Table I's name), ``row`` (what it is, e.g. "paper T"), ``thresholds``
(list or None); on the whole test set (``test_samples`` images): ``accuracy`` (%), ``exits`` (% per
exit), ``ms_e2e`` and ``ms_trunk`` (predicted from per-exit timings, end to end and in the
original's trunk-only accounting) and their gains; on the timed images only, ``timed``
(``samples``, ``accuracy``, ``exits``, ``ms_measured``, a real batch-1 run end to end, ``ms_e2e``,
``ms_trunk``, ``gain_measured``, ``gain_e2e``, ``gain_trunk``), with ``ms_measured`` and
``gain_measured`` repeated at the top level; ``paper`` and ``notebook`` (the matching entries of
the paper's Table I and of the authors' notebooks, or None). Rows of several runs
(``combine_runs``) add ``runs``, ``accuracy_sd``, ``exits_sd`` and ``thresholds_per_run``.
Missing values are None.
"""
import statistics

from branchynet.reporting import paper


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


def display_names(family, network):
    """(baseline's, B-net's) names in the table: the paper's for its families, else from the
    network's name or import path."""
    if family is not None:
        return paper.DISPLAY_NAMES[family]
    return ("%s main network" % network, network)


def _baseline_rows(names, family, dev, measured, acc, n_test):
    """The baseline (main.npz, or a marked row where it is missing) and the final exit."""
    base, baseline_ms = measured["baseline"], measured["baseline_ms"]

    def timed(b):
        return {"samples": measured["exits"]["samples"], "accuracy": 100 * b["accuracy_timed_samples"],
                "exits": None, "ms_measured": b["ms"], "gain_measured": baseline_ms / b["ms"]}

    theirs = {"paper": paper_entry(family, dev, False), "notebook": notebook_entry(family, dev, False)}
    if "main" in base:
        first = dict({"device": dev, "network": names[0], "row": "baseline (main.npz)",
                      "test_samples": n_test, "accuracy": 100 * acc["main"],
                      "ms_measured": base["main"]["ms"],
                      "timed": dict(timed(base["main"]), gain_measured=None)}, **theirs)
    else:  # kept, and marked, so that the missing baseline is seen, not silently dropped
        first = dict({"device": dev, "network": names[0], "row": MISSING_BASELINE_ROW,
                      "test_samples": n_test, "accuracy": None, "ms_measured": None}, **theirs)
    final = {"device": dev, "network": names[0],
             "row": "final exit (branchy.npz)" if "main" in base else FINAL_AS_BASELINE_ROW,
             "test_samples": n_test, "accuracy": 100 * acc["branchy_final"],
             "ms_measured": base["branchy_final"]["ms"],
             "gain_measured": baseline_ms / base["branchy_final"]["ms"],
             "timed": timed(base["branchy_final"]),
             "paper": None, "notebook": None}  # never beside the paper's baseline
    return [first, final]


def _timed(check, baseline_ms):
    """What a real batch-1 run of a row's thresholds measured on the timed images."""
    if check is None:
        return None
    e2e, trunk = check["ms_predicted_e2e"], check["ms_predicted_trunk"]
    return {"samples": check["samples"], "accuracy": 100 * check["accuracy_real"],
            "exits": [100.0 * c / check["samples"] for c in check["exit_counts_real"]],
            "ms_measured": check["ms_measured"], "ms_e2e": e2e, "ms_trunk": trunk,
            "gain_measured": baseline_ms / check["ms_measured"],
            "gain_e2e": baseline_ms / e2e if e2e > 0 else None,
            "gain_trunk": baseline_ms / trunk if trunk > 0 else None}


def table_rows(family, dev, measured, acc, test_rows, paper_row, selection, network=None):
    """One device's Table I rows of a network (see the module docstring): the baseline, the final
    exit, and the B-net at the paper's T (where ``paper_row`` is given) and at the knees chosen on
    the test and validation sets.

    ``measured``: the device's ``branchynet.evaluation.table1.measure_costs`` and ``measure_runs``;
    ``acc``: the accuracies; ``selection``: the device's frontier/knee choices; ``network``: the
    name shown for a net of no paper ``family``. ``accuracy`` and ``exits`` are on the whole test
    set (``test_samples``); ``timed`` holds what was measured on the timed images (the first
    ``timed["samples"]``): their accuracy and exit %, the measured ms and the ms predicted for them
    from the per-exit costs, and the gains."""
    names = display_names(family, network)
    baseline_ms = measured["baseline_ms"]
    n_test = int(sum(test_rows[0]["exit_counts"]))
    checks = {tuple(c["thresholds"]): c for c in measured["checks"]}
    rows = _baseline_rows(names, family, dev, measured, acc, n_test)
    picks = [("paper T", paper_row)] if paper_row is not None else []
    picks.append(("knee (test)", test_rows[selection["test"]["knee"]]))
    if selection.get("val") is not None:
        picks.append(("knee (val)", selection["val"]["test_row"]))
    for label, row in picks:
        check = checks.get(tuple(row["thresholds"]))
        ms = None if check is None else check["ms_measured"]
        rows.append({"device": dev, "network": names[1], "row": label,
                     "thresholds": row["thresholds"], "test_samples": n_test,
                     "accuracy": 100 * row["accuracy"],
                     "ms_measured": ms, "ms_e2e": row["%s_ms_e2e" % dev],
                     "ms_trunk": row["%s_ms_trunk" % dev],
                     "gain_measured": baseline_ms / ms if ms else None,
                     "gain_e2e": row["%s_gain_e2e" % dev], "gain_trunk": row["%s_gain_trunk" % dev],
                     "exits": [100 * f for f in row["exit_fractions"]],
                     "timed": _timed(check, baseline_ms),
                     "paper": paper_entry(family, dev, True),
                     "notebook": notebook_entry(family, dev, True)})
    return rows


def result_rows(result, device):
    """A results.json's Table I rows of one device (``table_rows`` rebuilt from what the file
    holds, so that results written by older versions render the same way); [] if not measured."""
    if device not in result["devices"]:
        return []
    return table_rows(result["family"], device, result["devices"][device], result["accuracy"],
                      result["rows"], result["paper_row"], result["selection"][device],
                      result["network"])


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

