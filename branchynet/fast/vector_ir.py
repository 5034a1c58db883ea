"""Register blocks in LLVM vector code, as Numba intrinsics: what the micro-kernel
(``microkernel``) and the 2x2 pooling (``halving``) are made of.

Why: Numba's autovectoriser does not keep a block of outputs in registers over a whole reduction,
and copies of a few vectors with a per-lane blend are not expressible in Numba; written as LLVM
IR they compile to the vector instructions of this CPU (AVX-512: vectors of 16 floats, AVX2 with
FMA: 8). ``why_not`` says why they are unavailable elsewhere.
"""
from branchynet.fast import jit

__all__ = ["why_not", "vector_width", "block", "inplace_block", "gathered_block", "copies",
           "pool_pairs", "window_row"]

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

_I32 = ir.IntType(32) if _why_not is None else None


def why_not():
    """Why vector code cannot be built here, or None."""
    return _why_not or jit.why_not()


def vector_width():
    """Floats per vector on this CPU (16: AVX-512, 8: AVX2), or None."""
    return _width if why_not() is None else None


def _vector(width):
    return ir.VectorType(ir.FloatType(), width)


def _splat(builder, value, width):
    """A vector of ``width`` copies of a scalar."""
    lanes = ir.VectorType(value.type, width)
    one = builder.insert_element(ir.Constant(lanes, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(lanes, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, width), [0] * width))


def _data(context, builder, array_type, value):
    return context.make_array(array_type)(context, builder, value).data


def _accumulate(builder, width, mr, count, b_row, a_at, pc, ldc, add, start=None):
    """The register block of ``block``, ``inplace_block`` and ``gathered_block``: for k < count,
    vectors b_row(k) and b_row(k) + width times mr broadcasts a_at(k, r), accumulated in
    registers, then added to (``add``) or stored in c rows of pitch ldc; the accumulators start at
    zero, or at the scalar start(r) in every lane."""
    vec = _vector(width)
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v%df32" % width)
    intp = count.type
    zero = ir.Constant(vec, [0.0] * width)
    firsts = [zero if start is None else _splat(builder, start(r), width) for r in range(mr)]
    slots = [cgutils.alloca_once_value(builder, firsts[r]) for r in range(mr) for _ in range(2)]
    with cgutils.for_range(builder, count) as loop:
        row = b_row(loop.index)
        bv = [builder.load(builder.bitcast(builder.gep(row, [ir.Constant(intp, width * h)]),
                                           vec.as_pointer()), align=4) for h in range(2)]
        for r in range(mr):
            av = _splat(builder, builder.load(a_at(loop.index, r)), width)
            for h in range(2):
                slot = slots[2 * r + h]
                builder.store(builder.call(fma, [av, bv[h], builder.load(slot)]), slot)
    for r in range(mr):
        for h in range(2):
            off = builder.add(builder.mul(ir.Constant(intp, r), ldc), ir.Constant(intp, width * h))
            ptr = builder.bitcast(builder.gep(pc, [off]), vec.as_pointer())
            total = builder.load(slots[2 * r + h])
            if add:
                total = builder.fadd(builder.load(ptr, align=4), total)
            builder.store(total, ptr, align=4)


def block(mr, width):
    """The micro-kernel: block(a, b, c, k, sa, sk, ldb, ldc) does c[r * ldc : r * ldc + nr] +=
    sum over k of a[r * sa + k * sk] * b[k * ldb : k * ldb + nr] for r < mr, its accumulators in
    registers for the whole loop (allocas that LLVM promotes)."""
    intp_t = jit.numba.types.intp

    @intrinsic
    def block(typingctx, a, b, c, k, sa, sk, ldb, ldc):
        def codegen(context, builder, signature, args):
            count, sa_v, sk_v, ldb_v, ldc_v = args[3:]
            pa, pb, pc = (_data(context, builder, t, v) for t, v in zip(signature.args, args[:3]))
            intp = count.type
            _accumulate(builder, width, mr, count,
                        lambda k: builder.gep(pb, [builder.mul(k, ldb_v)]),
                        lambda k, r: builder.gep(pa, [builder.add(
                            builder.mul(k, sk_v), builder.mul(ir.Constant(intp, r), sa_v))]),
                        pc, ldc_v, add=True)
            return context.get_dummy_value()
        return jit.numba.types.void(a, b, c, intp_t, intp_t, intp_t, intp_t, intp_t), codegen
    return block


