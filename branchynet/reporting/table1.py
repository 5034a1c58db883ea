"""Table I of several networks from their result files (``results.json`` under a results root):
ours beside the authors' (the paper's table and their notebooks' outputs), in two parts, each on
one sample set:

* accuracy and exit shares on the whole test set: where several *comparable* runs of a network
  exist (any <results-root>/*/results.json of the same network whose run folder's run.json has the
  same network arguments, loss weights, schedule, batch size, optimizer, training images,
  validation split and no other run's pretrained trunk), their mean and sample standard deviation;
* batch-1 time, per device, of one run (<results-root>/<network>), with the accuracy and exit
  shares of the images that were timed.

GPU rows come from that file when it has them, else from <results-root>/gpu/<network>/results.json.
A network (or a device) without results still gets the authors' rows, marked "not run", with the
command that would produce them. ``assemble`` gathers, ``render`` writes the Markdown.
"""
import dataclasses
import glob
import os

from branchynet.evaluation import frontier
from branchynet.evaluation.results import Accuracy, Environment, Record, Result, Settings, TableRow
from branchynet.model import serialization
from branchynet.reporting import paper, tables
from branchynet.reporting import rows as table_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NETWORKS = ("b-lenet", "b-alexnet", "b-resnet110")
MEASURE = "python experiments/measure.py --network %s"
# the paper's family of each of its networks' result folders
FAMILIES = {schedule["network"]: family for family, schedule in paper.SCHEDULES.items()}
DEVICES = ("cpu", "gpu")
# run.json entries that must agree for two runs' accuracies to be averaged (seed and device may
# differ: that is the spread being measured)
COMPARABLE = ("network", "net_kwargs", "loss_weights", "schedule", "batchsize", "train_subset",
              "optimizer", "main_from", "val_size", "split")


@dataclasses.dataclass
class NetworkStatus(Record):
    """What Table I found of one network: its results file (``path``, relative to the repository)
    and what it records, and the GPU machine's (results/gpu/<network>) where there is one."""
    found: bool
    path: str
    family: str | None = None
    environment: Environment | None = None
    settings: Settings | None = None
    accuracy: Accuracy | None = None
    schedule: dict | None = None
    gpu_environment: Environment | None = None
    gpu_settings: Settings | None = None


@dataclasses.dataclass
class RunRows(Record):
    """One run's accuracy rows, behind a mean of several."""
    results: str
    rows: list[TableRow]


@dataclasses.dataclass
class Table1(Record):
    """Everything Table I shows (``table1.json``): the accuracy rows (means over comparable runs),
    the time rows (one run per network and device), each network's status, per network the
    comparable runs and those left out with why, each run's rows where there are several, notes."""
    accuracy_rows: list[TableRow]
    time_rows: list[TableRow]
    networks: dict[str, NetworkStatus]
    runs: dict
    per_run: dict[str, list[RunRows]]
    notes: list


def _placeholder(network, device, why):
    family = FAMILIES.get(network)
    names = table_rows.display_names(family, network)
    return [TableRow(device=device, network=names[0], row=why,
                     paper=table_rows.paper_entry(family, device, False),
                     notebook=table_rows.notebook_entry(family, device, False)),
            TableRow(device=device, network=names[1], row=why,
                     thresholds=list(frontier.paper_thresholds(family)) if family else None,
                     paper=table_rows.paper_entry(family, device, True),
                     notebook=table_rows.notebook_entry(family, device, True))]


def _read(path):
    return Result.load(path) if os.path.exists(path) else None


def _run_info(result):
    return serialization.read_run_info(os.path.join(ROOT, result.settings.run_dir))


def schedule_of(family, run_dir):
    """{"trained": "M + J epochs, batch B" or None, "paper": the same for the paper's schedule,
    "matches": bool or None} for a network of paper ``family`` (or None) trained in ``run_dir``
    (relative to the repository), from its run.json ("paper" and "matches" None for a net of no
    paper family)."""
    ref = paper.SCHEDULES.get(family)
    text = "%d + %d epochs, batch %d"
    run = serialization.read_run_info(os.path.join(ROOT, run_dir))
    out = {"paper": text % (ref["main_epochs"], ref["joint_epochs"], ref["batchsize"]) if ref else None,
           "trained": None, "matches": None}
    if run is not None:
        out["trained"] = text % (run["schedule"]["main_epochs"], run["schedule"]["joint_epochs"],
                                 run["batchsize"])
        out["matches"] = (not run["train_subset"] and out["trained"] == out["paper"]) if ref else None
        if run["train_subset"]:
            out["trained"] += ", %d training images" % run["train_subset"]
    return out


