"""The paper's two-stage schedule as a Chainer updater: pretraining of the main network, then joint
training of every exit on the weighted sum of their losses.

``SeededOrder`` draws each epoch's order from a seeded numpy generator whose state is part of a
snapshot; ``EpochIterator`` walks the training arrays in that order, the last batch of an epoch
partial (as the original), and hands each process its share of every global batch when training is
spread over processes (``branchynet.training.distributed``); ``BranchyUpdater`` runs one step with the
per-batch API (``BranchyNet.train_main`` in pretraining, ``BranchyNet.train`` in joint training,
whose loss is the net's ``JointLoss``) with an optimizer it makes, a fresh one for each stage,
reports every exit's loss and accuracy with ``chainer.report`` and keeps the random streams a
resumed run needs.
"""
import collections
import json

import numpy

import chainer
from chainer.training import updaters

STAGES = ("main", "joint")


def epoch_seed(seed, stage, epoch, rank=None):
    """A 32-bit seed for one epoch's random draws (dropout) on generators that a snapshot does not
    hold: a function of (seed, stage, epoch) and, for one of several processes, its ``rank``."""
    entropy = [int(seed), STAGES.index(stage), int(epoch)] + ([] if rank is None else [int(rank)])
    return int(numpy.random.SeedSequence(entropy).generate_state(1, numpy.uint32)[0])


def device_seeder(net):
    """A function seeding the generator that dropout on ``net``'s device draws from, or None where
    that is numpy's global generator (CPU), which the snapshot holds. Imports CuPy only for a net
    on a CUDA device."""
    device = net.device
    if not isinstance(device, chainer.backend.GpuDevice):
        return None
    import cupy

    def seed(value):
        with device.device:
            cupy.random.seed(value)
    return seed


def _is_saving(serializer):
    return isinstance(serializer, chainer.serializer.Serializer)


def _serialize_json(serializer, key, value):
    """``value`` (JSON-able) through a Chainer serializer as a JSON string; returns what is loaded."""
    text = serializer(key, json.dumps(value))
    return value if _is_saving(serializer) else json.loads(str(text))


class SeededOrder(chainer.iterators.OrderSampler):
    """Each epoch's order: a permutation drawn from ``numpy.random.default_rng(seed)``; the
    generator's state is serialized with the iterator, so a resumed run draws the orders an
    uninterrupted one does."""

    def __init__(self, seed):
        self.seed = seed
        self.rng = numpy.random.default_rng(seed)

    def __call__(self, current_order, current_position):
        return self.rng.permutation(len(current_order))

    def serialize(self, serializer):
        self.rng.bit_generator.state = _serialize_json(serializer, "state",
                                                       self.rng.bit_generator.state)


Batch = collections.namedtuple("Batch", "x t total")


class EpochIterator(chainer.dataset.Iterator):
    """Batches of ``(x, t)`` arrays in ``order_sampler``'s order, one order per epoch, drawn when
    the epoch starts; the last batch of an epoch is partial (no samples carried into the next).

    With ``size`` processes, each global batch of ``batch_size`` is cut into ``size`` consecutive
    parts and this process (``rank``) gets its own, so the processes together step through the
    data exactly as one process does. ``next()`` returns a ``Batch`` (x, t, total: the global
    batch's size).
    """

    def __init__(self, arrays, batch_size, order_sampler, rank=0, size=1):
        self.x, self.t = arrays
        if len(self.x) == 0:
            raise ValueError("the training set is empty")
        self.batch_size, self.order_sampler = batch_size, order_sampler
        self.rank, self.size = rank, size
        self.epoch, self.current_position, self.is_new_epoch = 0, 0, False
        self._previous_epoch_detail = -1.0
        self._order = None

    def __len__(self):
        return len(self.x)

    def __next__(self):
        n = len(self.x)
        self._previous_epoch_detail = self.epoch_detail
        if self._order is None:
            self._order = self.order_sampler(numpy.arange(n), 0)
        start = self.current_position
        index = self._order[start:start + self.batch_size]
        local = numpy.array_split(index, self.size)[self.rank]
        self.current_position = start + len(index)
        self.is_new_epoch = self.current_position >= n
        if self.is_new_epoch:
            self.epoch += 1
            self.current_position = 0
            self._order = None
        return Batch(self.x[local], self.t[local], len(index))

    next = __next__

    @property
    def epoch_detail(self):
        return self.epoch + self.current_position / len(self.x)

    @property
    def previous_epoch_detail(self):
        return None if self._previous_epoch_detail < 0 else self._previous_epoch_detail

    @property
    def at_epoch_start(self):
        return self.current_position == 0

    def serialize(self, serializer):
        self.epoch = serializer("epoch", self.epoch)
        self.current_position = serializer("current_position", self.current_position)
        self.is_new_epoch = serializer("is_new_epoch", self.is_new_epoch)
        self._previous_epoch_detail = serializer("previous_epoch_detail",
                                                 self._previous_epoch_detail)
        if _is_saving(serializer):
            serializer("order", numpy.zeros(0, numpy.int64) if self._order is None else self._order)
        else:
            order = numpy.asarray(serializer("order", None))
            self._order = order if len(order) else None
        self.order_sampler.serialize(serializer["order_sampler"])


