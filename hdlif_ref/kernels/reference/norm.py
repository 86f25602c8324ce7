"""Plain-NumPy twin of :mod:`hdlif_ref.kernels.norm`: batch normalization over ``[N, C, L]``.

``x: [N, C, L]`` (``L = H*W`` for images, 1 for ``[N, C]``); statistics are per channel
over the ``M = N * L`` values of that channel.

Training:  ``mean_c = sum x / M``, ``var_c = sum (x - mean_c)^2 / M`` (biased),
``xhat = (x - mean_c) / sqrt(var_c + eps)``, ``y = weight_c * xhat + bias_c``.
Evaluation: the same with given statistics (the running ones) in place of the batch's.
``weight``/``bias`` ``None`` mean 1 and 0 (no affine). Per-channel statistics are
float64 arrays ``[C]`` (the backward takes ``invstd = 1 / sqrt(var + eps)``); ``y`` has
``x``'s dtype.
"""
from __future__ import annotations

import numpy as np


def batch_norm_train_forward(x, weight, bias, eps):
    """``(y, mean, var)``: the output and the batch's per-channel mean and biased variance (float64)."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(0, 2))
    var = ((x64 - mean[None, :, None]) ** 2).mean(axis=(0, 2))
    invstd = 1.0 / np.sqrt(var + eps)
    y = (x64 - mean[None, :, None]) * invstd[None, :, None]
    if weight is not None:
        y = y * weight[None, :, None]
    if bias is not None:
        y = y + bias[None, :, None]
    return y.astype(x.dtype), mean, var


def batch_norm_train_backward(grad_out, x, mean, invstd, weight, need_x, need_weight, need_bias):
    """Gradients through the batch statistics (the standard fused form):

    ``gb = sum g``, ``gw = sum g * xhat``,
    ``gx = weight * invstd * (g - gb / M - xhat * gw / M)``. Returns ``(gx, gw, gb)``.
    """
    gx, gw, gb = _train_backward64(grad_out, x, mean, invstd, weight, need_x)
    return (gx, gw.astype(x.dtype) if need_weight else None, gb.astype(x.dtype) if need_bias else None)


def _train_backward64(grad_out, x, mean, invstd, weight, need_x):
    """:func:`batch_norm_train_backward` with ``gw`` and ``gb`` left in float64."""
    m = x.shape[0] * x.shape[2]
    g = grad_out.astype(np.float64)
    xhat = (x.astype(np.float64) - mean[None, :, None]) * invstd[None, :, None]
    gb = g.sum(axis=(0, 2))
    gw = (g * xhat).sum(axis=(0, 2))
    gx = None
    if need_x:
        scale = invstd if weight is None else weight.astype(np.float64) * invstd
        gx = (scale[None, :, None] * (g - gb[None, :, None] / m - xhat * gw[None, :, None] / m)).astype(x.dtype)
    return gx, gw, gb


def batch_norm_eval_forward(x, mean, invstd, weight, bias):
    """``y = weight * (x - mean) * invstd + bias`` with fixed per-channel ``mean``, ``invstd`` (float64)."""
    scale = invstd if weight is None else weight.astype(np.float64) * invstd
    shift = -mean * scale + (0.0 if bias is None else bias.astype(np.float64))
    return (x.astype(np.float64) * scale[None, :, None] + shift[None, :, None]).astype(x.dtype)


def batch_norm_eval_backward(grad_out, x, mean, invstd, weight, need_x, need_weight, need_bias):
    """With fixed statistics: ``gx = weight * invstd * g``, ``gw = sum g * xhat``, ``gb = sum g``."""
    g = grad_out.astype(np.float64)
    gx = gw = gb = None
    if need_x:
        scale = invstd if weight is None else weight.astype(np.float64) * invstd
        gx = (g * scale[None, :, None]).astype(x.dtype)
    if need_weight:
        xhat = (x.astype(np.float64) - mean[None, :, None]) * invstd[None, :, None]
        gw = (g * xhat).sum(axis=(0, 2)).astype(x.dtype)
    if need_bias:
        gb = g.sum(axis=(0, 2)).astype(x.dtype)
    return gx, gw, gb


def batch_norm_steps_train_forward(x, weight, bias, eps):
    """``x: [T, N, C, L]``: :func:`batch_norm_train_forward` on each step; ``(y, mean [T, C], var [T, C])``."""
    steps = [batch_norm_train_forward(x[t], weight, bias, eps) for t in range(x.shape[0])]
    if not steps:
        return np.empty_like(x), np.zeros((0, x.shape[2])), np.zeros((0, x.shape[2]))
    return (np.stack([s[0] for s in steps]), np.stack([s[1] for s in steps]), np.stack([s[2] for s in steps]))


def batch_norm_steps_train_backward(grad_out, x, mean, invstd, weight, need_x):
    """:func:`batch_norm_train_backward` on each step: ``(gx or None, gw [T, C], gb [T, C])``, the sums in float64."""
    T, C = x.shape[0], x.shape[2]
    gx = np.empty_like(x) if need_x else None
    gw, gb = np.zeros((T, C)), np.zeros((T, C))
    for t in range(T):
        gx_t, gw[t], gb[t] = _train_backward64(grad_out[t], x[t], mean[t], invstd[t], weight, need_x)
        if need_x:
            gx[t] = gx_t
    return gx, gw, gb
