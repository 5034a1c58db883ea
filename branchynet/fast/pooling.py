"""Fast CPU max and average pooling kernels on numpy arrays (``pooling_nodes`` makes them Chainer
FunctionNodes).

Why: stock Chainer pools by building a full im2col array (kh*kw copies of the input) and reducing
it, then scatters gradients through another im2col-sized array; nearly all of its time is memory
traffic. Here a few samples at a time are split into their stride phases (``xpad[a::sy, b::sx]``),
stored as planes with a fixed row pitch in a buffer that stays in cache. Every window offset is then
a *shifted contiguous* slice of one phase buffer, so pooling is kh*kw flat numpy ops on contiguous
data (outputs are computed on a slightly larger grid whose extra rows and columns are dropped).

Semantics are Chainer's: ``F.max_pooling_2d`` (cover_all, padding with -inf, gradient to the
first maximum of each window in row-major window order, exactly as its argmax) and
``F.average_pooling_2d`` (floor mode, zero padding, divide by kh*kw). NaN inputs are not given
Chainer's argmax-of-NaN treatment.
"""
import threading

import numpy

from branchynet.fast import jit_train, threads
from branchynet.fast.layout import pair

__all__ = ["max_pool_numpy", "avg_pool_numpy"]

# Bytes of input per chunk: its phase buffer and work arrays stay in L2/L3.
_CHUNK_BYTES = 1 << 20


def _out_size(size, k, s, p, cover_all):
    if cover_all:
        out = (size + 2 * p - k + s - 1) // s + 1
    else:
        out = (size + 2 * p - k) // s + 1
    if out <= 0:
        raise ValueError("pooling output size would be %d (input %d, kernel %d, stride %d, pad %d)"
                         % (out, size, k, s, p))
    return out


