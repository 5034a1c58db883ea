"""Convolution products on a register-blocked micro-kernel written in LLVM vector code (through a
Numba intrinsic): the "packed" paths of ``conv`` (the forward, so also the input gradient's
correlation, and the weight gradient).

Why: im2col + OpenBLAS runs well below OpenBLAS's own GEMM rate, and that rate well below what
oneDNN's convolutions reach on an AVX-512 Xeon (docs/fast_cpu.md, "Against PyTorch"). Numba's
autovectoriser does not keep a block of outputs in registers over a whole reduction; explicit
vector code does. The kernel keeps an MR x NR block of outputs (NR = two vectors: 32 floats with
AVX-512, 16 with AVX2) in registers while it runs over a slice of the reduction that stays in L1,
reading one operand as MR broadcast scalars per step and the other as two vectors. For the
forward, weights are packed in panels of MR rows and the input panel of NR positions is the
im2col copy itself, so packing costs what im2col cost.

Float32 only, x86-64 with AVX2 + FMA or AVX-512 (``why_not`` says why elsewhere). Results equal
im2col + GEMM within float32 rounding (another summation order); ``conv`` times these paths
against the others per shape (``calibration``) and runs them only where they are faster.
"""
import threading

import numpy

from branchynet.fast import jit

__all__ = ["why_not", "available", "vector_width", "rows_per_panel", "pack_weights", "offsets",
           "conv_forward", "product_shape", "product_into", "TAIL"]

_why_not = jit.why_not()
_width = None
if _why_not is None:
    try:
        import llvmlite.binding as llvm
        from llvmlite import ir
        from numba.core import cgutils
        from numba.extending import intrinsic
        _features = llvm.get_host_cpu_features()
    except Exception as err:  # an llvmlite without these calls: the other paths do the work
        _why_not = "LLVM host features unavailable (%s)" % type(err).__name__
    else:
        if _features.get("avx512f"):
            _width = 16
        elif _features.get("avx2") and _features.get("fma"):
            _width = 8
        else:
            _why_not = "the CPU has neither AVX-512 nor AVX2 with FMA"

# Bytes of one reduction slice of an input panel: it stays in L1 while every weight panel uses it.
_SLICE_BYTES = 24 << 10
# Floats past the padded input's usual tail that a panel's full-width reads may touch.
TAIL = 32


def why_not():
    """Why the packed path cannot run here, or None."""
    return _why_not or jit.why_not()


def available():
    return why_not() is None


def vector_width():
    """Floats per vector of the kernels on this CPU (16: AVX-512, 8: AVX2), or None."""
    return _width if available() else None