def _schedule_text(schedule):
    if schedule["trained"] is None:
        return "training schedule unknown (no run.json in the run folder)"
    if schedule["matches"]:
        return "trained with the paper's schedule (%s)" % schedule["paper"]
    if schedule["paper"] is None:
        return "trained %s" % schedule["trained"]
    return ("trained %s, NOT the paper's schedule (%s): its accuracies and exit shares are not "
            "comparable with the paper's" % (schedule["trained"], schedule["paper"]))


def _differences(info, other):
    return [k for k in COMPARABLE if info.get(k) != other.get(k)]


def find_runs(results_root, network, primary):
    """The comparable runs of ``network`` (``primary`` first: <results-root>/<network>), and the
    other results folders of that network that are not, with why; as
    ``([(folder, result, run_info)], [(folder, reason)])``."""
    folder = os.path.join(results_root, network)
    info = _run_info(primary)
    runs, excluded = [(folder, primary, info)], []
    for path in sorted(glob.glob(os.path.join(results_root, "*", "results.json"))):
        other_folder = os.path.dirname(path)
        if os.path.abspath(other_folder) == os.path.abspath(folder):
            continue
        other = _read(path)
        if other.network != network:
            continue
        other_info = _run_info(other)
        if info is None or other_info is None:
            excluded.append((other_folder, "no run.json to compare"))
            continue
        differ = _differences(info, other_info)
        if other.settings.test_samples != primary.settings.test_samples:
            differ.append("test_samples")
        if "cpu" not in other.devices:
            differ.append("no CPU evaluation")
        if differ:
            excluded.append((other_folder, "differs in " + ", ".join(differ)))
        else:
            runs.append((other_folder, other, other_info))
    return runs, excluded


def _rel(path):
    return os.path.relpath(path, ROOT)


def _exit_note(rows):
    """Where our exit mix at the paper's T is the notebooks' (within 2 points) and not the paper's
    table's (5 points or more apart), says so with the numbers."""
    notes = []
    for row in rows:
        nb, p = row.notebook, row.paper
        if row.row != "paper T" or not nb or not p or row.exits is None:
            continue
        far = lambda theirs: max(abs(a - b) for a, b in zip(row.exits, theirs))  # noqa: E731
        if far(nb.exits) <= 2 and far(p.exits) >= 5:
            notes.append(
                "%s at the paper's T: our exit mix (%s %%) matches the authors' notebook's (%s %%; "
                "at most %.1f points apart), not the paper's Table I (%s %%; up to %.1f points "
                "apart): the paper's numbers come from another training run than the notebook's."
                % (row.network, " / ".join("%.1f" % v for v in row.exits),
                   " / ".join("%g" % v for v in nb.exits), far(nb.exits),
                   " / ".join("%g" % v for v in p.exits), far(p.exits)))
    return notes


DISTURBED = 1.5  # measured / predicted ms beyond which (or below whose inverse) a timing is flagged


def _preprocessing_notes(results_root, found):
    """Each measured run folder of a network (<network>/<run>/measure/results.json) whose CIFAR-10
    preprocessing is not the table's: its main network's test accuracy beside the table's and the
    paper's (the authors' data.npz recipe is unknown, docs/original.md#data)."""
    notes = []
    for network, primary in sorted(found.items()):
        own = (_run_info(primary) or {}).get("preprocessing") or "gcn"
        table_paper = paper.TABLE1.get(primary.family, {}).get("cpu", {}).get("baseline", {})
        pattern = os.path.join(results_root, network, "*", "measure", "results.json")
        for path in sorted(glob.glob(pattern)):
            other = _read(path)
            recipe = (_run_info(other) or {}).get("preprocessing") or "gcn"
            if recipe == own:
                continue
            notes.append("%s with the %s preprocessing (%s, %s): main network %.2f %% on test, "
                         "against %.2f %% with %s (these rows)%s." % (
                             network, recipe, _rel(os.path.join(ROOT, other.settings.run_dir)),
                             _rel(path), 100 * other.accuracy.main, 100 * primary.accuracy.main,
                             own, "" if not table_paper else " and the paper's %.2f %%"
                             % table_paper["accuracy"]))
    return notes


