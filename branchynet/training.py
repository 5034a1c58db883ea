"""The training loop: pretrain the main network, then train all exits jointly (the paper's schedule).

Each epoch shuffles with a seeded generator, steps through the whole training set (the last
partial batch included, as the original), averages losses and accuracies per sample (not per batch,
docs/original.md, B20), evaluates every exit on a held-out set, appends one line to ``log.jsonl``
and writes a checkpoint. A run started again with the same ``out`` folder resumes from that
checkpoint, with the same random stream and a continuous log, so a schedule can be completed across
runs and machines.

Random streams: the shuffle's generator and numpy's global one (dropout on the CPU) are saved in
the checkpoint and restored. On a GPU, dropout draws from CuPy's generator, whose state CuPy cannot
save; it is seeded instead at the start of every epoch from (seed, stage, epoch), so a resumed run
draws what an uninterrupted one does. CuPy is imported only for a net on a GPU. Chainer's dropout
with cuDNN enabled draws from cuDNN's own states instead (seeded from ``CHAINER_SEED`` or at
random), which cannot be restored: ``fit`` warns, and ``CHAINER_USE_CUDNN=never`` avoids it.

Files in ``out``: ``checkpoint.npz`` (model, loop state), ``optimizer.npz``, ``log.jsonl``, ``main.npz``
(the baseline, saved when pretraining ends: joint training goes on changing the shared final head,
docs/original.md, B11) and ``branchy.npz`` (the jointly trained net).
"""
import json
import os
import time

import numpy

import chainer

from branchynet import datasets, serialization
from branchynet.progress import ProgressBar

STAGES = ("main", "joint")


def evaluate(net, dataset, batchsize=1000):
    """Per-exit mean cross-entropy and accuracy on a dataset, every exit on every sample."""
    x_all, t_all = datasets.arrays(dataset)
    k = net.numexits()
    loss_sum, correct = numpy.zeros(k), numpy.zeros(k)
    for start in range(0, len(x_all), batchsize):
        x, t = x_all[start:start + batchsize], t_all[start:start + batchsize]
        for i, p in enumerate(net.exit_probs(x)):
            loss_sum[i] -= numpy.log(numpy.maximum(p[numpy.arange(len(t)), t], 1e-30)).sum()
            correct[i] += (p.argmax(axis=1) == t).sum()
    n = len(x_all)
    return (loss_sum / n).tolist(), (correct / n).tolist()


class _Checkpoint:
    """Model and loop state in ``checkpoint.npz``, optimizer state in ``optimizer.npz``.

    Two files so that each stays small enough to commit and to carry between machines (Adam keeps
    two arrays per parameter: B-ResNet-110's single-file checkpoint would be about 24 MB). Each is
    written atomically, the optimizer first; both carry the loop state, which must agree on load.
    A run folder from before the split (optimizer inside ``checkpoint.npz``) still loads.
    """

    def __init__(self, out):
        self.path = os.path.join(out, "checkpoint.npz")
        self.optimizer_path = os.path.join(out, "optimizer.npz")

    def exists(self):
        return os.path.exists(self.path)

    @staticmethod
    def _arrays(serializer, state):
        arrays = {key: chainer.backend.CpuDevice().send(v) for key, v in serializer.target.items()}
        arrays["state"] = numpy.array(json.dumps(state))
        return arrays

    def save(self, net, state):
        optimizer = chainer.serializers.DictionarySerializer()
        net.optimizer.serialize(optimizer["optimizer"])
        serialization._atomic_savez(self.optimizer_path, self._arrays(optimizer, state))
        model = chainer.serializers.DictionarySerializer()
        net.serialize(model["model"])
        serialization._atomic_savez(self.path, self._arrays(model, state))

    def load(self, net):
        with numpy.load(self.path) as data:
            state = str(data["state"])
        optimizer_path = self.path
        if os.path.exists(self.optimizer_path):
            optimizer_path = self.optimizer_path
            with numpy.load(optimizer_path) as data:
                if str(data["state"]) != state:
                    raise RuntimeError(
                        "%s and %s come from different epochs (a save was interrupted); delete "
                        "both to start the run again" % (self.path, self.optimizer_path))
        chainer.serializers.load_npz(self.path, net, path="model/")
        chainer.serializers.load_npz(optimizer_path, net.optimizer, path="optimizer/")
        return json.loads(state)


def _rng_state(rng):
    name, keys, pos, has_gauss, gauss = numpy.random.get_state()
    return {"shuffle": rng.bit_generator.state,
            "numpy_global": [name, keys.tolist(), pos, has_gauss, gauss]}


def _restore_rng(rng, state):
    rng.bit_generator.state = state["shuffle"]
    name, keys, pos, has_gauss, gauss = state["numpy_global"]
    numpy.random.set_state((name, numpy.array(keys, dtype=numpy.uint32), pos, has_gauss, gauss))


def epoch_seed(seed, stage, epoch):
    """The device generator's seed for one epoch: a 32-bit function of (seed, stage, epoch)."""
    entropy = [int(seed), STAGES.index(stage), int(epoch)]
    return int(numpy.random.SeedSequence(entropy).generate_state(1, numpy.uint32)[0])


def device_seeder(net):
    """A function seeding the generator that dropout on ``net``'s device draws from, or None where
    that is numpy's global generator (CPU), which the checkpoint saves. Imports CuPy only for a net
    on a CUDA device."""
    device = net.device
    if not isinstance(device, chainer.backend.GpuDevice):
        return None
    import cupy

    def seed(value):
        with device.device:
            cupy.random.seed(value)
    return seed


