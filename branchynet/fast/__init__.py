"""Fast CPU (numpy) kernels for the conv and pooling layers of BranchyNet's networks.

Why: stock Chainer 7.8.1 spends most of a CPU convolution or pooling in copies (full im2col arrays,
``tensordot`` on non-contiguous operands), about 3 GFLOP/s. These FunctionNodes give the same values
and gradients several times faster; on CuPy arrays they hand over to Chainer's own functions.
The ``*_numpy`` functions are the plain forward kernels, for a Chainer-free batch-1 inference path.
Large batches are split over the machine's cores (``threads``; BLAS thread control in ``blas``).
"""
from branchynet.fast import blas, threads
from branchynet.fast.conv import conv2d_numpy, convolution_2d
from branchynet.fast.pooling import (average_pooling_2d, avg_pool_numpy, max_pool_numpy,
                                     max_pooling_2d)

__all__ = ["blas", "threads", "convolution_2d", "max_pooling_2d", "average_pooling_2d",
           "conv2d_numpy", "max_pool_numpy", "avg_pool_numpy"]
