"""Data parallel training over MPI processes with ChainerMN (``mpiexec -n N python
experiments/train.py ...``); docs/distributed.md.

Every process loads the training set and walks the same seeded order; each global batch is cut
into one consecutive part per process (``updater.EpochIterator``), so N processes take the steps
one process takes with the same batch size and seed, each equal within the rounding of the
gradient's sum (the runs then drift apart as any two runs differing in rounding do; measured in
docs/distributed.md). Each process computes the gradient of its part, ChainerMN's multi-node
optimizer averages them (weighted by the parts' sizes, which differ when a batch does not split
evenly) and every process applies the same update. The validation split is cut the same way and
the per-exit sums are added up. A watchdog ends the job when a process waits too long in a
collective operation (``BRANCHYNET_MPI_TIMEOUT``).
Only rank 0 writes files; a resume loads rank 0's snapshot and sends it to the others, so the
processes need no shared folder.

MPI is optional: ``pip install -e ".[mpi]"`` (mpi4py and MPICH's wheel, whose ``mpiexec`` lands in
the environment's ``bin``). Nothing here imports mpi4py or ChainerMN unless asked to.
"""
import contextlib
import os
import sys
import threading
import time
import traceback

import numpy

import chainer

# How long a rank other than 0 waits, after Ctrl-C, for rank 0 to say what was kept and end the job.
KEYBOARD_GRACE_S = 30

MPI_INSTALL_HINT = ('MPI training needs mpi4py and an MPI library: pip install -e ".[mpi]" '
                    '(mpi4py and mpich; `make venv` installs them), then run under '
                    '`mpiexec -n N`')

TIMEOUT_VARIABLE = "BRANCHYNET_MPI_TIMEOUT"
DEFAULT_TIMEOUT = 600.0

# set by mpiexec of MPICH (hydra), Open MPI, MVAPICH and Slurm's srun
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")


def launched_size(environ=None):
    """The process count an MPI launcher gave this process (1 if none launched it)."""
    environ = os.environ if environ is None else environ
    for name in _SIZE_VARIABLES:
        try:
            return int(environ[name])
        except (KeyError, ValueError):
            continue
    return 1


def collective_timeout(environ=None):
    """Seconds a process may wait in one collective operation before it ends the job
    (``BRANCHYNET_MPI_TIMEOUT``, default 600; 0 or less: wait forever)."""
    environ = os.environ if environ is None else environ
    text = environ.get(TIMEOUT_VARIABLE, "")
    try:
        return float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise ValueError("%s must be a number of seconds, got %r" % (TIMEOUT_VARIABLE, text)) from None


class Watchdog:
    """Ends the job when a process waits longer than ``seconds`` in one collective operation: a
    stopped (SIGSTOP), hung or lost process would otherwise keep the others waiting forever,
    spinning in MPI's busy wait. A daemon thread polls the time spent in the operation watched
    (``watch``) and calls ``on_timeout(what, waited)``, which aborts the job."""

    def __init__(self, seconds, on_timeout):
        self.seconds, self.on_timeout = seconds, on_timeout
        self._what, self._since = None, None
        if seconds > 0:
            threading.Thread(target=self._poll, name="mpi-watchdog", daemon=True).start()

    @contextlib.contextmanager
    def watch(self, what):
        self._what, self._since = what, time.monotonic()
        try:
            yield
        finally:
            self._since = None

    def _poll(self):
        while True:
            time.sleep(min(1.0, self.seconds / 10))
            since = self._since
            if since is not None and time.monotonic() - since > self.seconds:
                self.on_timeout(self._what, time.monotonic() - since)
                return


class MPIUnavailable(RuntimeError):
    """MPI training was asked for (``--mpi`` or ``mpiexec -n N`` with N > 1) without mpi4py."""


def communicator_name(device):
    """ChainerMN's communicator for ``device``: ``pure_nccl`` on a GPU where CuPy has NCCL, else
    ``naive`` (CPU arrays; on a GPU without NCCL it needs a CUDA-aware MPI)."""
    device = chainer.get_device(device)
    if isinstance(device, chainer.backend.GpuDevice):
        from chainer.backends import cuda
        if getattr(cuda, "nccl", None) is not None and cuda.nccl.get_build_version() >= 2000:
            return "pure_nccl"
    return "naive"


