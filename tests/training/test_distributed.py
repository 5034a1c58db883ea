"""Data parallel training with ChainerMN under ``mpiexec -n 2``: the same parameters as one
process with the same global batch and data order, a failing rank ends the job with a clear error
and no corrupt snapshot, and the job resumes from its snapshot. B-LeNet on a few hundred MNIST
images, so that CI can run them (make test installs the [mpi] extra)."""
import glob
import os
import re
import signal
import subprocess
import sys
import time

import numpy
import pytest

import networks
from branchynet.training import distributed, snapshots, trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(REPO, "experiments", "train.py")
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")

try:
    import mpi4py  # noqa: F401
    HAVE_MPI = os.path.exists(MPIEXEC)
except ImportError:
    HAVE_MPI = False
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason=distributed.MPI_INSTALL_HINT)

# 330 images in batches of 101: parts of 51 and 50 images, and a last batch of 27 (14 and 13)
FLAGS = ["--network", "b-lenet", "--batchsize", "101", "--train-subset", "330", "--val-size", "200",
         "--seed", "4", "--no-progress"]

# rank 1 raises in its update number FAIL_AT (0-based), then the job must end
FAILING = """
import os, runpy, sys
sys.path.insert(0, %r)
import branchynet
from branchynet.training import updater
real = updater.BranchyUpdater.update_core
def update_core(self):
    if self.rank == 1 and self.iteration == int(os.environ["FAIL_AT"]):
        raise RuntimeError("injected failure")
    return real(self)
updater.BranchyUpdater.update_core = update_core
sys.argv = [%r] + sys.argv[1:]
runpy.run_path(%r, run_name="__main__")
""" % (REPO, TRAIN, TRAIN)


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               BRANCHYNET_CPU_THREADS="1", **extra)
    for name in distributed._SIZE_VARIABLES:  # not launched by an outer mpiexec
        env.pop(name, None)
    return env


def _train(out, main_epochs, joint_epochs, processes=None, script=TRAIN, timeout=300, **env):
    command = [sys.executable, script] + FLAGS + [
        "--main-epochs", str(main_epochs), "--joint-epochs", str(joint_epochs), "--out", str(out)]
    if processes is not None:
        command = [MPIEXEC, "-n", str(processes)] + command + ["--mpi"]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=_env(**env), cwd=REPO)


def _params(path):
    return {name: p.array for name, p in networks.load(str(path)).namedparams()}


def _assert_params(a, b, **tolerance):
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        if tolerance:
            numpy.testing.assert_allclose(pa[name], pb[name], err_msg=name, **tolerance)
        else:
            numpy.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


@needs_mpi
def test_two_processes_train_what_one_process_trains(tmp_path):
    one = _train(tmp_path / "one", 1, 1)
    assert one.returncode == 0, one.stderr
    two = _train(tmp_path / "two", 1, 1, processes=2)
    assert two.returncode == 0, two.stderr
    for name in ("main.npz", "branchy.npz"):
        _assert_params(tmp_path / "one" / name, tmp_path / "two" / name, rtol=1e-4, atol=1e-5)
    log_one, log_two = trainer.read_log(str(tmp_path / "one")), trainer.read_log(str(tmp_path / "two"))
    assert [(e["stage"], e["epoch"]) for e in log_two] == [("main", 1), ("joint", 1)]
    for a, b in zip(log_one, log_two):
        for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy"):
            assert [v is None for v in a[key]] == [v is None for v in b[key]]
            numpy.testing.assert_allclose([v for v in a[key] if v is not None],
                                          [v for v in b[key] if v is not None], rtol=1e-4)
    # only rank 0 wrote, and run.json records the processes
    assert (tmp_path / "two" / "command.txt").read_text().count("\n") == 1
    import json
    info = json.loads((tmp_path / "two" / "run.json").read_text())
    assert info["processes"] == {"count": 2, "communicator": "naive"}


@needs_mpi
def test_a_failing_rank_ends_the_job_and_the_run_resumes(tmp_path):
    script = tmp_path / "failing_train.py"
    script.write_text(FAILING)
    # 4 updates per epoch: rank 1 fails in the third epoch's third update (the second joint
    # epoch), so the job resumes in the joint stage, its optimizer made while rank 0 loads
    failed = _train(tmp_path / "run", 1, 2, processes=2, script=str(script), timeout=120,
                    FAIL_AT="10")
    assert failed.returncode != 0
    assert "rank 1 of 2 failed" in failed.stderr and "injected failure" in failed.stderr, \
        failed.stderr
    kept = sorted(glob.glob(str(tmp_path / "run" / "snapshot_*")))
    assert [os.path.basename(p) for p in kept] == ["snapshot_epoch_0001.npz",
                                                          "snapshot_epoch_0002.npz"], \
        failed.stdout + failed.stderr
    assert all(snapshots.readable(p) for p in kept)
    assert not os.path.exists(tmp_path / "run" / "branchy.npz")
    resumed = _train(tmp_path / "run", 1, 2, processes=2, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and "snapshot_epoch_0002.npz" in resumed.stdout, \
        resumed.stdout
    whole = _train(tmp_path / "whole", 1, 2, processes=2)
    assert whole.returncode == 0, whole.stderr
    _assert_params(tmp_path / "run" / "branchy.npz", tmp_path / "whole" / "branchy.npz")
    strip = [{k: v for k, v in e.items() if k != "seconds"}
             for e in trainer.read_log(str(tmp_path / "run"))]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"}
                     for e in trainer.read_log(str(tmp_path / "whole"))]


