"""The "beyond the paper" report of one network: confidence measures, threshold selection rules,
costs, and the field's evaluations, from per-exit outputs cached in one pass.

``run_report`` measures (the net runs once over the validation and test splits; everything else
is computed from the caches) and returns the report as a ``beyond_report.BeyondReport``;
``branchynet.reporting.beyond_markdown`` and ``beyond_figures`` render it.
Thresholds are always fitted on the validation split and applied unchanged to the test set;
beside the exact search's picks at the baseline's accuracy stand those of the rules that
generalise (``generalise``: a cross-validated margin, a bootstrap lower bound), which need the
baseline's answer on every validation sample.
Costs are MACs per sample (``costs.count_macs``, every head on the way included); times are
batch-1 milliseconds on this machine (``timing.time_exits`` per exit, ``timing.time_early_exit``
for real early-exit runs), measured on a shared CPU, so read them as indicative.
"""
import numpy

from branchynet.data import split as data_split
from branchynet.evaluation import beyond_report as types
from branchynet.evaluation import costs, frontier, generalise, metrics, outputs, run_folder, selection, timing
from branchynet.model import measures

BUDGETS = (0.25, 0.5, 0.75, 1.0)
REPEATS = 3
EPSILONS = (0.0, 0.001, 0.005)
Q_VALUES = tuple(float(q) for q in numpy.geomspace(0.02, 50, 25))


def load_caches(net, main, run_dir, dataset, val_size, data_dir=None, progress=None):
    """(val cache, test cache, baseline accuracies {"val", "test"}, the split's description, the
    test arrays, whether the baseline gets each validation sample right (None without ``main``)) of
    a run: its split, with the preprocessing and statistics it was trained with
    (``run_folder.run_split``)."""
    (x_val, t_val), (x_test, t_test), description = run_folder.run_split(dataset, val_size, run_dir,
                                                                       data_dir)
    val = outputs.ExitOutputs.from_net(net, x_val, t_val, progress=progress, desc="val exits")
    test = outputs.ExitOutputs.from_net(net, x_test, t_test, progress=progress, desc="test exits")
    base, right = {}, {}
    if main is not None:
        for name, x, t in (("val", x_val, t_val), ("test", x_test, t_test)):
            labels = numpy.concatenate([main.predict_main(x[s:s + 1000])
                                        for s in range(0, len(x), 1000)])
            right[name] = labels == t
            base[name] = float(right[name].mean())
    return val, test, base, description, (x_test, t_test), right.get("val")


def _thin(front, most=300):
    """At most ``most`` frontier indices, evenly spread, the first and last kept (what the JSON
    and the figures keep of frontiers that can have thousands of points)."""
    return sorted(set(numpy.linspace(0, len(front) - 1, min(most, len(front))).round().astype(int).tolist()))


def _point(cache, frontier, i, label, **extra):
    """The pick at frontier index ``i``: its row on ``cache`` and the numbers it was fitted on."""
    row = cache.evaluate(frontier.thresholds[i], frontier.measure, frontier.exit_costs)
    return types.Pick.from_json(dict(row, rule=label, val_accuracy=float(frontier.accuracies[i]),
                                     val_cost=float(frontier.costs[i]), **extra))


def _budgets(front, test, base_cost, fractions):
    return [types.Budget(fraction=b["fraction"], row=b["row"] and types.Row.from_json(b["row"]))
            for b in metrics.at_budgets(front, test, base_cost, fractions)]


def _rules(front, test, base_cost, base_val_acc):
    """The rules on a frontier fitted on val, applied to test: fastest within each eps of the
    baseline's val accuracy, most accurate within each budget."""
    picks = []
    for eps in EPSILONS:
        label = "fastest within %.1f pp" % (100 * eps)
        try:
            picks.append(_point(test, front, selection.fastest_within(front, base_val_acc, eps),
                                label, eps=eps))
        except selection.Infeasible as err:
            picks.append(types.Pick(rule=label, eps=eps, infeasible=str(err)))
    return types.Rules(fastest_within=picks, budgets=_budgets(front, test, base_cost, BUDGETS))


