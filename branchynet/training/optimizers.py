"""The original's optimizers, set up outside the model: Adam (alpha, beta1) or MomentumSGD (lr,
momentum, weight decay).

``OptimizerSettings`` is what a run records (``run.json``'s ``optimizer``) and a factory: calling it
on a link gives a fresh optimizer over the link's parameters. ``fit`` calls it once per stage, so
that the joint stage does not inherit the pretraining's Adam moments (docs/original.md, B13).
"""
import dataclasses

import chainer
from chainer import optimizers

KINDS = ("Adam", "MomentumSGD")


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """An optimizer's kind and hyperparameters (those of the other kind are kept, unused)."""
    opt: str = "Adam"
    alpha: float = 1e-3
    beta1: float = 0.9
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4

    def __post_init__(self):
        if self.opt not in KINDS:
            raise ValueError("opt must be 'Adam' or 'MomentumSGD', got %r" % (self.opt,))

    def __call__(self, target):
        """A fresh optimizer over ``target``'s parameters."""
        if self.opt == "Adam":
            return optimizers.Adam(alpha=self.alpha, beta1=self.beta1).setup(target)
        optimizer = optimizers.MomentumSGD(lr=self.lr, momentum=self.momentum).setup(target)
        if self.weight_decay:
            optimizer.add_hook(chainer.optimizer_hooks.WeightDecay(self.weight_decay))
        return optimizer

    def as_dict(self):
        return dataclasses.asdict(self)


def adam(alpha=1e-3, beta1=0.9):
    """The paper's optimizer: settings for Adam."""
    return OptimizerSettings("Adam", alpha=alpha, beta1=beta1)


def momentum_sgd(lr=0.1, momentum=0.9, weight_decay=1e-4):
    """The original's B-ResNet optimizer: settings for MomentumSGD with weight decay."""
    return OptimizerSettings("MomentumSGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
