"""Batch split of the fast CPU kernels over worker threads.

Why: with 1-20 channels a convolution or pooling is bound by its numpy copies, which run on one
core, and the BLAS calls are too small for OpenBLAS to spread well; numpy releases the GIL in both,
so slices of the batch run side by side on the machine's cores. Each slice does exactly what the
one-thread kernel does on it; only the weight gradient's sum over the batch is regrouped.

The count is ``BRANCHYNET_CPU_THREADS`` (default: the CPUs this process may use), or
``set_threads(n)`` at run time; 1 runs everything on the calling thread. Small batches (batch-1
inference) never split: a hand-off costs tens of microseconds.
"""
import contextlib
import functools
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

from branchynet.fast import blas, denormals

__all__ = ["get_threads", "set_threads", "parts", "run"]

# Bytes a slice must move at least for a split to pay for the hand-off to a worker.
_MIN_BYTES_PER_PART = 256 << 10


def _default_threads():
    value = os.environ.get("BRANCHYNET_CPU_THREADS")
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError("BRANCHYNET_CPU_THREADS must be a positive integer, got %r" % value)
        if n < 1:
            raise ValueError("BRANCHYNET_CPU_THREADS must be a positive integer, got %r" % value)
        return n
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_threads = _default_threads()
_pool = None
_pool_size = 0
_pool_pid = None  # a forked child inherits the pool but not its threads: it makes its own
_lock = threading.Lock()


def get_threads():
    """How many threads the fast kernels split a large batch over."""
    return _threads


def set_threads(n):
    """Sets that count (1: no worker threads). Returns the previous one."""
    global _threads
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError("the fast kernels' thread count must be a positive integer, got %r" % (n,))
    previous, _threads = _threads, n
    return previous


def parts(n, bytes_per_sample):
    """Contiguous [start, stop) ranges of a batch of n samples, one per thread that has enough to
    do; a single range when splitting would not pay."""
    k = min(_threads, n, max(1, (n * bytes_per_sample) // _MIN_BYTES_PER_PART))
    if k <= 1 or threading.current_thread().name.startswith("branchynet-fast"):
        return [(0, n)]  # workers never split again: nested waits could exhaust the pool
    bounds = [n * i // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _executor(size):
    global _pool, _pool_size, _pool_pid
    with _lock:
        if _pool is None or _pool_size < size or _pool_pid != os.getpid():
            if _pool is not None and _pool_pid == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="branchynet-fast")
            _pool_size, _pool_pid = size, os.getpid()
        return _pool


def run(fn, ranges):
    """[fn(start, stop) for each range], the first on the calling thread, the rest on workers."""
    if len(ranges) == 1:
        return [fn(*ranges[0])]
    # the workers compute in the caller's floating-point mode (a new thread starts in its creator's)
    task = fn if denormals.why_not() else functools.partial(_in_mode, denormals.mode(), fn)
    # the workers are the parallelism; BLAS threads would oversubscribe
    with blas.one_thread(), _interrupts_held():
        futures = [_executor(len(ranges) - 1).submit(task, *r) for r in ranges[1:]]
        try:
            first = fn(*ranges[0])
        finally:  # never return (or raise) while a worker still writes into the caller's arrays
            results = [f.result() for f in futures]
    return [first] + results


@contextlib.contextmanager
def _interrupts_held():
    """On the main thread, a Ctrl-C held until the workers are done, then handed to the SIGINT
    handler that was in place: raised inside the futures' Python-level lock code it would leave a
    broken lock ("cannot release un-acquired lock") or return while workers still write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(signal.SIGINT, caught[0])
        elif caught and previous == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)


def _in_mode(bits, fn, *args):
    previous = denormals.set_mode(bits)
    try:
        return fn(*args)
    finally:
        denormals.set_mode(previous)
