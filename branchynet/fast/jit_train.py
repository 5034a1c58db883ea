"""Compiled (Numba) training kernels: max pooling over ``pooling``'s stride phases that records
each window's winner (optionally with the ReLU after it), and local response normalisation, each
with its gradient.

Why: the numpy pooling finds every window's maximum again in the backward pass, with kh*kw
masked passes over the input; recording the winning window offset in the forward pass (a byte an
output) makes the backward one scatter. LRN in numpy is eight passes over memory each way; here
each is one, and the power ``u ** -0.75`` (AlexNet's) becomes two square roots, which vectorise.

Semantics are Chainer's: the first maximum of a window in row-major order wins (a NaN wins over
numbers, as ``numpy.argmax`` picks it), padding never wins; ``relu=True`` gives
``relu(max_pool(x))`` and its gradient (zero where the window's maximum is not positive). LRN:
``y = x * (k + alpha * sum_window x^2) ** -beta`` over n channels, and Chainer's gradient formula.
Kernels release the GIL, so ``threads.py`` splits a batch over the cores.
"""
import numpy

from branchynet.fast import jit, threads

__all__ = ["applies", "phase_argmax", "max_pool_backward", "max_pool_gather", "lrn_forward",
           "lrn_backward"]


def applies(dtype):
    """Whether these kernels run for arrays of ``dtype`` (Numba on, a float type)."""
    return jit.available() and numpy.dtype(dtype).kind == "f"


if jit.numba is not None:
    _jit = jit.numba.njit(nogil=True, boundscheck=False, cache=True, fastmath={"contract"},
                          error_model="numpy")

    @_jit
    def _phase_argmax(buf, phases, shifts, S, best, win, relu):
        """best[i] = the maximum over the window offsets t of buf[phases[t], shifts[t] + i], win[i]
        = the first t that holds it (a NaN wins over numbers, as numpy.argmax); with ``relu``,
        best = relu(best) and win = -1 where that is not the maximum (no gradient)."""
        src = buf[phases[0], shifts[0]:shifts[0] + S]
        for i in range(S):
            best[i] = src[i]
            win[i] = 0
        for t in range(1, len(phases)):
            src = buf[phases[t], shifts[t]:shifts[t] + S]
            for i in range(S):
                v = src[i]
                b = best[i]
                take = v > b or (v != v and b == b)
                best[i] = v if take else b
                win[i] = t if take else win[i]
        if relu:
            for i in range(S):
                b = best[i]
                keep = b > 0 or b != b
                best[i] = b if keep else 0
                win[i] = win[i] if b > 0 else -1

    @_jit
    def _winner_scatter(gy, win, gx, dys, dxs, sy, sx, ph, pw, R, Q):
        """gx = 0, then each output's gy added at its window's winner: window offset t = win (on
        the plan's R x Q grid; -1: none) at row dys[t] and column dxs[t] of the window, dropped
        when it falls on padding."""
        N, C, OH, OW = gy.shape
        H, W = gx.shape[2], gx.shape[3]
        for n in range(N):
            for c in range(C):
                g = gx[n, c]
                g[:, :] = 0
                base = (n * C + c) * R
                for oy in range(OH):
                    row = (base + oy) * Q
                    for ox in range(OW):
                        t = win[row + ox]
                        h = oy * sy + dys[t] - ph
                        w = ox * sx + dxs[t] - pw
                        if t >= 0 and 0 <= h < H and 0 <= w < W:
                            g[h, w] += gy[n, c, oy, ox]

    @_jit
    def _winner_gather(z, win, out, dys, dxs, sy, sx, ph, pw, R, Q):
        """out = z at each window's winner (0 for none or padding): the scatter's adjoint."""
        N, C, OH, OW = out.shape
        H, W = z.shape[2], z.shape[3]
        for n in range(N):
            for c in range(C):
                base = (n * C + c) * R
                for oy in range(OH):
                    row = (base + oy) * Q
                    for ox in range(OW):
                        t = win[row + ox]
                        h = oy * sy + dys[t] - ph
                        w = ox * sx + dxs[t] - pw
                        inside = t >= 0 and 0 <= h < H and 0 <= w < W
                        out[n, c, oy, ox] = z[n, c, h, w] if inside else 0.0

    @_jit
    def _power(u, beta, one):
        """u ** -beta, with AlexNet's beta = 0.75 as 1 / (sqrt(u) sqrt(sqrt(u))); ``one`` has u's
        type, so that float32 stays float32."""
        if beta == 0.75:
            r = numpy.sqrt(u)
            return one / (r * numpy.sqrt(r))
        return u ** -beta

    @_jit
    def _lrn_fwd(x, y, unit, scale, half, k, alpha, beta, one):
        """unit = k + alpha * (window sum of x^2 over channels c-half..c+half), scale = unit **
        -beta, y = x * scale; x, y, unit and scale are (N, C, P)."""
        N, C, P = x.shape
        acc = numpy.empty(P, dtype=x.dtype)
        for n in range(N):
            for c in range(C):
                acc[:] = 0
                for cc in range(max(0, c - half), min(C, c + half + 1)):
                    src = x[n, cc]
                    for p in range(P):
                        acc[p] += src[p] * src[p]
                for p in range(P):
                    u = k + alpha * acc[p]
                    s = _power(u, beta, one)
                    unit[n, c, p] = u
                    scale[n, c, p] = s
                    y[n, c, p] = x[n, c, p] * s

    @_jit
    def _lrn_bwd(x, y, gy, unit, scale, half, f, gx):
        """gx = gy * scale - f x * (window sum of y gy / unit), with f = 2 alpha beta: Chainer's
        formula."""
        N, C, P = x.shape
        summand = numpy.empty((C, P), dtype=x.dtype)
        acc = numpy.empty(P, dtype=x.dtype)
        for n in range(N):
            for c in range(C):
                for p in range(P):
                    summand[c, p] = y[n, c, p] * gy[n, c, p] / unit[n, c, p]
            for c in range(C):
                acc[:] = 0
                for cc in range(max(0, c - half), min(C, c + half + 1)):
                    for p in range(P):
                        acc[p] += summand[cc, p]
                for p in range(P):
                    gx[n, c, p] = gy[n, c, p] * scale[n, c, p] - f * x[n, c, p] * acc[p]


