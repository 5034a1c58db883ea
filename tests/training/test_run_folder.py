"""A run folder's trust at its boundary: one trainer at a time, temporary files of its own,
damaged snapshots set aside, a damaged or deleted baseline noticed before training, file errors
that name the file, and what a resume may take over."""
import json
import os
import subprocess
import sys
import zipfile
import zlib

import numpy
import pytest

import networks
from branchynet.model import serialization
from branchynet.training import lock, runs, snapshots, trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fit(out, main_epochs, joint_epochs, data, echo=lambda s: None):
    numpy.random.seed(0)
    net = networks.build("b-lenet")
    x, t = data
    log = trainer.fit(net, (x[:300], t[:300]), (x[1600:1800], t[1600:1800]), str(out),
                      main_epochs, joint_epochs, batchsize=128, seed=3, echo=echo)
    return net, log


def params(net):
    return {name: p.array.copy() for name, p in net.namedparams()}


def assert_same(net_a, net_b):
    for name, value in params(net_a).items():
        numpy.testing.assert_array_equal(value, params(net_b)[name], err_msg=name)


def test_a_second_process_on_a_folder_in_use_is_refused_naming_the_holder(tmp_path):
    code = ("import sys, time; from branchynet.training import lock\n"
            "with lock.hold(sys.argv[1], 'holder-command --out x'):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(lock.FolderInUse) as refused:
            with lock.hold(str(tmp_path)):
                pass
        message = str(refused.value)
        assert "\n" not in message and "pid %d" % holder.pid in message
        assert "holder-command --out x" in message and "host " in message and "since 20" in message
    finally:
        holder.kill()
        holder.wait()
    with lock.hold(str(tmp_path)):  # the kernel released the killed holder's lock
        pass


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
    (tmp_path / lock.LOCK).write_text(json.dumps({"pid": 4194999, "host": "h", "started": "then",
                                                  "command": "killed-command"}))
    lines = []
    with lock.hold(str(tmp_path), "mine", warn=lines.append):
        record = json.loads((tmp_path / lock.LOCK).read_text())
        assert record["pid"] == os.getpid() and record["command"] == "mine"
    assert len(lines) == 1 and "pid 4194999" in lines[0] and "killed-command" in lines[0]
    lines.clear()
    with lock.hold(str(tmp_path), warn=lines.append):  # released cleanly: no warning
        with lock.hold(str(tmp_path), warn=lines.append):  # reentrant in one process
            pass
    assert lines == []


def test_temporary_files_have_names_of_their_own(tmp_path):
    # a fixed temporary name (run.json.tmp, log.jsonl.tmp) is shared by two writers; here one
    # that another writer holds (a folder, so that it cannot be overwritten) is not in the way
    for name in ("run.json.tmp", "log.jsonl.tmp"):
        (tmp_path / name).mkdir()
    serialization.write_run_info(str(tmp_path), {"seed": 1})
    assert serialization.read_run_info(str(tmp_path)) == {"seed": 1}
    log = trainer.RunLog(str(tmp_path), lambda epoch: ("main", epoch), 2)
    log.write()
    assert (tmp_path / "log.jsonl").read_text() == ""


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_weights_get_the_mode_of_every_other_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        serialization.save(networks.build("b-lenet"), str(tmp_path / "w.npz"))
        serialization.write_run_info(str(tmp_path), {})
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    modes = {name: os.stat(tmp_path / name).st_mode & 0o777 for name in ("w.npz", "run.json", "plain")}
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)


