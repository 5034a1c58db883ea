"""experiments/measure.py's checks of --run-dir, before any work: a folder of another network, a
damaged model file, a mistyped folder (which must not start a long training without asking)."""
import json
import os
import sys

import pytest

import branchynet  # noqa: F401
import networks
from branchynet.model import serialization

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "experiments"))  # the script under test
import measure  # noqa: E402  (experiments/measure.py)


def refusal(capsys, network, argv):
    with pytest.raises(SystemExit) as info:
        measure.parse_args(["--network", network] + argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def saved_run(folder, network, run_json=True):
    folder.mkdir(parents=True)
    serialization.save(networks.build(network), str(folder / "branchy.npz"))
    if run_json:
        (folder / "run.json").write_text(json.dumps({"network": network}))
    return folder


def test_a_mistyped_run_dir_is_refused_before_training(tmp_path, capsys):
    missing = tmp_path / "rsults" / "run"
    err = refusal(capsys, "b-lenet", ["--run-dir", str(missing)])
    assert "--run-dir %s does not exist" % missing in err
    assert "--train-if-missing" in err and "results/b-lenet/run" in err
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no branchy.npz" in refusal(capsys, "b-lenet", ["--run-dir", str(empty)])


def test_the_flag_or_the_default_folder_or_an_unfinished_training_go_on(tmp_path):
    args = measure.parse_args(["--network", "b-lenet", "--run-dir", str(tmp_path / "new"),
                               "--train-if-missing"])
    assert args.run_dir == str(tmp_path / "new")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(json.dumps({"network": "b-lenet"}))
    args = measure.parse_args(["--network", "b-lenet", "--run-dir", str(unfinished)])
    assert args.run_dir == str(unfinished)
    args = measure.parse_args(["--network", "b-lenet", "--train-if-missing"])  # the flags' values
    args.run_dir = str(tmp_path / "default-like")
    assert measure.check_run_dir(args, explicit=False) is None


@pytest.mark.parametrize("run_json", [True, False], ids=["run.json", "npz only"])
def test_another_networks_run_folder_is_named(tmp_path, capsys, run_json):
    run = saved_run(tmp_path / "alex", "b-alexnet", run_json)
    err = refusal(capsys, "b-lenet", ["--run-dir", str(run)])
    assert "holds b-alexnet" in err and "--network b-alexnet --run-dir %s" % run in err
    assert "channel" not in err


def test_another_variant_of_the_family_asks_for_network(tmp_path, capsys):
    run = saved_run(tmp_path / "paper", "b-alexnet-paper")
    err = refusal(capsys, "b-alexnet", ["--run-dir", str(run)])
    assert "holds b-alexnet-paper, not b-alexnet: measure it with --network b-alexnet-paper" in err
    args = measure.parse_args(["--run-dir", str(run), "--network", "b-alexnet-paper"])
    assert args.family == "alexnet" and args.dataset == "cifar10"
    assert (args.main_epochs, args.joint_epochs, args.batchsize) == (50, 100, 512)  # the paper's


def test_a_truncated_model_is_named(tmp_path, capsys):
    run = saved_run(tmp_path / "run", "b-lenet", run_json=False)
    path = run / "branchy.npz"
    path.write_bytes(path.read_bytes()[:1000])
    err = refusal(capsys, "b-lenet", ["--run-dir", str(run)])
    assert str(path) in err and "truncated or corrupt" in err


def test_the_default_output_folder_is_not_the_committed_results(tmp_path):
    run = saved_run(tmp_path / "run", "b-lenet")
    args = measure.parse_args(["--network", "b-lenet", "--run-dir", str(run)])
    out = os.path.relpath(args.results, ROOT)
    assert not out.startswith("results") and out == os.path.join("out", "b-lenet")
    assert measure.parse_args(["--network", "b-lenet", "--run-dir", str(run),
                               "--results", "results/b-lenet"]).results \
        == "results/b-lenet"
