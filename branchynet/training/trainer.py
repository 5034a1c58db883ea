"""Training on Chainer's Trainer: pretrain the main network, then train all exits jointly (the
paper's schedule), resumably, in one process or several (``branchynet.training.distributed``).

``fit`` builds a ``chainer.training.Trainer`` around ``updater.BranchyUpdater`` (the two stages,
each exit's loss and accuracy reported per step) with these extensions:

* ``ExitEvaluator`` (an ``Evaluator``): every exit on the validation split, once per epoch;
* ``RunLog`` (a ``LogReport``): the epoch's means, also written to ``log.jsonl`` in the format the
  readers use (``read_log``, ``plots.training_curves``, the notebooks): one line per epoch with
  ``stage``, ``epoch`` (within the stage), per-exit lists ``train/loss``, ``train/accuracy``,
  ``val/loss``, ``val/accuracy`` (None for an exit not trained in pretraining), ``seconds``;
* ``PrintReport`` and ``ProgressBar`` (on stderr, where it is a terminal);
* ``extensions.snapshot(autoload=True)``: the whole state (model, optimizer, order, random streams,
  log) after every epoch in ``snapshot_epoch_NNNN.npz``, written atomically (a temporary folder,
  then a rename), the last two kept. A run started again with the same ``out`` resumes from the
  newest snapshot that reads back; one that does not (a copy cut short, a full disk, a flipped
  bit) is renamed ``*.unreadable``, never deleted, and the one before it is used
  (``snapshots``). One process at a time trains in a folder (``lock``).

Per epoch the order is a fresh seeded permutation (``updater.SeededOrder``), every batch is used
(the last one partial, as the original), losses and accuracies are averaged per sample (not per
batch, docs/original.md, B20). A resumed run equals an uninterrupted one bit for bit on the CPU.
On a GPU, dropout draws from CuPy's generator, whose state cannot be saved: it is seeded at the
start of every epoch from (seed, stage, epoch) instead. Chainer's dropout with cuDNN draws from
cuDNN's own states, which cannot be restored: ``fit`` warns, ``CHAINER_USE_CUDNN=never`` avoids it.

Other files in ``out``: ``main.npz`` (the baseline, saved when pretraining ends: joint training goes
on changing the shared final head, docs/original.md, B11) and ``branchy.npz`` (the jointly trained
net), both checked to be writable before the first epoch (a net built by hand saves its weights
and thresholds; ``serialization.load_into`` reads them back into a net built again). A resume
checks ``main.npz`` first and recreates a deleted one (``snapshots.check_baseline``).
"""
import contextlib
import json
import os
import sys
import warnings

import numpy

import chainer
from chainer.training import extensions, triggers

from branchynet.data import datasets
from branchynet.model import serialization
from branchynet.training import lock, optimizers, snapshots
from branchynet.training.updater import STAGES, BranchyUpdater, EpochIterator, SeededOrder, device_seeder

LOG = "log.jsonl"


def exit_sums(net, x_all, t_all, batchsize=1000):
    """Per-exit sums of cross-entropy and of correct predictions over (x_all, t_all), every exit
    on every sample (numpy float64 arrays)."""
    k = net.numexits()
    loss_sum, correct = numpy.zeros(k), numpy.zeros(k)
    for start in range(0, len(x_all), batchsize):
        x, t = x_all[start:start + batchsize], t_all[start:start + batchsize]
        for i, p in enumerate(net.exit_probs(x)):
            loss_sum[i] -= numpy.log(numpy.maximum(p[numpy.arange(len(t)), t], 1e-30)).sum()
            correct[i] += (p.argmax(axis=1) == t).sum()
    return loss_sum, correct


class ExitEvaluator(extensions.Evaluator):
    """Every exit of ``net`` on the validation arrays ``(x, t)``; reports
    ``validation/main/exit<k>/loss`` and ``.../accuracy`` (means over samples). With ``dist``
    (``distributed.Distributed``) each process evaluates its part and the sums are added."""

    def __init__(self, val, net, batchsize=1000, dist=None):
        x, t = datasets.arrays(val)
        self.total = len(x)
        if dist is not None:
            part = dist.part(len(x))
            x, t = x[part], t[part]
        iterator = chainer.iterators.SerialIterator(chainer.datasets.TupleDataset(x, t),
                                                    batchsize, repeat=False, shuffle=False)
        super().__init__(iterator, net)
        self.net, self.dist = net, dist

    def evaluate(self):
        iterator = self.get_iterator("main")
        iterator.reset()
        k = self.net.numexits()
        sums = numpy.zeros((2, k))
        for batch in iterator:
            x, t = chainer.dataset.concat_examples(batch)
            sums += exit_sums(self.net, x, t, len(t))
        if self.dist is not None:
            sums = self.dist.allreduce(sums)
        loss_sum, correct = sums
        result = {}
        for i in range(k):
            result["validation/main/exit%d/loss" % (i + 1)] = loss_sum[i] / self.total
            result["validation/main/exit%d/accuracy" % (i + 1)] = correct[i] / self.total
        return result


