"""The stride-1 "full-row" layout the CPU convolution kernels share, and the geometry of a
convolution.

Why: a stride-1 convolution computed at the padded row pitch turns every im2col row into one
contiguous shifted run of the padded input (the left padding of row r + 1 doubles as the right
padding of row r), so copies and the micro-kernel read long runs instead of ``OW``-element pieces;
the few extra output columns are left unused and ``output`` views past them. Other strides use the
plain im2col layout.
"""
import threading
import weakref

import numpy
from numpy.lib.stride_tricks import as_strided

__all__ = ["pair", "out_size", "view", "Geom", "geom", "padded_buffer", "filled", "in_filled", "padded",
           "strided_flat", "flat_samples", "col_view", "fill_col", "output"]


def pair(v):
    if isinstance(v, (tuple, list)):
        a, b = v
        return int(a), int(b)
    v = int(v)
    return v, v


def out_size(size, k, s, p):
    out = (size + 2 * p - k) // s + 1
    if out <= 0:
        raise ValueError("convolution output size would be %d (input %d, kernel %d, stride %d, "
                         "pad %d)" % (out, size, k, s, p))
    return out


def view(buf, offset, shape, strides):
    """A strided view of the flat array ``buf`` (offset and strides in elements)."""
    it = buf.itemsize
    return numpy.ndarray(shape, buf.dtype, buf, offset * it, tuple(s * it for s in strides))


class Geom:
    """Sizes of one convolution; ``rows`` selects the stride-1 full-row layout."""

    __slots__ = ("N", "C", "H", "W", "O", "kh", "kw", "sy", "sx", "ph", "pw", "OH", "OW",
                 "rows", "Hp", "Wq", "plane", "L", "K")

    def __init__(self, x_shape, w_shape, stride, pad):
        self.N, self.C, self.H, self.W = x_shape
        self.O, _, self.kh, self.kw = w_shape
        self.sy, self.sx = stride
        self.ph, self.pw = pad
        self.OH = out_size(self.H, self.kh, self.sy, self.ph)
        self.OW = out_size(self.W, self.kw, self.sx, self.pw)
        self.K = self.C * self.kh * self.kw
        self.rows = self.sy == 1 and self.sx == 1
        self.Hp = self.H + 2 * self.ph
        if self.rows:
            # Row pitch W + pw: the left padding of row r+1 doubles as the right padding of row r
            # (wider only when pw >= kw, so that a row still holds OW outputs).
            self.Wq = max(self.W + self.pw, self.W + 2 * self.pw - self.kw + 1)
            self.L = self.OH * self.Wq  # columns per sample, the last Wq - OW of each row unused
        else:
            self.Wq = self.W + 2 * self.pw
            self.L = self.OH * self.OW
        self.plane = self.Hp * self.Wq


_geoms = {}


def geom(x_shape, w_shape, stride, pad):
    """The Geom of these sizes, built once: at batch 1 building it costs as much as the GEMM."""
    key = (x_shape, w_shape, stride, pad)
    g = _geoms.get(key)
    if g is None:
        if len(_geoms) >= 256:
            _geoms.clear()
        g = _geoms[key] = Geom(x_shape, w_shape, stride, pad)
    return g


def padded_buffer(n, g, dtype, tail=0):
    """A flat zero buffer for n samples laid out as g describes (planes of Hp x Wq, and a zero tail
    that the last windows read, ``tail`` elements longer), with the (n, C, H, W) view of where the
    data goes."""
    n_el = n * g.C * g.plane
    buf = numpy.zeros(n_el + g.kw + tail, dtype=dtype)
    interior = buf[:n_el].reshape(n, g.C, g.Hp, g.Wq)[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W]
    return buf, interior


# Data address -> (layout, samples, spare floats past them) of each live buffer ``filled`` made
# (forgotten when the buffer is freed), so that ``padded`` takes a view into one as it is.
_filled = {}


def _layout_key(g, dtype):
    return (g.C, g.H, g.W, g.Hp, g.Wq, g.ph, g.pw, numpy.dtype(dtype).str)


def filled(n, g, dtype, tail=0):
    """A flat buffer for n samples laid out as g describes, for a producer that writes every
    element of every plane, padding included (a pooling writing what a convolution reads), and
    the (n, C, H, W) view of where the data goes; the tail (``tail`` floats past ``padded``'s) is
    zero. ``padded`` given this view, or a slice of its samples, reads the buffer in place."""
    n_el = n * g.C * g.plane
    buf = numpy.empty(n_el + g.kw + tail, dtype=dtype)
    buf[n_el:] = 0
    interior = buf[:n_el].reshape(n, g.C, g.Hp, g.Wq)[:, :, g.ph:g.ph + g.H, g.pw:g.pw + g.W]
    address = buf.ctypes.data
    _filled[address] = (_layout_key(g, dtype), n, g.kw + tail)
    weakref.finalize(buf, _filled.pop, address, None)
    return buf, interior


