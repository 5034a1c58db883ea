"""Table I rows of a network's measurements (``results.TableRow``), beside the authors' numbers
(``paper``).

A row says which ``device`` ("cpu"/"gpu"), ``network`` (Table I's name) and ``row`` (what it is,
e.g. "paper T") at which ``thresholds``; on the whole test set (``test_samples`` images):
``accuracy`` (%), ``exits`` (% per exit), ``ms_e2e`` and ``ms_trunk`` (predicted from per-exit
timings, end to end and in the original's trunk-only accounting) and their gains; on the timed
images only, ``timed`` (a real batch-1 run end to end and what the per-exit times predict for
those images), with ``ms_measured`` and ``gain_measured`` repeated at the top level; ``paper`` and
``notebook`` (the matching entries of the paper's Table I and of the authors' notebooks, or
None). Rows of several runs (``combine_runs``) add ``runs``, ``accuracy_sd``, ``exits_sd`` and
``thresholds_per_run``. Missing values are None.
"""
import dataclasses
import statistics

from branchynet.evaluation.results import PaperEntry, TableRow, TimedPart
from branchynet.reporting import paper


def _entry(source, family, device, branchy):
    table = source.get(family)
    if table is None or device not in table:
        return None
    entry = PaperEntry(**table[device]["branchy" if branchy else "baseline"])
    if branchy:
        entry.thresholds, entry.exits = list(table["thresholds"]), list(table["exits"])
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


def _baseline_rows(names, family, measured, acc, n_test):
    """The baseline (main.npz, or a marked row where it is missing) and the final exit."""
    dev, base, baseline_ms = measured.device, measured.baselines, measured.baseline_ms

    def timed(b):
        return TimedPart(samples=measured.exits.samples, accuracy=100 * b.accuracy_timed_samples,
                         exits=None, ms_measured=b.ms, gain_measured=baseline_ms / b.ms)

    theirs = dict(paper=paper_entry(family, dev, False), notebook=notebook_entry(family, dev, False))
    if base.main is not None:
        first = TableRow(device=dev, network=names[0], row="baseline (main.npz)", test_samples=n_test,
                         accuracy=100 * acc.main, ms_measured=base.main.ms,
                         timed=dataclasses.replace(timed(base.main), gain_measured=None), **theirs)
    else:  # kept, and marked, so that the missing baseline is seen, not silently dropped
        first = TableRow(device=dev, network=names[0], row=MISSING_BASELINE_ROW, test_samples=n_test,
                         **theirs)
    final = TableRow(device=dev, network=names[0],
                     row="final exit (branchy.npz)" if base.main is not None else FINAL_AS_BASELINE_ROW,
                     test_samples=n_test, accuracy=100 * acc.branchy_final,
                     ms_measured=base.branchy_final.ms,
                     gain_measured=baseline_ms / base.branchy_final.ms,
                     timed=timed(base.branchy_final))  # never beside the paper's baseline
    return [first, final]


def _timed(check, baseline_ms):
    """What a real batch-1 run of a row's thresholds measured on the timed images."""
    if check is None:
        return None
    e2e, trunk = check.ms_predicted_e2e, check.ms_predicted_trunk
    return TimedPart(samples=check.samples, accuracy=100 * check.accuracy_real,
                     exits=[100.0 * c / check.samples for c in check.exit_counts_real],
                     ms_measured=check.ms_measured, ms_e2e=e2e, ms_trunk=trunk,
                     gain_measured=baseline_ms / check.ms_measured,
                     gain_e2e=baseline_ms / e2e if e2e > 0 else None,
                     gain_trunk=baseline_ms / trunk if trunk > 0 else None)


def result_rows(result, device):
    """One device's Table I rows of a ``results.Result`` (see the module docstring): the
    baseline, the final exit, and the B-net at the paper's T (where the result has it) and at the
    knees chosen on the test and validation sets; [] if the device was not measured.

    ``accuracy`` and ``exits`` are on the whole test set (``test_samples``); ``timed`` holds what
    was measured on the timed images (the first ``timed.samples``): their accuracy and exit %, the
    measured ms and the ms predicted for them from the per-exit costs, and the gains."""
    measured = result.devices.get(device)
    if measured is None:
        return []
    family, names = result.family, display_names(result.family, result.network)
    baseline_ms = measured.baseline_ms
    n_test = int(sum(result.rows[0].exit_counts))
    checks = {tuple(c.thresholds): c for c in measured.checks}
    rows = _baseline_rows(names, family, measured, result.accuracy, n_test)
    picks = ([("paper T", result.paper_row, measured.paper_times)]
             if result.paper_row is not None else [])
    knee = measured.selection.test.knee
    picks.append(("knee (test)", result.rows[knee], measured.row_times[knee]))
    if measured.selection.val is not None:
        knee = measured.selection.val.knee
        picks.append(("knee (val)", result.rows[knee], measured.row_times[knee]))
    for label, row, times in picks:
        check = checks.get(tuple(row.thresholds))
        ms = None if check is None else check.ms_measured
        rows.append(TableRow(
            device=device, network=names[1], row=label, thresholds=row.thresholds,
            test_samples=n_test, accuracy=100 * row.accuracy, ms_measured=ms,
            ms_e2e=times.ms_e2e, ms_trunk=times.ms_trunk,
            gain_measured=baseline_ms / ms if ms else None,
            gain_e2e=times.gain_e2e, gain_trunk=times.gain_trunk,
            exits=[100 * f for f in row.exit_fractions], timed=_timed(check, baseline_ms),
            paper=paper_entry(family, device, True), notebook=notebook_entry(family, device, True)))
    return rows


# ------------------------------------------------------------------ several runs
def combine_runs(runs):
    """Accuracy and exit shares of several runs of one network (lists of ``table_rows`` rows of
    one device, the same rows in the same order, first the run whose timings are shown): one row
    per row with ``accuracy`` and ``exits`` the means, ``accuracy_sd`` and ``exits_sd`` the sample
    standard deviations (None for one run), ``runs`` the number of runs and ``thresholds_per_run``
    each run's thresholds (the knees differ between runs); the rest is the first run's."""
    first = runs[0]
    for rows in runs[1:]:
        if [r.row for r in rows] != [r.row for r in first]:
            raise ValueError("runs with different rows: %s against %s"
                             % ([r.row for r in rows], [r.row for r in first]))
    combined = []
    for i, row in enumerate(first):
        same = [rows[i] for rows in runs]
        accs = [r.accuracy for r in same]
        out = dataclasses.replace(row, runs=len(same), accuracy=statistics.mean(accs),
                                  accuracy_sd=statistics.stdev(accs) if len(same) > 1 else None,
                                  thresholds_per_run=[r.thresholds for r in same])
        if row.exits is not None:
            shares = list(zip(*[r.exits for r in same]))
            out.exits = [statistics.mean(s) for s in shares]
            out.exits_sd = [statistics.stdev(s) for s in shares] if len(same) > 1 else None
        combined.append(out)
    return combined