def generalising(front, val, test, base_val_right):
    """The rules that generalise (``generalise``) on a frontier fitted on val, applied to test:
    the cross-validated margin and the bootstrap lower bound."""
    picks = []
    rules = (("cross-validated margin (%d folds)" % generalise.FOLDS,
              lambda: generalise.cv_margin(val, front, base_val_right)),
             ("bootstrap %.0f %% lower bound" % (100 * generalise.LEVEL),
              lambda: generalise.bootstrap_fastest(val, front, base_val_right)))
    for label, rule in rules:
        try:
            found = rule()
        except selection.Infeasible as err:
            picks.append(types.Pick(rule=label, infeasible=str(err)))
            continue
        extra = {"margin": found[1]} if len(found) == 3 else {"lower_bound": found[1]}
        picks.append(_point(test, front, found[0], label, **extra))
    return picks


def measure_section(val, test, name, exit_cost, base_cost, base_val_acc, base_val_right=None):
    """One measure: its validation frontier applied to test, the rules' picks (with those that
    generalise where the baseline's answers on val are given), budgets, MSDNet's geometric exit
    distributions."""
    front = frontier.exact_frontier(val, name, exit_cost)
    thin = _thin(front)
    rows = front.rows()
    rules = _rules(front, test, base_cost, base_val_acc)
    geo = []
    for q in Q_VALUES:
        f = selection.geometric_fractions(q, val.num_exits)
        t = selection.distribution_thresholds(val, name, f)
        geo.append(types.Geometric.from_json(dict(test.evaluate(t, name, exit_cost), q=q,
                                                  target_fractions=f.tolist())))
    section = types.MeasureSection(
        measure=name, frontier_size=len(front),
        frontier_val=[types.Row.from_json(rows[i]) for i in thin],
        frontier_test=[types.Row.from_json(test.evaluate(front.thresholds[i], name, exit_cost))
                       for i in thin],
        fastest_within=rules.fastest_within, budgets=rules.budgets, geometric=geo,
        generalising=[] if base_val_right is None else generalising(front, val, test, base_val_right))
    return section, front


def paper_knee(val, test, grid, exit_cost, base_val_acc):
    """The paper's knee of ``grid`` fitted on val (entropy), applied to test, with every grid
    setting on test."""
    front, at = selection.paper_knee(val, grid, exit_cost, base_val_acc)
    knee_t = front.thresholds[at].tolist()
    return types.PaperKnee(grid_size=len(grid), thresholds=knee_t,
                           val=types.Row.from_json(val.evaluate(knee_t, "entropy", exit_cost)),
                           test=types.Row.from_json(test.evaluate(knee_t, "entropy", exit_cost)),
                           grid_test=[types.Row.from_json(r) for r in
                                      test.sweep(grid, "entropy", exit_cost)])


def _measured_runs(net, sections, x, ms_cost, progress):
    """Real batch-1 early-exit runs at each measure's first feasible pick, beside the ms its
    per-exit times predict for the exits the samples took."""
    runs_out = []
    for name, section in sections.items():
        pick = next((p for p in section.fastest_within if p.infeasible is None), None)
        if pick is None:
            continue
        real = timing.time_early_exit(net, x, pick.thresholds, 1, REPEATS, 10, progress,
                                      "early exit (%s)" % name, name)
        fractions = numpy.bincount(real["exits"], minlength=net.numexits()) / len(real["exits"])
        runs_out.append(types.MeasuredRun(measure=name, rule=pick.rule, thresholds=pick.thresholds,
                                          measured_ms=real["detail"]["min"],
                                          predicted_ms=costs.expected_cost(fractions, ms_cost),
                                          samples=len(x)))
    return runs_out


def time_section(net, main, val, test, x_test, sections, thresholds, timing_samples=300,
                 measured_samples=500, progress=None):
    """Per-exit batch-1 ms (heads deciding at ``thresholds``), the rules with a time budget, and
    real runs beside predictions. The CPU is shared: each time is the fastest of REPEATS passes,
    the least disturbed."""
    x_time = x_test[:timing_samples]
    per_exit = timing.time_exits(net, x_time, repeats=REPEATS, warmup=10, thresholds=thresholds,
                                 progress=progress)
    parts = {"segment_ms": [s["min"] for s in per_exit["segments"]],
             "head_ms": [h["min"] for h in per_exit["heads"]]}
    ms_cost = costs.exit_costs(parts)
    base_ms = timing.time_baseline(main if main is not None else net, x_time, repeats=REPEATS,
                                   warmup=10, progress=progress)["detail"]["min"]
    budgets = {}
    for name in ("entropy", "max_prob"):
        if name in sections:
            front_ms = frontier.exact_frontier(val, name, ms_cost)
            budgets[name] = _budgets(front_ms, test, base_ms, (0.5, 0.75))
    return types.Times(**parts, exit_ms=ms_cost.tolist(), baseline_ms=base_ms,
                       samples=timing_samples, repeats=REPEATS, budgets=budgets,
                       measured=_measured_runs(net, sections, x_test[:measured_samples], ms_cost,
                                               progress))