def _cudnn_dropout():
    """Whether Chainer's dropout on a GPU would take cuDNN's path (states this loop cannot seed)."""
    cuda = chainer.backends.cuda
    return bool(cuda.cudnn_enabled) and chainer.config.use_cudnn != "never"


def train_epoch(net, x_all, t_all, batchsize, rng, stage, desc="", progress=None):
    """One pass over the training set; returns per-exit (mean loss, mean accuracy) lists."""
    order = rng.permutation(len(x_all))
    k = net.numexits()
    loss_sum, acc_sum, seen = numpy.zeros(k), numpy.zeros(k), numpy.zeros(k)
    with ProgressBar(len(order), desc, enabled=progress) as bar:
        for start in range(0, len(order), batchsize):
            index = order[start:start + batchsize]
            x, t = x_all[index], t_all[index]
            if stage == "main":
                loss, acc = net.train_main(x, t)
                losses, accs = [None] * (k - 1) + [loss], [None] * (k - 1) + [acc]
            else:
                losses, accs = net.train(x, t)
            for i, (loss, acc) in enumerate(zip(losses, accs)):
                if loss is not None:
                    loss_sum[i] += loss * len(index)
                    acc_sum[i] += acc * len(index)
                    seen[i] += len(index)
            bar.update(len(index), loss=losses[-1] if losses[-1] is not None else float("nan"))
    with numpy.errstate(invalid="ignore", divide="ignore"):
        return _nan_to_none(loss_sum / seen), _nan_to_none(acc_sum / seen)


def _nan_to_none(values):
    return [None if numpy.isnan(v) else float(v) for v in values]


def fit(net, train, val, out, main_epochs, joint_epochs, batchsize, seed=0, eval_batchsize=1000,
        progress=None, echo=None):
    """Runs (or resumes) the schedule: ``main_epochs`` of pretraining, then ``joint_epochs``.

    Returns the list of log entries (one per epoch, both stages).
    """
    echo = echo or (lambda line: print(line, flush=True))
    os.makedirs(out, exist_ok=True)
    x_all, t_all = datasets.arrays(train)
    checkpoint = _Checkpoint(out)
    rng = numpy.random.default_rng(seed)
    seed_device = device_seeder(net)
    if seed_device is not None and _cudnn_dropout():
        echo("warning: cuDNN is enabled: Chainer's dropout draws from cuDNN's states, which are "
             "not seeded per epoch nor checkpointed; set CHAINER_USE_CUDNN=never for a run that "
             "can be regenerated from its seed")
    log = []
    state = {"stage": "main", "epoch": 0}
    if checkpoint.exists():
        state = checkpoint.load(net)
        log = state["log"]
        if state.get("seed", seed) != seed:
            echo("warning: %s was started with seed %d, not %d; it goes on with %d"
                 % (out, state["seed"], seed, state["seed"]))
            seed = state["seed"]
        _restore_rng(rng, state["rng"])
        echo("resumed from %s: stage %s, %d epochs done" % (checkpoint.path, state["stage"],
                                                            state["epoch"]))
    _write_log(out, log)
    for stage, epochs in zip(STAGES, (main_epochs, joint_epochs)):
        if STAGES.index(stage) < STAGES.index(state["stage"]):
            continue
        if stage != state["stage"]:
            net.reset_optimizer()
            state = {"stage": stage, "epoch": 0}
        for epoch in range(state["epoch"] + 1, epochs + 1):
            started = time.perf_counter()
            desc = "%s %d/%d" % (stage, epoch, epochs)
            if seed_device is not None:
                seed_device(epoch_seed(seed, stage, epoch))
            train_loss, train_acc = train_epoch(net, x_all, t_all, batchsize, rng, stage, desc,
                                                progress)
            val_loss, val_acc = evaluate(net, val, eval_batchsize)
            entry = {"stage": stage, "epoch": epoch, "train/loss": train_loss,
                     "train/accuracy": train_acc, "val/loss": val_loss, "val/accuracy": val_acc,
                     "seconds": time.perf_counter() - started}
            log.append(entry)
            echo(_format_entry(entry))
            state = {"stage": stage, "epoch": epoch, "log": log, "rng": _rng_state(rng),
                     "seed": seed}
            checkpoint.save(net, state)
            _write_log(out, log)
        if stage == "main" and epochs > 0 and not os.path.exists(os.path.join(out, "main.npz")):
            serialization.save(net, os.path.join(out, "main.npz"))
        state = {"stage": stage, "epoch": epochs}
    serialization.save(net, os.path.join(out, "branchy.npz"))
    return log


def _write_log(out, log):
    tmp = os.path.join(out, "log.jsonl.tmp")
    with open(tmp, "w") as f:
        for entry in log:
            f.write(json.dumps(entry) + "\n")
    os.replace(tmp, os.path.join(out, "log.jsonl"))


def _format_entry(entry):
    def fmt(values):
        return "/".join("-" if v is None else "%.4f" % v for v in values)
    return "%-5s epoch %3d  train loss %s acc %s  val loss %s acc %s  (%.1fs)" % (
        entry["stage"], entry["epoch"], fmt(entry["train/loss"]), fmt(entry["train/accuracy"]),
        fmt(entry["val/loss"]), fmt(entry["val/accuracy"]), entry["seconds"])


def read_log(out):
    """The log entries of a run folder."""
    with open(os.path.join(out, "log.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]