def _span(a, s, p, size, n):
    """x indices h = r*s + a - p (0 <= h < size) for plane rows 0 <= r < n, as two slices."""
    r0 = max(0, -((a - p) // s))  # ceil((p - a) / s)
    r1 = min(n, (size - 1 - a + p) // s + 1)
    if r1 <= r0:
        return None
    h0 = r0 * s + a - p
    return slice(h0, h0 + (r1 - r0 - 1) * s + 1, s), slice(r0, r1)


class _Plan(object):
    """Phase layout of one pooling, per chunk of ``nb`` samples.

    Phase (a, b) holds ``xpad[r*sy + a, q*sx + b]`` at plane position (r, q), r < R, q < Q. Window
    offset t = i*kw + j reads phase (i % sy, j % sx) shifted by ``(i // sy) * Q + j // sx``; output
    (oh, ow) sits at plane position (oh, ow); positions with oh >= OH or ow >= OW are unused.
    """

    def __init__(self, shape, dtype, ksize, stride, pad, cover_all):
        self.shape = tuple(shape)
        self.dtype = numpy.dtype(dtype)
        N, C, H, W = self.shape
        kh, kw = self.ksize = ksize
        sy, sx = self.stride = stride
        ph, pw = self.pad = pad
        self.N, self.C = N, C
        self.OH = _out_size(H, kh, sy, ph, cover_all)
        self.OW = _out_size(W, kw, sx, pw, cover_all)
        self.R = self.OH + (kh - 1) // sy
        self.Q = self.OW + (kw - 1) // sx
        self.CRQ = C * self.R * self.Q
        self.margin = ((kh - 1) // sy) * self.Q + (kw - 1) // sx
        na, nb = min(sy, kh), min(sx, kw)  # the phases some window offset reads
        self.nphase = na * nb
        self.offsets = [((i % sy) * nb + j % sx, (i // sy) * self.Q + j // sx)
                        for i in range(kh) for j in range(kw)]
        self.phases = numpy.array([p for p, _ in self.offsets], dtype=numpy.int64)
        self.shifts = numpy.array([sh for _, sh in self.offsets], dtype=numpy.int64)
        self.exact = self.R == self.OH and self.Q == self.OW  # the grid has no unused positions
        self.disjoint = kh <= sy and kw <= sx  # each offset its own phase, at shift 0
        # Per phase with data: (phase, x rows, x cols, plane rows, plane cols).
        self.copies = []
        for a in range(na):
            rows = _span(a, sy, ph, H, self.R)
            for b in range(nb):
                cols = _span(b, sx, pw, W, self.Q)
                if rows is not None and cols is not None:
                    self.copies.append((a * nb + b, rows[0], cols[0], rows[1], cols[1]))
        # Does every input position belong to some phase plane (else gx needs zeros there)?
        self.covers = (sy <= kh and sx <= kw and
                       (H - 1 + ph) // sy < self.R and (W - 1 + pw) // sx < self.Q)
        per_sample = C * H * W * self.dtype.itemsize
        self.nb = max(1, min(N, _CHUNK_BYTES // max(1, per_sample)))
        # Plans that differ only in N share work buffers.
        self.work_key = (self.shape[1:], self.dtype.str, ksize, stride, pad, cover_all, self.nb)

    def phase_buffer(self, nb, fill):
        """A phase buffer for nb samples with everything but the data blocks set to ``fill``."""
        buf = numpy.empty((self.nphase, nb * self.CRQ + self.margin), dtype=self.dtype)
        planes = self.planes(buf, nb)
        data = {p: (pr, pc) for p, _, _, pr, pc in self.copies}
        for p in range(self.nphase):
            if p not in data:
                planes[p] = fill
                continue
            pr, pc = data[p]
            planes[p, :, :, :pr.start] = fill
            planes[p, :, :, pr.stop:] = fill
            planes[p, :, :, pr, :pc.start] = fill
            planes[p, :, :, pr, pc.stop:] = fill
        buf[:, nb * self.CRQ:] = fill
        return buf

    def planes(self, buf, m):
        return buf[:, :m * self.CRQ].reshape(self.nphase, m, self.C, self.R, self.Q)

    def store(self, gx, buf, m):
        """gx (m samples, zero where no phase reaches) from a phase-layout buffer."""
        planes = self.planes(buf, m)
        for p, xr, xc, pr, pc in self.copies:
            numpy.copyto(gx[:, :, xr, xc], planes[p, :, :, pr, pc])

    def grid(self, g, m):
        """(m, C, OH, OW) view of the used positions of a flat grid array."""
        return g[:m * self.CRQ].reshape(m, self.C, self.R, self.Q)[:, :, :self.OH, :self.OW]

    def chunks(self, n):
        for n0 in range(0, n, self.nb):
            yield n0, min(self.nb, n - n0)

    def split(self, fn):
        """fn(n0, n1) over slices of the batch on the fast kernels' threads (threads.py)."""
        per_sample = 2 * self.C * self.shape[2] * self.shape[3] * self.dtype.itemsize
        return threads.run(fn, threads.parts(self.N, per_sample))


class _Work(object):
    """A pre-filled phase buffer for one plan, with its views for chunks of m samples."""

    def __init__(self, plan, fill):
        self.plan = plan
        self.buf = plan.phase_buffer(plan.nb, fill)
        self.grid = numpy.empty(plan.nb * plan.CRQ, dtype=plan.dtype)
        self.m = None

    def views(self, m):
        """(data-block views with their x slices, one flat source view per window offset)."""
        if m != self.m:
            plan, buf = self.plan, self.buf
            planes = plan.planes(buf, m)
            self.dsts = [(planes[p, :, :, pr, pc], xr, xc) for p, xr, xc, pr, pc in plan.copies]
            S = m * plan.CRQ
            self.srcs = [buf[p, sh:sh + S] for p, sh in plan.offsets]
            self.m = m
        return self.dsts, self.srcs

    def load(self, x, m):
        dsts, srcs = self.views(m)
        for dst, xr, xc in dsts:
            numpy.copyto(dst, x[:, :, xr, xc])
        return srcs


_local = threading.local()


def _work(plan, fill):
    """Per-thread reusable _Work (its buffers are only used inside one call)."""
    cache = getattr(_local, "work", None)
    if cache is None:
        cache = _local.work = {}
    key = (plan.work_key, fill)
    w = cache.get(key)
    if w is None:
        if len(cache) >= 32:
            cache.clear()
        w = cache[key] = _Work(plan, fill)
    return w


def _reduce(srcs, op, out):
    """out = op over the window offsets' sources (flat grid)."""
    numpy.copyto(out, srcs[0])
    for src in srcs[1:]:
        op(out, src, out=out)
    return out


def _pool_forward(x, plan, op, fill, divisor=None):
    y = numpy.empty((plan.N, plan.C, plan.OH, plan.OW), dtype=plan.dtype)
    plan.split(lambda n0, n1: _pool_slice(x[n0:n1], plan, op, fill, divisor, y[n0:n1]))
    return y


def _pool_slice(x, plan, op, fill, divisor, y):
    w = _work(plan, fill)
    for n0, m in plan.chunks(len(x)):
        srcs = w.load(x[n0:n0 + m], m)
        if plan.exact:  # reduce straight into y
            yg = _reduce(srcs, op, y[n0:n0 + m].reshape(-1))
        else:
            yg = _reduce(srcs, op, w.grid[:m * plan.CRQ])
        if divisor is not None:
            yg /= divisor
        if not plan.exact:
            y[n0:n0 + m] = plan.grid(yg, m)


def _max_backward(x, gy, plan):
    """gx: each window's gy goes to its first maximum (Chainer's argmax), summed in offset order."""
    gx = (numpy.empty if plan.covers else numpy.zeros)(plan.shape, dtype=gy.dtype)
    plan.split(lambda n0, n1: _max_backward_slice(x[n0:n1], gy[n0:n1], plan, gx[n0:n1]))
    return gx


def _max_backward_slice(x, gy, plan, gx):
    C = plan.C
    dtype = gy.dtype
    w = _work(plan, -numpy.inf)
    nb, CRQ = plan.nb, plan.CRQ
    rem = numpy.zeros(nb * CRQ, dtype=dtype)  # unused grid positions stay zero
    gb = numpy.zeros((plan.nphase, nb * CRQ + plan.margin), dtype=dtype)
    c = numpy.empty(nb * CRQ, dtype=dtype)
    mask = numpy.empty(nb * CRQ, dtype=bool)
    last = len(plan.offsets) - 1
    for n0, m in plan.chunks(len(x)):
        S = m * CRQ
        srcs = w.load(x[n0:n0 + m], m)
        ygm = _reduce(srcs, numpy.maximum, w.grid[:S])
        r = rem[:S]
        if plan.exact:
            numpy.copyto(r.reshape(m, C, plan.OH, plan.OW), gy[n0:n0 + m])
        else:
            numpy.copyto(plan.grid(rem, m), gy[n0:n0 + m])
        if not plan.disjoint:
            gb.fill(0)
        mk = mask[:S]
        ck = c[:S]
        for t, (p, sh) in enumerate(plan.offsets):
            numpy.equal(srcs[t], ygm, out=mk)
            if plan.disjoint:
                out = gb[p, :S]
                numpy.multiply(r, mk, out=out)
                if t != last:
                    numpy.subtract(r, out, out=r)
            else:
                numpy.multiply(r, mk, out=ck)
                if t != last:
                    numpy.subtract(r, ck, out=r)
                tgt = gb[p, sh:sh + S]
                numpy.add(tgt, ck, out=tgt)
        plan.store(gx[n0:n0 + m], gb, m)


def _max_forward_winners(x, plan, relu):
    """(y, win) of max pooling (then ReLU) by the compiled kernels: win holds each window's winning
    offset on the plan's grid, so the backward is one scatter (``_max_backward_winners``)."""
    y = numpy.empty((plan.N, plan.C, plan.OH, plan.OW), dtype=plan.dtype)
    win = numpy.empty(plan.N * plan.CRQ, dtype=numpy.int8 if len(plan.offsets) < 128 else numpy.int32)
    plan.split(lambda n0, n1: _winners_slice(x[n0:n1], plan, relu, y[n0:n1],
                                             win[n0 * plan.CRQ:n1 * plan.CRQ]))
    return y, win


def _winners_slice(x, plan, relu, y, win):
    w = _work(plan, -numpy.inf)
    for n0, m in plan.chunks(len(x)):
        w.load(x[n0:n0 + m], m)
        S = m * plan.CRQ
        grid = y[n0:n0 + m].reshape(-1) if plan.exact else w.grid[:S]
        jit_train.phase_argmax(w.buf, plan.phases, plan.shifts, S, grid,
                               win[n0 * plan.CRQ:n0 * plan.CRQ + S], relu)
        if not plan.exact:
            y[n0:n0 + m] = plan.grid(grid, m)


def _max_backward_winners(g, win, plan, adjoint=False):
    """gx from gy through the recorded winners; with ``adjoint``, ggy from ggx (each window reads
    ggx at its winner)."""
    if adjoint:
        out = numpy.empty((plan.N, plan.C, plan.OH, plan.OW), dtype=g.dtype)
        kernel = jit_train.max_pool_gather
    else:
        out = numpy.empty(plan.shape, dtype=g.dtype)
        kernel = jit_train.max_pool_backward
    g = numpy.ascontiguousarray(g)
    plan.split(lambda n0, n1: kernel(g[n0:n1], win[n0 * plan.CRQ:n1 * plan.CRQ], plan, out[n0:n1]))
    return out


def _max_gather(x, z, plan):
    """For each window, z at the position of its first maximum (the adjoint of _max_backward)."""
    out = numpy.empty((plan.N, plan.C, plan.OH, plan.OW), dtype=z.dtype)
    wx, wz = _Work(plan, -numpy.inf), _Work(plan, 0)
    for n0, m in plan.chunks(plan.N):
        S = m * plan.CRQ
        xs = wx.load(x[n0:n0 + m], m)
        zs = wz.load(z[n0:n0 + m], m)
        ygm = _reduce(xs, numpy.maximum, wx.grid[:S])
        acc = numpy.zeros(S, dtype=z.dtype)
        rem = numpy.ones(S, dtype=bool)
        for xt, zt in zip(xs, zs):
            hit = (xt == ygm) & rem
            rem &= ~hit
            acc += zt * hit
        out[n0:n0 + m] = plan.grid(acc, m)
    return out


def _avg_backward(gy, plan):
    gx = (numpy.empty if plan.covers else numpy.zeros)(plan.shape, dtype=gy.dtype)
    plan.split(lambda n0, n1: _avg_backward_slice(gy[n0:n1], plan, gx[n0:n1]))
    gx /= gy.dtype.type(plan.ksize[0] * plan.ksize[1])
    return gx


def _avg_backward_slice(gy, plan, gx):
    dtype = gy.dtype
    nb, CRQ = plan.nb, plan.CRQ
    gyg = numpy.zeros(nb * CRQ, dtype=dtype)
    gb = numpy.empty((plan.nphase, nb * CRQ + plan.margin), dtype=dtype)
    for n0, m in plan.chunks(len(gy)):
        S = m * CRQ
        numpy.copyto(plan.grid(gyg, m), gy[n0:n0 + m])
        gb.fill(0)
        for p, sh in plan.offsets:
            tgt = gb[p, sh:sh + S]
            numpy.add(tgt, gyg[:S], out=tgt)
        plan.store(gx[n0:n0 + m], gb, m)


_plan_cache = {}


def _get_plan(shape, dtype, ksize, stride, pad, cover_all):
    key = (shape, dtype, ksize, stride, pad, cover_all)
    plan = _plan_cache.get(key)
    if plan is None:
        if len(_plan_cache) > 256:
            _plan_cache.clear()
        plan = _plan_cache[key] = _Plan(shape, dtype, ksize, stride, pad, cover_all)
    return plan


def _plan(x, ksize, stride, pad, cover_all):
    if stride is None:
        stride = ksize
    return _get_plan(x.shape, x.dtype, pair(ksize), pair(stride), pair(pad), cover_all)


def max_pool_numpy(x, ksize, stride=None, pad=0, cover_all=True):
    """Plain-numpy forward of ``max_pooling_2d`` (NCHW)."""
    return _pool_forward(x, _plan(x, ksize, stride, pad, cover_all), numpy.maximum, -numpy.inf)


def avg_pool_numpy(x, ksize, stride=None, pad=0):
    """Plain-numpy forward of ``average_pooling_2d`` (NCHW, floor mode, padding counted)."""
    plan = _plan(x, ksize, stride, pad, False)
    kh, kw = plan.ksize
    if kh == 1 and kw == 1 and plan.pad == (0, 0):
        sy, sx = plan.stride
        return numpy.ascontiguousarray(x[:, :, ::sy, ::sx])
    return _pool_forward(x, plan, numpy.add, 0, x.dtype.type(kh * kw))
