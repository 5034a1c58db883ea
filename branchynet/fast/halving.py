"""Inference max pooling with 2 x 2 windows and stride 2 (B-LeNet's pooling), on vector code.

Why: in a batch, B-LeNet's early exit spends more time pooling than convolving; numpy's pooling
costs about 1 ns an input element and the compiled row-by-row kernel (``jit.max_pool``) no less.
Here each plane is read where it lies (a convolution's full-row output needs no copy) and pooled
as one flat run: output position q = oy * pitch + ox of a grid with the input's row pitch reads
inputs 2q, 2q + 1 and the two below, so a vector of outputs is two vector loads from each of two
rows, a maximum, and an even/odd lane shuffle (``vector_ir.pool_pairs``). Grid columns past the
output are computed and never read; the returned array is a view of the grid.

Chainer's semantics with pad 0: ``cover_all`` adds the partial last row and column of an odd
size; NaN propagates as in ``numpy.maximum``, as in the other inference kernels.
"""
import numpy
from numpy.lib.stride_tricks import as_strided

from branchynet.fast import jit, threads, vector_ir
from branchynet.fast.layout import pair

__all__ = ["applies", "max_pool"]


def _flat_planes(x):
    """(flat view from x's first element, plane pitch, row pitch) in elements when x's planes
    (N * C of them, in order) are evenly spaced and disjoint, with unit column stride; else
    None."""
    item = x.itemsize
    N, C, H, W = x.shape
    if x.strides[3] != item or any(s % item for s in x.strides[:3]):
        return None
    sn, sc, row = (s // item for s in x.strides[:3])
    pitch = sc if C > 1 else sn if N > 1 else H * row  # from one plane to the next
    if (N > 1 and sn != C * pitch) or row < W or pitch < H * row:
        return None
    extent = (N * C - 1) * pitch + (H - 1) * row + W
    return as_strided(x, shape=(extent,), strides=(item,)), pitch, row


def applies(x, ksize, stride, pad):
    """Whether this pooling of x runs here: float32, 2 x 2 windows, stride 2, no padding, planes
    laid out evenly (any row pitch), on a CPU with vector code."""
    stride = ksize if stride is None else stride
    return (vector_ir.why_not() is None and x.dtype == numpy.float32 and x.ndim == 4
            and pair(ksize) == (2, 2) and pair(stride) == (2, 2) and pair(pad) == (0, 0)
            and min(x.shape[2:]) >= 2 and _flat_planes(x) is not None)


_kernels = {}


def _kernel(width):
    if width not in _kernels:
        _kernels[width] = _build(width, vector_ir.pool_pairs(width))
    return _kernels[width]


def _build(width, pairs):
    nan_max = jit._nan_max

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(y, p0, p1, pitch, row, H, W, grid, OH, OW, floor):
        """Planes p0 .. p1 of y into grid (planes of OH rows of ``row`` columns)."""
        OHf, OWf = H // 2, W // 2  # outputs whose window lies inside the input
        n = (OHf - 1) * row + OWf  # grid positions up to the last of them
        groups = n // width
        for p in range(p0, p1):
            at, to = p * pitch, p * OH * row
            pairs(y, at, row, grid, to, groups, floor)
            for q in range(groups * width, n):
                i = at + 2 * q
                top = nan_max(y[i], y[i + 1])
                grid[to + q] = nan_max(nan_max(top, nan_max(y[i + row], y[i + row + 1])), floor)
            if OW > OWf:  # the last column's windows hold one input column
                for oy in range(OHf):
                    i = at + 2 * oy * row + W - 1
                    grid[to + oy * row + OWf] = nan_max(nan_max(y[i], y[i + row]), floor)
            if OH > OHf:  # the last row's windows hold one input row
                i = at + (H - 1) * row
                for ox in range(OW):
                    v = y[i + 2 * ox]
                    if 2 * ox + 1 < W:
                        v = nan_max(v, y[i + 2 * ox + 1])
                    grid[to + OHf * row + ox] = nan_max(v, floor)
    return run


def max_pool(x, cover_all, relu, width=None):
    """max_pooling_2d(x, 2, 2, 0, cover_all), then a ReLU if ``relu``, for x that ``applies``:
    an (N, C, OH, OW) view of a grid with x's row pitch. ``width`` picks the vector width (tests
    run the AVX2 geometry on AVX-512 machines too)."""
    flat, pitch, row = _flat_planes(x)
    N, C, H, W = x.shape
    OH, OW = ((H + 1) // 2, (W + 1) // 2) if cover_all else (H // 2, W // 2)
    grid = numpy.empty(N * C * OH * row, numpy.float32)
    run = _kernel(width or vector_ir.vector_width())
    floor = 0.0 if relu else -numpy.inf
    threads.run(lambda n0, n1: run(flat, n0 * C, n1 * C, pitch, row, H, W, grid, OH, OW, floor),
                threads.parts(N, C * (pitch + OH * row) * 4))
    return grid.reshape(N, C, OH, row)[:, :, :, :OW]
