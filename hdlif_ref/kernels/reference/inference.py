"""NumPy twin of :mod:`hdlif_ref.kernels.inference` (the frozen model's element-wise passes);
same signatures, same in-place contract."""
from __future__ import annotations

import numpy as np

from . import neurons


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


def hdlif_levels(I, u0, lam, theta, step, qmax, out=None):
    """``(levels, u_last)``: the HD-LIF forward's spikes (E1, E2) as their E13 levels, the final state (into ``out``)."""
    s, u_last, _ = neurons.hdlif_forward(I, u0, lam, theta)
    return neurons.into(out, (spike_levels_(s, step, qmax), u_last))


def conv_levels(x, codes, divisor, stride, padding, scale, bias, out=None):
    """Integer synapse (SPEC E12/E11 codes on E13 spike levels), one output per step and channel:

    ``acc[t, n, o, p, q] = sum_{c, i, j} codes[o, c, i, j] * level[t, n, c, p*sh - ph + i, q*sw - pw + j]``
    in exact integers, ``level = x * divisor`` (``x`` holds ``level / divisor``, ``divisor`` a power of
    two), then ``y = (acc * (1 / divisor)) * scale[t, o] + bias[t, o]``: the product rounded to
    ``x``'s dtype, then the sum (the frozen model's float path, :func:`scale_shift_`, rounds the
    same way). ``x: [T, N, C, H, W]``, ``codes: [O, C, kh, kw]`` integers, ``scale``, ``bias``:
    ``[C]``, ``[1, C]`` or ``[T, C]``. Returns ``y: [T, N, O, Ho, Wo]`` of ``x``'s dtype (``out``, if given).
    """
    T, N, C, H, W = x.shape
    O, _, kh, kw = codes.shape
    (sh, sw), (ph, pw) = stride, padding
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    levels = np.rint(x.reshape(T * N, C, H, W) * divisor).astype(np.int64)
    padded = np.zeros((T * N, C, H + 2 * ph, W + 2 * pw), dtype=np.int64)
    padded[:, :, ph:ph + H, pw:pw + W] = levels
    acc = np.zeros((T * N, O, Ho, Wo), dtype=np.int64)
    w = codes.astype(np.int64)
    for i in range(kh):
        for j in range(kw):
            window = padded[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
            acc += np.einsum("bchw,oc->bohw", window, w[:, :, i, j])
    y = acc.astype(x.dtype) * x.dtype.type(1.0 / divisor)
    y = y.reshape(T, N, O, Ho * Wo)
    y = scale_shift_(y, scale, bias).reshape(T, N, O, Ho, Wo)
    if out is None:
        return y
    out[...] = y
    return out
