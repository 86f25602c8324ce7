"""NumPy twin of :mod:`hdlif_ref.kernels.inference` (the frozen model's element-wise passes);
same signatures, same in-place contract."""
from __future__ import annotations

import numpy as np


def scale_shift_(y, scale, bias):
    """In place ``y[t, n, c, ...] = y[t, n, c, ...] * scale[t, c] + bias[t, c]``; returns ``y``.

    ``y: [T, N, C, ...]``; ``scale``, ``bias``: each ``[C]``, ``[1, C]`` (every step) or ``[T, C]`` (per step).
    The product is rounded, then the sum (two roundings, no fused multiply-add).
    """
    shape = (-1, 1, y.shape[2]) + (1,) * (y.ndim - 3)  # [C] and [1, C] broadcast over the steps
    y *= np.asarray(scale, dtype=y.dtype).reshape(shape)
    y += np.asarray(bias, dtype=y.dtype).reshape(shape)
    return y


def spike_levels_(s, step, qmax):
    """In place ``s = clip(round(s / step), 0, qmax)`` (SPEC E13's integer level, half to even); returns ``s``."""
    np.divide(s, s.dtype.type(step), out=s)
    np.rint(s, out=s)
    np.clip(s, 0, qmax, out=s)
    return s