def _split(n, bytes_per_sample, fn):
    threads.run(fn, threads.parts(n, bytes_per_sample))


def phase_argmax(buf, phases, shifts, S, best, win, relu):
    """Over a ``pooling`` phase buffer: each grid position's maximum (then ReLU) and winning window
    offset."""
    _phase_argmax(buf, phases, shifts, S, best, win, relu)


def _window_table(plan):
    """Row and column of each window offset t = i * kw + j (tables: no division per output)."""
    kh, kw = plan.ksize
    t = numpy.arange(kh * kw)
    return t // kw, t % kw


def max_pool_backward(gy, win, plan, gx):
    """gx (zeroed here) += gy at each window's winner (``win``: window offsets on the plan's grid,
    -1 for none)."""
    _winner_scatter(gy, win, gx, *_window_table(plan), *plan.stride, *plan.pad, plan.R, plan.Q)
    return gx


def max_pool_gather(z, win, plan, out):
    """out = z (shaped as the pooling's input) read at each window's winner: the backward's
    adjoint."""
    _winner_gather(z, win, out, *_window_table(plan), *plan.stride, *plan.pad, plan.R, plan.Q)
    return out


def _flat(a):
    return numpy.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def lrn_forward(x, n, k, alpha, beta):
    """(y, unit, scale) of Chainer's local response normalisation of x (N, C, ...)."""
    x3 = _flat(x)
    y, unit, scale = (numpy.empty_like(x3) for _ in range(3))
    dt = x3.dtype.type
    _split(len(x3), 3 * x3[0].nbytes, lambda a, b: _lrn_fwd(
        x3[a:b], y[a:b], unit[a:b], scale[a:b], n // 2, dt(k), dt(alpha), dt(beta), dt(1)))
    return y.reshape(x.shape), unit, scale


def lrn_backward(x, y, gy, unit, scale, n, alpha, beta):
    """gx of the normalisation, from its input, output, upstream gradient and saved unit/scale."""
    x3, y3, gy3 = _flat(x), _flat(y), _flat(gy)
    gx = numpy.empty_like(x3)
    dt = x3.dtype.type
    _split(len(x3), 4 * x3[0].nbytes, lambda a, b: _lrn_bwd(
        x3[a:b], y3[a:b], gy3[a:b], unit[a:b], scale[a:b], n // 2, dt(2 * alpha * beta), gx[a:b]))
    return gx.reshape(x.shape)
