"""Subnormal floats flushed to zero: in a block on the calling thread, and in the fast kernels'
worker threads for the work that thread hands them; restored after."""
import numpy
import pytest

from branchynet.fast import denormals, threads

pytestmark = pytest.mark.skipif(denormals.why_not() is not None, reason=str(denormals.why_not()))

TINY = numpy.float32(1e-39)  # subnormal: float32's smallest normal number is 1.18e-38


def half_of_tiny(*_):
    return float(numpy.multiply(numpy.full(4, TINY), numpy.float32(0.5))[0]), denormals.mode()


def test_flushed_computes_subnormals_as_zero_and_restores():
    assert half_of_tiny()[0] == pytest.approx(5e-40, rel=1e-3)
    with denormals.flushed():
        assert half_of_tiny() == (0.0, denormals.FTZ_DAZ)
        with denormals.flushed(False):
            assert half_of_tiny()[0] > 0
        assert half_of_tiny()[0] == 0.0
    assert half_of_tiny() == (pytest.approx(5e-40, rel=1e-3), 0)


def test_worker_threads_compute_in_the_callers_mode(monkeypatch):
    monkeypatch.setattr(threads, "_threads", 2)
    ranges = [(0, 1), (1, 2)]
    with denormals.flushed():
        assert threads.run(half_of_tiny, ranges) == [(0.0, denormals.FTZ_DAZ)] * 2
    after = threads.run(half_of_tiny, ranges)  # as the caller computes, whatever mode a worker began in
    assert [mode for _, mode in after] == [0, 0] and all(value > 0 for value, _ in after)