def run_log_entry(entry, stage_epoch, num_exits, previous_elapsed=0.0):
    """The log.jsonl line of one LogReport entry (Chainer's flat keys)."""
    stage, epoch = stage_epoch(entry["epoch"])
    line = {"stage": stage, "epoch": epoch}
    for split, prefix in (("train", "main"), ("val", "validation/main")):
        for metric in ("loss", "accuracy"):
            line["%s/%s" % (split, metric)] = [
                entry.get("%s/exit%d/%s" % (prefix, k + 1, metric)) for k in range(num_exits)]
    line["seconds"] = entry["elapsed_time"] - previous_elapsed
    line["iteration"] = entry["iteration"]
    return line


class RunLog(extensions.LogReport):
    """LogReport whose entries are also written, as ``run_log_entry`` lines, to ``log.jsonl``
    (atomically) each time one is added."""

    def __init__(self, out, stage_epoch, num_exits):
        super().__init__(trigger=(1, "epoch"), filename=None, log_name=None)
        self.out, self.stage_epoch, self.num_exits = out, stage_epoch, num_exits

    def __call__(self, trainer):
        before = len(self.log)
        super().__call__(trainer)
        if len(self.log) != before:
            self.write()

    def entries(self):
        lines, elapsed = [], 0.0
        for entry in self.log:
            lines.append(run_log_entry(entry, self.stage_epoch, self.num_exits, elapsed))
            elapsed = entry["elapsed_time"]
        return lines

    def write(self):
        text = "".join(json.dumps(line) + "\n" for line in self.entries())
        serialization.atomic_write(os.path.join(self.out, LOG), lambda f: f.write(text))


def _save_baseline(out):
    """An extension saving the main network as ``main.npz`` (unless there is one) when run."""
    @chainer.training.make_extension(priority=chainer.training.PRIORITY_READER)
    def save_baseline(trainer):
        path = os.path.join(out, serialization.MAIN)
        if not os.path.exists(path):
            serialization.save(trainer.updater.net, path)
    return save_baseline


class _FromRoot(chainer.training.Extension):
    """With several processes: after rank 0 has loaded its snapshot (the snapshot extension's
    autoload), sends rank 0's whole trainer state to the others, so that they need no shared
    folder; in a new run, rank 0's parameters (its --main-from, say). Initialized after the
    snapshot extension (lower priority), on every process at the same point: the processes start
    alike."""
    priority = -200
    trigger = None

    def __init__(self, dist):
        self.dist = dist

    def initialize(self, trainer):
        state = None
        if self.dist.is_root and trainer.updater.iteration > 0:
            state = chainer.serializers.npz.serialize(trainer)
        state = self.dist.bcast(state)
        if state is None:
            self.dist.bcast_params(trainer.updater.net)
        elif not self.dist.is_root:
            chainer.serializers.NpzDeserializer(state).load(trainer)

    def __call__(self, trainer):
        pass


class _EchoStream:
    """A file-like object handing each complete line to ``echo`` (for PrintReport)."""

    def __init__(self, echo):
        self.echo, self.buffer = echo, ""

    def write(self, text):
        self.buffer += text.replace("\033[J", "")  # PrintReport's clear-line for terminals
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.echo(line)

    def flush(self):
        pass


def _cudnn_dropout():
    """Whether Chainer's dropout on a GPU would take cuDNN's path (states this loop cannot seed)."""
    cuda = chainer.backends.cuda
    return bool(cuda.cudnn_enabled) and chainer.config.use_cudnn != "never"


