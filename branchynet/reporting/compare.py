"""A fresh measurement of a network against its committed results and the paper: the verdict of
``make reproduce``.

``compare(new, committed)`` takes two result dicts (``results.json``, written by
``experiments/measure.py``) of the same network and returns a ``Comparison``: one line per
number, each ours now, the committed one and the paper's where it has one. Only numbers that do not
depend on the machine are judged: accuracies (baseline, final exit, each exit alone, the paper's
operating point) and exit shares, at the paper's T and at every point of the threshold sweep. They are
fixed by the weights and the test set, so a reproduction must give them exactly (``tolerance``, in
percentage points, default: below the printed resolution of 0.01). Timings, gains and the knees
(chosen by time) depend on the machine: they are shown beside, never judged. The paper's numbers are
shown as a difference, not judged either (docs/results.md says why they differ).

The verdict is "reproduced" (every judged number matches), "differs" (naming each that does not) or
"not comparable" (the two measured different test sets or networks; nothing is judged).
"""
import dataclasses
import math

from branchynet.reporting import paper

DEFAULT_TOLERANCE = 0.005  # percentage points: half the printed resolution, so any sample that changes shows

REPRODUCED, DIFFERS, NOT_COMPARABLE = "reproduced", "differs", "not comparable"


@dataclasses.dataclass
class Line:
    """One number: ours now, the committed one, the paper's (any may be None); ``judged``: whether it
    counts for the verdict; ``same``: whether it matches (None where not judged)."""
    what: str
    new: object
    committed: object
    paper: object = None
    judged: bool = True
    same: object = None
    unit: str = "%"


@dataclasses.dataclass
class Comparison:
    verdict: str
    lines: list
    reasons: list  # why not comparable, or which numbers differ

    @property
    def ok(self):
        return self.verdict == REPRODUCED


def _pct(value):
    return None if value is None else 100.0 * value


def _close(a, b, tolerance):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_close(x, y, tolerance) for x, y in zip(a, b)))
    return abs(a - b) <= tolerance


def _not_comparable(new, committed):
    reasons = []
    for key in ("network", "dataset"):
        if new.get(key) != committed.get(key):
            reasons.append("%s: %s here, %s committed" % (key, new.get(key), committed.get(key)))
    for key in ("test_samples", "val_samples"):
        a, b = new["settings"].get(key), committed["settings"].get(key)
        if a != b:
            reasons.append("%s: %s here, %s committed" % (key, a, b))
    return reasons


def _device_ms(result, dev, row_name):
    for row in result.get("table", []):
        if row["device"] == dev and row["row"] == row_name:
            return row.get("ms_measured")
    return None


def _sweep_line(new, committed, tolerance):
    """One judged line for the whole sweep: every point's accuracy and exit % equal."""
    old_rows = {tuple(r["thresholds"]): r for r in committed["rows"]}
    differing = []
    for row in new["rows"]:
        other = old_rows.pop(tuple(row["thresholds"]), None)
        if other is None or not (
                _close(_pct(row["accuracy"]), _pct(other["accuracy"]), tolerance)
                and _close([_pct(f) for f in row["exit_fractions"]],
                           [_pct(f) for f in other["exit_fractions"]], tolerance)):
            differing.append(tuple(row["thresholds"]))
    differing += list(old_rows)  # committed points this run lacks
    line = Line("sweep: accuracy and exit %% at %d thresholds" % len(new["rows"]),
                "%d differ" % len(differing) if differing else "all equal",
                "%d points" % len(committed["rows"]), None, True, not differing, "")
    if differing:
        line.what += " (differing: %s)" % "; ".join(", ".join("%g" % v for v in t) for t in differing[:5])
    return line


def _shown_lines(new, committed, table1):
    """Machine-dependent numbers, shown beside and never judged: batch-1 ms and the knees."""
    lines = []
    for dev in sorted(set(new.get("devices", {})) & set(committed.get("devices", {}))):
        for row_name in ("baseline (main.npz)", "paper T"):
            a, b = _device_ms(new, dev, row_name), _device_ms(committed, dev, row_name)
            if a is not None or b is not None:
                p = table1.get(dev, {}).get("baseline" if row_name.startswith("baseline") else "branchy")
                lines.append(Line("%s ms per sample, %s, batch 1" % (dev.upper(), row_name), a, b,
                                  p["ms"] if p else None, False, None, "ms"))
        for key, label in (("test", "knee (test)"), ("val", "knee (val)")):
            a, b = _knee(new, dev, key), _knee(committed, dev, key)
            if a is not None or b is not None:
                lines.append(Line("%s %s thresholds (chosen by time)" % (dev.upper(), label), a, b,
                                  None, False, None, "T"))
    return lines


