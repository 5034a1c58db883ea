"""The CPU backend: fast numpy kernels, the switch that runs them in Chainer graphs, and the
compiler of inference programs.

Stock Chainer 7.8.1 spends most of a CPU convolution or pooling in copies (full im2col arrays,
``tensordot`` on non-contiguous operands); the kernels (``conv``, ``pooling``) give the same values
and gradients several times faster, splitting large batches over the cores (``threads``; BLAS
thread control in ``blas``; a vector micro-kernel for the convolutions' products in
``microkernel``, chosen per shape where ``calibration`` times it faster). ``switch`` decides
where they run in training; ``compiler`` turns layer lists into numpy programs for inference,
batched or one sample at a time (``Runner``).
"""
from branchynet.fast import blas, threads
from branchynet.fast.compiler import Runner
from branchynet.fast.conv import conv2d_numpy
from branchynet.fast.conv_nodes import convolution_2d
from branchynet.fast.pooling import avg_pool_numpy, max_pool_numpy
from branchynet.fast.pooling_nodes import average_pooling_2d, max_pooling_2d
from branchynet.fast.switch import cpu_scope, enabled, run_layers

__all__ = ["blas", "threads", "convolution_2d", "max_pooling_2d", "average_pooling_2d",
           "conv2d_numpy", "max_pool_numpy", "avg_pool_numpy", "cpu_scope", "enabled",
           "run_layers", "Runner"]
