"""Compiled (Numba) inference kernels for the small layers, with the numpy kernels as fallback.

Why: at batch 1 a numpy call costs 1-3 us, and a convolution with 1-10 input channels or a max
pooling is a few numpy calls (im2col copy, GEMM, bias; strided maxima, ReLU) whose fixed cost
outweighs the arithmetic. Two kernels here do one such layer in one call:

* ``conv_direct``: a direct convolution (no im2col) on the zero-padded input laid out as
  ``layout.py``'s stride-1 "full-row" buffer, for one sample or a batch: for each output channel and
  kernel offset, one multiply-add of a contiguous run of the padded input into the output row block,
  which LLVM vectorises. It beats im2col + OpenBLAS while the im2col column is short
  (``DIRECT_MAX_K``, from timing both on the networks' layer shapes; ``benchmarks/bench_jit.py``).
* ``max_pool``: max pooling with Chainer's semantics (``cover_all``, padding that never wins) and
  an optional ReLU after it, from any strided view into any strided view, so a pooling writes
  straight into the next convolution's padded input.

Results equal the numpy kernels': max pooling exactly (NaN propagates as in ``numpy.maximum``),
the convolution within float32 rounding (another summation order); ``tests/fast/test_jit.py``
holds the two equal. Numba is a dependency (setup.py); without it, or with
``BRANCHYNET_NUMBA=0``, ``available()`` is False and the compiler uses the numpy kernels only.
Kernels release the GIL, so ``threads.py`` can split a batch over the cores.
"""
import os

import numpy

__all__ = ["available", "set_enabled", "why_not", "direct_conv_applies", "pool_applies",
           "linear_applies", "conv_direct", "max_pool", "linear", "entropy_one",
           "all_finite", "entropy_decisions", "record_exits"]

# Longest im2col column (C * kh * kw) for which the direct convolution runs instead of im2col +
# GEMM (benchmarks/bench_jit.py, results/benchmarks/jit_kernels_cpu.txt): for up to
# DIRECT_SMALL_BATCH samples DIRECT_MAX_K (at batch 1 B-LeNet's 25, 45 and 125 gain 3.5x, 2x and
# 1.35x, its 250 loses, 0.6x), for larger batches DIRECT_MAX_K_BATCH (in a batch of 1000 only the 25
# gains, 1.5x; 45 and 125 lose by about 10 %).
DIRECT_MAX_K = 128
DIRECT_SMALL_BATCH = 4
DIRECT_MAX_K_BATCH = 32
# ... and only for few output channels: the direct kernel re-reads the input once per channel
# (B-AlexNet's first convolution, K = 75 with 32 channels, loses 0.64x; B-ResNet's first, K = 27
# with 16 channels, gains 1.24x at batch 1 and loses 0.88x in a batch of 1000).
DIRECT_MAX_O = 16
DIRECT_MAX_O_BATCH = 8
# Largest input (N * C * H * W elements) that is max-pooled with the compiled kernel: it costs
# about 1 ns per input element plus one call, numpy's pooling about 10 us of calls plus 0.6 ns per
# element; one B-LeNet sample (2,250-4,500 elements) gains 2.3-3.2x, one B-AlexNet sample's
# 32x32x32 (32,768) loses (0.56x), and so do B-LeNet batches of 1000 (0.65-0.76x).
POOL_MAX_ELEMENTS = 16384
# Largest linear layer (in x out weights) that a batch-1 program runs with the compiled kernel (one
# call with the bias) instead of numpy's matmul and add: B-LeNet's 640x10, 720x84 and 84x10.
LINEAR_MAX_MACS = 65536

try:
    if os.environ.get("BRANCHYNET_NUMBA", "1") == "0":
        raise ImportError("switched off by BRANCHYNET_NUMBA=0")
    import numba
except ImportError as e:  # the numpy kernels do everything
    numba = None
    _why_not = str(e)
else:
    _why_not = None

_enabled = numba is not None


