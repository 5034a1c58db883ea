"""One trainer per run folder: ``hold(out)`` locks the folder's ``lock`` file (``fcntl.flock``,
released by the kernel when the process ends, however it ends) and writes in it who holds it
(pid, host, start time, command). A second trainer on the folder is refused with ``FolderInUse``,
one line naming the holder. A lock file whose holder is gone (its lock released, its text left
behind by a killed process) is taken over with a warning naming the old holder.

Locking is per process and reentrant: ``runs.train`` holds the folder, and ``trainer.fit`` inside
it holds it again without waiting on itself.
"""
import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys

LOCK = "lock"

_held = {}  # real path of a locked folder -> [open lock file, depth]


class FolderInUse(RuntimeError):
    """Another process trains in this run folder."""


def describe(holder):
    """A holder record as words: "pid 12, host h, since <date>, command <...>"."""
    if not isinstance(holder, dict):
        return "an unknown process (the lock file holds no record)"
    return "pid %s on host %s since %s, command %s" % (
        holder.get("pid"), holder.get("host"), holder.get("started"), holder.get("command"))


def _record(f):
    """The holder record in an open lock file, or None (empty or unreadable)."""
    f.seek(0)
    try:
        return json.loads(f.read() or "null")
    except ValueError:
        return {}


def _acquire(folder, command, warn):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _record(f)
        f.close()
        raise FolderInUse("%s is in use by %s; wait for it to end, or train in another folder"
                          % (folder, describe(holder))) from None
    stale = _record(f)
    if stale is not None:
        warn("warning: %s names %s, which no longer holds it (killed?); taking it over"
             % (path, describe(stale)))
    f.seek(0)
    f.truncate()
    f.write(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "command": command,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}))
    f.flush()
    return f


def _warn(line):
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def hold(folder, command=None, warn=_warn):
    """Holds the run folder ``folder`` (created if missing) for this process; raises
    ``FolderInUse`` naming the holder if another process holds it."""
    key = os.path.realpath(folder)
    if key in _held:
        _held[key][1] += 1
    else:
        _held[key] = [_acquire(folder, command, warn), 1]
    try:
        yield
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            f = _held.pop(key)[0]
            f.seek(0)
            f.truncate()  # an empty lock file: released cleanly (removing it would race)
            f.close()
