"""Freed memory kept mapped for the next step (glibc's malloc), instead of returned to the system.

Why: a training step allocates and frees arrays of tens of megabytes (convolution outputs, the
normalisation's three, gradients). glibc serves each from fresh ``mmap`` pages and unmaps it when
freed, so every step pays a page fault and the zeroing of every page again (14-21 % of a
B-AlexNet step), and faults do not run side by side on the kernels' threads. With mmap off and
trimming off, the next step's arrays reuse the heap blocks the last one freed (docs/fast_cpu.md,
"Freed memory").

Process-wide, and only ever switched on: ``keep_freed`` runs at the first step on the fast kernels
(``switch.cpu_scope``), unless ``BRANCHYNET_KEEP_MEMORY=0``. The process then holds its peak heap
until it ends. Linux with glibc only; elsewhere ``why_not`` says why nothing changes.
"""
import ctypes
import os
import platform

__all__ = ["keep_freed", "kept", "why_not"]

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_kept = False


def why_not():
    """Why freed memory is not kept in this process, or None."""
    if os.environ.get("BRANCHYNET_KEEP_MEMORY", "1") == "0":
        return "switched off (BRANCHYNET_KEEP_MEMORY=0)"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not Linux with glibc"
    return None


def keep_freed():
    """Switches glibc's malloc to keep freed memory for reuse (once; later calls cost a flag
    check). Returns whether it is kept."""
    global _kept
    if _kept or why_not() is not None:
        return _kept
    libc = ctypes.CDLL(None)
    _kept = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2 ** 31 - 1)))
    return _kept


def kept():
    """Whether this process keeps freed memory (``keep_freed`` has switched it on)."""
    return _kept
