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
* :func:`current_threads`, :class:`chunksize`, :class:`numba_threads`: what the kernels' wrappers
  use to read and set Numba's thread count and chunk size at every call, through the C entry
  points behind Numba's public functions (which take two locks per call; see below).
* What a parallel loop costs to start depends on what the idle workers do
  (:func:`idle_workers_spin`). Asleep (``OMP_WAIT_POLICY=PASSIVE``, this package's default),
  a worker is woken through the kernel, and on this virtual machine its idle core with it:
  a 16 -> 32 channel 8x8 convolution (0.45 ms) ran no faster on two threads than on one. Busy-
  waiting for a while before sleeping (libgomp's default, 300 000 spins, a few milliseconds: e.g.
  in a process that loaded torch first; or ``GOMP_SPINCOUNT`` / ``OMP_WAIT_POLICY=ACTIVE`` set by
  the user), the same convolution ran 1.6x faster on two.
  So the sizes below which a kernel keeps one thread are :data:`PARALLEL_MIN_ELEMENTS_ASLEEP`
  / ``conv.PARALLEL_MIN_MACS_ASLEEP`` with sleeping workers and the smaller
  :data:`PARALLEL_MIN_ELEMENTS_SPINNING` / ``conv.PARALLEL_MIN_MACS_SPINNING`` with spinning
  ones (docs/performance.md, "Threads on a busy machine").
* The OpenMP wait policy is set in :mod:`._config` (``OMP_WAIT_POLICY=PASSIVE`` before
  Numba's OpenMP pool starts); :func:`threading_info` reports it.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numba
import numpy as np

from ._config import POLICY_IN_TIME, THREAD_POLICY_ENV, WAIT_POLICY_BEFORE, njit_parallel

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


def idle_workers_spin(gomp_spincount: str | None, policy_before: str | None, policy_in_time: bool) -> bool:
    """Whether Numba's idle OpenMP workers busy-wait after a parallel loop rather than sleep.

    ``gomp_spincount``: ``GOMP_SPINCOUNT`` (libgomp's spin count: it decides if set, 0 = sleep);
    ``policy_before``: ``OMP_WAIT_POLICY`` before this package set its default; ``policy_in_time``:
    whether the OpenMP runtime read the environment after that default was set. A runtime that
    read it before (one loaded by torch, say) saw ``policy_before``; unset means libgomp's
    default, which spins for a while (300 000 spins) before it sleeps. Another threading layer
    (TBB) or OpenMP runtime (``KMP_BLOCKTIME``) is not read: only a size threshold depends on it.
    """
    spins = _spin_count(gomp_spincount)
    if spins is not None:
        return spins > 0
    seen = THREAD_POLICY_ENV["OMP_WAIT_POLICY"] if policy_in_time and policy_before is None else policy_before
    return str(seen).strip().upper() != "PASSIVE"


def _spin_count(value: str | None) -> float | None:
    """``GOMP_SPINCOUNT`` as libgomp reads it: ``INFINITE``/``INFINITY``, or an integer with an optional
    ``k``/``M``/``G``/``T`` factor; ``None`` for unset or unreadable (libgomp then ignores it)."""
    text = (value or "").strip().lower()
    if text in ("infinite", "infinity"):
        return float("inf")
    factors = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
    number, factor = (text[:-1], factors[text[-1]]) if text and text[-1] in factors else (text, 1.0)
    return float(int(number)) * factor if number.isdigit() else None


#: Whether this process's idle workers spin (:func:`idle_workers_spin`); it sets the sizes below.
WORKERS_SPIN = idle_workers_spin(os.environ.get("GOMP_SPINCOUNT"), WAIT_POLICY_BEFORE, POLICY_IN_TIME)
#: Below this many elements a kernel launched by :func:`run` uses one thread, with sleeping workers
#: (measured on a busy machine, see the module doc) ...
PARALLEL_MIN_ELEMENTS_ASLEEP = 1 << 20
#: ... and with spinning workers (measured on a quiet one: 2^16-element kernels gain on two threads).
PARALLEL_MIN_ELEMENTS_SPINNING = 1 << 16
#: The size in force in this process.
PARALLEL_MIN_ELEMENTS = PARALLEL_MIN_ELEMENTS_SPINNING if WORKERS_SPIN else PARALLEL_MIN_ELEMENTS_ASLEEP
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
    calls = _calls or _bind()
    threads = calls.get()
    if threads == 1:
        kernel(*args)
        return
    if elements < PARALLEL_MIN_ELEMENTS:
        calls.set(1)
        try:
            kernel(*args)
        finally:
            calls.set(threads)
        return
    previous = calls.chunk(max(1, items // (CHUNKS_PER_THREAD * threads)))
    try:
        kernel(*args)
    finally:
        calls.chunk(previous)


# ----------------------------------------------------------------------------- Numba's settings, per call
# Numba's public ``get_num_threads``, ``set_num_threads`` and ``parallel_chunksize`` take two locks
# (its pool's start-up guard) at every call: 1.1, 1.8 and 5.2 us here, against 0.16, 0.45 and 0.84
# us for the C entry points behind them; a W1 training step made about 140 such calls at batch 1
# (docs/performance.md, "5. Python per op"). Once the pool has started, those entry points are what
# the public functions call after the guard, with the same per-thread effect.


class _NumbaCalls:
    """Numba's C entry points: ``get()`` the calling thread's count, ``set(n)`` it (1 <= n <= the pool's
    size: the callers pass 1 or a count read back from ``get``), ``chunk(n)`` the parallel chunk size,
    returning the previous one (what ``numba.parallel_chunksize`` does on entry and on exit)."""

    __slots__ = ("get", "set", "chunk")

    def __init__(self, get, set_, chunk):
        self.get, self.set, self.chunk = get, set_, chunk


_calls: _NumbaCalls | None = None


def _bind() -> _NumbaCalls:
    """Start Numba's pool (its public call does it once) and bind its C entry points; the public
    functions themselves if this Numba has no such attributes (another version)."""
    global _calls
    numba.get_num_threads()
    from numba.np.ufunc import parallel
    entry = [getattr(parallel, name, None) for name in
             ("_get_num_threads", "_set_num_threads", "_set_parallel_chunksize")]
    _calls = (_NumbaCalls(*entry) if all(callable(f) for f in entry) else
              _NumbaCalls(numba.get_num_threads, numba.set_num_threads, numba.set_parallel_chunksize))
    return _calls


def current_threads() -> int:
    """:func:`get_num_threads` without Numba's per-call locks (for the kernels' wrappers)."""
    return (_calls or _bind()).get()


class chunksize:
    """``with chunksize(n):`` Numba's ``parallel_chunksize(n)`` without its per-call locks."""

    __slots__ = ("n", "previous")

    def __init__(self, n: int):
        self.n = n

    def __enter__(self) -> None:
        self.previous = (_calls or _bind()).chunk(self.n)

    def __exit__(self, *exc) -> None:
        _calls.chunk(self.previous)


class numba_threads:
    """``with numba_threads(n) as n:`` a block with ``n`` Numba threads (clipped to 1 .. the pool's
    size), restoring the count after.

    Numba's thread count is per calling thread, so this does not affect other threads.
    """

    __slots__ = ("n", "previous")

    def __init__(self, n: int):
        self.n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))

    def __enter__(self) -> int:
        calls = _calls or _bind()
        self.previous = calls.get()
        calls.set(self.n)
        return self.n

    def __exit__(self, *exc) -> None:
        _calls.set(self.previous)