def _flip_until(path, error):
    """Flips one byte of ``path``'s compressed data after another until reading it raises
    ``error``; returns the offset (the file keeps that flip)."""
    data = bytearray(open(path, "rb").read())
    for offset in range(len(data) // 2, len(data) - 200, 97):
        data[offset] ^= 0xFF
        open(path, "wb").write(data)
        try:
            with numpy.load(path) as npz:
                for key in npz.files:
                    npz[key]
        except error:
            return offset
        except Exception:  # noqa: BLE001 - another damage than the one wanted: undo, go on
            pass
        data[offset] ^= 0xFF
    raise AssertionError("no flip gave %s" % error)


def test_a_snapshot_damaged_inside_its_compressed_data_is_set_aside(tmp_path, mnist_subset):
    net_a, log_a = fit(tmp_path / "a", 1, 2, mnist_subset)
    fit(tmp_path / "b", 1, 1, mnist_subset)
    newest = tmp_path / "b" / "snapshot_epoch_0002.npz"
    _flip_until(newest, zlib.error)
    lines = []
    net_b, log_b = fit(tmp_path / "b", 1, 2, mnist_subset, lines.append)
    assert_same(net_a, net_b)
    assert os.path.exists(str(newest) + ".unreadable")
    warning = [line for line in lines if "snapshot_epoch_0002.npz" in line and "set aside" in line]
    assert len(warning) == 1 and "resuming from snapshot_epoch_0001.npz" in warning[0]


def test_a_damaged_only_snapshot_says_training_starts_over(tmp_path, mnist_subset):
    fit(tmp_path, 1, 0, mnist_subset)
    _flip_until(tmp_path / "snapshot_epoch_0001.npz", (zlib.error, zipfile.BadZipFile))
    (tmp_path / "tmpab12cd.tmp.npz").write_bytes(b"left by a killed save")
    (tmp_path / ".log.jsonl.x1y2.tmp").write_text("left by a killed write")
    lines = []
    assert snapshots.prepare(str(tmp_path), lines.append) is None
    assert len(lines) == 1 and "resuming from the snapshot before it" not in lines[0]
    assert "no snapshot before it" in lines[0]
    assert sorted(p.name for p in tmp_path.glob("*tmp*")) == []


def test_a_rerun_of_a_finished_run_says_it_is_finished(tmp_path, mnist_subset):
    fit(tmp_path, 1, 1, mnist_subset)
    lines = []
    fit(tmp_path, 1, 1, mnist_subset, lines.append)
    assert any(line.startswith("finished: ") and "all 2 epochs" in line for line in lines), lines
    assert not any(line.startswith("resumed from") for line in lines)


def test_a_damaged_baseline_stops_the_resume_and_is_recreated_once_deleted(tmp_path, mnist_subset):
    fit(tmp_path, 1, 1, mnist_subset)
    main = tmp_path / serialization.MAIN
    original = dict(numpy.load(main))
    _flip_until(main, (zlib.error, zipfile.BadZipFile))
    with pytest.raises(serialization.ModelFileError) as err:
        fit(tmp_path, 1, 2, mnist_subset)
    assert str(main) in str(err.value) and "delete it" in str(err.value)
    assert not (tmp_path / "snapshot_epoch_0003.npz").exists()  # noticed before training on
    main.unlink()
    lines = []
    fit(tmp_path, 1, 2, mnist_subset, lines.append)
    assert any(line.startswith("recreated %s" % main) for line in lines)
    with numpy.load(main) as again:
        assert sorted(again.files) == sorted(original)
        for key, value in original.items():
            numpy.testing.assert_array_equal(again[key], value, err_msg=key)


def test_a_baseline_that_cannot_be_recreated_says_what_to_do(tmp_path, mnist_subset):
    fit(tmp_path, 1, 2, mnist_subset)  # snapshots 2 and 3 kept: not the end of pretraining
    (tmp_path / serialization.MAIN).unlink()
    with pytest.raises(serialization.ModelFileError) as err:
        fit(tmp_path, 1, 3, mnist_subset)
    assert "main.npz" in str(err.value) and "another --out" in str(err.value)


def test_a_truncated_run_json_or_log_names_its_file(tmp_path):
    serialization.write_run_info(str(tmp_path), {"split": {"statistics": "train"}})
    path = tmp_path / "run.json"
    path.write_text(path.read_text()[:10])
    with pytest.raises(serialization.RunFileError, match=str(path)):
        serialization.read_run_info(str(tmp_path))
    from branchynet.data.split import run_statistics
    with pytest.raises(ValueError, match=str(path)):
        run_statistics(str(tmp_path))
    (tmp_path / "log.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    with pytest.warns(UserWarning, match=r"log.jsonl, line 3"):
        assert trainer.read_log(str(tmp_path)) == [{"epoch": 1}, {"epoch": 2}]


SETTINGS = dict(network="b-lenet", main_epochs=1, joint_epochs=0, batchsize=128, weights="slides",
                val_size=100, train_subset=256)


def launch(out, lines=None, **changed):
    settings = runs.RunSettings(**dict(SETTINGS, **changed))
    return runs.train(settings, str(out), networks.build, "mnist", "lenet",
                      echo=(lines.append if lines is not None else lambda s: None))


def test_a_folder_with_training_but_no_run_json_is_refused(tmp_path):
    launch(tmp_path)
    (tmp_path / "run.json").unlink()
    with pytest.raises(runs.SettingsMismatch, match="snapshot_epoch_0001.npz but no run.json"):
        launch(tmp_path, seed=4)
    assert not (tmp_path / "run.json").exists()


def test_an_invalid_recorded_statistics_is_refused(tmp_path):
    launch(tmp_path)
    info = json.loads((tmp_path / "run.json").read_text())
    info["split"]["statistics"] = "everything"
    (tmp_path / "run.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="split.statistics must be one of"):
        launch(tmp_path)


def test_a_launch_that_trained_nothing_binds_nothing(tmp_path):
    with pytest.raises(Exception):  # noqa: B017 - whatever fails on an empty training set
        launch(tmp_path, val_size=70000, train_subset=0)  # no training image left
    assert (tmp_path / "run.json").exists() and runs.trained_files(str(tmp_path)) == []
    lines = []
    launch(tmp_path, lines)  # the corrected command
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["val_size"] == 100 and info["resumes"] == []
    assert any("trained no epoch" in line for line in lines)
