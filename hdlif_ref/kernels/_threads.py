"""Threads: the ``threads`` setting, when a kernel uses them, and the thread policy's state.

* :func:`set_num_threads` / :func:`get_num_threads` / :func:`num_threads` (a context
  manager): how many threads the kernels called from this Python thread may use
  (Numba's count, which is per calling thread; at most the pool's size,
  ``NUMBA_NUM_THREADS``).
* :func:`run`: how a short kernel is launched (docs/performance.md, "Threads on a busy
  machine"). A parallel loop is a fork and a join: the join waits for the slowest thread,
  and on a machine whose other cores are busy a woken thread may wait for a time slice
  before it even starts. Measured (2 cores shared with other sessions): element-wise,
  batch-norm and pooling kernels of up to 2^20 elements ran 1.0-2.0x *slower* on two
  threads than on one, and a static split of larger ones waited on a preempted thread.
  So a kernel below :data:`PARALLEL_MIN_ELEMENTS` runs on one thread, and a larger one
  hands out its iterations dynamically, :data:`CHUNKS_PER_THREAD` chunks per thread, so
  that a slowed thread simply takes fewer. Results never depend on this: every kernel's
  iterations write disjoint outputs.
* The OpenMP wait policy is set in :mod:`._config` (``OMP_WAIT_POLICY=PASSIVE`` before
  Numba's OpenMP pool starts); :func:`threading_info` reports it.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numba
import numpy as np

from ._config import POLICY_IN_TIME, THREAD_POLICY_ENV, njit_parallel

#: OMP_WAIT_POLICY as it was when this module was imported (before any parallel kernel ran,
#: when imported through the kernels): what Numba's OpenMP pool will read when it starts.
_WAIT_POLICY_AT_IMPORT = os.environ.get("OMP_WAIT_POLICY")


@njit_parallel
def _touch_threads(x):
    # A trivial prange loop: Numba picks its threading layer on the first parallel call.
    for i in numba.prange(x.shape[0]):
        x[i] = i


def threading_info() -> dict:
    """Numba's threading after starting its pool, and the thread policy.

    ``{"threading_layer": name, "num_threads": n, "omp_wait_policy": value,
    "policy_applied": bool}``: ``policy_applied`` is False when the user set another
    ``OMP_WAIT_POLICY`` (their choice wins) or Numba's OpenMP pool started before
    this package was imported; with another threading layer (TBB, workqueue) the
    wait policy does not apply and it is True.
    """
    _touch_threads(np.zeros(4))
    layer = numba.threading_layer()
    wait = os.environ.get("OMP_WAIT_POLICY")
    applied = layer != "omp" or (POLICY_IN_TIME and str(_WAIT_POLICY_AT_IMPORT).upper()
                                 == THREAD_POLICY_ENV["OMP_WAIT_POLICY"])
    return {"threading_layer": layer, "num_threads": numba.get_num_threads(),
            "omp_wait_policy": wait, "policy_applied": applied}


#: Below this many elements a kernel launched by :func:`run` uses one thread (measured, see the module doc).
PARALLEL_MIN_ELEMENTS = 1 << 20
#: Dynamic schedule of a parallel kernel: about this many chunks of iterations per thread.
CHUNKS_PER_THREAD = 8


def _check_count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"threads={n!r} must be an int in [1, {numba.config.NUMBA_NUM_THREADS}] "
                         f"(the thread pool's size, NUMBA_NUM_THREADS)")
    return int(n)


def set_num_threads(n: int) -> None:
    """Let the kernels called from this Python thread use ``n`` threads (1 .. ``NUMBA_NUM_THREADS``).

    Numba's setting, which is per calling thread: a data-loading thread keeps its own. Results
    do not depend on it (every kernel is bit-identical on any number of threads).
    """
    numba.set_num_threads(_check_count(n))


def get_num_threads() -> int:
    """How many threads the kernels called from this Python thread may use."""
    return numba.get_num_threads()


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[int]:
    """Run a block with :func:`set_num_threads` ``(n)``, restoring the previous count after."""
    previous = numba.get_num_threads()
    set_num_threads(n)
    try:
        yield int(n)
    finally:
        numba.set_num_threads(previous)


def run(kernel, elements: int, items: int, *args) -> None:
    """Call a ``prange`` kernel of ``items`` iterations over ``elements`` elements (module doc):
    on one thread below :data:`PARALLEL_MIN_ELEMENTS`, else with a dynamic schedule."""
    threads = numba.get_num_threads()
    if threads == 1:
        kernel(*args)
        return
    if elements < PARALLEL_MIN_ELEMENTS:
        numba.set_num_threads(1)
        try:
            kernel(*args)
        finally:
            numba.set_num_threads(threads)
        return
    with numba.parallel_chunksize(max(1, items // (CHUNKS_PER_THREAD * threads))):
        kernel(*args)


@contextlib.contextmanager
def numba_threads(n: int) -> Iterator[int]:
    """Run a block with ``n`` Numba threads (at most the pool size), restoring the count after.

    Numba's thread count is per calling thread, so this does not affect other threads.
    """
    previous = numba.get_num_threads()
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)