def inplace_block(mr, width):
    """The micro-kernel reading the input in place: dblock(a, bias, x, offs, c, xb, ldc) sets
    c[r * ldc : r * ldc + nr] = bias[r] + sum over k < len(offs) of a[k * mr + r] *
    x[xb + offs[k] : ... + nr] for r < mr (no packing: the im2col rows are the input itself,
    shifted)."""
    intp_t = jit.numba.types.intp

    @intrinsic
    def dblock(typingctx, a, bias, x, offs, c, xb, ldc):
        def codegen(context, builder, signature, args):
            pa, pbias, px, po, pc = (_data(context, builder, t, v)
                                     for t, v in zip(signature.args, args[:5]))
            xb_v, ldc_v = args[5:]
            count = context.make_array(signature.args[3])(context, builder, args[3]).nitems
            intp = count.type
            _accumulate(builder, width, mr, count,
                        lambda k: builder.gep(px, [builder.add(
                            xb_v, builder.load(builder.gep(po, [k])))]),
                        lambda k, r: builder.gep(pa, [builder.add(
                            builder.mul(k, ir.Constant(intp, mr)), ir.Constant(intp, r))]),
                        pc, ldc_v, add=False,
                        start=lambda r: builder.load(builder.gep(pbias, [ir.Constant(intp, r)])))
            return context.get_dummy_value()
        return jit.numba.types.void(a, bias, x, offs, c, intp_t, intp_t), codegen
    return dblock


def gathered_block(mr, width):
    """The micro-kernel with the broadcast operand read in place: gblock(x, offs, b, c, xb, k, ldb,
    ldc) does c[r * ldc : r * ldc + nr] += sum over j < k of x[xb + offs[r] + j] * b[j * ldb :
    j * ldb + nr] for r < mr (row r of an im2col matrix is the input shifted by offs[r]: the
    weight gradient without the im2col copy)."""
    intp_t = jit.numba.types.intp

    @intrinsic
    def gblock(typingctx, x, offs, b, c, xb, k, ldb, ldc):
        def codegen(context, builder, signature, args):
            px, po, pb, pc = (_data(context, builder, t, v)
                              for t, v in zip(signature.args, args[:4]))
            xb_v, count, ldb_v, ldc_v = args[4:]
            intp = count.type
            starts = [builder.gep(px, [builder.add(xb_v, builder.load(
                builder.gep(po, [ir.Constant(intp, r)])))]) for r in range(mr)]
            _accumulate(builder, width, mr, count,
                        lambda j: builder.gep(pb, [builder.mul(j, ldb_v)]),
                        lambda j, r: builder.gep(starts[r], [j]), pc, ldc_v, add=True)
            return context.get_dummy_value()
        return (jit.numba.types.void(x, offs, b, c, intp_t, intp_t, intp_t, intp_t), codegen)
    return gblock


def copies(width):
    """copy_run(src, start, dst, at): dst[at : at + nr] = src[start : start + nr], two vector
    loads and stores; copy_lanes(src, start, dst, at, lo): the same for lanes lo <= t < nr only
    (the others kept, by a blend)."""
    vec, intp_t = _vector(width), jit.numba.types.intp

    def halves(context, builder, signature, args, lo=None):
        ps, pd = (_data(context, builder, signature.args[i], args[i]) for i in (0, 2))
        s_at, d_at = args[1], args[3]
        for h in range(2):
            off = ir.Constant(s_at.type, width * h)
            new = builder.load(builder.bitcast(builder.gep(ps, [builder.add(s_at, off)]),
                                               vec.as_pointer()), align=4)
            where = builder.bitcast(builder.gep(pd, [builder.add(d_at, off)]), vec.as_pointer())
            if lo is not None:
                index = ir.Constant(ir.VectorType(lo.type, width),
                                    [width * h + t for t in range(width)])
                take = builder.icmp_signed(">=", index, _splat(builder, lo, width))
                new = builder.select(take, new, builder.load(where, align=4))
            builder.store(new, where, align=4)
        return context.get_dummy_value()

    @intrinsic
    def copy_run(typingctx, src, start, dst, at):
        return jit.numba.types.void(src, intp_t, dst, intp_t), halves

    @intrinsic
    def copy_lanes(typingctx, src, start, dst, at, lo):
        return (jit.numba.types.void(src, intp_t, dst, intp_t, intp_t),
                lambda context, builder, signature, args: halves(context, builder, signature,
                                                                 args, args[4]))
    return copy_run, copy_lanes