def rows_per_panel(channels, width=None):
    """MR: the weight panel height that wastes fewest padded rows for this many output channels
    (the larger on ties), within the register budget (2 MR accumulators: 8 rows with AVX-512, 6
    with AVX2)."""
    top = 8 if (width or _width) == 16 else 6
    return min(range(4, top + 1), key=lambda mr: (-(-channels // mr) * mr, -mr))


_kernels = {}
_lock = threading.Lock()  # the kernel threads of one call may ask for a kernel together


def _kernel(mr, width):
    """(packed convolution, matrix product) compiled for MR = mr rows and vectors of ``width``
    floats."""
    with _lock:
        if (mr, width) not in _kernels:
            _kernels[mr, width] = _build(mr, width)
        return _kernels[mr, width]


def _build(mr, width):
    numba = jit.numba
    nr = 2 * width
    vec = ir.VectorType(ir.FloatType(), width)
    i32 = ir.IntType(32)

    @intrinsic
    def block(typingctx, a, b, c, k, sa, sk, ldb, ldc):
        """c[r * ldc : r * ldc + nr] += sum over k of a[r * sa + k * sk] * b[k * ldb : k * ldb +
        nr], r < mr: the accumulators live in registers for the whole loop (allocas that LLVM
        promotes)."""
        intp_t = numba.types.intp
        sig = numba.types.void(a, b, c, intp_t, intp_t, intp_t, intp_t, intp_t)

        def codegen(context, builder, signature, args):
            a_arr, b_arr, c_arr, count, sa_v, sk_v, ldb_v, ldc_v = args
            pa, pb, pc = (context.make_array(t)(context, builder, v).data
                          for t, v in zip(signature.args[:3], (a_arr, b_arr, c_arr)))
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v%df32" % width)
            intp = count.type
            slots = []
            for _ in range(2 * mr):
                slot = cgutils.alloca_once(builder, vec)
                builder.store(ir.Constant(vec, [0.0] * width), slot)
                slots.append(slot)
            splat = ir.Constant(ir.VectorType(i32, width), [0] * width)
            undef = ir.Constant(vec, ir.Undefined)
            with cgutils.for_range(builder, count) as loop:
                kb = builder.mul(loop.index, ldb_v)
                ka = builder.mul(loop.index, sk_v)
                bv = [builder.load(builder.bitcast(
                    builder.gep(pb, [builder.add(kb, ir.Constant(intp, width * h))]),
                    vec.as_pointer()), align=4) for h in range(2)]
                for r in range(mr):
                    s = builder.load(builder.gep(
                        pa, [builder.add(ka, builder.mul(ir.Constant(intp, r), sa_v))]))
                    av = builder.shuffle_vector(
                        builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat)
                    for h in range(2):
                        slot = slots[2 * r + h]
                        builder.store(builder.call(fma, [av, bv[h], builder.load(slot)]), slot)
            for r in range(mr):
                for h in range(2):
                    off = builder.add(builder.mul(ir.Constant(intp, r), ldc_v),
                                      ir.Constant(intp, width * h))
                    ptr = builder.bitcast(builder.gep(pc, [off]), vec.as_pointer())
                    total = builder.fadd(builder.load(ptr, align=4), builder.load(slots[2 * r + h]))
                    builder.store(total, ptr, align=4)
            return context.get_dummy_value()
        return sig, codegen

    @intrinsic
    def copy_run(typingctx, src, start, dst, at):
        """dst[at : at + nr] = src[start : start + nr], two vector loads and stores."""
        sig = numba.types.void(src, numba.types.intp, dst, numba.types.intp)

        def codegen(context, builder, signature, args):
            s_arr, s_at, d_arr, d_at = args
            ps = context.make_array(signature.args[0])(context, builder, s_arr).data
            pd = context.make_array(signature.args[2])(context, builder, d_arr).data
            for h in range(2):
                off = ir.Constant(s_at.type, width * h)
                v = builder.load(builder.bitcast(builder.gep(ps, [builder.add(s_at, off)]),
                                                 vec.as_pointer()), align=4)
                builder.store(v, builder.bitcast(builder.gep(pd, [builder.add(d_at, off)]),
                                                 vec.as_pointer()), align=4)
            return context.get_dummy_value()
        return sig, codegen

    @intrinsic
    def copy_lanes(typingctx, src, start, dst, at, lo):
        """dst[at + t] = src[start + t] for lo <= t < nr (the other lanes kept): a blend of two
        vector loads per half."""
        sig = numba.types.void(src, numba.types.intp, dst, numba.types.intp, numba.types.intp)

        def codegen(context, builder, signature, args):
            s_arr, s_at, d_arr, d_at, first = args
            ps = context.make_array(signature.args[0])(context, builder, s_arr).data
            pd = context.make_array(signature.args[2])(context, builder, d_arr).data
            lanes = ir.VectorType(first.type, width)
            low = builder.insert_element(ir.Constant(lanes, ir.Undefined), first,
                                         ir.Constant(i32, 0))
            low = builder.shuffle_vector(low, ir.Constant(lanes, ir.Undefined),
                                         ir.Constant(ir.VectorType(i32, width), [0] * width))
            for h in range(2):
                off = ir.Constant(s_at.type, width * h)
                index = ir.Constant(lanes, [width * h + t for t in range(width)])
                take = builder.icmp_signed(">=", index, low)
                new = builder.load(builder.bitcast(builder.gep(ps, [builder.add(s_at, off)]),
                                                   vec.as_pointer()), align=4)
                where = builder.bitcast(builder.gep(pd, [builder.add(d_at, off)]), vec.as_pointer())
                builder.store(builder.select(take, new, builder.load(where, align=4)), where,
                              align=4)
            return context.get_dummy_value()
        return sig, codegen

    kc_max = max(1, _SLICE_BYTES // (4 * nr))

    @numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def run(xbuf, ap, bias, out, n, sample, offsets, L):
        """out (n, O, L) = bias + the convolution of n samples of ``sample`` elements each in
        xbuf, read at ``offsets`` (one per reduction index) from each output position; ap holds
        the weights as panels of mr rows (zero rows past O). Panel by panel of nr positions: the
        positions' im2col rows packed contiguously, then the reduction in slices that stay in
        L1, every weight panel on each slice."""
        K = len(offsets)
        channels = out.shape[1]
        panels = ap.shape[0]
        P = n * L
        packed = numpy.empty(K * nr, numpy.float32)
        tile = numpy.empty((panels * mr, nr), numpy.float32)
        base = numpy.empty(nr, numpy.int64)
        for p0 in range(0, P, nr):
            s0 = p0 // L
            l0 = p0 - s0 * L
            inside = l0 + nr <= L  # one sample's consecutive positions
            a = L - l0  # else: positions of sample s0 (lanes < a), then of the next sample
            two = not inside and nr <= L and p0 + nr <= P
            if inside:
                for k in range(K):
                    copy_run(xbuf, s0 * sample + l0 + offsets[k], packed, k * nr)
            elif two:
                for k in range(K):
                    copy_run(xbuf, s0 * sample + l0 + offsets[k], packed, k * nr)
                    copy_lanes(xbuf, (s0 + 1) * sample - a + offsets[k], packed, k * nr, a)
            else:  # samples shorter than a panel, or the batch's last panel
                for t in range(nr):
                    p = p0 + t
                    s = p // L
                    base[t] = s * sample + (p - s * L) if p < P else -1
                for k in range(K):
                    row = packed[k * nr:(k + 1) * nr]
                    off = offsets[k]
                    for t in range(nr):
                        row[t] = xbuf[base[t] + off] if base[t] >= 0 else 0.0
            tile[:, :] = 0.0
            for k0 in range(0, K, kc_max):
                kc = min(kc_max, K - k0)
                b = packed[k0 * nr:(k0 + kc) * nr]
                for i in range(panels):
                    block(ap[i, k0 * mr:(k0 + kc) * mr], b, tile[i * mr:], kc, 1, mr, nr, nr)
            for o in range(channels):
                bo = bias[o]
                if inside:
                    dst = out[s0, o, l0:l0 + nr]
                    for t in range(nr):
                        dst[t] = tile[o, t] + bo
                elif two:
                    dst = out[s0, o, l0:]
                    for t in range(a):
                        dst[t] = tile[o, t] + bo
                    dst = out[s0 + 1, o]
                    for t in range(nr - a):
                        dst[t] = tile[o, a + t] + bo
                else:
                    for t in range(nr):
                        if base[t] >= 0:
                            p = p0 + t
                            s = p // L
                            out[s, o, p - s * L] = tile[o, t] + bo
    @numba.njit(nogil=True, boundscheck=False, error_model="numpy")
    def product(a, b, c):
        """c += a b for row-major a (M, R), b (R, N), c (M, N), M a multiple of mr and N of nr:
        column panel by column panel, the reduction in slices whose b rows stay in L1."""
        M, R = a.shape
        N = b.shape[1]
        af, bf, cf = a.reshape(-1), b.reshape(-1), c.reshape(-1)
        for j0 in range(0, N, nr):
            for r0 in range(0, R, kc_max):
                kc = min(kc_max, R - r0)
                for i in range(0, M, mr):
                    block(af[i * R + r0:], bf[r0 * N + j0:], cf[i * N + j0:], kc, R, 1, N, N)
    return run, product


def pack_weights(W, mr):
    """(O, C, kh, kw) weights as panels of mr output channels, reduction-major: (panels, K * mr),
    zero rows past O."""
    channels = W.shape[0]
    panels = -(-channels // mr)
    Wp = numpy.zeros((panels * mr, W[0].size), numpy.float32)
    Wp[:channels] = W.reshape(channels, -1)
    return numpy.ascontiguousarray(Wp.reshape(panels, mr, -1).transpose(0, 2, 1)).reshape(panels, -1)


def offsets(C, kh, kw, plane, Wq):
    """Where reduction index (c, i, j) reads, relative to an output position, in a full-row padded
    buffer (``conv``'s stride-1 layout)."""
    c, i, j = numpy.meshgrid(numpy.arange(C), numpy.arange(kh), numpy.arange(kw), indexing="ij")
    return (c * plane + i * Wq + j).reshape(-1).astype(numpy.int64)


def conv_forward(xbuf, W, b, out, g, n, width=None):
    """out (n, O, g.L) = conv + bias for n samples in the flat padded buffer xbuf (``conv``'s
    full-row layout of the stride-1 geometry g, with ``TAIL`` more floats of tail); ``width``
    picks the vector width (tests run the AVX2 geometry on AVX-512 machines too)."""
    width = width or _width
    mr = rows_per_panel(g.O, width)
    bias = numpy.zeros(g.O, numpy.float32) if b is None else b.astype(numpy.float32, copy=False)
    _kernel(mr, width)[0](xbuf, pack_weights(W, mr), bias, out, n, g.C * g.plane,
                          offsets(g.C, g.kh, g.kw, g.plane, g.Wq), g.L)
    return out


def product_shape(rows, columns, width=None):
    """(rows, columns) rounded up to what ``product_into`` takes: whole panels of
    ``rows_per_panel(rows)`` rows and of two vectors of columns."""
    width = width or _width
    mr = rows_per_panel(rows, width)
    return -(-rows // mr) * mr, -(-columns // (2 * width)) * 2 * width


def product_into(a, b, c, width=None):
    """c += a b (float32, C-contiguous; a's rows and b's columns a shape ``product_shape`` gives,
    the same ``width``) on the micro-kernel, a read in place (its rows are the broadcast operand,
    b's rows the vectors)."""
    width = width or _width
    mr = rows_per_panel(a.shape[0], width)
    if a.shape[0] % mr or b.shape[1] % (2 * width):
        raise ValueError("product_into needs %s rows and columns, got %s by %s"
                         % (product_shape(a.shape[0], b.shape[1], width), a.shape, b.shape))
    _kernel(mr, width)[1](a, b, c)
    return c
