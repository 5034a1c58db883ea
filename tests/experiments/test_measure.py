"""experiments/measure.py's checks of --run-dir, before any work (a folder of another network, a
damaged model file, a mistyped folder, which must not start a long training without asking:
``branchynet.evaluation.run_folder``), and the data a run is measured on: the preprocessing its
run.json records."""
import json
import os
import subprocess
import sys

import pytest

import branchynet  # noqa: F401
import networks
from branchynet.evaluation import run_folder
from branchynet.model import serialization

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def refusal(network, argv):
    """The script's refusal: exit status 2 and its message, before any work."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "measure.py"),
                           "--network", network] + argv, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stderr


def problem(run_dir, network="b-lenet", explicit=True, train_if_missing=False):
    return run_folder.problem(str(run_dir), network, explicit, train_if_missing, "results/b-lenet/run")


def saved_run(folder, network, run_json=True):
    folder.mkdir(parents=True)
    serialization.save(networks.build(network), str(folder / "branchy.npz"))
    if run_json:
        (folder / "run.json").write_text(json.dumps({"network": network}))
    return folder


def test_a_mistyped_run_dir_is_refused_before_training(tmp_path):
    missing = tmp_path / "rsults" / "run"
    err = refusal("b-lenet", ["--run-dir", str(missing)])
    assert "--run-dir %s does not exist" % missing in err
    assert "--train-if-missing" in err and "results/b-lenet/run" in err
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no branchy.npz" in problem(empty)


def test_the_flag_or_the_default_folder_or_an_unfinished_training_go_on(tmp_path):
    assert problem(tmp_path / "new", train_if_missing=True) is None
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(json.dumps({"network": "b-lenet"}))
    assert problem(unfinished) is None
    assert problem(tmp_path / "default-like", explicit=False) is None
    assert problem(tmp_path / "default-like") is not None


@pytest.mark.parametrize("run_json", [True, False], ids=["run.json", "npz only"])
def test_another_networks_run_folder_is_named(tmp_path, run_json):
    run = saved_run(tmp_path / "alex", "b-alexnet", run_json)
    err = problem(run)
    assert "holds b-alexnet" in err and "--network b-alexnet --run-dir %s" % run in err
    assert "channel" not in err


def test_another_variant_of_the_family_asks_for_network(tmp_path):
    run = saved_run(tmp_path / "paper", "b-alexnet-paper")
    err = refusal("b-alexnet", ["--run-dir", str(run)])
    assert "holds b-alexnet-paper, not b-alexnet: measure it with --network b-alexnet-paper" in err
    assert problem(run, "b-alexnet-paper") is None


def test_a_truncated_model_is_named(tmp_path):
    run = saved_run(tmp_path / "run", "b-lenet", run_json=False)
    path = run / "branchy.npz"
    path.write_bytes(path.read_bytes()[:1000])
    err = problem(run)
    assert str(path) in err and "truncated or corrupt" in err


def test_the_default_output_folder_is_not_the_committed_results():
    out = os.path.relpath(run_folder.default_results_dir(ROOT, "b-lenet"), ROOT)
    assert not out.startswith("results") and out == os.path.join("out", "b-lenet")
    assert run_folder.default_results_dir(ROOT, "mypackage.nets:three_exits").endswith(
        os.path.join("out", "three_exits"))
    assert os.path.relpath(run_folder.default_run_dir(ROOT, "b-lenet"), ROOT) == \
        os.path.join("results", "b-lenet", "run")


@pytest.mark.parametrize("recorded, passed", [("zca", {"preprocessing": "zca"}), (None, {})])
def test_a_run_is_measured_on_the_preprocessing_it_was_trained_with(tmp_path, monkeypatch,
                                                                      recorded, passed):
    """run.json's "preprocessing" (experiments/train.py --preprocessing) reaches load_split, with
    the recorded statistics; none recorded leaves load_split's default."""
    run = tmp_path / "run"
    serialization.write_run_info(run, {"network": "b-alexnet", "preprocessing": recorded,
                                       "split": {"statistics": "train"}})
    calls = []

    class Split(tuple):
        description = {"preprocessing": recorded or "gcn"}

    def load_split(dataset, val_size, data_dir, **kwargs):
        calls.append((dataset, val_size, data_dir, kwargs))
        return Split(("train", "val", "test"))

    monkeypatch.setattr(run_folder.data_split, "load_split", load_split)
    val, test, described = run_folder.run_split("cifar10", 5000, str(run), "data")
    assert (val, test) == ("val", "test") and described["preprocessing"] == (recorded or "gcn")
    assert calls == [("cifar10", 5000, "data", dict(statistics="train", **passed))]
