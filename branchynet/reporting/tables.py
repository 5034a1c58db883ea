"""Table I as Markdown and fixed-width text, in the paper's layout with the authors' numbers
beside ours: an accuracy part (whole test set) and a time part (per device, timed images only).
Rows are ``branchynet.reporting.rows``'s; missing values print as "–"."""
import math

from branchynet.reporting import paper


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


def markdown(columns, cells):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def accuracy_table(rows):
    """Table I's accuracy part, Markdown: accuracy and exit % on the whole test set, a mean ± sample
    standard deviation where rows come from ``combine_runs`` of several runs, beside the paper's
    and the notebooks' numbers."""
    return markdown(ACCURACY_COLUMNS, [_accuracy_cells(r) for r in rows])


def time_table(rows):
    """Table I's time part, Markdown: per device, everything on the timed images only (accuracy,
    exit %, measured and predicted ms, gains), beside the paper's and the notebooks' times."""
    return markdown(TIME_COLUMNS, [_time_cells(r) for r in rows])


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

