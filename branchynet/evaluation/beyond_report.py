"""The "beyond the paper" report (``beyond.run_report``) as dataclasses, to and from report.json.

Accuracies and fractions are fractions of 1; costs are MACs per sample (``costs.count_macs``);
times are batch-1 milliseconds. Every cost says on which split it was measured: a ``Row`` holds
one threshold setting evaluated on one split, and a ``Pick`` adds ``val_accuracy`` and
``val_cost``, the validation numbers its rule was fitted on, beside the test row's own.
"""
import dataclasses
import json
from typing import Optional

from branchynet.evaluation.records import Record

record = dataclasses.dataclass(kw_only=True)


@record
class Row(Record):
    """One threshold setting on one split (``ExitOutputs.evaluate``; frontier rows:
    ``Frontier.rows``, without counts)."""
    thresholds: Optional[list[float]] = None
    accuracy: Optional[float] = None
    cost: Optional[float] = None
    exit_fractions: Optional[list[float]] = None
    measure: Optional[str] = None
    n: Optional[int] = None
    exit_counts: Optional[list[int]] = None
    reach_fractions: Optional[list[float]] = None
    correct: Optional[int] = None
    exit_accuracy: Optional[list[Optional[float]]] = None


@record
class Pick(Row):
    """A rule's pick: fitted on val, the row on test; or ``infeasible`` (why no setting)."""
    rule: Optional[str] = None
    val_accuracy: Optional[float] = None
    val_cost: Optional[float] = None
    eps: Optional[float] = None
    margin: Optional[float] = None
    lower_bound: Optional[float] = None
    infeasible: Optional[str] = None


@record
class Geometric(Row):
    """MSDNet's geometric exit distribution ``q``, fitted on val, on test."""
    q: float
    target_fractions: list[float]


@record
class Budget(Record):
    """The most accurate setting within ``fraction`` of the baseline's cost (None: none is)."""
    fraction: float
    row: Optional[Row] = None


@record
class Rules(Record):
    """Rules fitted on a frontier of val, applied to test."""
    fastest_within: list[Pick]
    budgets: list[Budget]
    generalising: list[Pick] = dataclasses.field(default_factory=list)


@record
class MeasureSection(Rules):
    measure: str
    frontier_size: int
    frontier_val: list[Row]
    frontier_test: list[Row]
    geometric: list[Geometric]


@record
class PaperKnee(Record):
    grid_size: int
    thresholds: list[float]
    val: Row
    test: Row
    grid_test: list[Row]


@record
class Split(Record):
    """How the data were split and preprocessed (``data.split.load_split``'s description)."""
    dataset: str
    val_size: int
    split_seed: int
    train_images: int
    val_images: int
    test_images: int
    preprocessing: str
    statistics: Optional[str] = None
    statistics_images: int = 0


@record
class Baseline(Record):
    """The main network's accuracy on each split (None: no main network)."""
    val: Optional[float] = None
    test: Optional[float] = None


@record
class Macs(Record):
    segments: list[int]
    heads: list[int]


@record
class ExitCost(Record):
    exit: int
    segment: float
    head: float
    exit_cost: float
    of_baseline: float


@record
class CostTable(Record):
    exits: list[ExitCost]
    baseline: float
    head_overhead: float


@record
class Anytime(Record):
    exit: int
    accuracy: float
    cost: float


@record
class Oracle(Record):
    accuracy: float
    cost: float
    exit_fractions: list[float]


@record
class Oracles(Record):
    val: Oracle
    test: Oracle


@record
class Overthinking(Record):
    wasteful: float
    destructive: float
    destructive_of_last_errors: float
    right_somewhere: float
    last_exit: float


@record
class Bin(Record):
    low: float
    high: float
    count: int
    confidence: Optional[float] = None
    accuracy: Optional[float] = None


@record
class Calibration(Record):
    exit: int
    ece: float
    accuracy: float
    mean_confidence: float
    bins: list[Bin]


@record
class MeasuredRun(Record):
    """A real batch-1 early-exit run on test beside the ms its per-exit times predict."""
    measure: str
    rule: str
    thresholds: list[float]
    measured_ms: float
    predicted_ms: float
    samples: int


@record
class Times(Record):
    segment_ms: list[float]
    head_ms: list[float]
    exit_ms: list[float]
    baseline_ms: float
    samples: int
    repeats: int
    budgets: dict[str, list[Budget]]
    measured: list[MeasuredRun]


@record
class Curve(Record):
    cost: list[float]
    accuracy: list[float]


@record
class RunMeasure(Record):
    budgets: list[Budget]
    at_baseline: Pick
    frontier_test: list[Row]


@record
class RunRow(Record):
    run: str
    anytime: list[Anytime]
    ece: list[float]
    measures: dict[str, RunMeasure]


@record
class Spread(Record):
    fraction: float
    n: int
    mean: Optional[float] = None
    std: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None


@record
class Comparison(Record):
    """Several runs (seeds, or loss weightings) with the same rules: per run, and summarised."""
    runs: list[RunRow]
    summary: dict[str, list[Spread]]
    note: Optional[str] = None


@record
class BeyondReport(Record):
    run: str
    split: Split
    baseline_accuracy: Baseline
    macs: Macs
    cost_table: CostTable
    anytime: list[Anytime]
    oracle: Oracles
    overthinking: Overthinking
    calibration: list[Calibration]
    measures: dict[str, MeasureSection]
    time: Times
    oracle_curve_test: Curve
    base_cost: float
    paper_knee: Optional[PaperKnee] = None
    paper_grid_rules: Optional[Rules] = None
    seeds: Optional[Comparison] = None
    sample_weighting: Optional[Comparison] = None
    commands: list[str] = dataclasses.field(default_factory=list)

    def save(self, path):
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=1, allow_nan=False)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_json(json.load(f), where=str(path))
