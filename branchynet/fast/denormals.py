"""Subnormal floats flushed to zero on the CPU (the x86-64 MXCSR's FTZ and DAZ bits).

As a network converges, its most confident samples give gradients below float32's smallest normal
number (1.2e-38); x86 CPUs compute with such subnormal values many times slower than with normal
ones, so training steps slow down as training goes on (docs/fast_cpu.md#subnormal-floats). With
FTZ (results flushed to zero) and DAZ (inputs read as zero) the arithmetic runs at full speed and
only values below 1.2e-38 change, to zero: what GPUs do by default and PyTorch's
``set_flush_denormal`` does. The mode is a per-thread register: ``flushed`` sets it for a block of
code on the calling thread, and the fast kernels' worker threads take the caller's mode for the
work it hands them (``threads.run``). Needs Numba on x86-64; elsewhere nothing changes.
"""
import contextlib
import platform

from branchynet.fast import jit

FTZ_DAZ = 0x8040  # MXCSR bit 15 (flush to zero) and bit 6 (denormals are zero)

_update = None  # the compiled MXCSR update, made at the first use


def _reason():
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "not an x86-64 CPU (%s)" % platform.machine()
    if jit.numba is None:
        return "Numba is not importable (%s)" % jit.why_not()
    return None


_WHY_NOT = _reason()


def why_not():
    """Why the mode cannot be set here (None where it can)."""
    return _WHY_NOT


def _compiled():
    """``update(clear, set) -> old``: MXCSR := (MXCSR & ~clear) | set, compiled once."""
    global _update
    if _update is None:
        import numba
        from llvmlite import ir
        from numba.core import cgutils
        from numba.extending import intrinsic

        @intrinsic
        def mxcsr_update(typingctx, clear, bits):
            def codegen(context, builder, signature, args):
                word = cgutils.alloca_once(builder, ir.IntType(32))
                pointer = builder.bitcast(word, ir.IntType(8).as_pointer())
                fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
                store = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr")
                load = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
                builder.call(store, [pointer])
                old = builder.load(word)
                builder.store(builder.or_(builder.and_(old, builder.not_(args[0])), args[1]), word)
                builder.call(load, [pointer])
                return old
            return numba.types.int32(numba.types.int32, numba.types.int32), codegen

        @numba.njit
        def update(clear, bits):
            return mxcsr_update(clear, bits)
        _update = update
    return _update


def mode():
    """The calling thread's FTZ and DAZ bits (0: subnormals computed as such)."""
    if _WHY_NOT is not None:
        return 0
    return int(_compiled()(0, 0)) & FTZ_DAZ


def set_mode(bits):
    """Sets the calling thread's FTZ and DAZ bits to ``bits`` (0 or ``FTZ_DAZ``); returns the
    previous ones. A no-op returning 0 where the mode cannot be set."""
    if _WHY_NOT is not None:
        return 0
    return int(_compiled()(FTZ_DAZ, bits & FTZ_DAZ)) & FTZ_DAZ


@contextlib.contextmanager
def flushed(on=True):
    """Subnormals flushed to zero on the calling thread inside the block (``on``), restored after."""
    previous = set_mode(FTZ_DAZ if on else 0)
    try:
        yield
    finally:
        set_mode(previous)
