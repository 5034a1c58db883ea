"""The compiled (Numba) inference kernels (branchynet.fast.jit) against the numpy kernels they
stand in for, and the inference programs with them on against the same programs with them off."""
import numpy as np
import pytest

import chainer

import branchynet  # noqa: F401  (compatibility shims before chainer)
import networks
from branchynet.fast import batch, compiler, jit, layout
from branchynet.fast import conv as fconv
from branchynet.fast import pooling as fpool

numba = pytest.importorskip("numba", reason="Numba is not installed: the numpy kernels run alone")


@pytest.fixture
def jit_on():
    previous = jit.set_enabled(True)
    yield
    jit.set_enabled(previous)


@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("C,H,W,n_out,kh,kw,pad", [
    (1, 28, 28, 5, 5, 5, (3, 3)), (5, 15, 15, 10, 3, 3, (1, 1)), (5, 15, 15, 10, 5, 5, (3, 3)),
    (3, 7, 9, 4, 3, 2, (0, 1)), (2, 6, 5, 3, 1, 1, (0, 0)), (4, 5, 8, 2, 2, 3, (2, 0))])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_direct_equals_numpy(jit_on, n, C, H, W, n_out, kh, kw, pad, bias):
    rng = np.random.RandomState(C * 100 + n_out)
    x = rng.randn(n, C, H, W).astype(np.float32)
    Wt = rng.randn(n_out, C, kh, kw).astype(np.float32)
    b = rng.randn(n_out).astype(np.float32) if bias else None
    ref = fconv.conv2d_numpy(x, Wt, b, 1, pad)
    g = layout.Geom(x.shape, Wt.shape, (1, 1), pad)
    out = np.full((n, n_out, g.L), np.nan, np.float32)
    jit.conv_direct(layout.padded(x, g), Wt, b, out, g)
    got = layout.output(out, g)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # the batch function the compiler runs (split over threads) gives the same
    np.testing.assert_allclose(batch.conv_direct(x, Wt, b, pad), ref, rtol=1e-5, atol=1e-5)


def _strided(a):
    """a as a view with non-unit strides: the interior of a larger buffer."""
    buf = np.full(a.shape[:2] + (a.shape[2] + 3, a.shape[3] + 5), 7.0, a.dtype)
    view = buf[:, :, 1:1 + a.shape[2], 2:2 + a.shape[3]]
    view[...] = a
    return view


@pytest.mark.parametrize("shape,ksize,stride,pad,cover_all", [
    ((1, 5, 30, 30), 2, 2, 0, True), ((1, 10, 15, 15), 2, 2, 0, True),
    ((2, 3, 9, 11), 3, 2, 1, True), ((2, 3, 9, 11), 3, 2, 1, False), ((1, 2, 8, 8), 3, 3, 0, True),
    ((3, 2, 7, 6), 2, 1, 1, False), ((1, 4, 5, 5), (2, 3), (1, 2), (1, 0), True)])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("arrays", ["contiguous", "strided"])
def test_max_pool_equals_numpy_exactly(jit_on, shape, ksize, stride, pad, cover_all, relu, arrays):
    rng = np.random.RandomState(sum(shape))
    x = rng.randn(*shape).astype(np.float32)
    x.flat[::7] = np.nan  # NaN propagates as through numpy.maximum
    x.flat[3::11] = -np.inf
    ref = fpool.max_pool_numpy(x, ksize, stride, pad, cover_all)
    if relu:
        ref = np.maximum(ref, 0)
    src = x if arrays == "contiguous" else _strided(x)
    out = np.empty(ref.shape, np.float32)
    dst = out if arrays == "contiguous" else _strided(out)
    jit.max_pool(src, dst, layout.pair(ksize), layout.pair(stride), layout.pair(pad), relu)
    np.testing.assert_array_equal(np.asarray(dst), ref)


def _lenet(seed=0):
    np.random.seed(seed)
    net = networks.build("b-lenet")
    rng = np.random.RandomState(seed)
    for link in net.links():
        if getattr(link, "b", None) is not None:
            link.b.array[...] = 0.1 * rng.randn(*link.b.shape)
    return net


def _programs(net, x, batch):
    segments = [s.layers for s in net.segments]
    heads = [h.layers for h in net.heads]
    if batch:
        return ([compiler.BatchProgram(s) for s in segments],
                [compiler.BatchProgram(h) for h in heads])
    return compiler.chain(segments, heads, x.shape, x.dtype)


def _outputs(net, x, batch):
    segs, heads = _programs(net, x, batch)
    outs, h = [], x
    for seg, head in zip(segs, heads):
        h = seg(h)
        outs.append(np.array(head(h)))
    return outs


