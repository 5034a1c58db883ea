"""The files of a run folder that a resume reads back: the Trainer's snapshots and the baseline
``main.npz``, checked before any epoch is trained.

A snapshot that does not read back whole (cut short, a flipped bit anywhere, compressed data
included) is renamed ``*.unreadable``, never deleted, and the one before it is used. Leftover
temporary files of interrupted saves are removed (the folder is locked, ``lock.hold``: no other
writer owns them). A damaged ``main.npz`` stops the resume with a message saying what to do; a
missing one is recreated from the snapshot taken when pretraining ended, where it is still kept.
"""
import copy
import glob
import os
import shutil

import numpy

import chainer

from branchynet.model import serialization

SNAPSHOT = "snapshot_epoch_{.updater.epoch:04d}.npz"
SNAPSHOT_GLOB = "snapshot_epoch_*.npz"
EPOCH_KEY = "updater/iterator:main/epoch"
MODEL_PATH = "updater/model:main/"


def snapshot_path(out, epoch):
    return os.path.join(out, "snapshot_epoch_%04d.npz" % epoch)


def snapshot_epoch(path):
    """The overall epoch count a snapshot file was taken after."""
    with numpy.load(path) as data:
        return int(data[EPOCH_KEY])


def readable(path):
    """Whether the npz at ``path`` reads back whole (every member, checksums included)."""
    try:
        with numpy.load(path) as data:
            for key in data.files:
                data[key]
            return EPOCH_KEY in data.files
    except serialization.READ_ERRORS + (KeyError,):
        return False


def remove_temporaries(out):
    """Removes what interrupted saves left in ``out``: Chainer's snapshot folders
    (``tmpsnapshot_epoch_*``), ``serialization.atomic_write``'s files and older ``tmp*.tmp.npz``."""
    for tmp in glob.glob(os.path.join(out, "tmpsnapshot_epoch_*")):
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    patterns = (".*" + serialization.TMP_SUFFIX, ".*" + serialization.TMP_SUFFIX + ".npz",
                "tmp*.tmp.npz")
    for pattern in patterns:
        for tmp in glob.glob(os.path.join(out, pattern)):
            if os.path.isfile(tmp):
                os.remove(tmp)


def prepare(out, echo=print):
    """Makes ``extensions.snapshot(autoload=True)`` load the newest snapshot in ``out`` that reads
    back: unreadable ones are set aside (a warning names each and what is resumed instead), and
    the newest intact one (by epoch) gets the newest modification time (autoload goes by it).
    Returns that snapshot's path, or None."""
    remove_temporaries(out)
    intact, unreadable = [], []
    for path in sorted(glob.glob(os.path.join(out, SNAPSHOT_GLOB))):
        if readable(path):
            intact.append((snapshot_epoch(path), path))
        else:
            os.replace(path, path + ".unreadable")
            unreadable.append(path)
    newest = max(intact)[1] if intact else None
    for path in unreadable:
        echo("warning: %s does not read back (cut short or damaged); set aside as %s.unreadable, %s"
             % (path, os.path.basename(path),
                "resuming from %s" % os.path.basename(newest) if newest
                else "and no snapshot before it: training starts from the beginning"))
    if newest is not None:
        os.utime(newest)
    return newest


def latest(out):
    """The newest intact snapshot of a run folder (path), or None."""
    intact = [(snapshot_epoch(p), p) for p in glob.glob(os.path.join(out, SNAPSHOT_GLOB))
              if readable(p)]
    return max(intact)[1] if intact else None


def check_baseline(net, out, main_epochs, resume, echo=print):
    """Before resuming from ``resume`` (a snapshot path or None): a damaged ``main.npz`` raises
    ``ModelFileError`` saying what to do; a missing one, where pretraining has ended, is recreated
    from the snapshot of its last epoch (``net``: a net of the run's architecture, not changed),
    else ``ModelFileError`` says so."""
    path = os.path.join(out, serialization.MAIN)
    done = snapshot_epoch(resume) if resume else 0
    at_end = snapshot_path(out, main_epochs)
    recoverable = os.path.exists(at_end) and readable(at_end)
    if os.path.exists(path):
        try:
            serialization.load_into(copy.deepcopy(net), path)
        except (serialization.ModelFileError, ValueError, KeyError) as err:
            cause = err.__cause__ or err
            raise serialization.ModelFileError(
                "%s, the run's baseline, is damaged (%s: %s). %s" % (
                    path, type(cause).__name__, cause, _remedy(
                        out, recoverable, "delete it and run the same command again: it will "
                        "be recreated from %s" % at_end))) from None
        return
    if main_epochs == 0 or done < main_epochs:
        return  # not yet saved (or a --main-from run, whose copy runs.train makes)
    if not recoverable:
        raise serialization.ModelFileError("%s, the run's baseline, is missing. %s" % (
            path, _remedy(out, False, "")))
    baseline = copy.deepcopy(net)
    chainer.serializers.load_npz(at_end, baseline, path=MODEL_PATH)
    serialization.save(baseline, path)
    echo("recreated %s from %s (the end of pretraining)" % (path, at_end))


def _remedy(out, recoverable, how):
    if recoverable:
        return "To recover it, " + how
    return ("The snapshot of the end of pretraining is no longer kept, so it cannot be recreated "
            "here: restore main.npz from a copy, or train the run again in a new folder (the same "
            "command with another --out than %s)" % out)