def compare(new, committed, tolerance=DEFAULT_TOLERANCE):
    """The ``Comparison`` of two result dicts of one network (see the module docstring)."""
    reasons = _not_comparable(new, committed)
    if reasons:
        return Comparison(NOT_COMPARABLE, [], reasons)
    table1 = paper.TABLE1.get(new["family"], {})
    theirs = table1.get("cpu", {})
    lines = []

    def judged(what, a, b, paper_value=None, unit="%"):
        lines.append(Line(what, a, b, paper_value, True, _close(a, b, tolerance), unit))

    acc_new, acc_old = new["accuracy"], committed["accuracy"]
    judged("baseline accuracy (main.npz)", _pct(acc_new["main"]), _pct(acc_old["main"]),
           theirs.get("baseline", {}).get("accuracy"))
    judged("final exit accuracy (branchy.npz)", _pct(acc_new["branchy_final"]),
           _pct(acc_old["branchy_final"]))
    for k, (a, b) in enumerate(zip(acc_new["per_exit"], acc_old["per_exit"])):
        judged("exit %d alone, accuracy" % (k + 1), _pct(a), _pct(b))
    if len(acc_new["per_exit"]) != len(acc_old["per_exit"]):
        judged("number of exits", len(acc_new["per_exit"]), len(acc_old["per_exit"]), unit="")
    pn, po = new["paper_row"], committed["paper_row"]
    if pn is not None or po is not None:
        t = ", ".join("%g" % v for v in new["paper_thresholds"])
        judged("paper T (%s), accuracy" % t, _pct((pn or {}).get("accuracy")),
               _pct((po or {}).get("accuracy")), theirs.get("branchy", {}).get("accuracy"))
        judged("paper T (%s), exit %%" % t, [_pct(f) for f in (pn or {}).get("exit_fractions", [])],
               [_pct(f) for f in (po or {}).get("exit_fractions", [])], list(table1.get("exits", [])))
    lines.append(_sweep_line(new, committed, tolerance))
    lines += _shown_lines(new, committed, table1)
    bad = [line.what for line in lines if line.judged and not line.same]
    return Comparison(DIFFERS if bad else REPRODUCED, lines, bad)


def _knee(result, dev, key):
    choice = result.get("selection", {}).get(dev, {}).get(key)
    if choice is None:
        return None
    if key == "val":
        return list(choice["thresholds"])
    return list(result["rows"][choice["knee"]]["thresholds"])


def _fmt(value, unit):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v, unit) for v in value)
    if unit == "ms":
        return "%.3f" % value
    if unit in ("T", "") or (isinstance(value, float) and not math.isfinite(value)):
        return "%g" % value
    return "%.2f" % value


def _delta(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return "%+.2f" % (a - b)
    return "–"


def text(comparison, new_label="this run", committed_label="committed"):
    """The verdict table and a closing verdict line, for the terminal."""
    if comparison.verdict == NOT_COMPARABLE:
        return ("NOT COMPARABLE with the committed results: %s. Nothing was judged; run without "
                "--test-subset and with the committed run's settings to compare.\n"
                % "; ".join(comparison.reasons))
    header = ("number", new_label, committed_label, "Δ", "paper", "Δ paper", "verdict")
    body = []
    for line in comparison.lines:
        verdict = ("same" if line.same else "DIFFERS") if line.judged else "machine-dependent, not judged"
        if line.unit == "ms":  # other machines: a ratio to the committed, nothing against the paper's
            delta = ("x%.2f" % (line.new / line.committed)) if line.new and line.committed else "–"
            delta_paper = "–"
        else:
            delta = _delta(line.new, line.committed) if line.unit == "%" else "–"
            delta_paper = _delta(line.new, line.paper)
        body.append((line.what, _fmt(line.new, line.unit), _fmt(line.committed, line.unit), delta,
                     _fmt(line.paper, line.unit), delta_paper, verdict))
    widths = [max(len(r[j]) for r in [header] + body) for j in range(len(header))]
    fmt = "  ".join("%%-%ds" % w for w in widths)
    rows = [fmt % header, fmt % tuple("-" * w for w in widths)] + [fmt % r for r in body]
    if comparison.ok:
        end = ("VERDICT: REPRODUCED. Every accuracy and exit share equals the committed results; "
               "timings are this machine's, shown beside. Δ paper: ours against the paper's Table I.")
    else:
        end = ("VERDICT: DIFFERS from the committed results in: %s." % "; ".join(comparison.reasons))
    return "\n".join(rows + ["", end]) + "\n"
