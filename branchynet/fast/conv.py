"""Fast CPU 2-D convolution as Chainer FunctionNodes.

Why: stock Chainer builds a full im2col array and contracts it with ``tensordot`` on non-contiguous
operands, so most of a CPU convolution goes to copies, page faults and transposes, not to the GEMM.
Here the batch runs in chunks of a few samples whose im2col buffer stays in cache. For stride 1 the
im2col and col2im copies run over whole image rows ("full-row" layout: outputs are computed at the
padded row pitch, the few extra columns left unused), so numpy copies long contiguous runs, not
``OW``-element pieces. The forward runs one GEMM per sample straight into that sample's output
(the bias rides in the GEMM against a row of ones; the output is a view that skips the unused
columns), so no pass over the output follows. For stride 1 and O <= 2 C the input gradient is a
correlation of gy with the flipped kernel, run by the forward kernel; otherwise gcol = W^T gy and
col2im. Large batches are split over the cores (threads.py).

Where paths compute the same thing, the fastest on this machine is chosen once per shape
(``calibration``); for float32 and stride 1 the candidates include the register-blocked
micro-kernel of ``microkernel`` for the forward (so also the correlation) and the weight
gradient. Semantics are Chainer's ``F.convolution_2d`` with ``cover_all=False``, ``dilate=1``,
``groups=1``; ``conv_nodes`` makes these kernels Chainer FunctionNodes.
"""
import functools

import numpy

from branchynet.fast import calibration, jit, layout, microkernel, threads

__all__ = ["conv2d_numpy", "forward_path", "choose_for_batch", "supports", "grad_x", "grad_w",
           "bias_grad"]

# Target size in bytes of one chunk's im2col buffer: small enough to stay in L2/L3 between the copy
# that fills it and the GEMM that reads it, large enough that the GEMM runs near peak.
_CHUNK_BYTES = 1 << 20