def in_filled(x, g, tail):
    """The flat buffer from x's first sample on when x is samples of a ``filled`` buffer's view
    with g's layout and a tail as long, else None."""
    base = x.base
    if base is None or base.ndim != 1 or x.ndim != 4:
        return None
    entry = _filled.get(base.ctypes.data)
    if entry is None:
        return None
    key, n, spare = entry
    it, sample = x.itemsize, g.C * g.plane
    if (key != _layout_key(g, x.dtype) or g.kw + tail > spare
            or x.strides[1:] != (g.plane * it, g.Wq * it, it)
            or (len(x) > 1 and x.strides[0] != sample * it)):
        return None
    start = (x.ctypes.data - base.ctypes.data) // it - (g.ph * g.Wq + g.pw)
    if start < 0 or start % sample or start // sample + len(x) > n:
        return None
    return base[start:]


_scratch = threading.local()
_SCRATCH_LAYOUTS = 16  # padded buffers kept per thread


def padded(x, g, tail=0):
    """x (any number of samples) copied into a zero buffer laid out as g describes; returned flat.
    The buffer is this thread's for the layout, kept for its next call (only the interior is ever
    written, so the padding stays zero): it saves zeroing and faulting in fresh pages each call,
    and it is valid until this thread pads another input of the same layout. x that is samples
    of a ``filled`` buffer with this layout is read where it is."""
    inner = in_filled(x, g, tail)
    if inner is not None:
        return inner
    kept = getattr(_scratch, "buffers", None)
    if kept is None:
        kept = _scratch.buffers = {}
    key = (len(x), g.C, g.H, g.W, g.Hp, g.Wq, g.ph, g.pw, g.kw, tail, x.dtype.str)
    if key not in kept:
        if len(kept) >= _SCRATCH_LAYOUTS:
            kept.clear()
        kept[key] = padded_buffer(len(x), g, x.dtype, tail)
    buf, interior = kept[key]
    interior[...] = x
    return buf


def strided_flat(x):
    """(flat, steps) for an (N, C, H, W) array whose rows are contiguous and whose strides are
    whole elements, not negative: a flat view from x's first element to its last and the element
    strides of its samples, channels and rows; else None."""
    it = x.itemsize
    if not (x.size and (x.strides[3] == it or x.shape[3] == 1)
            and all(s >= 0 and s % it == 0 for s in x.strides[:3])):
        return None
    steps = tuple(s // it for s in x.strides[:3])
    extent = sum((n - 1) * s for n, s in zip(x.shape[:3], steps)) + x.shape[3]
    return as_strided(x, shape=(extent,), strides=(it,)), steps


def flat_samples(x):
    """``strided_flat`` of x, or where it has none, of a C-contiguous copy: what compiled kernels
    read x from in place."""
    found = strided_flat(x)
    if found is not None:
        return found
    x = numpy.ascontiguousarray(x)
    return x.reshape(-1), tuple(s // x.itemsize for s in x.strides[:3])


def col_view(xbuf, g, n0, m):
    """The im2col matrix of samples n0..n0+m as a strided view of the padded buffer: (C, kh, kw,
    m, L) for the full-row layout, (C, kh, kw, m, OH, OW) otherwise; reshaped to (K, m * L)."""
    C, kh, kw = g.C, g.kh, g.kw
    if g.rows:
        return view(xbuf, n0 * C * g.plane, (C, kh, kw, m, g.L),
                    (g.plane, g.Wq, 1, C * g.plane, 1))
    return view(xbuf, n0 * C * g.plane, (C, kh, kw, m, g.OH, g.OW),
                (g.plane, g.Wq, 1, C * g.plane, g.Wq * g.sy, g.sx))


def fill_col(col, xbuf, g, n0, m):
    """Write the im2col matrix of samples n0..n0+m into col, shape (K, m * L) (rows may be a
    view into a larger buffer)."""
    src = col_view(xbuf, g, n0, m)
    numpy.copyto(col.reshape(src.shape), src)


def output(ypad, g):
    """y (N, O, OH, OW) as a view of the GEMM's output, which the full-row layout computes at the
    padded row pitch Wq: the unused columns are left in place, not copied out."""
    if g.rows:
        return ypad.reshape(-1, g.O, g.OH, g.Wq)[:, :, :, :g.OW]
    return ypad.reshape(-1, g.O, g.OH, g.OW)