def test_mpi_without_mpi4py_says_what_to_install(monkeypatch, capsys):
    sys.path.insert(0, os.path.join(REPO, "experiments"))
    try:
        import train
    finally:
        sys.path.pop(0)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--network", "b-lenet", "--main-epochs", "1", "--joint-epochs", "1",
                    "--out", "unused", "--mpi"])
    assert 'pip install -e ".[mpi]"' in str(exit_info.value)


def test_launcher_and_communicator_detection():
    assert distributed.launched_size({}) == 1
    assert distributed.launched_size({"PMI_SIZE": "4"}) == 4
    assert distributed.launched_size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2
    assert distributed.connect(mpi=False) is None
    assert distributed.communicator_name("@numpy") == "naive"


# rank 1 stops itself (SIGSTOP) in its update number STOP_AT: rank 0 then waits in the gradient
# exchange, where the watchdog must end the job
STOPPING = FAILING.replace('raise RuntimeError("injected failure")',
                           'import signal; os.kill(os.getpid(), signal.SIGSTOP)') \
                  .replace('"FAIL_AT"', '"STOP_AT"')


def _start(out, main_epochs, joint_epochs, script=TRAIN, extra=(), **env):
    """A 2-process job in its own process group (so that a hung job can be killed whole)."""
    command = [MPIEXEC, "-n", "2", sys.executable, script] + FLAGS + [
        "--main-epochs", str(main_epochs), "--joint-epochs", str(joint_epochs),
        "--out", str(out), "--mpi"] + list(extra)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(**env), cwd=REPO, start_new_session=True)


def _finish(job, timeout):
    """(returncode, stdout, stderr); a job still running after ``timeout`` is killed (process group)
    and the test fails."""
    try:
        out, err = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, err = job.communicate()
        pytest.fail("the job hung for %d s; stderr:\n%s" % (timeout, err))
    return job.returncode, out, err


@needs_mpi
def test_a_stopped_rank_ends_the_job_after_the_collective_timeout(tmp_path):
    script = tmp_path / "stopping_train.py"
    script.write_text(STOPPING)
    job = _start(tmp_path / "run", 1, 1, script=str(script), STOP_AT="2",
                 BRANCHYNET_MPI_TIMEOUT="5")
    code, out, err = _finish(job, 150)
    assert code != 0
    assert "rank 0 of 2: no answer from the other processes for" in err, err
    assert "in the gradient exchange" in err and "BRANCHYNET_MPI_TIMEOUT" in err, err


def test_collective_timeout_reads_the_environment():
    assert distributed.collective_timeout({}) == distributed.DEFAULT_TIMEOUT
    assert distributed.collective_timeout({"BRANCHYNET_MPI_TIMEOUT": "2.5"}) == 2.5
    with pytest.raises(ValueError, match="BRANCHYNET_MPI_TIMEOUT must be a number"):
        distributed.collective_timeout({"BRANCHYNET_MPI_TIMEOUT": "soon"})


@needs_mpi
def test_a_refusal_is_printed_once_and_ctrl_c_names_the_snapshot_kept(tmp_path):
    first = _train(tmp_path / "run", 0, 0)  # a run.json with seed 4
    assert first.returncode == 0, first.stderr
    code, out, err = _finish(_start(tmp_path / "run", 0, 0, extra=["--seed", "5"]), 150)
    assert code != 0 and (out + err).count("refused:") == 1, out + err
    job = _start(tmp_path / "long", 1, 40)
    for _ in range(600):  # any snapshot: only the newest two are kept
        if list((tmp_path / "long").glob("snapshot_epoch_*.npz")) or job.poll() is not None:
            break
        time.sleep(0.5)
    assert job.poll() is None, job.communicate()
    os.kill(job.pid, signal.SIGINT)  # mpiexec passes Ctrl-C to every rank
    code, out, err = _finish(job, 60)
    assert code != 0
    assert err.count("interrupted:") == 1, err
    assert re.search(r"interrupted: \S+snapshot_epoch_\d{4}\.npz kept \(\d+ epochs done\)", err), err
