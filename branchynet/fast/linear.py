"""Inference linear layers with few outputs (an exit head's classifier) on vector code.

Why: with ten outputs, a batch's ``x @ W.T`` is a matrix product with ten columns, which OpenBLAS
runs far below its rate (B-LeNet's exit-1 classifier, 1,000 x 640 by 640 x 10: 0.33 ms, about
20 GMAC/s). Here each sample's outputs are dot products along the reduction, a few samples at a
time, every output's accumulator in a register (``vector_ir.dots``). Equal to the matrix product
within float32 rounding (another summation order); ``batch`` times both per shape on this machine
(``calibration``) and runs the faster.
"""
import numpy

from branchynet.fast import jit, threads, vector_ir

__all__ = ["rows_per_step", "applies", "linear"]


def rows_per_step(outputs, width=None):
    """Samples per step: as many as the registers hold with an accumulator for each of their
    outputs, one input vector each and one weight vector (32 registers with AVX-512, 16 with
    AVX2); 0 where one sample's outputs do not fit."""
    registers = 32 if (width or vector_ir.vector_width()) == 16 else 16
    return min(4, (registers - 1) // (outputs + 1))


def applies(x, W):
    """Whether ``linear`` runs x (N, K) by W (O, K): float32, vector code, few enough outputs."""
    return (vector_ir.why_not() is None and x.dtype == W.dtype == numpy.float32 and x.ndim == 2
            and W.ndim == 2 and x.shape[1] == W.shape[1] and rows_per_step(W.shape[0]) > 0)


_kernels = {}


def _kernel(outputs, width):
    if (outputs, width) not in _kernels:
        _kernels[outputs, width] = _build(outputs, width, rows_per_step(outputs, width))
    return _kernels[outputs, width]


def _build(outputs, width, rows):
    many, one = vector_ir.dots(rows, outputs, width), vector_ir.dots(1, outputs, width)

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(x, w, k, out, n0, n1):
        """Rows n0 .. n1 of x (flat, rows k apart) into out (flat, rows ``outputs`` apart)."""
        s = n0
        while s + rows <= n1:
            many(x, s * k, k, w, k, out, s * outputs)
            s += rows
        while s < n1:
            one(x, s * k, k, w, k, out, s * outputs)
            s += 1
    return run


def linear(x, W, b=None, width=None):
    """x (N, K) W^T + b for x and W that ``applies`` to, the batch split over the kernel threads;
    ``width`` picks the vector width (tests run the AVX2 geometry on AVX-512 machines too)."""
    width = width or vector_ir.vector_width()
    if rows_per_step(W.shape[0], width) < 1:
        raise ValueError("%d outputs are too many for %d-float vectors" % (W.shape[0], width))
    x, W = numpy.ascontiguousarray(x), numpy.ascontiguousarray(W)
    N, K = x.shape
    out = numpy.empty((N, W.shape[0]), numpy.float32)
    run = _kernel(W.shape[0], width)
    xf, wf, of = x.reshape(-1), W.reshape(-1), out.reshape(-1)
    threads.run(lambda n0, n1: run(xf, wf, K, of, n0, n1), threads.parts(N, K * 4))
    if b is not None:
        out += b
    return out