def fit(net, train, val, out, main_epochs, joint_epochs, batchsize, seed=0, eval_batchsize=1000,
        progress=None, echo=None, dist=None, optimizer=None):
    """Runs (or resumes) the schedule: ``main_epochs`` of pretraining, then ``joint_epochs``.

    ``net``: any BranchyNet (registered or not). ``optimizer``: makes a fresh optimizer over a
    link, once per stage (default ``optimizers.OptimizerSettings()``: Adam, alpha 1e-3, beta1 0.9).
    ``dist``: a ``distributed.Distributed`` for data parallel training (every process calls
    ``fit`` alike; only rank 0 writes, holding the folder: ``lock.hold``). Returns the log
    entries (``read_log``'s, one per epoch).
    """
    echo = echo or (lambda line: print(line, flush=True))
    root = dist is None or dist.is_root
    serialization.entries(net)  # what cannot be saved fails now, not after the first stage
    with lock.hold(out, warn=echo) if root else contextlib.nullcontext():
        return _fit(net, train, val, out, main_epochs, joint_epochs, batchsize, seed,
                    eval_batchsize, progress, echo, dist, optimizer)


def _fit(net, train, val, out, main_epochs, joint_epochs, batchsize, seed, eval_batchsize,
         progress, echo, dist, optimizer):
    root = dist is None or dist.is_root
    net.initialize(datasets.arrays(train)[0][:1])
    seed_device = device_seeder(net)
    if seed_device is not None and _cudnn_dropout() and root:
        echo("warning: cuDNN is enabled: Chainer's dropout draws from cuDNN's states, which are "
             "not seeded per epoch nor saved; set CHAINER_USE_CUDNN=never for a run that can be "
             "regenerated from its seed")
    iterator = EpochIterator(datasets.arrays(train), batchsize, SeededOrder(seed),
                             *((dist.rank, dist.size) if dist is not None else ()))
    updater = BranchyUpdater(iterator, net, optimizer or optimizers.OptimizerSettings(),
                             main_epochs, seed, seed_device,
                             wrap_optimizer=None if dist is None else dist.optimizer,
                             allreduce=None if dist is None else dist.allreduce,
                             rank=None if dist is None else dist.rank)
    trainer = chainer.training.Trainer(updater, (main_epochs + joint_epochs, "epoch"), out=out)
    trainer.extend(ExitEvaluator(val, net, eval_batchsize, dist), name="validation")
    log = RunLog(out, updater.stage_epoch, net.numexits())
    if root:
        _extend_root(trainer, log, main_epochs, progress, echo)
    if dist is not None:
        trainer.extend(_FromRoot(dist), name="from_root")
    if main_epochs + joint_epochs > 0:  # (an epoch trigger of period 0 would divide by zero)
        trainer.run()
    if root:
        log.write()
        serialization.save(net, os.path.join(out, serialization.BRANCHY))
    return log.entries()


def _extend_root(trainer, log, main_epochs, progress, echo):
    """The extensions of the process that writes the run folder; checks the files a resume reads
    (``snapshots.prepare``, ``snapshots.check_baseline``) before any epoch, and says where it
    resumes."""
    updater, out = trainer.updater, trainer.out
    k = updater.net.numexits()
    trainer.extend(log, name="LogReport")
    if main_epochs > 0:
        trainer.extend(_save_baseline(out),
                       trigger=triggers.ManualScheduleTrigger(main_epochs, "epoch"))
    trainer.extend(extensions.PrintReport(
        ["epoch"] + ["main/exit%d/loss" % (i + 1) for i in range(k)]
        + ["validation/main/exit%d/accuracy" % (i + 1) for i in range(k)] + ["elapsed_time"],
        out=_EchoStream(echo)))
    if sys.stderr.isatty() if progress is None else progress:
        trainer.extend(extensions.ProgressBar(update_interval=10, out=sys.stderr))
    resume = snapshots.prepare(out, echo)
    snapshots.check_baseline(updater.net, out, main_epochs, resume, echo)
    trainer.extend(extensions.snapshot(filename=snapshots.SNAPSHOT, autoload=True, n_retains=2),
                   trigger=(1, "epoch"))
    if resume is None:
        return
    done = snapshots.snapshot_epoch(resume)
    total = trainer.stop_trigger.period
    if done >= total:
        echo("finished: %s already holds all %d epochs (nothing to train)" % (out, total))
        return
    stage, epoch = updater.stage_epoch(done) if done else (STAGES[0], 0)
    echo("resumed from %s: stage %s, %d epochs done" % (resume, stage, epoch))


def read_log(out):
    """The log entries of a run folder. A line that does not read back (the file edited or cut
    short) is left out with a warning naming the file and line: a log only documents the run."""
    path = os.path.join(out, LOG)
    entries = []
    with open(path, errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as err:
                entry = err
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                warnings.warn("%s, line %d, is not a log entry (%s): left out; the file is "
                              "damaged or cut short" % (path, number, entry), stacklevel=2)
    return entries
