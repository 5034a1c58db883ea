"""Table I and the README's results block against the committed result files: each number shown
comes from a file, each column names the sample set it was computed on, several runs give a mean
and spread, and the authors' second set of numbers (their notebooks) stands beside the paper's."""
import json
import os
import subprocess
import sys

import pytest

import branchynet  # noqa: F401
from branchynet.evaluation.results import Result, TableRow, TimedPart
from branchynet.reporting import paper, readme, table1, tables
from branchynet.reporting import rows as table_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(ROOT, "results")


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def _result(folder):
    return Result.load(os.path.join(RESULTS, folder, "results.json"))


@pytest.fixture(scope="module")
def table():
    return table1.assemble(RESULTS, list(table1.NETWORKS))


def test_readme_block_is_what_the_result_files_give():
    """Fails if a number in the README's block is edited by hand, or the results change without
    `python experiments/readme_results.py`."""
    text = _read("README.md")
    assert readme.current_block(text) == readme.block(RESULTS)


def test_committed_table1_is_what_the_result_files_give(table):
    text, runs_text = table1.render(table)
    assert _read("results", "table1.md") == text
    assert _read("results", "table1_runs.md") == runs_text


def _script(*args):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "readme_results.py")]
                          + list(args), cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc.returncode


def test_the_check_flag_catches_a_hand_edited_number(tmp_path):
    path = tmp_path / "README.md"
    good = _read("README.md")
    path.write_text(good)
    assert _script("--readme", str(path), "--check") == 0
    edited = good.replace("| 99.04 ± ", "| 99.05 ± ", 1)
    assert edited != good
    path.write_text(edited)
    assert _script("--readme", str(path), "--check") == 1
    assert _script("--readme", str(path)) == 0  # regenerating restores it
    assert path.read_text() == good


def test_each_part_of_table1_is_on_one_sample_set(table):
    """The accuracy part is on all test images; every column of the time part on the timed images
    (the measured ms's images), not the whole test set."""
    md = _read("results", "table1.md")
    assert "## Accuracy and exits: all test images" in md
    assert "| Timed images | Acc % (timed) | Exit % (timed) | ms measured |" in md
    for network, dev, path in (("B-LeNet", "cpu", "b-lenet"), ("B-AlexNet", "gpu", "gpu/b-alexnet")):
        result = _result(path)
        check = next(c for c in result.devices[dev].checks
                     if c.thresholds == result.paper_thresholds)
        row = next(r for r in table.time_rows if r.device == dev and r.network == network
                   and r.row == "paper T")
        n = result.settings.timing_samples
        assert n < result.settings.test_samples
        assert row.timed.samples == check.samples == n
        assert row.timed.accuracy == pytest.approx(100 * check.accuracy_real)
        assert row.timed.exits == pytest.approx([100 * c / n for c in check.exit_counts_real])
        assert row.timed.ms_e2e == check.ms_predicted_e2e  # predicted for those images
        assert "| %s | %s | paper T | %s | first %d | %.2f |" % (
            dev.upper(), network, tables._thresholds(check.thresholds), n,
            100 * check.accuracy_real) in md
        # the two sets really differ here: a table mixing them would mislead
        assert row.timed.accuracy != pytest.approx(100 * result.paper_row.accuracy)


def test_combine_runs_gives_mean_and_sample_sd():
    def rows(acc, exits, t):
        return [TableRow(device="cpu", network="B", row="paper T", thresholds=[t], accuracy=acc,
                         exits=exits)]
    combined = table_rows.combine_runs([rows(99.0, [90.0, 10.0], 0.1), rows(98.0, [94.0, 6.0], 0.1),
                                    rows(99.5, [92.0, 8.0], 0.5)])[0]
    assert combined.runs == 3
    assert combined.accuracy == pytest.approx(98.833333333)
    assert combined.accuracy_sd == pytest.approx(0.763762616)  # n - 1 in the denominator
    assert combined.exits == pytest.approx([92.0, 8.0])
    assert combined.exits_sd == pytest.approx([2.0, 2.0])
    assert combined.thresholds_per_run == [[0.1], [0.1], [0.5]]
    cells = tables._accuracy_cells(combined)
    assert cells[2] == "0.1 / 0.1 / 0.5" and cells[4] == "98.83 ± 0.76"
    assert table_rows.combine_runs([rows(99.0, [90.0, 10.0], 0.1)])[0].accuracy_sd is None
    with pytest.raises(ValueError):
        table_rows.combine_runs([rows(99.0, [90.0, 10.0], 0.1), []])