def _nan_max(builder, a, b):
    """numpy.maximum lane by lane: b where b > a or b is NaN, else a (NaN in a stays)."""
    take = builder.or_(builder.fcmp_ordered(">", b, a), builder.fcmp_unordered("uno", b, b))
    return builder.select(take, b, a)


def pool_pairs(width):
    """pairs(src, at, pitch, dst, to, groups, floor): for j < groups, dst[to + width j : ... +
    width] = the maximum of each 2 x 2 block of the rows src[at + 2 width j ...] and the row
    ``pitch`` below, then of ``floor`` (0 for a ReLU after the pooling, -inf for none); NaN
    propagates as in numpy.maximum."""
    vec, intp_t = _vector(width), jit.numba.types.intp
    evens = ir.Constant(ir.VectorType(_I32, width), list(range(0, 2 * width, 2)))
    odds = ir.Constant(ir.VectorType(_I32, width), list(range(1, 2 * width, 2)))

    @intrinsic
    def pairs(typingctx, src, at, pitch, dst, to, groups, floor):
        def codegen(context, builder, signature, args):
            ps, pd = (_data(context, builder, signature.args[i], args[i]) for i in (0, 3))
            at_v, pitch_v, to_v, count, floor_v = args[1], args[2], args[4], args[5], args[6]
            intp = count.type
            low = _splat(builder, builder.fptrunc(floor_v, ir.FloatType()), width)

            def load(offset):
                return builder.load(builder.bitcast(builder.gep(ps, [offset]), vec.as_pointer()),
                                    align=4)
            with cgutils.for_range(builder, count) as loop:
                row = builder.add(at_v, builder.mul(loop.index, ir.Constant(intp, 2 * width)))
                below = builder.add(row, pitch_v)
                halves = [_nan_max(builder, load(builder.add(r0, ir.Constant(intp, width * h))),
                                   load(builder.add(r1, ir.Constant(intp, width * h))))
                          for h in range(2) for r0, r1 in [(row, below)]]
                pair = _nan_max(builder, builder.shuffle_vector(halves[0], halves[1], evens),
                                builder.shuffle_vector(halves[0], halves[1], odds))
                where = builder.add(to_v, builder.mul(loop.index, ir.Constant(intp, width)))
                builder.store(_nan_max(builder, pair, low),
                              builder.bitcast(builder.gep(pd, [where]), vec.as_pointer()), align=4)
            return context.get_dummy_value()
        return (jit.numba.types.void(src, intp_t, intp_t, dst, intp_t, intp_t,
                                     jit.numba.types.float64), codegen)
    return pairs


def window_row(width):
    """put(src, start, dst, at, lo, hi): dst[at + t] = src[start + t] for lo <= t < hi, else 0,
    for t < width: one vector load, a select and one vector store (src is read, and dst written,
    at all ``width`` lanes)."""
    vec, intp_t = _vector(width), jit.numba.types.intp

    @intrinsic
    def put(typingctx, src, start, dst, at, lo, hi):
        def codegen(context, builder, signature, args):
            ps, pd = (_data(context, builder, signature.args[i], args[i]) for i in (0, 2))
            start_v, at_v, lo_v, hi_v = args[1], args[3], args[4], args[5]
            lanes = ir.Constant(ir.VectorType(lo_v.type, width), list(range(width)))
            take = builder.and_(builder.icmp_signed(">=", lanes, _splat(builder, lo_v, width)),
                                builder.icmp_signed("<", lanes, _splat(builder, hi_v, width)))
            new = builder.load(builder.bitcast(builder.gep(ps, [start_v]), vec.as_pointer()),
                               align=4)
            value = builder.select(take, new, ir.Constant(vec, [0.0] * width))
            builder.store(value, builder.bitcast(builder.gep(pd, [at_v]), vec.as_pointer()),
                          align=4)
            return context.get_dummy_value()
        return jit.numba.types.void(src, intp_t, dst, intp_t, intp_t, intp_t), codegen
    return put
