"""Convolution products on a register-blocked micro-kernel written in LLVM vector code
(``vector_ir``): the "packed" and "unpacked" paths of ``conv`` (the forward, so also the input
gradient's correlation, and the weight gradient).

Why: im2col + OpenBLAS runs well below OpenBLAS's own GEMM rate, and that rate well below what
oneDNN's convolutions reach on an AVX-512 Xeon (docs/fast_cpu.md, "Against PyTorch"). Numba's
autovectoriser does not keep a block of outputs in registers over a whole reduction; explicit
vector code does. The kernel keeps an MR x NR block of outputs (NR = two vectors: 32 floats with
AVX-512, 16 with AVX2) in registers while it runs over a slice of the reduction that stays in L1,
reading one operand as MR broadcast scalars per step and the other as two vectors. For the
forward, weights are packed in panels of MR rows and the input panel of NR positions is the
im2col copy itself, so packing costs what im2col cost; the unpacked forward reads each reduction
row where it lies in the padded input (a shifted run of it), which saves the copy where the
reduction is short (few input channels) and the input stays in cache.

Float32 only, x86-64 with AVX2 + FMA or AVX-512 (``why_not`` says why elsewhere). Results equal
im2col + GEMM within float32 rounding (another summation order); ``conv`` times these paths
against the others per shape (``calibration``) and runs them only where they are faster.
"""
import functools
import threading

import numpy

from branchynet.fast import jit, vector_ir

__all__ = ["why_not", "available", "vector_width", "rows_per_panel", "pack_weights", "offsets",
           "conv_forward", "forward_operands", "weight_gradient_into",
           "product_shape", "product_into", "TAIL"]

# Bytes of one reduction slice of an input panel: it stays in L1 while every weight panel uses it.
_SLICE_BYTES = 24 << 10
# Floats past the padded input's usual tail that a panel's full-width reads may touch.
TAIL = 32


def why_not():
    """Why the micro-kernel paths cannot run here, or None."""
    return vector_ir.why_not()


def available():
    return why_not() is None


def vector_width():
    """Floats per vector of the kernels on this CPU (16: AVX-512, 8: AVX2), or None."""
    return vector_ir.vector_width()