def test_b_lenet_accuracy_is_the_mean_of_its_comparable_runs(table):
    runs = table.runs["b-lenet"]
    folders = [r["results"] for r in runs["comparable"]]
    assert folders[0] == "results/b-lenet"
    assert sorted(folders) == ["results/b-lenet", "results/b-lenet-gpu-trained",
                               "results/b-lenet-seed1", "results/b-lenet-seed2"]
    # joint training from another run's trunk, or with other loss weights, is not the same experiment
    assert {e["results"] for e in runs["excluded"]} >= {"results/b-lenet-joint-code",
                                                        "results/b-lenet-seed1-joint-slides"}
    accs = [100 * _result(f.split("/", 1)[1]).paper_row.accuracy for f in folders]
    row = next(r for r in table.accuracy_rows if r.network == "B-LeNet" and r.row == "paper T")
    assert row.runs == 4
    assert row.accuracy == pytest.approx(sum(accs) / 4)
    mean = sum(accs) / 4
    assert row.accuracy_sd == pytest.approx((sum((a - mean) ** 2 for a in accs) / 3) ** 0.5)
    # one run each for the others
    assert all(r.runs == 1 for r in table.accuracy_rows if "AlexNet" in r.network)
    assert "B-LeNet | paper T | 0.025 | 4 | %.2f ± %.2f |" % (row.accuracy, row.accuracy_sd) \
        in _read("README.md")


def test_the_notebooks_numbers_stand_beside_the_papers(table):
    # docs: the study of the original, section 5.2 (saved notebook outputs)
    assert paper.NOTEBOOK["lenet"]["cpu"] == {"baseline": {"accuracy": 99.07, "ms": 2.79},
                                              "branchy": {"accuracy": 99.25, "ms": 0.56, "gain": 4.96}}
    assert paper.NOTEBOOK["lenet"]["exits"] == (93.95, 6.05)
    assert paper.NOTEBOOK["alexnet"]["cpu"] == {"baseline": {"accuracy": 77.76, "ms": 5.26},
                                                "branchy": {"accuracy": 79.36, "ms": 4.11, "gain": 1.28}}
    assert paper.NOTEBOOK["alexnet"]["exits"] == (43.61, 35.79, 20.6)
    assert paper.NOTEBOOK["alexnet"]["thresholds"] == paper.TABLE1["alexnet"]["thresholds"]
    assert "resnet110" not in paper.NOTEBOOK and "gpu" not in paper.NOTEBOOK["lenet"]
    md = _read("results", "table1.md")
    assert ("| B-AlexNet | paper T | 0.0001, 0.05 | 1 | 78.28 | 79.19 | 79.36 | -0.91 | "
            "44.42, 36.08, 19.50 | 65.60, 25.20, 9.20 | 43.61, 35.79, 20.60 |") in md
    assert "| 0.62 | 5.40x | 0.56 | 4.96x |" in md  # B-LeNet's CPU times: paper, notebook
    assert "our exit mix (44.4 / 36.1 / 19.5 %) matches the authors' notebook's" in md
    assert "our exit mix (44.4 / 36.1 / 19.5 %) matches the authors' notebook's" in _read("README.md")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs to tell 1 thread from 2")
