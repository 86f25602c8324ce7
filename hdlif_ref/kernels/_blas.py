"""Matrix products inside Numba kernels: SciPy's BLAS ``gemm``, called per thread, single-threaded.

The convolution kernels run one ``prange`` over images; each Numba thread calls
BLAS on its own image (docs/performance.md, "Thread policy"). For that, the BLAS
must not start threads of its own: SciPy's OpenBLAS is set to one thread for the
duration of such a kernel (:func:`blas_threads_for_kernels`) and restored after.
NumPy's BLAS (a separate library in the pip wheels) is not touched.

``sgemm``/``dgemm`` come from ``scipy.linalg.cython_blas`` (the Fortran interface);
they are passed to the kernels as arguments (ctypes function objects), which keeps
the kernels cacheable. :func:`gemm` adapts them to row-major (C-order) operands.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Iterator

import numpy as np
from numba.extending import get_cython_function_address

from ._config import njit
from ._threads import current_threads, numba_threads

_GEMM_TYPE = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))
SGEMM = _GEMM_TYPE(get_cython_function_address("scipy.linalg.cython_blas", "sgemm"))
DGEMM = _GEMM_TYPE(get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))


def gemm_for(dtype: np.dtype):
    """The BLAS ``gemm`` (ctypes function) for float32 or float64 arrays."""
    return SGEMM if np.dtype(dtype) == np.float32 else DGEMM


@njit
def gemm(fn, trans_a, trans_b, a, b, beta, c):
    """``c = op(a) @ op(b) + beta * c`` on row-major 2-D arrays whose rows are contiguous.

    ``op(a) = a.T`` if ``trans_a`` (likewise ``b``); ``c: [m, n]``. BLAS is column-major:
    a row-major ``[r, s]`` array with row stride ``ld`` is its column-major transpose,
    so the call computes ``c^T = op(b)^T @ op(a)^T`` with the operands swapped.
    """
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        for i in range(m):
            for j in range(n):
                c[i, j] = c[i, j] * beta if beta != 0.0 else 0.0
        return
    ints = np.empty(8, dtype=np.int32)
    ints[0] = ord("T") if trans_b else ord("N")
    ints[1] = ord("T") if trans_a else ord("N")
    ints[2] = n
    ints[3] = m
    ints[4] = k
    ints[5] = max(b.strides[0] // b.itemsize, b.shape[1], 1)
    ints[6] = max(a.strides[0] // a.itemsize, a.shape[1], 1)
    ints[7] = max(c.strides[0] // c.itemsize, n, 1)
    scalars = np.empty(2, dtype=c.dtype)
    scalars[0] = 1.0
    scalars[1] = beta
    fn(ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes, ints[3:].ctypes, ints[4:].ctypes,
       scalars[0:].ctypes, b.ctypes, ints[5:].ctypes, a.ctypes, ints[6:].ctypes,
       scalars[1:].ctypes, c.ctypes, ints[7:].ctypes)


# ---------------------------------------------------------------- BLAS thread control
def _find_thread_setters():
    """``(get, set)`` for the OpenBLAS that SciPy's cython_blas calls, or ``None``.

    Found among the shared libraries of this process (Linux ``/proc/self/maps``):
    SciPy's wheels ship ``libscipy_openblas`` (``scipy_openblas_*_num_threads``; NumPy's
    wheel has its own ``...64_`` copy, left alone); a system OpenBLAS shared with NumPy
    exports ``openblas_*_num_threads``.
    """
    import scipy.linalg.cython_blas  # noqa: F401 - make sure SciPy's BLAS is loaded

    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower()})
    except OSError:
        return None
    for prefix in ("scipy_openblas", "openblas"):
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
                get = getattr(lib, f"{prefix}_get_num_threads")
                set_ = getattr(lib, f"{prefix}_set_num_threads")
            except (OSError, AttributeError):
                continue
            get.restype = ctypes.c_int
            set_.argtypes = [ctypes.c_int]
            set_.restype = None
            return get, set_
    return None


_setters = None
_setters_searched = False
_lock = threading.Lock()
_active = 0
_saved = 0


def blas_thread_control() -> bool:
    """True if SciPy's BLAS thread count can be set (then kernels may call it per thread)."""
    global _setters, _setters_searched
    if not _setters_searched:
        _setters = _find_thread_setters()
        _setters_searched = True
    return _setters is not None


@contextlib.contextmanager
def blas_threads_for_kernels() -> Iterator[int]:
    """Run a block of kernels that call :func:`gemm` from inside ``prange``.

    Yields the number of Numba threads the block should use: all of them with SciPy's
    BLAS set to one thread (restored when the last such block in the process ends), or
    one, when the BLAS threads cannot be controlled: then BLAS keeps its own threads
    and Numba runs the loop on the calling thread, so the two never compete. (BLAS
    stays at one thread even when Numba has one: a multi-threaded GEMM may round
    differently, and results must not depend on the thread count.)
    """
    global _active, _saved
    if not blas_thread_control():
        with numba_threads(1) as n:
            yield n
        return
    get, set_ = _setters
    with _lock:
        if _active == 0:
            _saved = get()
            set_(1)
        _active += 1
    try:
        yield current_threads()
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                set_(_saved)