def available():
    """Whether the compiled kernels are used (Numba importable and not switched off)."""
    return _enabled


def set_enabled(on):
    """Switches the compiled kernels on or off at run time (on only where Numba is importable);
    returns the previous state. Programs compiled before keep the kernels they were built with."""
    global _enabled
    previous = _enabled
    _enabled = bool(on) and numba is not None
    return previous


def why_not():
    """Why the compiled kernels are off (None when on)."""
    if _enabled:
        return None
    return _why_not or "switched off (set_enabled(False))"


def direct_conv_applies(link, x_dtype, batch):
    """Whether a convolution ``link`` (an ``L.Convolution2D`` the fast kernels support) on ``batch``
    samples of ``x_dtype`` runs as ``conv_direct``: float32, stride 1, a short im2col column and
    few output channels (DIRECT_MAX_K and DIRECT_MAX_O up to DIRECT_SMALL_BATCH samples, else
    DIRECT_MAX_K_BATCH and DIRECT_MAX_O_BATCH)."""
    if not _enabled or numpy.dtype(x_dtype) != numpy.float32 or link.W.array is None:
        return False
    if link.W.array.dtype != numpy.float32 or (link.b is not None
                                               and link.b.array.dtype != numpy.float32):
        return False
    stride = link.stride if isinstance(link.stride, (tuple, list)) else (link.stride,) * 2
    O, C, kh, kw = link.W.shape
    small = batch <= DIRECT_SMALL_BATCH
    max_k, max_o = ((DIRECT_MAX_K, DIRECT_MAX_O) if small
                    else (DIRECT_MAX_K_BATCH, DIRECT_MAX_O_BATCH))
    return tuple(stride) == (1, 1) and C * kh * kw <= max_k and O <= max_o


def pool_applies(x_shape, x_dtype):
    """Whether an input of this shape (N, C, H, W) is max-pooled with the compiled kernel."""
    return (_enabled and numpy.dtype(x_dtype).kind == "f"
            and int(numpy.prod(x_shape)) <= POOL_MAX_ELEMENTS)