def test_measurement_fixes_and_records_its_threads(tmp_path):
    """Whatever the caller's environment says, the script times with the threads its flags say
    (default 1 and 1) and results.json records them."""
    env = dict(os.environ, BRANCHYNET_CPU_THREADS="2")
    env.pop("OPENBLAS_NUM_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    common = ["--run-dir", os.path.join(RESULTS, "b-lenet", "run"), "--test-subset", "100",
              "--timing-samples", "5", "--repeats", "1", "--warmup", "1", "--no-progress"]
    recorded = {}
    for name, flags in (("default", []), ("two", ["--blas-threads", "2", "--kernel-threads", "2"])):
        out = tmp_path / name
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "measure.py"),
                               "--network", "b-lenet"] + common + flags + ["--results", str(out)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = Result.load(out / "results.json")
        recorded[name] = (result.settings.threads_requested, result.environment.hardware.cpu_threads)
    requested, got = recorded["default"]
    assert requested == {"blas_threads": 1, "kernel_threads": 1}
    assert got["fast_kernel_threads"] == 1 and got["BRANCHYNET_CPU_THREADS"] == "2"
    assert got["openblas_threads"] in (1, None)  # None: numpy's BLAS is not an OpenBLAS
    requested, got = recorded["two"]
    assert requested == {"blas_threads": 2, "kernel_threads": 2}
    assert got["fast_kernel_threads"] == 2 and got["openblas_threads"] in (2, None)
    assert "1 BLAS thread, 1 fast-kernel thread" == table1.threads_text(recorded["default"][1]) \
        or recorded["default"][1]["openblas_threads"] is None


def _gain_at(result, dev, thresholds, key="gain_measured"):
    rows = table_rows.result_rows(result, dev)
    return next(getattr(r.timed, key) for r in rows if r.thresholds == thresholds
                and r.row != "final exit (branchy.npz)")


def _doc_quotes():
    """(phrase, where its numbers come from) for the numbers docs/results.md quotes from the files."""
    lenet, alex, resnet = _result("b-lenet"), _result("b-alexnet"), _result("b-resnet110")
    g_lenet, g_alex, g_resnet = (_result("gpu/b-lenet"), _result("gpu/b-alexnet"),
                                 _result("gpu/b-resnet110"))
    val = lenet.rows[lenet.devices["cpu"].selection.val.knee]
    alex_knee = alex.rows[alex.devices["cpu"].selection.test.knee]
    resnet_knee = resnet.rows[resnet.devices["cpu"].selection.test.knee]
    cpu_exits = resnet.devices["cpu"].exits

    def base_ms(r, dev):
        return r.devices[dev].baselines.main.ms

    def paper_t(r):
        return r.paper_thresholds

    return [
        ("Baseline %.2f %% (paper 99.20)" % (100 * lenet.accuracy.main), "b-lenet"),
        ("%.2f %% of the test digits leave at exit 1" % (100 * lenet.paper_row.exit_fractions[0]),
         "b-lenet"),
        ("accuracy is %.2f %%" % (100 * lenet.paper_row.accuracy), "b-lenet"),
        ("(T = %g) give %.2f %% with %.1f %% leaving early"
         % (val.thresholds[0], 100 * val.accuracy, 100 * (1 - val.exit_fractions[-1])),
         "b-lenet"),
        ("%.2fx measured on the first %d test digits (%.2fx at the val-chosen T)"
         % (_gain_at(lenet, "cpu", [0.025]), lenet.settings.timing_samples,
            _gain_at(lenet, "cpu", val.thresholds)), "b-lenet timing"),
        ("trunk-only accounting of the same timings gives %.2fx"
         % _gain_at(lenet, "cpu", [0.025], "gain_trunk"), "b-lenet timing"),
        ("Baseline %.2f %% (paper 78.38" % (100 * alex.accuracy.main), "b-alexnet"),
        ("T = (0.0001, 0.05) %.2f %%" % (100 * alex.paper_row.accuracy), "b-alexnet"),
        ("(%s %%" % " / ".join("%.1f" % (100 * f) for f in alex.paper_row.exit_fractions),
         "b-alexnet"),
        ("(%.2fx; trunk-only %.2fx, paper 1.50x" % (_gain_at(alex, "cpu", paper_t(alex)),
                                                    _gain_at(alex, "cpu", paper_t(alex), "gain_trunk")),
         "b-alexnet timing"),
        ("is T = (%g, %g): %.2f %%, %.2fx" % (alex_knee.thresholds[0], alex_knee.thresholds[1],
                                             100 * alex_knee.accuracy,
                                             _gain_at(alex, "cpu", alex_knee.thresholds)),
         "b-alexnet"),
        ("baseline %.1f %%, paper 80.7" % (100 * resnet.accuracy.main), "b-resnet110"),
        ("a ResNet-110 sample takes %.1f ms on this CPU (paper 137 ms) and %.1f ms on the H100"
         % (base_ms(resnet, "cpu"), base_ms(g_resnet, "gpu")), "b-resnet110 timing"),
        ("48 M MACs, %.2f ms on the CPU) costs %d times its trunk segment (0.39 M MACs, %.2f ms)"
         % (cpu_exits.head_ms[0], round(cpu_exits.head_ms[0] / cpu_exits.segment_ms[0]),
            cpu_exits.segment_ms[0]), "b-resnet110 timing"),
        ('"all at exit 1" (%.1f %%, %.1fx)' % (100 * resnet_knee.accuracy,
                                               _gain_at(resnet, "cpu", resnet_knee.thresholds)),
         "b-resnet110"),
        ("LeNet %.2f ms against %.3f ms, AlexNet %.2f against %.2f, ResNet-110 %.1f against %.1f"
         % (base_ms(g_lenet, "gpu"), base_ms(lenet, "cpu"), base_ms(g_alex, "gpu"),
            base_ms(alex, "cpu"), base_ms(g_resnet, "gpu"), base_ms(resnet, "cpu")), "timing"),
        ("(B-LeNet at the paper's T %.2fx, B-AlexNet %.2fx, the short-trained B-ResNet %.2fx)"
         % tuple(_gain_at(r, "gpu", paper_t(r)) for r in (g_lenet, g_alex, g_resnet)), "gpu"),
        ("gives %.2fx, %.2fx and %.2fx (paper 4.70x, 2.40x, 1.90x"
         % tuple(_gain_at(r, "gpu", paper_t(r), "gain_trunk") for r in (g_lenet, g_alex, g_resnet)),
         "gpu"),
    ]


def test_docs_results_quotes_the_result_files():
    """docs/results.md's numbers, where they quote a result file, are that file's."""
    text = " ".join(_read("docs", "results.md").split())
    missing = [(phrase, source) for phrase, source in _doc_quotes() if phrase not in text]
    assert not missing, missing


def test_docs_results_quotes_the_weighting_report():
    """docs/results.md's sample-weighting table and sentences are the committed report's numbers."""
    report = json.loads(_read("results", "b-lenet", "weighting", "report.json"))
    summary = report["summary"]

    def row(label, key):
        return "| %s | %s |" % (label, " | ".join(
            "%.2f ± %.2f" % (100 * summary[g][key]["mean"], 100 * summary[g][key]["std"])
            for g in ("fixed", "soft_exit")))
    (comparison,) = report["comparisons"]
    verdicts = [r["verdict"] for r in comparison["rows"] if r["direction"]]
    (helps,) = [r for r in comparison["rows"] if r["verdict"] == "helps"]
    exit2 = [r["exit_accuracy"]["test"][1] for r in report["runs"]["fixed"]]
    phrases = [row("exit 1 alone", "test_exit1_accuracy"), row("exit 2 alone", "test_exit2_accuracy"),
               row("early exit at T = 0.025: accuracy", "at_thresholds_accuracy"),
               row("early exit at T = 0.025: cost (% of the baseline's MACs)", "at_thresholds_cost"),
               row("exact frontier within 25 % of the cost", "frontier_accuracy_at_0.25"),
               "the main network: %.2f %%" % (100 * summary["fixed"]["baseline_test"]["mean"]),
               "Of the %d metrics with a direction" % len(verdicts),
               "%d differ by less than the seeds' spread" % verdicts.count(
                   "no difference beyond the seed spread"),
               "within 21 % of the cost" if helps["key"] == "val_fitted_accuracy_at_0.21" else "?",
               "higher with SoftExit by %.2f pp" % (100 * helps["difference"]),
               "fixed-seed0's exit 2 is the low one, %.2f %%" % (100 * min(exit2))]
    text = " ".join(_read("docs", "results.md").split())
    assert [p for p in phrases if p not in text] == []
    at_t = summary["soft_exit"]["at_thresholds_accuracy"], summary["fixed"]["at_thresholds_accuracy"]
    readme = " ".join(_read("README.md").split())
    assert "at T = 0.025 %.2f ± %.2f %% against %.2f ± %.2f %% on test" % (
        100 * at_t[0]["mean"], 100 * at_t[0]["std"], 100 * at_t[1]["mean"], 100 * at_t[1]["std"]) in readme
    assert "(%d of %d metrics within the seed spread" % (
        verdicts.count("no difference beyond the seed spread"), len(verdicts)) in readme


def test_a_timing_far_from_its_prediction_is_flagged():
    def row(measured, predicted, label="paper T"):
        return TableRow(device="cpu", network="B-LeNet", row=label,
                        timed=TimedPart(samples=1000, accuracy=None, exits=None, ms_measured=measured,
                                        gain_measured=None, ms_e2e=predicted))
    assert table1._timing_notes([row(0.06, 0.057), row(0.05, 0.053, "knee (test)")]) == []
    notes = table1._timing_notes([row(0.06, 0.057), row(0.092, 0.040, "knee (test)")])
    assert len(notes) == 1 and "CPU B-LeNet: measured ms are 2.30x (knee (test))" in notes[0]
    assert table1._timing_notes([row(0.02, 0.057)])  # far faster is as suspect