def _timing_notes(rows):
    """A real run should take about what its per-exit costs predict; where it took far longer (or
    shorter), the machine was busy during one of the timings and the row's measured ms says so."""
    notes, worst = [], {}
    for row in rows:
        timed = row.timed
        if timed is not None and timed.ms_measured and timed.ms_e2e:
            ratio = timed.ms_measured / timed.ms_e2e
            if ratio > DISTURBED or ratio < 1 / DISTURBED:
                worst.setdefault((row.device, row.network), []).append((row.row, ratio))
    for (device, network), bad in worst.items():
        notes.append("%s %s: measured ms are %s the per-exit prediction for the same images: the "
                     "machine was busy during some of these timings, and these measured ms and "
                     "gains are unreliable."
                     % (device.upper(), network,
                        ", ".join("%.2fx (%s)" % (r, label) for label, r in bad)))
    return notes


def _find(results_root, network_names):
    """({network: result}, {network: GPU machine's result}, notes on the missing ones)."""
    found, found_gpu, notes = {}, {}, []
    for network in network_names:
        path = os.path.join(results_root, network, "results.json")
        gpu_result = _read(os.path.join(results_root, "gpu", network, "results.json"))
        if gpu_result is not None:
            found_gpu[network] = gpu_result
        if os.path.exists(path):
            found[network] = _read(path)
        else:
            notes.append("%s: no results (%s not found); run `%s`." % (network, path, MEASURE % network))
    return found, found_gpu, notes


def _device_rows(found, found_gpu, network, device):
    result = found.get(network)
    ours = table_rows.result_rows(result, device) if result is not None else []
    if not ours and device == "gpu" and network in found_gpu:
        ours = table_rows.result_rows(found_gpu[network], device)
    return ours


def _accuracy_part(results_root, network_names, found, found_gpu, notes):
    """(accuracy rows, runs, per_run): per network the mean over its comparable runs, and GPU
    knees that differ from the CPU's as rows of their own."""
    accuracy_rows, runs, per_run = [], {}, {}
    for network in network_names:
        result = found.get(network)
        if result is None or "cpu" not in result.devices:
            gpu = (_device_rows(found, found_gpu, network, "gpu")
                   if result is not None or network in found_gpu else [])
            accuracy_rows += (table_rows.combine_runs([gpu]) if gpu
                              else _placeholder(network, "cpu", "not run")[:2])
            continue
        comparable, excluded = find_runs(results_root, network, result)
        rows_per_run = [table_rows.result_rows(r, "cpu") for _, r, _ in comparable]
        accuracy_rows += table_rows.combine_runs(rows_per_run)
        runs[network] = {"comparable": [{"results": _rel(f), "run": r.settings.run_dir,
                                         "seed": i.get("seed") if i else None,
                                         "trained_on": i.get("device") if i else None}
                                        for f, r, i in comparable],
                         "excluded": [{"results": _rel(f), "why": why} for f, why in excluded]}
        if len(comparable) > 1:
            per_run[network] = [RunRows(results=_rel(f), rows=rows)
                                for (f, _, _), rows in zip(comparable, rows_per_run)]
        accuracy_rows += _gpu_knees(rows_per_run[0], _device_rows(found, found_gpu, network, "gpu"),
                                    notes)
    return accuracy_rows, runs, per_run


def _gpu_knees(cpu_rows, gpu_rows, notes):
    """The GPU's knees are chosen on GPU times: a different T gets its own accuracy row."""
    extra = []
    cpu_keys = {(r.row, tuple(r.thresholds or ())): r for r in cpu_rows}
    for row in gpu_rows:
        key = (row.row, tuple(row.thresholds or ()))
        if key not in cpu_keys:
            extra += table_rows.combine_runs([[dataclasses.replace(row, row=row.row + ", GPU times")]])
        elif abs(cpu_keys[key].accuracy - row.accuracy) > 1e-9:
            notes.append("%s %s: the GPU evaluation gives %.2f %%, the CPU's %.2f %%."
                         % (row.network, row.row, row.accuracy, cpu_keys[key].accuracy))
    return extra


def _time_part(network_names, found, found_gpu, notes):
    time_rows = []
    for device in DEVICES:
        for network in network_names:
            if network not in found and network not in found_gpu:
                time_rows += _placeholder(network, device, "not run")
                continue
            ours = _device_rows(found, found_gpu, network, device)
            if ours:
                time_rows += ours
            else:
                time_rows += _placeholder(network, device, "no %s run" % device.upper())
                if device == "gpu":
                    notes.append("%s: no GPU results (rerun its script with --device @cupy:0)."
                                 % network)
    return time_rows


