"""Counting values: non-finite ones (NaN, +-inf), the check every op and layer runs on its input (issue 17),
and non-zero ones (spike counts: firing rates, the frozen model's choice of its event-driven synapse).

``v - v`` is 0 for every finite ``v`` and NaN for NaN and both infinities, so one pass that
counts ``v - v != 0`` finds them all. The count is an integer sum, which LLVM vectorizes
without ``fastmath``; no boolean array is made, where ``np.isfinite(x).all()`` writes one
per value: 2-3x faster on the networks' activations (docs/performance.md). A strided input
is copied once into a flat array (``ravel(order="K")``: no copy for C- or F-ordered ones).
The plain-NumPy twin is :func:`.reference.finite.count_nonfinite`.

``count_nonzero`` is NumPy's ``np.count_nonzero`` (NaN counts, ``-0`` does not), one vectorized integer sum
like the count above: NumPy's own takes 160 us on the frozen digits network's ``[4, 64, 16, 8, 8]`` spikes,
this one about 10 times less (docs/performance.md, "Issue 21: what holds ...", fifth round). Twin:
:func:`.reference.finite.count_nonzero`.
"""
from __future__ import annotations

import numpy as np

from ._backend import dispatch
from ._config import njit
from .reference import finite as _reference


@njit
def _count(flat):
    bad = 0
    for i in range(flat.shape[0]):
        v = flat[i]
        bad += 0 if v - v == 0 else 1
    return bad


def _count_nonfinite_numba(x: np.ndarray) -> int:
    if x.dtype != np.float32 and x.dtype != np.float64:  # e.g. float16: Numba has no kernel for it
        return _reference.count_nonfinite(x)
    return int(_count(x.ravel(order="K")))


#: ``count_nonfinite(x)``: the number of NaN and +-inf values of a float array.
count_nonfinite = dispatch(_count_nonfinite_numba, _reference.count_nonfinite)


@njit
def _count_nonzero(flat):
    count = 0
    for i in range(flat.shape[0]):
        count += 1 if flat[i] != 0 else 0
    return count


def _count_nonzero_numba(x: np.ndarray) -> int:
    if x.dtype != np.float32 and x.dtype != np.float64:
        return _reference.count_nonzero(x)
    return int(_count_nonzero(x.ravel(order="K")))


#: ``count_nonzero(x)``: the number of values of a float array that are not zero (NaN counts, ``-0`` does not).
count_nonzero = dispatch(_count_nonzero_numba, _reference.count_nonzero)
