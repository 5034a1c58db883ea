"""What measuring a net gives (``results.json``) and Table I's rows, as dataclasses.

``Result`` is the record ``table1.evaluate`` returns and ``experiments/measure.py`` writes; readers
(the Table I assembly, the reproduction verdict, the notebooks) load it with ``Result.load`` and use
its attributes. Every record converts to plain JSON values (``to_json``) and back (``from_json``),
and ``from_json(to_json(x)) == x``. What depends on a device (per-exit times, baselines, the time
columns of the sweep's rows, the frontiers and knees chosen by time, the real runs) is one
``DeviceResult`` per device, under ``Result.devices``; the device-independent rows stay in
``Result.rows``.
"""
import dataclasses
import json
import types
import typing


class Record:
    """A dataclass that converts to plain JSON values and back, checking the fields' names."""

    def to_json(self):
        return _plain(self)

    @classmethod
    def from_json(cls, data):
        """The record of ``data`` (parsed JSON); ValueError naming an unknown or missing field."""
        return _build(cls, data, cls.__name__)


# A field added after results were committed: left out of the JSON while it is None, so that the
# files written before it convert back to themselves.
LATER = {"later": True}


def _plain(value):
    if isinstance(value, Record):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (f.metadata.get("later") and getattr(value, f.name) is None)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls, data, where):
    if not isinstance(data, dict):
        raise ValueError("%s: expected an object, got %r" % (where, type(data).__name__))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError("%s: unknown field%s %s (fields: %s)" % (
            where, "s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(fields)))
    missing = [name for name, f in fields.items() if name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError("%s: missing field%s %s" % (where, "s" if len(missing) > 1 else "",
                                                     ", ".join(missing)))
    return cls(**{k: _value(hints[k], v, "%s.%s" % (where, k)) for k, v in data.items()})


def _value(hint, data, where):
    if data is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _value(next(a for a in args if a is not type(None)), data, where)
    if hint is list:
        return _plain(list(data))
    if isinstance(hint, type) and issubclass(hint, Record):
        return _build(hint, data, where)
    if origin is list:
        return [_value(args[0], v, "%s[%d]" % (where, i)) for i, v in enumerate(data)]
    if origin is dict:
        return {k: _value(args[1], v, "%s[%r]" % (where, k)) for k, v in data.items()}
    return data


# ------------------------------------------------------------------ device-independent parts
@dataclasses.dataclass
class Row(Record):
    """One threshold setting on one sample set (``outputs.ExitOutputs.evaluate``)."""
    thresholds: list
    n: int
    exit_counts: list
    exit_fractions: list
    reach_fractions: list
    correct: int
    accuracy: float
    exit_accuracy: list
    measure: str = "entropy"  # the confidence measure the thresholds apply to


@dataclasses.dataclass
class Accuracy(Record):
    """Test accuracies: the main network (None without main.npz), the last exit, every exit."""
    main: float | None
    branchy_final: float
    per_exit: list

    def baseline(self):
        """The gains' reference: the main network's, else the last exit's."""
        return self.main if self.main is not None else self.branchy_final


@dataclasses.dataclass
class Macs(Record):
    """Multiply-accumulates per sample of each segment and each head."""
    segments: list
    heads: list


@dataclasses.dataclass
class Settings(Record):
    """How the net was measured: what the caller recorded (run folder, device flags, validation
    size, threads) and the measurement's own options and candidate set."""
    run_dir: str | None = None
    device: str | None = None
    stock_chainer: bool | None = None
    gpu_only: bool | None = None
    val_size: int | None = None
    preprocessing: str | None = None
    threads_requested: dict | None = None
    fast_cpu: bool | None = None
    test_samples: int | None = None
    val_samples: int | None = None
    timing_samples: int | None = None
    throughput_samples: int | None = None
    throughput_batch: int | None = None
    repeats: int | None = None
    warmup: int | None = None
    inc_amt: float | None = None
    threshold_list: list | None = None
    candidates: str | None = None
    knee_rule: str | None = None
    cuda_graphs: bool | None = dataclasses.field(default=None, metadata=LATER)  # GPU batch 1

    def batch1_text(self):
        """How a GPU measurement ran batch 1 (results from before the graphs record nothing)."""
        return "as CUDA graphs" if self.cuda_graphs else "on plain Chainer (no CUDA graphs)"


@dataclasses.dataclass
class Hardware(Record):
    cpu: str | None = None
    machine: str | None = None
    cpu_threads: dict | None = None
    gpu: str | None = None


@dataclasses.dataclass
class Environment(Record):
    """Where and how it ran (``branchynet.reporting.environment``)."""
    date: str | None = None
    command: str | None = None
    cwd: str | None = None
    hardware: Hardware | None = None
    platform: str | None = None
    versions: dict | None = None
    numpy_blas: str | None = None


# ------------------------------------------------------------------ one device's measurements
@dataclasses.dataclass
class Timing(Record):
    """ms per sample over the repeats: the median, the spread and each repeat's."""
    median: float
    min: float
    max: float
    repeats: list


@dataclasses.dataclass
class ExitTimes(Record):
    """Every segment and head timed at batch 1 (``timing.time_exits``)."""
    samples: int
    repeats: int
    warmup: int
    segment_ms: list
    head_ms: list
    segments: list[Timing]
    heads: list[Timing]
    thresholds: list | None = None

    def costs(self, heads=True):
        """{"segment_ms", "head_ms"} for ``costs.exit_costs``; the heads at 0 for the trunk-only
        accounting."""
        return {"segment_ms": self.segment_ms,
                "head_ms": self.head_ms if heads else [0.0] * len(self.head_ms)}


@dataclasses.dataclass
class TimedRun(Record):
    """A net timed end to end over some samples (``timing.time_calls``)."""
    samples: int
    batchsize: int
    repeats: int
    ms: float
    per_second: float | None
    detail: Timing


@dataclasses.dataclass
class BaselineRun(TimedRun):
    """A baseline timed at batch 1, with its accuracy on the timed samples."""
    accuracy_timed_samples: float | None = None


@dataclasses.dataclass
class Baselines(Record):
    """The main network (main.npz; None without it) and branchy.npz's final exit."""
    main: BaselineRun | None
    branchy_final: BaselineRun

    def reference(self):
        return self.main if self.main is not None else self.branchy_final


@dataclasses.dataclass
class Agreement(Record):
    """A real run's exits and accuracy against the analytic sweep on the same samples."""
    accuracy_real: float
    accuracy_analytic: float
    exit_counts_real: list
    exit_counts_analytic: list
    mismatched_samples: int
    agree: bool


@dataclasses.dataclass
class Check(Agreement):
    """A real early-exit run at batch 1 against its per-exit prediction."""
    name: str
    thresholds: list
    samples: int
    ms_measured: float
    ms_measured_detail: Timing
    ms_predicted_e2e: float
    ms_predicted_trunk: float
    measured_over_predicted: float | None
    gain_measured: float


@dataclasses.dataclass
class BatchedRun(Agreement):
    """A real early-exit run batched: throughput against the baseline's and the MAC bound."""
    name: str
    thresholds: list
    samples: int
    batchsize: int
    ms: float
    per_second: float | None
    speedup: float
    macs_per_sample: float
    mac_bound: float | None


@dataclasses.dataclass
class RowTimes(Record):
    """A row's ms per sample predicted from the per-exit times, end to end and trunk-only (the
    original's accounting), and the baseline's measured ms over each."""
    ms_e2e: float
    ms_trunk: float
    gain_e2e: float | None
    gain_trunk: float | None


@dataclasses.dataclass
class Choice(Record):
    """The paper's frontier of the grid's settings and its knee, as indices into the rows."""
    frontier: list
    knee: int


@dataclasses.dataclass
class Selection(Record):
    """Chosen by time: on test end to end and trunk-only, and on validation (None without one;
    its knee indexes ``Result.val_rows`` and, the grid being the same, ``Result.rows``)."""
    test: Choice
    test_trunk: Choice
    val: Choice | None


@dataclasses.dataclass
class DeviceResult(Record):
    """Everything measured on one device."""
    device: str
    exits: ExitTimes
    baselines: Baselines
    baseline_ms: float
    row_times: list[RowTimes]  # of Result.rows, in order
    val_times: list[RowTimes] | None  # of Result.val_rows
    paper_times: RowTimes | None  # of Result.paper_row
    selection: Selection
    checks: list[Check]
    batched_baseline: TimedRun
    batched: list[BatchedRun]

    def times(self, accounting):
        """The predicted ms of every row, "e2e" or "trunk"."""
        return [getattr(t, "ms_" + accounting) for t in self.row_times]


# ------------------------------------------------------------------ Table I rows
@dataclasses.dataclass
class PaperEntry(Record):
    """An entry of the paper's Table I or of the authors' notebooks."""
    accuracy: float | None = None
    ms: float | None = None
    gain: float | None = None
    thresholds: list | None = None
    exits: list | None = None


@dataclasses.dataclass
class TimedPart(Record):
    """What a row measured on the timed images only."""
    samples: int
    accuracy: float | None
    exits: list | None
    ms_measured: float | None
    gain_measured: float | None
    ms_e2e: float | None = None
    ms_trunk: float | None = None
    gain_e2e: float | None = None
    gain_trunk: float | None = None


@dataclasses.dataclass
class TableRow(Record):
    """One row of Table I (``branchynet.reporting.rows``): whole-test-set accuracy and exit %,
    predicted and measured times and gains, the timed part, the authors' entries; rows of several
    runs (``combine_runs``) add ``runs``, the standard deviations and each run's thresholds."""
    device: str
    network: str
    row: str
    thresholds: list | None = None
    test_samples: int | None = None
    accuracy: float | None = None
    exits: list | None = None
    ms_measured: float | None = None
    ms_e2e: float | None = None
    ms_trunk: float | None = None
    gain_measured: float | None = None
    gain_e2e: float | None = None
    gain_trunk: float | None = None
    timed: TimedPart | None = None
    paper: PaperEntry | None = None
    notebook: PaperEntry | None = None
    runs: int | None = None
    accuracy_sd: float | None = None
    exits_sd: list | None = None
    thresholds_per_run: list | None = None


# ------------------------------------------------------------------ the whole result
@dataclasses.dataclass
class Result(Record):
    """A net measured (``table1.evaluate``): the schema of ``results.json``."""
    network: str
    family: str | None
    dataset: str
    net_config: dict | None
    environment: Environment | None
    settings: Settings
    accuracy: Accuracy
    val_baseline_accuracy: float | None
    macs: Macs
    paper_thresholds: list | None
    paper_row: Row | None
    paper_row_in_grid: bool | None
    rows: list[Row]
    val_rows: list[Row] | None
    devices: dict[str, DeviceResult]
    macs_reference_M: Macs | None = None
    table: list[TableRow] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, path):
        """The result in the file ``path`` (a results.json)."""
        with open(path) as f:
            data = json.load(f)
        try:
            return cls.from_json(data)
        except ValueError as err:
            raise ValueError("%s: %s (written by another version of experiments/measure.py? "
                             "measure the run again)" % (path, err)) from None
