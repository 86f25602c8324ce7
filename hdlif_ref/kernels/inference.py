"""Element-wise passes of the frozen model (:mod:`hdlif_ref.deploy.frozen`), in place and fused.

* ``scale_shift_(y, scale, bias)``: a synapse's output times its folded per-channel scale plus
  its folded bias (ternary ``a_c``, batch norm, Mem-BN; docs/deploy.md), in one pass instead
  of NumPy's two, on both cores;
* ``spike_levels_(s, step, qmax)``: the integer spike level ``clip(round(s / step), 0, qmax)``
  of SPEC E13 (``round`` half to even), in one pass instead of three.

Both give the twin's (:mod:`.reference.inference`) results bit for bit: the same operations
in the same order per element (``fastmath`` is off, so ``y * a + b`` is not contracted into a
fused multiply-add). Each ``prange`` iteration writes its own rows or block.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._backend import dispatch
from ._blocking import BLOCK, launch
from ._config import njit_parallel
from .reference import inference as _ref


@njit_parallel
def _scale_shift(y, scale, bias):
    """``y: [T, N, C, L]`` in place; ``scale``, ``bias``: ``[Ts, C]``, ``Ts`` 1 or ``T``."""
    T, N, C = y.shape[0], y.shape[1], y.shape[2]
    per_step = scale.shape[0] > 1
    for row in prange(T * N * C):
        t, c = row // (N * C), row % C
        ts = t if per_step else 0
        a, b = scale[ts, c], bias[ts, c]
        r = y[t, (row // C) % N, c]
        for k in range(r.shape[0]):
            r[k] = r[k] * a + b


@njit_parallel
def _spike_levels(s, step, qmax, block):
    E = s.shape[0]
    zero = s.dtype.type(0)
    for item in prange((E + block - 1) // block):
        seg = s[item * block:min(E, (item + 1) * block)]
        for j in range(seg.shape[0]):
            seg[j] = min(max(np.rint(seg[j] / step), zero), qmax)


def _check_contiguous(name, a):
    if not (isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.writeable
            and a.dtype in (np.float32, np.float64)):
        raise ValueError(f"{name} must be a writeable C-contiguous float32/float64 array (updated "
                         f"in place), got {type(a).__name__} "
                         f"{getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}")


def _scale_shift_numba(y, scale, bias):
    _check_contiguous("y", y)
    if y.ndim < 3:
        raise ValueError(f"y must be [T, N, C, ...], got shape {y.shape}")
    T, N, C = y.shape[:3]
    allowed = ((C,), (1, C), (T, C))
    if np.shape(scale) not in allowed or np.shape(bias) != np.shape(scale):
        raise ValueError(f"scale and bias must be [C] or [T, C] with T={T}, C={C}; "
                         f"got {np.shape(scale)} and {np.shape(bias)}")
    s = np.ascontiguousarray(np.asarray(scale, dtype=y.dtype).reshape(-1, C))
    b = np.ascontiguousarray(np.asarray(bias, dtype=y.dtype).reshape(-1, C))
    if y.size:
        launch(_scale_shift, y.size, y.reshape(T, N, C, -1), s, b)
    return y


def _spike_levels_numba(s, step, qmax):
    _check_contiguous("s", s)
    flat = s.reshape(-1)
    if flat.size:
        launch(_spike_levels, flat.size, flat, s.dtype.type(step), s.dtype.type(qmax), BLOCK)
    return s


#: In place ``y = y * scale + bias`` per step and channel; returns ``y`` (docs/deploy.md).
scale_shift_ = dispatch(_scale_shift_numba, _ref.scale_shift_)
#: In place ``s = clip(round(s / step), 0, qmax)`` (SPEC E13); returns ``s``.
spike_levels_ = dispatch(_spike_levels_numba, _ref.spike_levels_)
