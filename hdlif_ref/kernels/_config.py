"""Numba settings shared by every kernel (DESIGN.md "Kernel / API split").

An oracle must be reproducible, so ``fastmath`` is off everywhere: no reassociation,
no flush-to-zero, the same float sums as the NumPy twins up to the order of
accumulation. ``cache=True`` stores compiled machine code next to the sources, so
only the first run on a machine pays the compile time.

``parallel=True`` is used only where each ``prange`` iteration writes its own
slice of the output (no shared accumulators), which keeps results independent of
the thread count.
"""
from __future__ import annotations

import numba

#: Options for serial kernels.
JIT_OPTIONS = dict(cache=True, fastmath=False, nogil=True, error_model="numpy")

#: Options for kernels whose outer loop is a ``prange`` over disjoint output slices.
PARALLEL_JIT_OPTIONS = dict(JIT_OPTIONS, parallel=True)


def njit(*args, **overrides):
    """``numba.njit`` with the project's settings (``cache=True``, ``fastmath=False``)."""
    options = dict(JIT_OPTIONS, **overrides)
    return numba.njit(*args, **options)


def njit_parallel(*args, **overrides):
    """``numba.njit(parallel=True)`` with the project's settings."""
    options = dict(PARALLEL_JIT_OPTIONS, **overrides)
    return numba.njit(*args, **options)