def _chunk(n, col_bytes_per_sample):
    return max(1, min(n, _CHUNK_BYTES // max(1, col_bytes_per_sample)))


def _gy_chunk(gyc, gy, g, n0, m):
    """Copy gy[n0:n0+m] (N, O, OH, OW) into gyc, shape (O, m * L); unused columns must be zero."""
    if g.rows:
        dst = gyc.reshape(g.O, m, g.OH, g.Wq)[:, :, :, :g.OW]
    else:
        dst = gyc.reshape(g.O, m, g.OH, g.OW)
    numpy.copyto(dst, gy[n0:n0 + m].transpose(1, 0, 2, 3))


def _with_bias(W2, b, dtype):
    """(O, K) weights, with the bias as an extra column when there is one: the GEMM then adds it
    against a row of ones in the im2col buffer, so no pass over the output is needed for it."""
    if W2.dtype != dtype:
        W2 = W2.astype(dtype)
    if b is None:
        return W2
    return numpy.concatenate([W2, b.astype(dtype, copy=False).reshape(-1, 1)], axis=1)


def _split(g, dtype, fn):
    """fn(n0, n1) over slices of the batch on the fast kernels' threads (threads.py)."""
    per_sample = (g.C * g.plane + g.O * g.L) * dtype.itemsize
    return threads.run(fn, threads.parts(g.N, per_sample))


def _forward(x, W, b, g):
    """y (N, O, OH, OW) = conv(x, W) + b, by the path this machine runs faster for the shape."""
    return _run_forward(x, W, b, g, _forward_path(x, W, g))


def _forward_path(x, W, g):
    """"direct" (the compiled direct convolution, ``jit.conv_direct``: float32, stride 1),
    "packed" (the register-blocked micro-kernel, ``microkernel``: float32, stride 1, AVX2 or
    AVX-512), "unpacked" (the same micro-kernel reading the padded input in place) or "gemm"
    (im2col and GEMM), timed on this machine; by default (timing off) direct
    for short columns and few output channels (``jit.DIRECT_MAX_K_BATCH``,
    ``jit.DIRECT_MAX_O_BATCH``), else gemm."""
    if not (g.rows and jit.available() and x.dtype == W.dtype == numpy.float32):
        return "gemm"
    short = g.K <= jit.DIRECT_MAX_K_BATCH and g.O <= jit.DIRECT_MAX_O_BATCH
    paths = ("gemm", "direct") + (("packed", "unpacked") if microkernel.available() else ())
    return _choose("forward", g, "direct" if short else "gemm", {
        path: lambda n, path=path: _run_forward(x[:n], W, None, _sub(g, n), path)
        for path in paths})


def _run_forward(x, W, b, g, path):
    dtype = x.dtype
    ypad = numpy.empty((g.N, g.O, g.L), dtype=dtype)
    if path == "direct":
        Wc = numpy.ascontiguousarray(W)
        bc = numpy.zeros(g.O, dtype) if b is None else b.astype(dtype, copy=False)
        _split(g, dtype, lambda n0, n1: jit.conv_direct(layout.padded(x[n0:n1], g), Wc, bc,
                                                        ypad[n0:n1], g, n1 - n0))
    elif path in ("packed", "unpacked"):
        _split(g, dtype, lambda n0, n1: microkernel.conv_forward(
            layout.padded(x[n0:n1], g, microkernel.TAIL), W, b, ypad[n0:n1], g, n1 - n0,
            unpacked=path == "unpacked"))
    else:
        Wb = _with_bias(W.reshape(g.O, g.K), b, dtype)
        _split(g, dtype, lambda n0, n1: _forward_slice(x[n0:n1], Wb, g, ypad[n0:n1]))
    return layout.output(ypad, g)


def _forward_slice(x, Wb, g, ypad):
    """ypad (n, O, L) = conv(x) + b for a slice of the batch, chunk by chunk: one im2col copy per
    chunk, then a GEMM per sample writing straight into that sample's output."""
    dtype, n, rows = x.dtype, len(x), Wb.shape[1]
    xbuf = layout.padded(x, g)
    nb = _chunk(n, g.K * g.L * dtype.itemsize)
    col = None
    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        if col is None or col.shape[1] != m * g.L:
            col = numpy.empty((rows, m * g.L), dtype=dtype)
            col[g.K:] = 1  # the bias row, if any
        layout.fill_col(col[:g.K], xbuf, g, n0, m)
        numpy.matmul(Wb, col.reshape(rows, m, g.L).transpose(1, 0, 2), out=ypad[n0:n0 + m])


def grad_w(x, gy, g, w_dtype):
    """The weight gradient gW (O, C, kh, kw), summed over the batch (split over the threads)."""
    paths = {"per_sample": lambda x, gy, g: _grad_w_slice(x, gy, g, True),
             "per_chunk": lambda x, gy, g: _grad_w_slice(x, gy, g, False)}
    if g.rows and microkernel.available() and x.dtype == gy.dtype == numpy.float32:
        paths["packed"] = _grad_w_packed_slice
        paths["unpacked"] = functools.partial(_grad_w_packed_slice, unpacked=True)
    path = _choose("grad_w", g, "per_sample" if g.K <= 64 else "per_chunk", {
        name: lambda n, fn=fn: fn(x[:n], gy[:n], _sub(g, n)) for name, fn in paths.items()})
    partial = _split(g, x.dtype, lambda n0, n1: paths[path](x[n0:n1], gy[n0:n1], g))
    gWt = partial[0]
    for p in partial[1:]:
        gWt += p
    return numpy.ascontiguousarray(gWt.T, dtype=w_dtype).reshape(g.O, g.C, g.kh, g.kw)


def _grad_w_packed_slice(x, gy, g, unpacked=False):
    """gW^T (K, O) summed over a slice of the batch on the micro-kernel: per chunk, the im2col
    matrix (K, m * L) times gy's chunk laid out (m * L, O) (zero at the unused columns of the
    full-row layout), the reduction over positions; ``unpacked``: the im2col rows read in place
    from the padded input instead of copied."""
    n = len(x)
    xbuf = layout.padded(x, g)
    sample = g.C * g.plane
    nb = _chunk(n, (g.O if unpacked else g.K) * g.L * x.dtype.itemsize)
    rows, cols = microkernel.product_shape(g.K, g.O)
    gWt = numpy.zeros((rows, cols), dtype=numpy.float32)
    m = 0
    for n0 in range(0, n, nb):
        if min(nb, n - n0) != m:
            m = min(nb, n - n0)
            col = None if unpacked else numpy.zeros((rows, m * g.L), dtype=numpy.float32)
            gyt = numpy.zeros((m * g.L, cols), dtype=numpy.float32)
            targets = gyt.reshape(m, g.OH, g.Wq, cols)[:, :, :g.OW, :g.O]  # full-row layout
        numpy.copyto(targets, gy[n0:n0 + m].transpose(0, 2, 3, 1))
        if unpacked:
            microkernel.weight_gradient_into(xbuf[n0 * sample:], gyt, gWt, g, m)
        else:
            layout.fill_col(col[:g.K], xbuf, g, n0, m)
            microkernel.product_into(col, gyt, gWt)
    return gWt[:g.K, :g.O]


def _grad_w_slice(x, gy, g, per_sample):
    """gW^T (K, O) summed over a slice of the batch: one small GEMM per sample against gy in its
    own layout, summed (``per_sample``; where the column is short, K <= 64 on the machines
    measured first), or one GEMM per chunk, gW^T = col gy^T (which OpenBLAS runs 20-60% faster
    than gy col^T); benchmarks/bench_conv_paths.py times both."""
    dtype, n = x.dtype, len(x)
    xbuf = layout.padded(x, g)
    nb = _chunk(n, g.K * g.L * dtype.itemsize)
    gWt = numpy.zeros((g.K, g.O), dtype=dtype)
    m = 0
    for n0 in range(0, n, nb):
        if min(nb, n - n0) != m:
            m = min(nb, n - n0)
            col = numpy.empty((g.K, m * g.L), dtype=dtype)
            gyc = numpy.zeros((m, g.O, g.L) if per_sample else (g.O, m * g.L), dtype=dtype)
            tmp = numpy.empty((m, g.K, g.O) if per_sample else (g.K, g.O), dtype=dtype)
        layout.fill_col(col, xbuf, g, n0, m)
        if per_sample:
            layout.output(gyc, g)[...] = gy[n0:n0 + m]
            numpy.matmul(col.reshape(g.K, m, g.L).transpose(1, 0, 2), gyc.transpose(0, 2, 1),
                         out=tmp)
            gWt += tmp.sum(axis=0)
        else:
            _gy_chunk(gyc, gy, g, n0, m)
            numpy.matmul(col, gyc.T, out=tmp)
            gWt += tmp
    return gWt


def _corr_applies(g):
    pyy, pxx = g.kh - 1 - g.ph, g.kw - 1 - g.pw
    return g.rows and pyy >= 0 and pxx >= 0


def grad_x(W, gy, g, x_dtype):
    """The input gradient gx (N, C, H, W). Stride 1: a "full" correlation of gy with the flipped
    kernel, run by the forward kernel (an im2col copy instead of kh*kw strided adds), or gcol =
    W^T gy and col2im, whichever this machine runs faster for the shape (the default rule, the
    correlation up to O = 2C, is what an AMD EPYC measured: benchmarks/bench_conv_paths.py)."""
    if not _corr_applies(g):
        return _col2im_grad_x(W, gy, g, x_dtype)
    paths = {"corr": _corr_grad_x, "col2im": _col2im_grad_x}
    if microkernel.available() and W.dtype == gy.dtype == numpy.float32:
        paths["col2im_packed"] = functools.partial(_col2im_grad_x, packed=True)
    path = _choose("grad_x", g, "corr" if g.O <= 2 * g.C else "col2im", {
        name: lambda n, fn=fn: fn(W, gy[:n], _sub(g, n), x_dtype) for name, fn in paths.items()})
    return paths[path](W, gy, g, x_dtype)


def _corr_grad_x(W, gy, g, x_dtype):
    Wf = numpy.ascontiguousarray(W.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1], dtype=gy.dtype)
    gf = layout.geom(gy.shape, Wf.shape, (1, 1), (g.kh - 1 - g.ph, g.kw - 1 - g.pw))
    return _forward(gy, Wf, None, gf).astype(x_dtype, copy=False)


def _col2im_grad_x(W, gy, g, x_dtype, packed=False):
    """Input gradient as gcol = W^T gy (one product per chunk: OpenBLAS, or with ``packed`` the
    micro-kernel) and col2im: kh*kw shifted adds."""
    dtype = gy.dtype
    # Rows of gcol in (kh, kw, C) order, so each kernel offset's block is contiguous.
    Wt = numpy.ascontiguousarray(W.transpose(2, 3, 1, 0).reshape(g.K, g.O), dtype=dtype)
    if packed:  # zero rows up to whole panels of the micro-kernel
        Wt = numpy.concatenate([Wt, numpy.zeros((microkernel.product_shape(g.K, 1)[0] - g.K, g.O),
                                                dtype)])
    gx = numpy.empty((g.N, g.C, g.H, g.W), dtype=dtype)
    _split(g, dtype, lambda n0, n1: _col2im_slice(Wt, gy[n0:n1], g, gx[n0:n1], packed))
    return gx.astype(x_dtype, copy=False)


def _col2im_slice(Wt, gy, g, gx, packed):
    C, kh, kw = g.C, g.kh, g.kw
    dtype, n = gy.dtype, len(gy)
    nb = _chunk(n, g.K * g.L * dtype.itemsize)
    m = 0
    for n0 in range(0, n, nb):
        if min(nb, n - n0) != m:
            m = min(nb, n - n0)
            cols = microkernel.product_shape(1, m * g.L)[1] if packed else m * g.L
            gyc = numpy.zeros((g.O, cols), dtype=dtype)
            gcol = numpy.empty((len(Wt), cols), dtype=dtype)
            gxb, interior = layout.padded_buffer(m, g, dtype)
            used = gcol[:g.K, :m * g.L]
            if g.rows:
                blocks = used.reshape(kh * kw, C, m, g.L)
                targets = [layout.view(gxb, i * g.Wq + j, (C, m, g.L),
                                       (g.plane, C * g.plane, 1))
                           for i in range(kh) for j in range(kw)]
            else:
                blocks = used.reshape(kh * kw, C, m, g.OH, g.OW)
                targets = [layout.view(gxb, i * g.Wq + j, (C, m, g.OH, g.OW),
                                       (g.plane, C * g.plane, g.Wq * g.sy, g.sx))
                           for i in range(kh) for j in range(kw)]
        _gy_chunk(gyc[:, :m * g.L], gy, g, n0, m)
        if packed:
            gcol.fill(0)
            microkernel.product_into(Wt, gyc, gcol)
        else:
            numpy.matmul(Wt, gyc, out=gcol)
        gxb.fill(0)
        for t, tgt in enumerate(targets):
            numpy.add(tgt, blocks[t], out=tgt)
        numpy.copyto(gx[n0:n0 + m], interior)


def bias_grad(gy):
    """gb (O,) = gy summed over the batch and the image, as matrix-vector products (numpy's sum
    over axes (0, 2, 3) runs 2-3x slower)."""
    n, channels = gy.shape[:2]
    rows = numpy.ascontiguousarray(gy).reshape(n * channels, -1)
    return (rows @ numpy.ones(rows.shape[1], dtype=gy.dtype)).reshape(n, channels).sum(axis=0)


# Most samples a kernel choice is timed on: the paths' speeds per sample change with the batch
# (a GEMM's shape, what stays in cache), so a choice is timed on the call's own batch, up to this.
_CALIBRATION_SAMPLES = 1024


def _sub(g, n):
    return layout.geom((n, g.C, g.H, g.W), (g.O, g.C, g.kh, g.kw), (g.sy, g.sx), (g.ph, g.pw))


def choose_for_batch(shape_key, batch, default, candidates):
    """calibration.choose for a shape (``shape_key``), the batch's size class (the next power of
    two) and the thread count, each candidate (a callable of a sample count) timed on the call's
    first samples."""
    n = min(batch, _CALIBRATION_SAMPLES)
    key = "%s batch<=%d threads %d" % (shape_key, 1 << (n - 1).bit_length(), threads.get_threads())
    return calibration.choose(key, {name: (lambda fn=fn: fn(n)) for name, fn in candidates.items()},
                              default)


def _choose(what, g, default, candidates):
    """``choose_for_batch`` for this convolution's shape."""
    return choose_for_batch("conv %s C%d %dx%d O%d k%dx%d s%dx%d p%dx%d" % (
        what, g.C, g.H, g.W, g.O, g.kh, g.kw, g.sy, g.sx, g.ph, g.pw), g.N, default, candidates)


def conv2d_numpy(x, W, b=None, stride=1, pad=0):
    """Plain-numpy forward of ``convolution_2d`` (NCHW); the kernel the FunctionNode runs."""
    if x.shape[1] != W.shape[1]:
        raise ValueError("x has %d channels, W expects %d" % (x.shape[1], W.shape[1]))
    return _forward(x, W, b, layout.geom(x.shape, W.shape, layout.pair(stride), layout.pair(pad)))


def forward_path(x, W, stride=1, pad=0, batch=None):
    """The path ``conv2d_numpy`` runs for these inputs ("gemm", "direct", "packed", "unpacked");
    ``batch``: for that many of x's samples (default all)."""
    shape = x.shape if batch is None else (batch,) + x.shape[1:]
    return _forward_path(x, W, layout.geom(shape, W.shape, layout.pair(stride), layout.pair(pad)))


def supports(link):
    """Whether the fast kernel computes this ``L.Convolution2D`` (no groups, no dilation)."""
    return link.groups == 1 and layout.pair(link.dilate) == (1, 1)
