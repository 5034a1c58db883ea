"""Training: the paper's two-stage schedule on Chainer's Trainer, run folders, data parallelism."""