def assemble(results_root, network_names):
    """Everything Table I shows, a ``Table1``."""
    found, found_gpu, notes = _find(results_root, network_names)
    accuracy_rows, runs, per_run = _accuracy_part(results_root, network_names, found, found_gpu, notes)
    time_rows = _time_part(network_names, found, found_gpu, notes)
    notes += _exit_note(accuracy_rows)
    notes += _preprocessing_notes(results_root, found)
    notes += _timing_notes(time_rows)
    status = {}
    for n in network_names:
        status[n] = NetworkStatus(found=n in found, path=_rel(os.path.join(results_root, n, "results.json")))
        if n in found:
            r = found[n]
            status[n] = dataclasses.replace(status[n], family=r.family, environment=r.environment,
                                            settings=r.settings, accuracy=r.accuracy,
                                            schedule=schedule_of(r.family, r.settings.run_dir))
        if n in found_gpu:
            status[n].gpu_environment = found_gpu[n].environment
            status[n].gpu_settings = found_gpu[n].settings
    return Table1(accuracy_rows=accuracy_rows, time_rows=time_rows, networks=status, runs=runs,
                  per_run=per_run, notes=notes)


def threads_text(threads):
    """"1 BLAS thread, 1 fast-kernel thread" from a results.json's cpu_threads (what was got)."""
    parts = []
    for key, what in (("openblas_threads", "BLAS"), ("fast_kernel_threads", "fast-kernel")):
        n = (threads or {}).get(key)
        if n is not None:
            parts.append("%d %s thread%s" % (n, what, "" if n == 1 else "s"))
    return ", ".join(parts) or "thread settings not recorded"


def _network_line(network, s):
    env, settings = s.environment, s.settings
    return ("%s: %s; time part: %s (weights %s), %s, timing on the first %d of %d test images "
            "x %d repeats; CPU %s, %s%s."
            % (network, _schedule_text(s.schedule), s.path.rsplit("/", 1)[0],
               settings.run_dir, env.date, settings.timing_samples, settings.test_samples,
               settings.repeats, env.hardware.cpu, threads_text(env.hardware.cpu_threads),
               ", GPU %s" % env.hardware.gpu if env.hardware.gpu else ""))


def header_lines(table):
    """One line per network (and per network's GPU rows): what ran, when, on which images."""
    lines = []
    for network, s in table.networks.items():
        if s.found:
            runs = table.runs.get(network, {}).get("comparable", [])
            lines.append(_network_line(network, s))
            if len(runs) > 1:
                lines.append(
                    "%s: accuracy part: mean ± sample standard deviation over %d comparable runs (%s)."
                    % (network, len(runs), ", ".join(
                        "%s: seed %s, trained on %s" % (r["results"], r["seed"],
                                                         "GPU" if "cupy" in (r["trained_on"] or "")
                                                         else "CPU")
                        for r in runs)))
        gpu_env = s.gpu_environment
        if gpu_env is not None and not (s.found and s.environment.hardware.gpu):
            lines.append("%s, GPU rows: %s on the GPU machine (GPU %s, its CPU %s), timing on the "
                         "first %d test images x %d repeats, batch 1 %s, results/gpu/%s."
                         % (network, gpu_env.date, gpu_env.hardware.gpu, gpu_env.hardware.cpu,
                            s.gpu_settings.timing_samples, s.gpu_settings.repeats,
                            s.gpu_settings.batch1_text(), network))
    return lines


def render(table):
    """(table1.md, table1_runs.md) texts."""
    lines = ["# Table I: ours beside the authors'", "", tables.LEGEND]
    lines += ["* " + line for line in header_lines(table)]
    lines += ["* " + note for note in table.notes]
    text = ("\n".join(lines) + "\n\n## Accuracy and exits: all test images\n\n"
            + tables.accuracy_table(table.accuracy_rows)
            + "\n## Batch-1 time: one run per network, on the timed images only\n\n"
            + tables.time_table(table.time_rows))
    runs = ["# Table I: each run behind a mean", "",
            "The accuracy part of [table1.md](table1.md) averages these runs (accuracy and exit % "
            "on all test images, the CPU evaluation of each run's weights).", ""]
    for network, info in table.runs.items():
        for entry in table.per_run.get(network, []):
            runs += ["## %s" % entry.results, "", tables.accuracy_table(entry.rows)]
        if info["excluded"]:
            runs += ["%s: results not averaged:" % network, ""]
            runs += ["* %s: %s" % (e["results"], e["why"]) for e in info["excluded"]]
            runs.append("")
    return text, "\n".join(runs).rstrip("\n") + "\n"