class _WeightedMultiNodeOptimizer:
    """ChainerMN's multi-node optimizer (the gradient's mean over processes, then the update), with
    two changes for equivalence with one process:

    * each process's gradient is scaled by ``size * n / total`` first (``set_share``), so that the
      mean is the gradient of the global batch's mean loss also when the parts differ in size;
    * its first ``update`` is a step (ChainerMN's would only broadcast the parameters from rank 0):
      the processes start from rank 0's parameters already (``training.fit`` broadcasts them, or
      rank 0's snapshot, before the first step). Making it communicates nothing, so that a stage's
      optimizer can be made anywhere, e.g. while rank 0 alone loads a snapshot.
    """

    def __init__(self, optimizer, comm, watch):
        import chainermn
        inner = chainermn.create_multi_node_optimizer(optimizer, comm)
        inner.is_changed(optimizer.target)  # records the parameters: the first update is a step
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_size", comm.size)
        object.__setattr__(self, "_scale", 1.0)
        object.__setattr__(self, "_watch", watch)

    def set_share(self, n, total):
        object.__setattr__(self, "_scale", self._size * n / total)

    def update(self, lossfun=None, *args, **kwds):
        if lossfun is not None:
            raise TypeError("call update() after backward(); a loss function is not supported")
        if self._scale != 1.0:
            for param in self._inner.target.params():
                if param.grad is not None:
                    param.grad *= self._scale
        with self._watch("the gradient exchange"):
            self._inner.update()

    def zero_step(self):
        """This process's part of a step with no samples of its own: zero gradients."""
        target = self._inner.target
        target.cleargrads()
        for param in target.params():
            param.grad = param.xp.zeros_like(param.array)
        with self._watch("the gradient exchange"):
            self._inner.update()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __setattr__(self, name, value):
        setattr(self._inner, name, value)


class Distributed:
    """The processes of one data parallel run: a ChainerMN communicator for ``device``.

    Raises MPIUnavailable (with what to install) if mpi4py or an MPI library is missing.
    """

    def __init__(self, device="@numpy", communicator=None, timeout=None):
        try:
            from mpi4py import MPI

            import chainermn
        except ImportError as err:
            raise MPIUnavailable("%s (%s)" % (MPI_INSTALL_HINT, err)) from None
        self.mpi_comm = MPI.COMM_WORLD
        self.rank, self.size = self.mpi_comm.rank, self.mpi_comm.size
        self.timeout = collective_timeout() if timeout is None else timeout
        self.watchdog = Watchdog(self.timeout, self._timed_out)
        self.communicator_name = communicator or communicator_name(device)
        with self.watchdog.watch("the communicator's creation"):
            self.comm = chainermn.create_communicator(self.communicator_name, self.mpi_comm)

    @property
    def is_root(self):
        return self.rank == 0

    def optimizer(self, optimizer):
        return _WeightedMultiNodeOptimizer(optimizer, self.comm, self.watchdog.watch)

    def bcast_params(self, link):
        """Rank 0's parameters of ``link``, on every process."""
        with self.watchdog.watch("a broadcast of the parameters"):
            self.comm.bcast_data(link)

    def allreduce(self, array):
        """The element-wise sum of a float64 numpy array over the processes."""
        from mpi4py import MPI
        array = numpy.ascontiguousarray(array, dtype=numpy.float64)
        out = numpy.empty_like(array)
        with self.watchdog.watch("a sum over the processes"):
            self.mpi_comm.Allreduce(array, out, op=MPI.SUM)
        return out

    def bcast(self, obj):
        """``obj`` of rank 0, on every process."""
        with self.watchdog.watch("a broadcast from rank 0"):
            return self.mpi_comm.bcast(obj, root=0)

    def part(self, n):
        """This process's consecutive slice of ``range(n)``."""
        return numpy.array_split(numpy.arange(n), self.size)[self.rank]

    def abort(self, error, code=1, note=None):
        """Ends every process of the job after ``error`` on this one: says which rank failed and
        why on stderr, rank 0 adds ``note`` (e.g. the snapshot kept), then MPI_Abort (the others
        would wait for it in the next reduction). A KeyboardInterrupt (Ctrl-C reaches every
        rank) is said by rank 0 alone."""
        if isinstance(error, KeyboardInterrupt):
            if not self.is_root:  # rank 0, interrupted too, says it and ends the job; a loaded
                time.sleep(KEYBOARD_GRACE_S)  # machine may take it seconds to get there
            text = "rank %d of %d: interrupted\n" % (self.rank, self.size)
        else:
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            text = "rank %d of %d failed, ending the job: %s: %s\n%s" % (
                self.rank, self.size, type(error).__name__, error, text)
        if note and self.is_root:
            text += note.rstrip("\n") + "\n"
        sys.stderr.write(text)
        sys.stderr.flush()
        self.mpi_comm.Abort(code)

    def _timed_out(self, what, waited):
        sys.stderr.write(
            "rank %d of %d: no answer from the other processes for %.0f s in %s (one was "
            "stopped, hung or lost); ending the job. The snapshots written so far are intact: run "
            "the same command again to resume. %s=SECONDS sets this limit (now %g s).\n"
            % (self.rank, self.size, waited, what, TIMEOUT_VARIABLE, self.timeout))
        sys.stderr.flush()
        self.mpi_comm.Abort(1)


def say_once(dist, text):
    """Writes ``text`` to stderr on rank 0 only (every process, e.g. all refusing one run
    folder, would otherwise print it once per rank); without ``dist`` always."""
    if dist is None or dist.is_root:
        sys.stderr.write(text.rstrip("\n") + "\n")
        sys.stderr.flush()


def connect(mpi=None, device="@numpy", communicator=None):
    """The Distributed of this run, or None for a single process. ``mpi``: True (--mpi), False,
    or None: only when an MPI launcher started more than one process."""
    if mpi is None:
        mpi = launched_size() > 1
    if not mpi:
        return None
    return Distributed(device, communicator)
