"""Inference max pooling with 2 x 2 windows and stride 2 (B-LeNet's pooling), on vector code.

Why: in a batch, B-LeNet's early exit spends more time pooling than convolving; numpy's pooling
costs about 1 ns an input element and the compiled row-by-row kernel (``jit.max_pool``) no less.
Here each plane is read where it lies (a convolution's full-row output needs no copy) and pooled
as one flat run: output position q = oy * pitch + ox of a grid with the input's row pitch reads
inputs 2q, 2q + 1 and the two below, so a vector of outputs is two vector loads from each of two
rows, a maximum, and an even/odd lane shuffle (``vector_ir.pool_pairs``), into a grid that stays
in L1 (its columns past the output are computed and never read). Each plane's outputs are then
stored contiguously or, for a convolution that reads them, with that convolution's zero padding
around them (``layout.filled``), which saves its padded copy.

Chainer's semantics with pad 0: ``cover_all`` adds the partial last row and column of an odd
size; NaN propagates as in ``numpy.maximum``, as in the other inference kernels.
"""
import numpy
from numpy.lib.stride_tricks import as_strided

from branchynet.fast import jit, layout, microkernel, threads, vector_ir
from branchynet.fast.layout import pair

__all__ = ["applies", "max_pool", "pooled_size", "output_planes", "plane_functions"]


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


def plane_functions(width):
    """(pool_plane, store_plane, grid_size) on vectors of ``width`` floats, for compiled callers
    that pool planes of their own (``conv_pool``)."""
    return _kernel(width)[1:]


def _storing(width):
    put = vector_ir.window_row(width)

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def store_plane(grid, row, OH, OW, dst, at, Hp, Wq, ph, pw):
        """The OH x OW outputs pool_plane wrote at grid[pw:] into the plane dst[at:at + Hp * Wq]
        (rows Wq apart) at row ph, column pw, and zeros in the rest of the plane: row by row in
        whole vectors (each spilling into the next row, which overwrites it), the plane's last
        vector lane by lane, so that nothing past the plane is written."""
        end = at + Hp * Wq
        for r in range(Hp):
            d = at + r * Wq
            oy = r - ph
            inside = 0 <= oy < OH
            src = oy * row if inside else 0  # grid[pw + oy * row + ox] is output (oy, ox)
            for c0 in range(0, Wq, width):
                lo, hi = (pw - c0, pw + OW - c0) if inside else (0, 0)
                if d + c0 + width <= end:
                    put(grid, src + c0, dst, d + c0, lo, hi)
                    continue
                for t in range(min(width, end - d - c0)):
                    dst[d + c0 + t] = grid[src + c0 + t] if lo <= t < hi else 0.0
    return store_plane


def _build(width, pairs):
    nan_max = jit._nan_max
    store_plane = _storing(width)

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def grid_size(row, OH, Wq):
        """Floats of the grid pool_plane writes (at an offset below Wq) and store_plane reads,
        whole vectors of Wq-float rows."""
        return OH * row + Wq + width

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def pool_plane(y, at, row, H, W, grid, to, OH, OW, floor):
        """The plane at y[at:] (rows ``row`` apart) into grid[to:]: OH rows ``row`` apart."""
        OHf, OWf = H // 2, W // 2  # outputs whose window lies inside the input
        n = (OHf - 1) * row + OWf  # grid positions up to the last of them
        groups = n // width
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

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(y, p0, p1, pitch, row, H, W, OH, OW, floor, dst, Hp, Wq, ph, pw):
        """Planes p0 .. p1 of y into dst's planes of Hp x Wq."""
        grid = numpy.empty(grid_size(row, OH, Wq), numpy.float32)
        for p in range(p0, p1):
            pool_plane(y, p * pitch, row, H, W, grid, pw, OH, OW, floor)
            store_plane(grid, row, OH, OW, dst, p * Hp * Wq, Hp, Wq, ph, pw)
    return run, pool_plane, store_plane, grid_size


def pooled_size(H, W, cover_all):
    """(OH, OW) of 2 x 2 stride-2 pooling of an H x W map."""
    return ((H + 1) // 2, (W + 1) // 2) if cover_all else (H // 2, W // 2)


def output_planes(N, C, OH, OW, into):
    """(flat buffer, (N, C, OH, OW) view of the outputs, Hp, Wq, ph, pw) for pooled planes:
    contiguous, or laid out as the convolution ``into(shape)`` describes reads its input
    (``layout.filled``)."""
    if into is None:
        out = numpy.empty((N, C, OH, OW), numpy.float32)
        return out.reshape(-1), out, OH, OW, 0, 0
    g = into((N, C, OH, OW))
    buf, interior = layout.filled(N, g, numpy.float32, microkernel.TAIL)
    return buf, interior, g.Hp, g.Wq, g.ph, g.pw


def max_pool(x, cover_all, relu, width=None, into=None):
    """max_pooling_2d(x, 2, 2, 0, cover_all), then a ReLU if ``relu``, for x that ``applies``:
    contiguous (N, C, OH, OW), or, with ``into`` (the output shape -> the stride-1 ``layout.Geom``
    of the convolution that reads it), the view of a zero-padded buffer that convolution takes
    without a copy. ``width`` picks the vector width (tests run the AVX2 geometry on AVX-512
    machines too)."""
    flat, pitch, row = _flat_planes(x)
    N, C, H, W = x.shape
    OH, OW = pooled_size(H, W, cover_all)
    dst, out, Hp, Wq, ph, pw = output_planes(N, C, OH, OW, into)
    run = _kernel(width or vector_ir.vector_width())[0]
    floor = 0.0 if relu else -numpy.inf
    threads.run(lambda n0, n1: run(flat, n0 * C, n1 * C, pitch, row, H, W, OH, OW, floor,
                                   dst, Hp, Wq, ph, pw),
                threads.parts(N, C * (pitch + Hp * Wq) * 4))
    return out