if numba is not None:
    _jit = numba.njit(nogil=True, boundscheck=False, cache=True, fastmath={"contract"},
                      error_model="numpy")

    @_jit
    def _conv_direct(xflat, W, b, out, n, C, plane, Wq, L):
        """out[s, o, :L] = b[o] + sum_{c, ky, kx} W[o, c, ky, kx] * xflat[s-th sample, c-th plane,
        ky * Wq + kx : ... + L] for samples s < n; xflat holds n * C planes of ``plane`` elements
        and a tail of at least kw - 1 zeros; out is (n, O, L)."""
        O, _, kh, kw = W.shape
        for s in range(n):
            base = s * C * plane
            for o in range(O):
                acc = out[s, o]
                bo = b[o]
                for i in range(L):
                    acc[i] = bo
                for c in range(C):
                    for ky in range(kh):
                        for kx in range(kw):
                            w = W[o, c, ky, kx]
                            start = base + c * plane + ky * Wq + kx
                            src = xflat[start:start + L]
                            for i in range(L):
                                acc[i] += w * src[i]

    @_jit
    def _nan_max(a, b):
        """numpy.maximum of two scalars: NaN if either is NaN."""
        return a if (a >= b or a != a) else b

    @_jit
    def _max_pool(x, out, kh, kw, sy, sx, ph, pw, relu):
        """Row by row: for each output row, the maximum over its window's input rows and column
        offsets j of x[.., ox * sx - pw + j], over the ox whose column lies inside the input
        (padding never wins), one branch-free pass per (row, j)."""
        N, C, H, W = x.shape
        OH, OW = out.shape[2], out.shape[3]
        acc = numpy.empty(OW, dtype=out.dtype)
        lo = numpy.empty(kw, dtype=numpy.int64)
        hi = numpy.empty(kw, dtype=numpy.int64)
        for j in range(kw):  # ox with 0 <= ox * sx - pw + j < W
            lo[j] = max(0, -((j - pw) // sx))
            hi[j] = min(OW, (W - 1 - j + pw) // sx + 1)
        for n in range(N):
            for c in range(C):
                for oy in range(OH):
                    y0 = oy * sy - ph
                    y1 = min(y0 + kh, H)
                    y0 = max(y0, 0)
                    acc[:] = -numpy.inf
                    for yy in range(y0, y1):
                        row = x[n, c, yy]
                        for j in range(kw):
                            off = j - pw
                            for ox in range(lo[j], hi[j]):
                                acc[ox] = _nan_max(acc[ox], row[ox * sx + off])
                    dst = out[n, c, oy]
                    if relu:
                        for ox in range(OW):
                            dst[ox] = _nan_max(acc[ox], 0.0)
                    else:
                        for ox in range(OW):
                            dst[ox] = acc[ox]


    # Sums over a row: reassociation lets LLVM vectorise them (float32 rounding differs, as any
    # other summation order would); no finite-math assumption, so NaN and inf behave as in numpy.
    _jit_sum = numba.njit(nogil=True, boundscheck=False, cache=True,
                          fastmath={"contract", "reassoc"}, error_model="numpy")

    @_jit_sum
    def _linear(x, W, b, out):
        """out[0, o] = b[o] + sum_i W[o, i] x[i] for one flattened sample x."""
        O, I = W.shape
        for o in range(O):
            row = W[o]
            acc = numpy.float32(0.0)
            for i in range(I):
                acc += row[i] * x[i]
            out[0, o] = acc + b[o]

    @_jit
    def _entropy(z):
        """The softmax entropy of one row of logits, in float64: log sum e - sum e (z - top) / sum e
        with e = exp(z - top), top = max z (NaN for non-finite logits, as the formula gives)."""
        top = -numpy.inf
        for v in z:
            f = numpy.float64(v)
            if f > top or f != f:
                top = f
        total = 0.0
        weighted = 0.0
        for v in z:
            d = numpy.float64(v) - top
            e = numpy.exp(d)
            total += e
            weighted += e * d
        return numpy.log(total) - weighted / total

    @numba.njit(nogil=True, boundscheck=False, cache=True, fastmath={"reassoc"},
                error_model="numpy")
    def _zero_sum(x):
        """The sum of x * 0 over a non-empty 1-d array: 0 when every value is finite, NaN when
        one is not (inf * 0 is NaN); reassociated, so that it runs on whole vectors."""
        acc = x[0] * 0
        for i in range(1, len(x)):
            acc += x[i] * 0
        return acc

    @_jit
    def _shifted_rows(z, d):
        """d = each row of z in float64 less its maximum (a NaN carries into d by itself)."""
        for i in range(z.shape[0]):
            top = -numpy.inf
            for c in range(z.shape[1]):
                top = max(top, numpy.float64(z[i, c]))
            for c in range(z.shape[1]):
                d[i, c] = numpy.float64(z[i, c]) - top

    @_jit
    def _decisions(d, e, threshold, margin, entropies, leave, unsure):
        """Per row: entropies = log sum e - sum e d / sum e (``_entropy`` given e = exp(d)),
        leave = entropy < threshold, unsure = not further than margin from it (or NaN); returns
        how many rows are unsure."""
        count = 0
        for i in range(d.shape[0]):
            total = 0.0
            weighted = 0.0
            for c in range(d.shape[1]):
                total += e[i, c]
                weighted += e[i, c] * d[i, c]
            h = numpy.log(total) - weighted / total
            entropies[i] = h
            leave[i] = h < threshold
            unsure[i] = not abs(h - threshold) > margin
            count += unsure[i]
        return count

    @_jit
    def _record_exits(logits, leave, remaining, exit_index, labels, exits, stay):
        """labels/exits of the rows that leave (numpy's argmax: the first NaN, else the first
        maximum); the indices of the others into ``stay``; returns how many stay."""
        count = 0
        for i in range(len(leave)):
            if not leave[i]:
                stay[count] = i
                count += 1
                continue
            row = logits[i]
            best, top = 0, row[0]
            if top == top:
                for c in range(1, len(row)):
                    v = row[c]
                    if v != v:
                        best = c
                        break
                    if v > top:
                        best, top = c, v
            labels[remaining[i]] = best
            exits[remaining[i]] = exit_index
        return count


def linear_applies(link, x_dtype):
    """Whether a batch-1 program runs a linear layer with the compiled kernel: float32 with a bias
    and at most LINEAR_MAX_MACS multiply-adds."""
    if not _enabled or numpy.dtype(x_dtype) != numpy.float32 or link.W.array is None:
        return False
    return (link.b is not None and link.W.array.dtype == numpy.float32
            and link.b.array.dtype == numpy.float32 and link.W.array.size <= LINEAR_MAX_MACS)


def linear(x, W, b, out):
    """out (1, O) = x (one sample, C-contiguous, flattened) W^T + b."""
    _linear(x.reshape(-1), W, b, out)
    return out


def entropy_one(logits):
    """The float64 softmax entropy of one sample's logits (any float array of one row)."""
    return float(_entropy(logits.reshape(-1)))


def all_finite(x):
    """Whether a C-contiguous float array holds no NaN or infinity: one pass at memory
    speed (numpy's float32 sum, which the check used before, ran at about 2/3 of it)."""
    return x.size == 0 or _zero_sum(x.reshape(-1)) == 0


def entropy_decisions(logits, threshold, margin):
    """(leave, unsure, entropies) of the rows of an (N, C) float array: ``entropy_one`` of each
    row, whether it lies below ``threshold``, and the rows whose entropy is not further than
    ``margin`` from it or not finite (None when there is none), which the caller decides. The
    exponentials are numpy's, on whole vectors (a scalar exp per class cost 3/4 of the time in a
    batch of 1,000); either exp is within an ulp or two, far inside ``exit_rule.leaves``'s
    margin. Three calls in all, because right after a batch's kernels each call costs tens of
    microseconds (its code and data come back from far caches)."""
    d = numpy.empty(logits.shape, numpy.float64)
    _shifted_rows(logits, d)
    entropies = numpy.empty(len(logits), numpy.float64)
    leave, unsure = numpy.empty(len(logits), bool), numpy.empty(len(logits), bool)
    count = _decisions(d, numpy.exp(d), threshold, margin, entropies, leave, unsure)
    return leave, (unsure if count else None), entropies


def record_exits(logits, leave, remaining, exit_index, labels, exits):
    """For the rows of ``logits`` that ``leave``: labels[remaining[i]] = the row's argmax and
    exits[remaining[i]] = exit_index; returns the indices of the rows that stay. One call for the
    handful of numpy calls this takes (0.1 ms in a batch of 1,000)."""
    stay = numpy.empty(len(leave), numpy.intp)
    return stay[:_record_exits(logits, leave, remaining, exit_index, labels, exits, stay)]


def conv_direct(xflat, W, b, out, g, n=None):
    """The direct convolution of ``n`` samples (default ``g.N``) held in ``xflat`` (a flat padded
    buffer as ``layout.padded_buffer`` makes, laid out as the stride-1 ``layout.Geom`` g) into
    ``out`` (n, O, g.L), the full-row output that ``layout.output`` views."""
    if b is None:
        b = numpy.zeros(W.shape[0], dtype=W.dtype)
    _conv_direct(xflat, W, b, out, g.N if n is None else n, g.C, g.plane, g.Wq, g.L)
    return out


def max_pool(x, out, ksize, stride, pad, relu):
    """out = max_pooling_2d(x) (then ReLU if ``relu``), Chainer's semantics, for the output size
    ``out`` has (which carries cover_all); x and out are 4-D arrays, any strides."""
    (kh, kw), (sy, sx), (ph, pw) = ksize, stride, pad
    _max_pool(x, out, kh, kw, sy, sx, ph, pw, bool(relu))
    return out
