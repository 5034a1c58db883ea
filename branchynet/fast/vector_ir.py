"""Register blocks in LLVM vector code, as Numba intrinsics: what the micro-kernel
(``microkernel``) and the 2x2 pooling (``halving``) are made of.

Why: Numba's autovectoriser does not keep a block of outputs in registers over a whole reduction,
and copies of a few vectors with a per-lane blend are not expressible in Numba; written as LLVM
IR they compile to the vector instructions of this CPU (AVX-512: vectors of 16 floats, AVX2 with
FMA: 8). ``why_not`` says why they are unavailable elsewhere.
"""
from branchynet.fast import jit

__all__ = ["why_not", "vector_width", "block", "inplace_block", "dots", "gathered_block", "copies",
           "pool_row", "window_row"]

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


def _masked_load(builder, pointer, count, width):
    """Lanes t < count of the vector at ``pointer``, zeros in the others; nothing past them is
    read."""
    vec = _vector(width)
    mask_t = ir.VectorType(ir.IntType(1), width)
    load = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec, [vec.as_pointer(), _I32, mask_t, vec]),
        "llvm.masked.load.v%df32.p0" % width)
    return builder.call(load, [builder.bitcast(pointer, vec.as_pointer()), ir.Constant(_I32, 4),
                               _lanes_below(builder, count, width), ir.Constant(vec, [0.0] * width)])


def _lane_sum(builder, value, width):
    """The sum of a vector's lanes, halves added pairwise (a fixed order)."""
    half = width // 2
    while half:
        upper = builder.shuffle_vector(value, value, ir.Constant(
            ir.VectorType(_I32, width), [half + t if t < half else t for t in range(width)]))
        value = builder.fadd(value, upper)
        half //= 2
    return builder.extract_element(value, ir.Constant(_I32, 0))


def dots(rows, outputs, width):
    """dots(x, at, ldx, w, k, out, to): out[to + s * outputs + o] = sum over j < k of
    x[at + s * ldx + j] * w[o * k + j], for s < rows and o < outputs (a linear layer's products
    for a few outputs): rows x outputs vector accumulators over the reduction, each summed
    across its lanes at the end; the reduction's last partial vector read by masked loads."""
    intp_t = jit.numba.types.intp
    vec = _vector(width)

    @intrinsic
    def dots(typingctx, x, at, ldx, w, k, out, to):
        def codegen(context, builder, signature, args):
            px, pw, po = (_data(context, builder, signature.args[i], args[i]) for i in (0, 3, 5))
            at_v, ldx_v, k_v, to_v = args[1], args[2], args[4], args[6]
            intp = k_v.type
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v%df32" % width)
            slots = [[cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * width))
                      for _ in range(outputs)] for _ in range(rows)]
            x_rows = [builder.gep(px, [builder.add(at_v, builder.mul(ir.Constant(intp, s), ldx_v))])
                      for s in range(rows)]
            w_rows = [builder.gep(pw, [builder.mul(ir.Constant(intp, o), k_v)])
                      for o in range(outputs)]

            def step(j, load):
                xs = [load(builder.gep(row, [j])) for row in x_rows]
                for o in range(outputs):
                    wv = load(builder.gep(w_rows[o], [j]))
                    for s in range(rows):
                        slot = slots[s][o]
                        builder.store(builder.call(fma, [xs[s], wv, builder.load(slot)]), slot)
            whole = builder.udiv(k_v, ir.Constant(intp, width))
            with cgutils.for_range(builder, whole) as loop:
                step(builder.mul(loop.index, ir.Constant(intp, width)),
                     lambda p: builder.load(builder.bitcast(p, vec.as_pointer()), align=4))
            done = builder.mul(whole, ir.Constant(intp, width))
            left = builder.sub(k_v, done)
            with builder.if_then(builder.icmp_signed(">", left, ir.Constant(intp, 0))):
                step(done, lambda p: _masked_load(builder, p, left, width))
            for s in range(rows):
                for o in range(outputs):
                    where = builder.add(to_v, ir.Constant(intp, s * outputs + o))
                    builder.store(_lane_sum(builder, builder.load(slots[s][o]), width),
                                  builder.gep(po, [where]))
            return context.get_dummy_value()
        return (jit.numba.types.void(x, intp_t, intp_t, w, intp_t, out, intp_t), codegen)
    return dots


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


