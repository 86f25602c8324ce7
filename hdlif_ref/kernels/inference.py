"""Element-wise passes of the frozen model (:mod:`hdlif_ref.deploy.frozen`), in place and fused.

* ``scale_shift_(y, scale, bias)``: a synapse's output times its folded per-channel scale plus
  its folded bias (ternary ``a_c``, batch norm, Mem-BN; docs/deploy.md), in one pass instead
  of NumPy's two, on both cores;
* ``spike_levels_(s, step, qmax)``: the integer spike level ``clip(round(s / step), 0, qmax)``
  of SPEC E13 (``round`` half to even), in one pass instead of three.

Both give the twin's (:mod:`.reference.inference`) results bit for bit: the same operations
in the same order per element (``fastmath`` is off, so ``y * a + b`` is not contracted into a
fused multiply-add). Each ``prange`` iteration writes its own rows or block. The public
functions check their arguments, on both backends, before the dispatched kernel runs.
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
    """``y: [T, N, C, L]`` in place; ``scale: [Ts, C]``, ``bias: [Tb, C]``, ``Ts`` and ``Tb`` 1 or ``T``."""
    T, N, C = y.shape[0], y.shape[1], y.shape[2]
    scale_per_step, bias_per_step = scale.shape[0] > 1, bias.shape[0] > 1
    for row in prange(T * N * C):
        t, c = row // (N * C), row % C
        a = scale[t if scale_per_step else 0, c]
        b = bias[t if bias_per_step else 0, c]
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


def _scale_shift_numba(y, scale, bias):
    T, N, C = y.shape[:3]
    s = np.ascontiguousarray(np.reshape(scale, (-1, C)), dtype=y.dtype)
    b = np.ascontiguousarray(np.reshape(bias, (-1, C)), dtype=y.dtype)
    if y.size:
        launch(_scale_shift, y.size, y.reshape(T, N, C, -1), s, b)
    return y


def _spike_levels_numba(s, step, qmax):
    flat = s.reshape(-1)
    if flat.size:
        launch(_spike_levels, flat.size, flat, s.dtype.type(step), s.dtype.type(qmax), BLOCK)
    return s


_scale_shift_kernel = dispatch(_scale_shift_numba, _ref.scale_shift_)
_spike_levels_kernel = dispatch(_spike_levels_numba, _ref.spike_levels_)


def _check_in_place(name, a):
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 ndarray (updated in place), got "
                        f"{type(a).__name__} {getattr(a, 'dtype', '')}")
    if not (a.flags.c_contiguous and a.flags.writeable):
        raise ValueError(f"{name} must be a writeable C-contiguous array (updated in place); this one "
                         f"of shape {a.shape} is {'not contiguous' if not a.flags.c_contiguous else 'read-only'}")


def scale_shift_(y, scale, bias):
    """In place ``y[t, n, c, ...] = y[t, n, c, ...] * scale[t, c] + bias[t, c]``; returns ``y``.

    ``y: [T, N, C, ...]`` float32/float64, C-contiguous, writeable; ``scale`` and ``bias`` each
    ``[C]``, ``[1, C]`` (every step) or ``[T, C]`` (per step), cast to ``y``'s dtype first (as
    the frozen model casts its weights). The product is rounded, then the sum: the same result
    bit for bit on both backends (docs/deploy.md).
    """
    _check_in_place("y", y)
    if y.ndim < 3:
        raise ValueError(f"y must be [T, N, C, ...], got shape {y.shape}")
    T, C = y.shape[0], y.shape[2]
    for name, p in (("scale", scale), ("bias", bias)):
        if np.shape(p) not in ((C,), (1, C), (T, C)):
            raise ValueError(f"{name} must be [C], [1, C] or [T, C] with T={T}, C={C} (y is {y.shape}); "
                             f"got {np.shape(p)}")
    return _scale_shift_kernel(y, scale, bias)


def spike_levels_(s, step, qmax):
    """In place ``s = clip(round(s / step), 0, qmax)`` (SPEC E13's integer level, half to even); returns ``s``.

    ``s`` float32/float64, C-contiguous, writeable; ``step > 0`` and ``qmax`` are cast to ``s``'s dtype.
    """
    _check_in_place("s", s)
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step!r}")
    return _spike_levels_kernel(s, step, qmax)