def _oracle_curve(test, exit_cost, most=400):
    curve_c, curve_a = metrics.oracle_curve(test, exit_cost)
    step = max(1, len(curve_c) // most)
    return types.Curve(cost=curve_c[::step].tolist() + [float(curve_c[-1])],
                       accuracy=curve_a[::step].tolist() + [float(curve_a[-1])])


def run_report(net, main, run_dir, dataset, family, val_size=data_split.VAL_SIZE,
               data_dir=None, timing_samples=300, measured_samples=500, progress=None,
               measures=measures.NAMES):
    """The report of one run, a ``BeyondReport``; see the module docstring. ``family``: the paper
    family whose threshold grid and knee are set beside the exact search, or None (a user's net)."""
    val, test, base, description, (x_test, _), base_right = load_caches(net, main, run_dir, dataset,
                                                                  val_size, data_dir, progress)
    macs = costs.count_macs(net, x_test[:1])
    exit_cost, base_cost = costs.exit_costs(macs), costs.baseline_cost(macs)
    base_val = base.get("val", 1.0)
    sections = {name: measure_section(val, test, name, exit_cost, base_cost, base_val,
                                      base_right)[0] for name in measures}
    knee = rules = None
    if family is not None:
        grid = frontier.paper_grid(family, net.numexits())
        knee = paper_knee(val, test, grid, exit_cost, base_val)
        rules = _rules(frontier.grid_frontier(val, "entropy", grid, exit_cost), test, base_cost,
                       base_val)
    times = time_section(net, main, val, test, x_test, sections, knee and knee.thresholds,
                         timing_samples, measured_samples, progress)
    return types.BeyondReport(
        run=run_dir, split=types.Split.from_json(description),
        baseline_accuracy=types.Baseline.from_json(base), macs=types.Macs.from_json(macs),
        cost_table=types.CostTable.from_json(costs.cost_table(macs)),
        anytime=[types.Anytime.from_json(a) for a in metrics.anytime(test, exit_cost)],
        oracle=types.Oracles(val=types.Oracle.from_json(metrics.oracle(val, exit_cost)),
                             test=types.Oracle.from_json(metrics.oracle(test, exit_cost))),
        overthinking=types.Overthinking.from_json(metrics.overthinking(test)),
        calibration=[types.Calibration.from_json(c) for c in metrics.calibration(test)],
        measures=sections, paper_knee=knee, paper_grid_rules=rules, time=times,
        oracle_curve_test=_oracle_curve(test, exit_cost), base_cost=base_cost)


def compare_runs(entries, exit_cost_of, fractions=BUDGETS, measures=("entropy", "max_prob")):
    """Accuracy at fractions of the baseline's cost for several runs: ``entries`` is a list of
    (label, val cache, test cache, base cost, baseline val accuracy); returns a ``Comparison``:
    per run and measure the test rows, and mean and spread over the runs."""
    per_run = []
    for label, val, test, base_cost, base_val in entries:
        exit_cost = exit_cost_of(label)
        row = types.RunRow(run=label,
                           anytime=[types.Anytime.from_json(a) for a in metrics.anytime(test, exit_cost)],
                           ece=[c["ece"] for c in metrics.calibration(test)], measures={})
        for name in measures:
            front = frontier.exact_frontier(val, name, exit_cost)
            try:
                at_base = _point(test, front, selection.fastest_within(front, base_val, 0.0),
                                 "fastest within 0.0 pp")
            except selection.Infeasible as err:
                at_base = types.Pick(infeasible=str(err))
            row.measures[name] = types.RunMeasure(
                budgets=_budgets(front, test, base_cost, fractions), at_baseline=at_base,
                frontier_test=[types.Row.from_json(test.evaluate(front.thresholds[i], name, exit_cost))
                               for i in _thin(front)])
        per_run.append(row)
    summary = {name: [types.Spread.from_json(dict(metrics.mean_spread(
        [r.measures[name].budgets[i].row and r.measures[name].budgets[i].row.accuracy
         for r in per_run]), fraction=f)) for i, f in enumerate(fractions)] for name in measures}
    return types.Comparison(runs=per_run, summary=summary)