def _numpy_global_state():
    name, keys, pos, has_gauss, gauss = numpy.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def _set_numpy_global_state(state):
    name, keys, pos, has_gauss, gauss = state
    numpy.random.set_state((name, numpy.array(keys, dtype=numpy.uint32), pos, has_gauss, gauss))


class BranchyUpdater(updaters.StandardUpdater):
    """One step of the schedule per batch: ``net.train_main`` for the first ``main_epochs`` epochs,
    then ``net.train`` (all exits, weighted losses), each stage with a fresh optimizer from
    ``make_optimizer(net)`` (``branchynet.training.optimizers``).

    Reported per step (``chainer.report``, weighted by the batch size so that an epoch's mean is a
    mean over samples, as the original's): ``main/exit<k>/loss`` and ``main/exit<k>/accuracy`` for
    each exit trained (only the last one in pretraining), over the global batch.

    Random streams: the order's generator and numpy's global generator (dropout on the CPU) are
    serialized. Generators a snapshot cannot hold are seeded at the start of each epoch from
    ``epoch_seed`` instead: CuPy's (``seed_device``) and, with several processes, each process's
    numpy one (so that processes draw different dropout masks, reproducibly).

    ``wrap_optimizer`` (``distributed.Distributed.optimizer``) wraps each stage's fresh optimizer
    for data parallel training; ``allreduce`` sums the per-exit statistics over processes.
    """

    def __init__(self, iterator, net, make_optimizer, main_epochs, seed=0, seed_device=None,
                 wrap_optimizer=None, allreduce=None, rank=None):
        self.net, self.main_epochs, self.seed = net, main_epochs, seed
        self.make_optimizer = make_optimizer
        self.seed_device, self.wrap_optimizer = seed_device, wrap_optimizer
        self.allreduce, self.rank = allreduce, rank
        self.stage = STAGES[0]
        super().__init__(iterator, self._fresh_optimizer())

    def _fresh_optimizer(self):
        optimizer = self.make_optimizer(self.net)
        return optimizer if self.wrap_optimizer is None else self.wrap_optimizer(optimizer)

    def enter_stage(self, stage):
        """Switches to ``stage``; the joint stage starts on a fresh optimizer (Adam's moments of
        the pretraining do not carry over, docs/original.md, B13)."""
        if stage == self.stage:
            return
        self.stage = stage
        self._optimizers["main"] = self._fresh_optimizer()

    def stage_epoch(self, epoch):
        """(stage, epoch within it) of the 1-based overall ``epoch``."""
        if epoch <= self.main_epochs:
            return STAGES[0], epoch
        return STAGES[1], epoch - self.main_epochs

    def update_core(self):
        iterator = self._iterators["main"]
        stage, epoch = self.stage_epoch(iterator.epoch + 1)
        self.enter_stage(stage)
        if iterator.at_epoch_start:
            if self.seed_device is not None:
                self.seed_device(epoch_seed(self.seed, stage, epoch, self.rank))
            if self.rank is not None:
                numpy.random.seed(epoch_seed(self.seed, stage, epoch, self.rank))
        batch = iterator.next()
        n = len(batch.t)
        optimizer = self._optimizers["main"]
        if hasattr(optimizer, "set_share"):
            optimizer.set_share(n, batch.total)
        k = self.net.numexits()
        if n == 0:  # a process with no share of a small last batch still takes part in the step
            optimizer.zero_step()
            losses = accs = [None] * k
        elif stage == STAGES[0]:
            loss, acc = self.net.train_main(batch.x, batch.t, optimizer)
            losses, accs = [None] * (k - 1) + [loss], [None] * (k - 1) + [acc]
        else:
            losses, accs = self.net.train(batch.x, batch.t, optimizer)
        self._report(losses, accs, n, batch.total)

    def _report(self, losses, accs, n, total):
        if self.allreduce is None:
            observation = {}
            for i, (loss, acc) in enumerate(zip(losses, accs)):
                if loss is not None:
                    observation["main/exit%d/loss" % (i + 1)] = (loss, n)
                    observation["main/exit%d/accuracy" % (i + 1)] = (acc, n)
            chainer.report(observation)
            return
        # sums over the processes: per exit, loss * samples, accuracy * samples, samples
        sums = numpy.zeros((len(losses), 3))
        for i, (loss, acc) in enumerate(zip(losses, accs)):
            if loss is not None:
                sums[i] = loss * n, acc * n, n
        sums = self.allreduce(sums)
        observation = {}
        for i, (loss_sum, acc_sum, seen) in enumerate(sums):
            if seen > 0:
                observation["main/exit%d/loss" % (i + 1)] = (loss_sum / seen, seen)
                observation["main/exit%d/accuracy" % (i + 1)] = (acc_sum / seen, seen)
        chainer.report(observation)

    def serialize(self, serializer):
        stage = serializer("stage", self.stage)
        if not _is_saving(serializer):
            self.enter_stage(str(stage))  # before the optimizer's state is loaded into it
        super().serialize(serializer)
        state = _serialize_json(serializer, "numpy_global_random", _numpy_global_state())
        if not _is_saving(serializer):
            _set_numpy_global_state(state)