def _lanes_below(builder, count, width):
    """The mask of lanes t < count (compared as 32-bit integers: one instruction)."""
    lanes = ir.Constant(ir.VectorType(_I32, width), list(range(width)))
    return builder.icmp_signed("<", lanes, _splat(builder, builder.trunc(count, _I32), width))


def _store_lanes(builder, value, pointer, count, width):
    """Stores lanes t < count of ``value`` at ``pointer`` (a masked store: nothing past them)."""
    vec, mask_t = value.type, ir.VectorType(ir.IntType(1), width)
    store = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), _I32, mask_t]),
        "llvm.masked.store.v%df32.p0" % width)
    builder.call(store, [value, builder.bitcast(pointer, vec.as_pointer()), ir.Constant(_I32, 4),
                         _lanes_below(builder, count, width)])


def _plain_max(builder, a, b):
    """``_nan_max`` where neither is NaN (b where b > a, else a): one max instruction."""
    return builder.select(builder.fcmp_ordered(">", b, a), b, a)


def pool_row(width):
    """put(src, at, pitch, dst, to, valid, pairs, limit, floor): one vector of 2 x 2 stride-2
    maxima, lane t from src[at + 2t], src[at + 2t + 1] and the two ``pitch`` below (from the
    first column only for lanes t >= ``pairs``: cover_all's last window of an odd width), then
    the maximum with ``floor`` (0 for a ReLU after the pooling, -inf for none), NaN propagating as
    in numpy.maximum; lanes t >= ``valid`` set to zero; stored at dst[to:] for lanes t < ``limit``
    only. Reads src at all 2 ``width`` lanes of both rows. The maxima take one instruction each
    unless a value read is NaN; then the NaN-propagating comparisons run (``_nan_max``)."""
    vec, intp_t = _vector(width), jit.numba.types.intp
    evens = ir.Constant(ir.VectorType(_I32, width), list(range(0, 2 * width, 2)))
    odds = ir.Constant(ir.VectorType(_I32, width), list(range(1, 2 * width, 2)))

    def pooled(builder, tops, belows, maximum, both):
        halves = [maximum(builder, t, b) for t, b in zip(tops, belows)]
        first = builder.shuffle_vector(halves[0], halves[1], evens)
        both_columns = maximum(builder, first, builder.shuffle_vector(halves[0], halves[1], odds))
        return builder.select(both, both_columns, first)

    @intrinsic
    def put(typingctx, src, at, pitch, dst, to, valid, pairs, limit, floor):
        def codegen(context, builder, signature, args):
            ps, pd = (_data(context, builder, signature.args[i], args[i]) for i in (0, 3))
            (at_v, pitch_v), (to_v, valid_v, pairs_v, limit_v, floor_v) = args[1:3], args[4:]
            both = _lanes_below(builder, pairs_v, width)

            def load(offset, h):
                where = builder.gep(ps, [builder.add(offset, ir.Constant(offset.type, width * h))])
                return builder.load(builder.bitcast(where, vec.as_pointer()), align=4)
            below = builder.add(at_v, pitch_v)
            tops, belows = [load(at_v, h) for h in range(2)], [load(below, h) for h in range(2)]
            nan = builder.or_(*(builder.fcmp_unordered("uno", t, b) for t, b in zip(tops, belows)))
            any_nan = builder.icmp_unsigned("!=", builder.bitcast(nan, ir.IntType(width)),
                                            ir.Constant(ir.IntType(width), 0))
            with builder.if_else(any_nan, likely=False) as (then, otherwise):
                with then:
                    exact = pooled(builder, tops, belows, _nan_max, both)
                    exact_block = builder.block
                with otherwise:
                    plain = pooled(builder, tops, belows, _plain_max, both)
                    plain_block = builder.block
            pair = builder.phi(vec)
            pair.add_incoming(exact, exact_block)
            pair.add_incoming(plain, plain_block)
            low = _splat(builder, builder.fptrunc(floor_v, ir.FloatType()), width)
            value = builder.select(_lanes_below(builder, valid_v, width),
                                   _plain_max(builder, pair, low), ir.Constant(vec, [0.0] * width))
            _store_lanes(builder, value, builder.gep(pd, [to_v]), limit_v, width)
            return context.get_dummy_value()
        return (jit.numba.types.void(src, intp_t, intp_t, dst, intp_t, intp_t, intp_t, intp_t,
                                     jit.numba.types.float64), codegen)
    return put


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
