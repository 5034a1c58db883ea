"""experiments/train.py's command line: flags refused with the flag and its allowed values, and
Ctrl-C during training: one line, an intact snapshot, a run that resumes."""
import os
import signal
import subprocess
import sys
import time

import pytest

import networks
from branchynet.fast import denormals
from branchynet.model import serialization
from branchynet.training import runs, snapshots

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, "experiments", "train.py")
BASE = ["--network", "b-lenet", "--main-epochs", "1", "--joint-epochs", "1", "--out", "unused"]


def train_script():
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    try:
        import train
    finally:
        sys.path.pop(0)
    return train


def parse(argv):
    return train_script().parse_args(argv)


def with_flag(flag, value):
    argv = list(BASE)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    return argv


@pytest.mark.parametrize("flag, value, allowed", [
    ("--batchsize", "0", ">= 1"),
    ("--train-subset", "0", ">= 1"),
    ("--main-epochs", "-1", ">= 0"),
    ("--joint-epochs", "-2", ">= 0"),
    ("--beta1", "1.5", "[0, 1)"),
    ("--beta1", "-0.1", "[0, 1)"),
    ("--weights", "bogus", "'slides', 'code'"),
    ("--val-size", "0", ">= 1"),
    ("--preprocessing", "whiten", "'gcn', 'scale', 'standardize', 'zca'"),
])
def test_bad_values_are_refused_naming_the_flag_and_the_allowed_values(flag, value, allowed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(with_flag(flag, value))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument %s" % flag in err and allowed in err and value in err, err


USER = ["--network", "tests.test_user_network:three_exits", "--main-epochs", "1",
        "--joint-epochs", "1", "--out", "unused"]


@pytest.mark.parametrize("argv, message", [
    (USER + ["--dataset", "mnist", "--net-arg", "width"], "argument --net-arg: expects KEY=VALUE"),
    (USER + ["--dataset", "mnist", "--net-arg", "depth=3"],
     "argument --net-arg: tests.test_user_network:three_exits takes no argument 'depth' (it takes: width)"),
    (USER, "argument --dataset: required for tests.test_user_network:three_exits"),
    (BASE + ["--dataset", "cifar10"], "argument --dataset: b-lenet is registered for mnist"),
    (["--network", "tests.no_such_module:f"] + BASE[2:], "argument --network: network "
     "'tests.no_such_module:f': no module 'tests.no_such_module'"),
    (["--network", "tests.test_user_network:nothing"] + BASE[2:],
     "argument --network: network 'tests.test_user_network:nothing': module "
     "'tests.test_user_network' has no function 'nothing'"),
    (["--network", "b-nothing"] + BASE[2:], "argument --network: unknown network 'b-nothing'"),
])
def test_a_bad_network_net_arg_or_dataset_is_one_line_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_factory_by_import_path_takes_its_dataset_and_the_branch_lists_weights():
    args = parse(USER + ["--dataset", "mnist", "--net-arg", "width=3"])
    assert args.dataset == "mnist"
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    try:
        import train
    finally:
        sys.path.pop(0)
    settings = train.settings_from_args(args)
    assert (settings.weights, settings.net_kwargs) == (None, {"width": 3})
    assert train.settings_from_args(parse(BASE)).weights == "slides"  # the paper's networks


def test_good_values_pass():
    args = parse(BASE + ["--batchsize", "1", "--train-subset", "5", "--beta1", "0", "--weights", "code"])
    assert (args.batchsize, args.train_subset, args.beta1, args.weights) == (1, 5, 0.0, "code")
    assert parse(BASE).train_subset is None  # all images


def test_preprocessing_reaches_the_run_settings_and_only_cifar10_takes_it(tmp_path):
    settings = train_script().settings_from_args(parse(BASE + ["--preprocessing", "zca"]))
    assert settings.preprocessing == "zca"
    assert train_script().settings_from_args(parse(BASE)).preprocessing is None  # gcn
    with pytest.raises(ValueError, match="'zca' applies to CIFAR-10, not mnist"):
        runs.train(settings, str(tmp_path / "run"), networks.build, "mnist", "lenet")
    assert not (tmp_path / "run").exists()


def test_ctrl_c_keeps_an_intact_snapshot_and_prints_one_line(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, TRAIN, "--network", "b-lenet", "--main-epochs", "1",
               "--joint-epochs", "500", "--batchsize", "64", "--train-subset", "640",
               "--val-size", "100", "--out", str(out), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    # SIGINT as at a terminal: a shell's background job (nohup, CI runners) starts with it ignored,
    # and a child inherits that
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while not list(out.glob("snapshot_epoch_0002.npz")) and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: ")
    kept = snapshots.latest(str(out))
    assert kept is not None and os.path.basename(kept) in lines[0]
    assert "run the same command again to resume" in lines[0]
    assert snapshots.snapshot_epoch(kept) >= 2


SMALL = ["--network", "b-lenet", "--main-epochs", "1", "--joint-epochs", "0", "--batchsize", "128",
         "--train-subset", "256", "--val-size", "100", "--no-progress"]


def run_train(out):
    return subprocess.run([sys.executable, TRAIN] + SMALL + ["--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_a_second_trainer_on_a_folder_in_use_is_refused_in_one_line(tmp_path):
    code = ("import sys, time; from branchynet.training import lock\n"
            "with lock.hold(sys.argv[1], 'first-trainer'):\n"
            "    print('held', flush=True); time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = run_train(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("refused: ") and "pid %d" % holder.pid in lines[0]
    assert "first-trainer" in lines[0] and not (tmp_path / "run.json").exists()


def test_a_truncated_run_json_is_one_line_naming_it(tmp_path):
    assert run_train(tmp_path).returncode == 0
    path = tmp_path / "run.json"
    path.write_text(path.read_text()[:40])
    proc = run_train(tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: %s" % path)


def test_sample_weighting_is_a_flag_applied_to_the_net_and_recorded(tmp_path):
    settings = train_script().settings_from_args(
        parse(BASE + ["--sample-weighting", "soft_exit:0.25", "--train-subset", "64",
                      "--main-epochs", "0"]))
    assert settings.sample_weighting == "soft_exit:0.25"
    assert train_script().settings_from_args(
        parse(BASE + ["--sample-weighting", "none"])).sample_weighting is None
    built = []

    def build(name, **kwargs):
        built.append(networks.build(name, **kwargs))
        return built[-1]
    out = str(tmp_path / "run")
    runs.train(settings, out, build, "mnist", "lenet", progress=False, echo=lambda line: None)
    assert repr(built[0].loss.sample_weighting) == "SoftExit(alpha=0.25)"
    assert runs.RunSettings.from_info(serialization.read_run_info(out)).sample_weighting \
        == "soft_exit:0.25"
    other = runs.RunSettings(**dict(vars(settings), sample_weighting=None))
    with pytest.raises(runs.SettingsMismatch, match="sample_weighting: 'soft_exit:0.25' -> None"):
        runs.train(other, out, build, "mnist", "lenet", progress=False, echo=lambda line: None)


@pytest.mark.parametrize("flag, value, message", [
    ("--device", "@cupy:0", "--device: device '@cupy:0': no usable GPU here"),
    ("--out", "FILE", "is a file, not a run folder"),
])
def test_an_unusable_device_or_an_out_file_is_one_line(flag, value, message, tmp_path, capsys):
    if value == "FILE":
        value = str(tmp_path / "a_file")
        open(value, "w").close()
    with pytest.raises(SystemExit) as stop:
        parse(with_flag(flag, value))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)  # usage, then one error line


def test_runs_flush_subnormals_unless_told_and_older_runs_resume_as_they_were(tmp_path, monkeypatch):
    script = train_script()
    assert script.settings_from_args(parse(BASE)).flush_denormals is True
    keep = script.settings_from_args(parse(BASE + ["--denormals", "keep", "--train-subset", "64",
                                                   "--main-epochs", "0", "--joint-epochs", "1"]))
    assert keep.flush_denormals is False
    modes, fit = [], runs.trainer.fit

    def fit_noting_the_mode(*args, **kwargs):
        modes.append(denormals.mode())
        return fit(*args, **kwargs)
    monkeypatch.setattr(runs.trainer, "fit", fit_noting_the_mode)
    runs.train(runs.RunSettings(**dict(vars(keep), flush_denormals=True)), str(tmp_path / "flush"),
               networks.build, "mnist", "lenet", progress=False, echo=lambda line: None)
    out = str(tmp_path / "run")
    runs.train(keep, out, networks.build, "mnist", "lenet", progress=False, echo=lambda line: None)
    assert modes == [denormals.FTZ_DAZ if denormals.why_not() is None else 0, 0]
    assert denormals.mode() == 0
    info = serialization.read_run_info(out)
    assert info["flush_denormals"] is False
    del info["flush_denormals"]  # a run.json from before the flag: it did not flush
    assert runs.RunSettings.from_info(info).flush_denormals is False
    flush = runs.RunSettings(**dict(vars(keep), flush_denormals=True))
    with pytest.raises(runs.SettingsMismatch, match="flush_denormals: False -> True.*--denormals keep"):
        runs.train(flush, out, networks.build, "mnist", "lenet", progress=False, echo=lambda line: None)
