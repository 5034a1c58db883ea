"""The "beyond the paper" report (``branchynet.evaluation.beyond_report.BeyondReport``) as Markdown:
costs per exit, anytime and oracle numbers, each measure's and rule's pick at the baseline's
accuracy, budgets, MSDNet's geometric distributions, seeds and sample weighting."""
import dataclasses

from branchynet.evaluation import beyond_report as types
from branchynet.evaluation.beyond import BUDGETS


def _pct(v, digits=2):
    return "–" if v is None else "%.*f" % (digits, 100 * v)


def _fracs(row):
    return ", ".join("%.1f" % (100 * f) for f in row.exit_fractions)


def _thr(values):
    return ", ".join("%.4g" % v for v in values)


def _header(report, title, commands):
    base, bc = report.baseline_accuracy, report.base_cost
    lines = ["# %s: beyond the paper" % title, ""]
    lines += ["Written by `%s`." % c for c in commands] + [""]
    lines += ["Run `%s`; thresholds fitted on the validation split (%d images), applied unchanged "
              "to the test set (%d). Baseline (main network): %s %% val, %s %% test. Costs are "
              "MACs per sample, every head on the way included; %% of cost is of the baseline's "
              "%d MACs." % (report.run, report.split.val_images, report.split.test_images,
                            _pct(base.val), _pct(base.test), bc), ""]
    return lines


def _costs(report):
    bc, lines = report.base_cost, []
    lines += ["## Costs per exit", "",
              "| exit | segment MACs | head MACs | leaving here | % of baseline "
              "| ms (batch 1, cumulative, test images) |",
              "|---|---|---|---|---|---|"]
    for r, ms in zip(report.cost_table.exits, report.time.exit_ms):
        lines.append("| %d | %d | %d | %d | %.1f | %.3f |" % (r.exit, r.segment, r.head,
                                                              r.exit_cost, 100 * r.of_baseline, ms))
    lines += ["", "Heads before the last cost %.1f %% of the baseline. Baseline measured %.3f ms on %d "
              "test images." % (100 * report.cost_table.head_overhead, report.time.baseline_ms,
                                report.time.samples), ""]
    lines += ["## Anytime prediction (each exit alone, test)", "",
              "| exit | accuracy % | % of cost | ECE % |", "|---|---|---|---|"]
    for a, c in zip(report.anytime, report.calibration):
        lines.append("| %d | %s | %.1f | %.2f |"
                     % (a.exit, _pct(a.accuracy), 100 * a.cost / bc, 100 * c.ece))
    o, ov = report.oracle.test, report.overthinking
    lines += ["", "Oracle on test (each sample out at its earliest correct exit; never-right ones at the "
              "first): %s %% at %.1f %% of the cost (exits %s %%). Overthinking (test): wasteful "
              "%s %%, destructive %s %% of all samples (%s %% of the last exit's errors were right "
              "earlier)." % (_pct(o.accuracy), 100 * o.cost / bc, _fracs(o), _pct(ov.wasteful),
                              _pct(ov.destructive), _pct(ov.destructive_of_last_errors, 1)), ""]
    return lines


def _pick_row(name, rule, p, bc):
    return "| %s | %s | %s | %s | %s | %.1f | %.1f | %.2fx | %s | %s |" % (
        name, rule, _thr(p.thresholds), _pct(p.val_accuracy), _pct(p.accuracy),
        100 * p.val_cost / bc, 100 * p.cost / bc, bc / p.cost, _fracs(p),
        ", ".join(_pct(a, 1) for a in p.exit_accuracy))


def _generalising_label(p):
    if p.margin is not None:
        return "%s: +%.2f pp" % (p.rule, 100 * p.margin)
    if p.lower_bound is not None:
        return "%s: %+.2f pp" % (p.rule, 100 * p.lower_bound)
    return p.rule


