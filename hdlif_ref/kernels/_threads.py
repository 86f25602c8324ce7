"""What Numba's parallel runtime is using, and the thread policy's state (docs/performance.md).

The policy itself is set in :mod:`._config` (``OMP_WAIT_POLICY=PASSIVE`` before
Numba's OpenMP pool starts); :func:`threading_info` reports it, and
:func:`numba_threads` runs a block with a given number of Numba threads.
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