def rows_per_panel(channels, width=None):
    """MR: the weight panel height that wastes fewest padded rows for this many output channels
    (the larger on ties), within the register budget (2 MR accumulators: 8 rows with AVX-512, 6
    with AVX2)."""
    top = 8 if (width or vector_ir.vector_width()) == 16 else 6
    return min(range(4, top + 1), key=lambda mr: (-(-channels // mr) * mr, -mr))


_kernels = {}
_lock = threading.Lock()  # the kernel threads of one call may ask for a kernel together


def _kernel(mr, width):
    """(packed convolution, matrix product, unpacked convolution, in-place weight gradient)
    compiled for MR = mr rows and vectors of ``width`` floats."""
    with _lock:
        if (mr, width) not in _kernels:
            _kernels[mr, width] = _build(mr, width)
        return _kernels[mr, width]


def _build(mr, width):
    block = vector_ir.block(mr, width)
    pack = _packing(width, *vector_ir.copies(width))
    return (_convolution(mr, width, block, pack, _storing(width)), _product(mr, width, block),
            _unpacked(mr, width, vector_ir.inplace_block(mr, width)),
            _gathered_product(mr, width, vector_ir.gathered_block(mr, width)))


def _unpacked(mr, width, dblock):
    """run(xbuf, ap, bias, out, n, sample, offsets, L): as ``_convolution``'s run, without
    packing: sample by sample, each panel of nr positions read where it lies (the last one of a
    sample reads up to nr - 1 positions past it, into the next sample or the buffer's tail). A
    panel of whole rows and positions is stored straight into the output; a partial one (the
    last positions of a sample, weight rows past O) through a tile, only its own part."""
    nr = 2 * width

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(xbuf, ap, bias, out, n, sample, offsets, L):
        panels, channels = ap.shape[0], out.shape[1]
        rows = panels * mr
        padded_bias = numpy.zeros(rows, numpy.float32)
        padded_bias[:channels] = bias
        tile = numpy.empty((rows, nr), numpy.float32)
        whole = channels // mr  # panels whose rows are all output channels
        for s in range(n):
            flat = out[s].reshape(-1)
            for p0 in range(0, L, nr):
                at = s * sample + p0
                m = min(nr, L - p0)
                for i in range(panels):
                    if i < whole and m == nr:
                        dblock(ap[i], padded_bias[i * mr:], xbuf, offsets,
                               flat[i * mr * L + p0:], at, L)
                        continue
                    dblock(ap[i], padded_bias[i * mr:], xbuf, offsets, tile[i * mr:], at, nr)
                    for o in range(i * mr, min(channels, (i + 1) * mr)):
                        dst = out[s, o, p0:p0 + m]
                        src = tile[o]
                        for t in range(m):
                            dst[t] = src[t]
    return run


def _packing(width, copy_run, copy_lanes):
    """pack(xbuf, packed, base, p0, P, L, sample, offsets): the im2col rows (one per reduction
    index) of positions p0 .. p0 + nr of a batch of P positions, L a sample, into ``packed``;
    returns 0 when the positions lie in one sample, 1 when in two (lanes < L - p0 % L in the
    first), 2 otherwise (``base``: each lane's sample offset, -1 past the batch)."""
    nr = 2 * width

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def pack(xbuf, packed, base, p0, P, L, sample, offsets):
        s0 = p0 // L
        l0 = p0 - s0 * L
        a = L - l0
        if l0 + nr <= L:
            for k in range(len(offsets)):
                copy_run(xbuf, s0 * sample + l0 + offsets[k], packed, k * nr)
            return 0
        if nr <= L and p0 + nr <= P:
            for k in range(len(offsets)):
                copy_run(xbuf, s0 * sample + l0 + offsets[k], packed, k * nr)
                copy_lanes(xbuf, (s0 + 1) * sample - a + offsets[k], packed, k * nr, a)
            return 1
        for t in range(nr):  # samples shorter than a panel, or the batch's last panel
            p = p0 + t
            s = p // L
            base[t] = s * sample + (p - s * L) if p < P else -1
        for k in range(len(offsets)):
            row = packed[k * nr:(k + 1) * nr]
            for t in range(nr):
                row[t] = xbuf[base[t] + offsets[k]] if base[t] >= 0 else 0.0
        return 2
    return pack


def _storing(width):
    """store(tile, bias, out, base, p0, L, how): out at positions p0 .. p0 + nr = tile + bias,
    ``how`` as ``pack`` returned it."""
    nr = 2 * width

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def store(tile, bias, out, base, p0, L, how):
        s0 = p0 // L
        l0 = p0 - s0 * L
        a = L - l0
        for o in range(out.shape[1]):
            bo = bias[o]
            if how == 0:
                dst = out[s0, o, l0:l0 + nr]
                for t in range(nr):
                    dst[t] = tile[o, t] + bo
            elif how == 1:
                dst = out[s0, o, l0:]
                for t in range(a):
                    dst[t] = tile[o, t] + bo
                dst = out[s0 + 1, o]
                for t in range(nr - a):
                    dst[t] = tile[o, a + t] + bo
            else:
                for t in range(nr):
                    if base[t] >= 0:
                        s = (p0 + t) // L
                        out[s, o, p0 + t - s * L] = tile[o, t] + bo
    return store


def _convolution(mr, width, block, pack, store):
    """run(xbuf, ap, bias, out, n, sample, offsets, L): out (n, O, L) = bias + the convolution of
    n samples of ``sample`` elements each in xbuf, read at ``offsets`` (one per reduction index)
    from each output position, ap the weights as panels of mr rows (zero rows past O). Panel by
    panel of nr positions: pack, then the reduction in slices that stay in L1, every weight panel
    on each slice, then store."""
    nr = 2 * width
    kc_max = max(1, _SLICE_BYTES // (4 * nr))

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(xbuf, ap, bias, out, n, sample, offsets, L):
        K, panels, P = len(offsets), ap.shape[0], n * L
        packed = numpy.empty(K * nr, numpy.float32)
        tile = numpy.empty((panels * mr, nr), numpy.float32)
        base = numpy.empty(nr, numpy.int64)
        for p0 in range(0, P, nr):
            how = pack(xbuf, packed, base, p0, P, L, sample, offsets)
            tile[:, :] = 0.0
            for k0 in range(0, K, kc_max):
                kc = min(kc_max, K - k0)
                b = packed[k0 * nr:(k0 + kc) * nr]
                for i in range(panels):
                    block(ap[i, k0 * mr:(k0 + kc) * mr], b, tile[i * mr:], kc, 1, mr, nr, nr)
            store(tile, bias, out, base, p0, L, how)
    return run


def _product(mr, width, block):
    """product(a, b, c): c += a b for row-major a (M, R), b (R, N), c (M, N), M a multiple of mr
    and N of nr: column panel by column panel, the reduction in slices whose b rows stay in L1."""
    nr = 2 * width
    kc_max = max(1, _SLICE_BYTES // (4 * nr))

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def product(a, b, c):
        M, R = a.shape
        N = b.shape[1]
        af, bf, cf = a.reshape(-1), b.reshape(-1), c.reshape(-1)
        for j0 in range(0, N, nr):
            for r0 in range(0, R, kc_max):
                kc = min(kc_max, R - r0)
                for i in range(0, M, mr):
                    block(af[i * R + r0:], bf[r0 * N + j0:], cf[i * N + j0:], kc, R, 1, N, N)
    return product


def _gathered_product(mr, width, gblock):
    """run(xbuf, offs, b, c, n, sample, L): c += a b where a (rows, n * L) is the im2col matrix of
    n samples read in place (row r: each sample's input shifted by offs[r]) and b (n * L, cols):
    sample by sample, column panel by column panel, the positions in slices whose b rows stay in
    L1."""
    nr = 2 * width
    kc_max = max(1, _SLICE_BYTES // (4 * nr))

    @jit.numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(xbuf, offs, b, c, n, sample, L):
        rows, cols = c.shape
        bf, cf = b.reshape(-1), c.reshape(-1)
        for s in range(n):
            for j0 in range(0, cols, nr):
                for p0 in range(0, L, kc_max):
                    kc = min(kc_max, L - p0)
                    for i in range(0, rows, mr):
                        gblock(xbuf, offs[i:i + mr], bf[(s * L + p0) * cols + j0:],
                               cf[i * cols + j0:], s * sample + p0, kc, cols, cols)
    return run


def pack_weights(W, mr):
    """(O, C, kh, kw) weights as panels of mr output channels, reduction-major: (panels, K * mr),
    zero rows past O."""
    channels = W.shape[0]
    panels = -(-channels // mr)
    Wp = numpy.zeros((panels * mr, W[0].size), numpy.float32)
    Wp[:channels] = W.reshape(channels, -1)
    return numpy.ascontiguousarray(Wp.reshape(panels, mr, -1).transpose(0, 2, 1)).reshape(panels, -1)


@functools.lru_cache(maxsize=256)
def offsets(C, kh, kw, plane, Wq):
    """Where reduction index (c, i, j) reads, relative to an output position, in a full-row padded
    buffer (``layout``'s stride-1 layout); built once per geometry (a small batch's convolution
    costs no more than building it), read-only."""
    c, i, j = numpy.meshgrid(numpy.arange(C), numpy.arange(kh), numpy.arange(kw), indexing="ij")
    table = (c * plane + i * Wq + j).reshape(-1).astype(numpy.int64)
    table.setflags(write=False)
    return table


def conv_forward(xbuf, W, b, out, g, n, width=None, unpacked=False):
    """out (n, O, g.L) = conv + bias for n samples in the flat padded buffer xbuf (``layout``'s
    full-row layout of the stride-1 geometry g, with ``TAIL`` more floats of tail), on packed input
    panels or, ``unpacked``, reading the input in place (``_unpacked``); ``width`` picks the vector
    width (tests run the AVX2 geometry on AVX-512 machines too)."""
    width = width or vector_ir.vector_width()
    mr, ap, bias, offs = forward_operands(W, b, g, width)
    _kernel(mr, width)[2 if unpacked else 0](xbuf, ap, bias, out, n, g.C * g.plane, offs, g.L)
    return out


def forward_operands(W, b, g, width):
    """(MR, weight panels, float32 bias, offset table) of a forward on the micro-kernel."""
    mr = rows_per_panel(g.O, width)
    bias = numpy.zeros(g.O, numpy.float32) if b is None else b.astype(numpy.float32, copy=False)
    return mr, pack_weights(W, mr), bias, offsets(g.C, g.kh, g.kw, g.plane, g.Wq)


def weight_gradient_into(xbuf, gyt, c, g, n, width=None):
    """c += the weight gradient's transpose (K, O) of n samples in the flat padded buffer xbuf
    (``layout``'s full-row layout of the stride-1 geometry g) against gyt (n * g.L, columns): gy by
    position, zero at the unused columns of each row. c has ``product_shape(g.K, g.O)``; no
    im2col copy is made."""
    width = width or vector_ir.vector_width()
    mr = rows_per_panel(c.shape[0], width)
    offs = numpy.zeros(c.shape[0], numpy.int64)
    offs[:g.K] = offsets(g.C, g.kh, g.kw, g.plane, g.Wq)
    _kernel(mr, width)[3](xbuf, offs, gyt, c, n, g.C * g.plane, g.L)
    return c


def product_shape(rows, columns, width=None):
    """(rows, columns) rounded up to what ``product_into`` takes: whole panels of
    ``rows_per_panel(rows)`` rows and of two vectors of columns."""
    width = width or vector_ir.vector_width()
    mr = rows_per_panel(rows, width)
    return -(-rows // mr) * mr, -(-columns // (2 * width)) * 2 * width


def product_into(a, b, c, width=None):
    """c += a b (float32, C-contiguous; a's rows and b's columns a shape ``product_shape`` gives,
    the same ``width``) on the micro-kernel, a read in place (its rows are the broadcast operand,
    b's rows the vectors)."""
    width = width or vector_ir.vector_width()
    mr = rows_per_panel(a.shape[0], width)
    if a.shape[0] % mr or b.shape[1] % (2 * width):
        raise ValueError("product_into needs %s rows and columns, got %s by %s"
                         % (product_shape(a.shape[0], b.shape[1], width), a.shape, b.shape))
    _kernel(mr, width)[1](a, b, c)
    return c