def _picks(sec):
    """(label, pick) of a section's rules: fastest within eps, then those that generalise."""
    return [(p.rule, p) for p in sec.fastest_within] + \
        [(_generalising_label(p), p) for p in sec.generalising]


def _sections(report):
    """(name, section) of the rules' picks: the paper's grid (a paper network's) and each measure."""
    grid = report.paper_grid_rules
    return ([("entropy (paper grid)", grid)] if grid else []) + list(report.measures.items())


def _at_baseline(report):
    bc, lines = report.base_cost, []
    lines += ["## At the baseline's accuracy: each measure's fastest setting (fitted on val)", "",
              "Costs in % of the baseline's MACs, on the split named; exits and the accuracy of "
              "the samples leaving at each exit on test.", "",
              "| measure | rule | T | val acc % | test acc % | val % of cost | test % of cost "
              "| speed-up on test (MACs) | exits % | accuracy of leavers % |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    pk = report.paper_knee
    if pk:
        knee = types.Pick(**dataclasses.asdict(pk.test), val_accuracy=pk.val.accuracy,
                          val_cost=pk.val.cost)
        lines.append(_pick_row("entropy", "paper grid (%d) + knee" % pk.grid_size, knee, bc))
    for name, sec in _sections(report):
        for label, p in _picks(sec):
            if p.infeasible is not None:
                lines.append("| %s | %s | – | – | – | – | – | – | – | no setting on val |" % (name, label))
            else:
                lines.append(_pick_row(name, label, p, bc))
    return lines + _generalising_finding(report)


def _generalising_finding(report):
    """Per rule at the baseline's accuracy, over the measures: how many of its picks (fitted on
    val) hold the baseline's test accuracy, and at what test cost. Empty without those rules."""
    base = report.baseline_accuracy.test
    if base is None or not any(sec.generalising for sec in report.measures.values()):
        return []
    rules = {}
    if report.paper_knee:
        rules["the paper grid's knee (entropy)"] = [report.paper_knee.test]
    for sec in report.measures.values():
        for p in sec.fastest_within[:1] + sec.generalising:
            if p.infeasible is None:
                rules.setdefault("exact search, " + p.rule, []).append(p)
            else:
                rules.setdefault("exact search, " + p.rule, [])
    bc, parts = report.base_cost, []
    for rule, ps in rules.items():
        if not ps:
            parts.append("%s: no pick (no setting met it on val)" % rule)
            continue
        acc, cost = [p.accuracy for p in ps], [100 * p.cost / bc for p in ps]
        parts.append("%s: %d of %d hold it (test accuracy %s–%s %%, test cost %.1f–%.1f %%)"
                     % (rule, sum(a >= base for a in acc), len(ps), _pct(min(acc)), _pct(max(acc)),
                        min(cost), max(cost)))
    return ["", "**Does the selection generalise?** Picks fitted on val that reach the baseline's "
            "test accuracy (%s %%), over the %d measures: " % (_pct(base), len(report.measures))
            + "; ".join(parts) + "."]


def _budgets(report):
    bc, lines, sections = report.base_cost, [], _sections(report)
    lines += ["", "## Accuracy within a cost budget (most accurate setting on val, test %)", "",
              "| measure | " + " | ".join("%d %%" % (100 * f) for f in BUDGETS) + " |",
              "|---|" + "---|" * len(BUDGETS)]
    for name, sec in sections:
        lines.append("| %s | %s |" % (name, " | ".join(
            "–" if b.row is None else "%s (%.0f %%)" % (_pct(b.row.accuracy), 100 * b.row.cost / bc)
            for b in sec.budgets)))
    lines += ["", "In parentheses: the cost reached on test. –: the budget is below the cheapest "
              "setting (every sample out at the first exit)."]
    t = report.time
    if t.budgets:
        lines += ["", "Time budgets (cumulative batch-1 ms per exit above, fitted on val, test %):", ""]
        for name, rows in t.budgets.items():
            lines.append("* %s: " % name + "; ".join(
                "%d %% of %.3f ms: %s" % (100 * b.fraction, t.baseline_ms,
                                          "–" if b.row is None else "%s %% at %.3f ms predicted on test"
                                          % (_pct(b.row.accuracy), b.row.cost))
                for b in rows))
    if t.measured:
        lines += ["", "Measured beside predicted (batch 1, %d test samples, fastest of %d passes, "
                  "shared CPU):" % (t.measured[0].samples, t.repeats), "",
                  "| measure | rule | T | measured ms | predicted ms |", "|---|---|---|---|---|"]
        for m in t.measured:
            lines.append("| %s | %s | %s | %.3f | %.3f |" % (m.measure, m.rule, _thr(m.thresholds),
                                                           m.measured_ms, m.predicted_ms))
    return lines


def _geometric(report):
    bc, lines = report.base_cost, []
    lines += ["", "## MSDNet's geometric exit distributions (q swept, fitted on val, test)", "",
              "| measure | q | test acc % | test % of cost | exits on test % |", "|---|---|---|---|---|"]
    for name, sec in report.measures.items():
        for row in sec.geometric[::6]:
            lines.append("| %s | %.3g | %s | %.1f | %s |" % (name, row.q, _pct(row.accuracy),
                                                            100 * row.cost / bc, _fracs(row)))
    return lines


def _seeds(seeds):
    lines = []
    lines += ["", "## Over seeds (%s)" % ", ".join(r.run for r in seeds.runs), "",
              "Accuracy on test of the most accurate setting on val within a fraction of the baseline's "
              "cost, mean ± std (min–max):", "",
              "| measure | " + " | ".join("%d %%" % (100 * f) for f in BUDGETS) + " |",
              "|---|" + "---|" * len(BUDGETS)]
    for name, rows in seeds.summary.items():
        lines.append("| %s | %s |" % (name, " | ".join(
            "–" if r.mean is None else "%.2f ± %.2f (%.2f–%.2f), n=%d" % (
                100 * r.mean, 100 * r.std, 100 * r.min, 100 * r.max, r.n)
            for r in rows)))
    return lines


def _weighting(weighting, bc):
    lines = []
    lines += ["", "## Sample-dependent loss weights against the paper's fixed weights", "",
              weighting.note, "",
              "| scheme | test acc per exit % | ECE per exit % | fastest at baseline acc (entropy): "
              "test acc %, test % of cost | (max_prob) | "
              + " | ".join("entropy @ %d %%" % (100 * f) for f in BUDGETS) + " |",
              "|---|---|---|---|---|" + "---|" * len(BUDGETS)]
    for r in weighting.runs:
        def at(name):
            a = r.measures[name].at_baseline
            if a.infeasible is not None:
                return "none on val"
            return "%s, %.1f" % (_pct(a.accuracy), 100 * a.cost / bc)
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            r.run, ", ".join(_pct(a.accuracy) for a in r.anytime),
            ", ".join("%.2f" % (100 * e) for e in r.ece), at("entropy"), at("max_prob"),
            " | ".join("–" if b.row is None else _pct(b.row.accuracy)
                       for b in r.measures["entropy"].budgets)))
    return lines


def markdown(report, title):
    """report.md's text: a ``BeyondReport``, with its seed and sample-weighting comparisons
    where it has them, and the commands that wrote it."""
    lines = (_header(report, title, report.commands) + _costs(report) + _at_baseline(report)
             + _budgets(report) + _geometric(report))
    if report.seeds:
        lines += _seeds(report.seeds)
    weighting = report.sample_weighting
    if weighting:
        lines += _weighting(weighting, report.base_cost)
    lines += ["", "Figures: [frontiers per measure](frontiers_by_measure.png), "
              "[selection rules](selection_rules.png), [reliability](reliability.png)"
              + (", [sample weighting](sample_weighting.png)" if weighting else "") + ".", ""]
    return "\n".join(lines)
