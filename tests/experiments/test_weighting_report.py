"""experiments/weighting_report.py end to end on tiny run folders: four B-LeNet runs of one joint
epoch on 256 images from the committed trunk (two with fixed loss weights, two with SoftExit), each
written by the library's training (run.json, log.jsonl, main.npz, branchy.npz); the report's
numbers checked against plain forward passes and real early-exit runs of the saved nets."""
import importlib.util
import json
from pathlib import Path

import numpy
import pytest

import chainer

import networks
from branchynet.data.split import load_split
from branchynet.training import runs

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "results" / "b-lenet" / "run" / "main.npz"
VAL_SIZE, TEST_SUBSET = 300, 1000

def _script():
    """experiments/weighting_report.py as a module (the scripts are no package)."""
    spec = importlib.util.spec_from_file_location("weighting_report",
                                                  ROOT / "experiments" / "weighting_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(folder, seed, weighting, flush=True):
    settings = runs.RunSettings(network="b-lenet", main_epochs=0, joint_epochs=1, batchsize=64,
                                seed=seed, val_size=VAL_SIZE, train_subset=256,
                                main_from=str(MAIN), sample_weighting=weighting, flush_denormals=flush)
    runs.train(settings, str(folder), networks.build, "mnist", "lenet", echo=lambda line: None)
    return str(folder)


def _plain_exit_accuracy(net, x, t):
    """Each exit's accuracy from the net's own segments and heads, one after the other."""
    right = []
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        h = x
        for segment, head in zip(net.segments, net.heads):
            h = segment(h)
            right.append(float((head(h).array.argmax(axis=1) == t).mean()))
    return right


@pytest.mark.skipif(not MAIN.exists(), reason="committed B-LeNet trunk not present")
def test_report_of_two_groups(tmp_path):
    groups = {"fixed": [_train(tmp_path / ("fixed-seed%d" % s), s, None, flush=s == 0) for s in (0, 1)],
              "soft_exit": [_train(tmp_path / ("soft-seed%d" % s), s, "soft_exit:0.5") for s in (0, 1)]}
    out = tmp_path / "report"
    argv = sum((["--group", name] + dirs for name, dirs in groups.items()), [])
    argv += ["--out", str(out), "--test-subset", str(TEST_SUBSET)]
    _script().main(argv)
    report = json.loads(Path(str(out) + ".json").read_text())

    assert report["names"] == ["fixed", "soft_exit"] and report["thresholds"] == [0.025]
    assert set(report) >= {"command", "runs", "summary", "comparisons", "curves", "cost_fractions"}
    (comparison,) = report["comparisons"]
    assert [r["key"] for r in comparison["rows"]] == [
        k for k in report["summary"]["fixed"] if not k.startswith(("baseline_", "val_exit"))]
    for row in comparison["rows"]:  # (so briefly trained, some never reach the baseline)
        decided = row["reference"]["n"] == row["group"]["n"] == 2
        assert (row["verdict"] in ("helps", "hurts", "higher", "lower",
                                   "no difference beyond the seed spread")) == decided, row
    assert len(report["curves"]["cost"]) == len(report["curves"]["groups"]["soft_exit"]["mean"])

    _, _, (x_test, t_test) = load_split("mnist", VAL_SIZE)
    x, t = x_test[:TEST_SUBSET], t_test[:TEST_SUBSET]
    for name, dirs in groups.items():
        for d, run in zip(dirs, report["runs"][name]):
            assert run["run"] == d and run["n"] == {"val": VAL_SIZE, "test": TEST_SUBSET}
            assert run["description"]["val_matches_log"]  # the trainer's own val accuracy
            net, main = networks.load_run(d)
            assert run["exit_accuracy"]["test"] == pytest.approx(_plain_exit_accuracy(net, x, t),
                                                                 abs=1e-12)
            assert run["baseline"]["test"] == pytest.approx(_plain_exit_accuracy(main, x, t)[-1],
                                                            abs=1e-12)
            labels, exits = net.predict(x, thresholds=0.025)
            assert run["at_thresholds"]["test"]["accuracy"] == pytest.approx(float((labels == t).mean()))
            reach = float((exits == 1).mean())
            assert run["at_thresholds"]["test"]["cost"] == pytest.approx(
                run["exit_cost"][0] + reach * (run["exit_cost"][1] - run["exit_cost"][0]))
    acc = [r["exit_accuracy"]["test"][0] for r in report["runs"]["soft_exit"]]
    assert report["summary"]["soft_exit"]["test_exit1_accuracy"]["mean"] == pytest.approx(numpy.mean(acc))

    assert [r["description"]["flush_denormals"] for r in report["runs"]["fixed"]] == [True, False]
    text = Path(str(out) + ".md").read_text()
    assert "| 1 | none (fixed) | kept |" in text and "| 0 | none (fixed) | flushed |" in text
    command = "Written by `python experiments/weighting_report.py --group fixed "
    assert text.splitlines()[2].startswith(command)
    assert "**Conclusion:** " + comparison["conclusion"] in text
    assert Path(str(out) + ".png").stat().st_size > 1000
