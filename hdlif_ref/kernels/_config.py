"""Numba settings shared by every kernel (DESIGN.md "Kernel / API split"), and the thread policy.

An oracle must be reproducible, so ``fastmath`` is off everywhere: no reassociation,
no flush-to-zero, the same float sums as the NumPy twins up to the order of
accumulation. ``cache=True`` stores compiled machine code next to the sources, so
only the first run on a machine pays the compile time.

``parallel=True`` is used only where each ``prange`` iteration writes its own
slice of the output (no shared accumulators), which keeps results independent of
the thread count.

Thread policy (docs/performance.md, "Thread policy"): Numba's OpenMP workers and
OpenBLAS's workers share the cores. An OpenMP worker that has finished a parallel
loop spins, by default, for a while before sleeping, without yielding; a BLAS
call that starts meanwhile finds a core taken and runs several times slower (we
measured 3-10x on 2 cores). Importing this module therefore sets
``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP workers sleep at once) unless the user
has set it; it must happen before Numba starts its OpenMP pool, which is the
first parallel kernel call. OpenBLAS keeps its default thread count (this
library never changes NumPy's BLAS threads). :func:`_threads.threading_info`
reports whether the policy took effect.
"""
from __future__ import annotations

import os

import numba

#: Environment the thread policy sets (with ``setdefault``: a user's own value wins).
THREAD_POLICY_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def _openmp_already_loaded() -> bool:
    """True if a GNU OpenMP runtime is already mapped into this process (Linux; False elsewhere).

    Numba's OpenMP pool then uses that copy (the dynamic loader finds a loaded library by its
    soname, ``libgomp.so.1``), which read ``OMP_WAIT_POLICY`` when it loaded: e.g. torch's, when
    torch is imported first (docs/performance.md, "Thread policy").
    """
    try:
        with open("/proc/self/maps") as fh:
            return any("libgomp" in line for line in fh)
    except OSError:
        return False


def _apply_thread_policy() -> bool:
    """Set the policy's environment; return False if it is too late for it to apply: Numba's pool
    already started, or an OpenMP runtime that Numba would share was loaded before this module set
    the variables (a value already in the environment is taken to have been there at start-up)."""
    from numba.np.ufunc import parallel

    preset = all(os.environ.get(name) is not None for name in THREAD_POLICY_ENV)
    for name, value in THREAD_POLICY_ENV.items():
        os.environ.setdefault(name, value)
    return not getattr(parallel, "_is_initialized", False) and (preset or not _openmp_already_loaded())


#: False if Numba's thread pool was running, or an OpenMP runtime was loaded, before this module was imported.
POLICY_IN_TIME = _apply_thread_policy()

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