@pytest.mark.parametrize("batch,n", [(False, 1), (True, 1), (True, 3), (True, 6), (True, 40)])
def test_programs_with_and_without_jit_agree(batch, n):
    """B-LeNet's programs (whose small convolutions and poolings take the compiled kernels, by
    batch size) give the numpy programs' outputs, and both give stock Chainer's."""
    net = _lenet()
    x = np.random.RandomState(1).rand(n, 1, 28, 28).astype(np.float32)
    previous = jit.set_enabled(True)
    try:
        with_jit = _outputs(net, x, batch)
        jit.set_enabled(False)
        without = _outputs(net, x, batch)
    finally:
        jit.set_enabled(previous)
    with chainer.using_config("train", False), chainer.no_backprop_mode(), \
            chainer.using_config("branchynet_fast_cpu", False):
        stock = [y.array for y in net.forward(x)]
    for a, b, s in zip(with_jit, without, stock):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(a, s, rtol=1e-4, atol=1e-5)


def test_lenet_batch1_program_uses_the_compiled_kernels(jit_on, monkeypatch):
    """With Numba the batch-1 programs of B-LeNet run its three small convolutions and all its
    poolings through the compiled kernels (and the large last convolution through im2col + GEMM)."""
    calls = {"conv": 0, "pool": 0}
    real_conv, real_pool = jit.conv_direct, jit.max_pool

    def conv(*a, **k):
        calls["conv"] += 1
        return real_conv(*a, **k)

    def pool(*a, **k):
        calls["pool"] += 1
        return real_pool(*a, **k)
    monkeypatch.setattr(jit, "conv_direct", conv)
    monkeypatch.setattr(jit, "max_pool", pool)
    net = _lenet()
    x = np.random.RandomState(2).rand(1, 1, 28, 28).astype(np.float32)
    _outputs(net, x, batch=False)
    assert calls == {"conv": 3, "pool": 5}


def test_switched_off_means_numpy_only(monkeypatch):
    previous = jit.set_enabled(False)
    try:
        assert not jit.available() and jit.why_not()
        monkeypatch.setattr(jit, "conv_direct", None)  # would fail if called
        monkeypatch.setattr(jit, "max_pool", None)
        net = _lenet()
        for batch, n in ((False, 1), (True, 4)):
            x = np.random.RandomState(3).rand(n, 1, 28, 28).astype(np.float32)
            _outputs(net, x, batch)
    finally:
        jit.set_enabled(previous)


@pytest.mark.parametrize("n_in,n_out", [(640, 10), (720, 84), (84, 10), (3, 1)])
def test_linear_equals_numpy(jit_on, n_in, n_out):
    rng = np.random.RandomState(n_in + n_out)
    x = rng.randn(1, n_in).astype(np.float32)
    W = rng.randn(n_out, n_in).astype(np.float32)
    b = rng.randn(n_out).astype(np.float32)
    out = np.empty((1, n_out), np.float32)
    jit.linear(x, W, b, out)
    np.testing.assert_allclose(out, x @ W.T + b, rtol=1e-5, atol=1e-5)
    x[0, 0] = np.nan
    jit.linear(x, W, b, out)
    assert np.isnan(out).all()


def test_entropy_one_equals_the_python_formula_and_decides_alike(jit_on):
    from branchynet.model import exit_rule
    rng = np.random.RandomState(5)
    rows = [rng.randn(1, 10).astype(np.float32) * s for s in (0.1, 1, 5, 30)]
    rows += [np.array([[50, 0, 0, 0]], np.float32), np.array([[1, 1, 1]], np.float64)]
    for row in rows:
        h = jit.entropy_one(row)
        assert h == pytest.approx(exit_rule._entropy_one(row), rel=1e-12, abs=1e-15)
        for T in (h, np.nextafter(h, 0), np.nextafter(h, 10), h + 1e-3, h - 1e-3, 0.025):
            if T <= 0:
                continue
            with_jit = exit_rule.leaves_one(row, T)
            jit.set_enabled(False)
            try:
                assert exit_rule.leaves_one(row, T) == with_jit == bool(exit_rule.leaves(row, T)[0])
            finally:
                jit.set_enabled(True)
    for bad in ([[np.nan, 0, 1]], [[np.inf, 0, 1]], [[-np.inf, 0, 1]]):
        row = np.array(bad, np.float32)
        assert not np.isfinite(jit.entropy_one(row))
        with np.errstate(invalid="ignore"):
            assert exit_rule.leaves_one(row, 10.0) == bool(exit_rule.leaves(row, 10.0)[0])


def test_batched_entropies_and_decisions_against_entropy_one(jit_on):
    """The batched entropies (numpy's vector exp) against the one-row kernel (a scalar exp per
    class): within a few ulp for spreads from 0.01 to 300, float32 and float64 rows, and not
    finite exactly where entropy_one is not; the decisions and unsure rows as the entropies
    say."""
    rng = np.random.RandomState(7)
    for dtype in (np.float32, np.float64):
        rows = np.concatenate([rng.randn(50, 10) * s for s in (0.01, 1, 5, 30, 300)]).astype(dtype)
        rows[3, 2], rows[4, 0], rows[5, 7], rows[6] = np.nan, np.inf, -np.inf, -np.inf
        want = np.array([jit.entropy_one(r) for r in rows])
        T, margin = jit.entropy_decisions(rows[10:11], 1.0, 0.0)[2][0], 0.05  # a row's own
        leave, unsure, got = jit.entropy_decisions(rows, T, margin)
        assert not leave[10] and unsure[10]
        edge = jit.entropy_decisions(rows, T, abs(got[60] - T))[1]  # not further: unsure
        assert edge[60] and edge[10]
        finite = np.isfinite(want)
        np.testing.assert_array_equal(np.isfinite(got), finite)
        assert finite.sum() == len(rows) - 4
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-13, atol=1e-15)
        assert got[finite].max() > 2.0 and got[finite].min() < 1e-6  # both ends were reached
        np.testing.assert_array_equal(leave, want < T)
        np.testing.assert_array_equal(unsure, ~(np.abs(want - T) > margin))
        assert 4 < unsure.sum() < len(rows) // 2
        assert jit.entropy_decisions(rows[finite], -1.0, margin)[1] is None


@pytest.mark.parametrize("name", ["b-lenet", "b-alexnet"])
@pytest.mark.parametrize("jit_state", [True, False])
def test_runner_runs_small_remainders_sample_by_sample(name, jit_state, monkeypatch):
    """A batch's segment and head steps on at most Runner.SAMPLE_MAX samples go through the batch-1
    programs one sample at a time, and give the batch programs' values; larger parts do not."""
    previous = jit.set_enabled(jit_state)
    try:
        np.random.seed(0)
        net = networks.build(name)
        shape = (1, 28, 28) if name == "b-lenet" else (3, 32, 32)
        x = np.random.RandomState(4).rand(5, *shape).astype(np.float32)
        runner = compiler.Runner([s.layers for s in net.segments], [h.layers for h in net.heads])
        segment, head = runner.steps(x)
        bseg = [compiler.BatchProgram(s) for s in runner.segments]  # shared prefixes hoisted
        bhead = [compiler.BatchProgram(h) for h in runner.heads]
        built = []
        real_chain = compiler.chain
        monkeypatch.setattr(compiler, "chain", lambda *a: built.append(a[2]) or real_chain(*a))
        h_all = segment(0, x)
        assert built == []
        for m in (1, 2, 3):
            h, hb = x[:m], x[:m]
            for k in range(net.numexits()):
                h, hb = segment(k, h), bseg[k](hb)
                np.testing.assert_allclose(h, hb, rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(head(k, h), bhead[k](hb), rtol=1e-5, atol=1e-4)
        assert built == [(1,) + shape]  # one batch-1 chain, built for the remainders of 1-2
        np.testing.assert_allclose(h_all, bseg[0](x), rtol=1e-5, atol=1e-5)
    finally:
        jit.set_enabled(previous)


def test_direct_convolution_rule(jit_on):
    """Which convolutions take the direct kernel, by shape and batch size (jit.DIRECT_*)."""
    import chainer.links as L
    lenet1, lenet_head = L.Convolution2D(1, 5, 5, pad=3), L.Convolution2D(5, 10, 3, pad=1)
    lenet3, resnet1 = L.Convolution2D(10, 20, 5, pad=3), L.Convolution2D(3, 16, 3, pad=1)
    strided = L.Convolution2D(1, 5, 5, stride=2)
    ok = jit.direct_conv_applies
    assert ok(lenet1, np.float32, 1) and ok(lenet1, np.float32, 1000)
    assert ok(lenet_head, np.float32, 4) and not ok(lenet_head, np.float32, 5)
    assert not ok(lenet3, np.float32, 1)
    assert ok(resnet1, np.float32, 1) and not ok(resnet1, np.float32, 64)
    assert not ok(strided, np.float32, 1) and not ok(lenet1, np.float64, 1)
