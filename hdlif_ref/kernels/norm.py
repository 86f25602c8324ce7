"""Batch normalization over ``x: [N, C, L]``: fused Numba kernels, one ``prange`` iteration per channel.

Formulas in :mod:`hdlif_ref.kernels.reference.norm` (the plain-NumPy twin). Sums
run in float64 for both dtypes (two passes: mean, then squared deviations, so the
variance does not suffer from cancellation); ``y`` and ``gx`` are written in
``x``'s dtype. Each iteration owns one channel, so results do not depend on the
thread count. Launched by :func:`._threads.run`: one thread for small tensors, else
channels handed out dynamically.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ._backend import dispatch
from ._config import njit_parallel
from ._threads import run
from .reference import norm as _reference


@njit_parallel
def _bn_train_fwd(x, weight, bias, eps, y, mean, var):
    """Batch statistics per channel, then ``y = weight * (x - mean) / sqrt(var + eps) + bias``."""
    n, channels, length = x.shape
    count = n * length
    for c in numba.prange(channels):
        total = 0.0
        for k in range(n):
            for t in range(length):
                total += x[k, c, t]
        mu = total / count
        squares = 0.0
        for k in range(n):
            for t in range(length):
                d = x[k, c, t] - mu
                squares += d * d
        v = squares / count
        mean[c] = mu
        var[c] = v
        scale = weight[c] / math.sqrt(v + eps)
        shift = bias[c] - mu * scale
        for k in range(n):
            for t in range(length):
                y[k, c, t] = x[k, c, t] * scale + shift


@njit_parallel
def _bn_train_bwd(g, x, mean, invstd, weight, need_x, gx, gw, gb):
    """``gb = sum g``, ``gw = sum g xhat``, ``gx = weight invstd (g - gb/M - xhat gw/M)``."""
    n, channels, length = x.shape
    count = n * length
    for c in numba.prange(channels):
        mu = mean[c]
        inv = invstd[c]
        sum_g = 0.0
        sum_gx = 0.0
        for k in range(n):
            for t in range(length):
                sum_g += g[k, c, t]
                sum_gx += g[k, c, t] * ((x[k, c, t] - mu) * inv)
        gb[c] = sum_g
        gw[c] = sum_gx
        if need_x:
            scale = weight[c] * inv
            mg = sum_g / count
            mgx = sum_gx / count
            for k in range(n):
                for t in range(length):
                    xhat = (x[k, c, t] - mu) * inv
                    gx[k, c, t] = scale * (g[k, c, t] - mg - xhat * mgx)


@njit_parallel
def _scale_shift(x, scale, shift, y):
    """``y[n, c, t] = x[n, c, t] * scale[c] + shift[c]`` (eval forward; eval backward with shift 0)."""
    n, channels, length = x.shape
    for c in numba.prange(channels):
        a = scale[c]
        b = shift[c]
        for k in range(n):
            for t in range(length):
                y[k, c, t] = x[k, c, t] * a + b


@njit_parallel
def _bn_eval_sums(g, x, mean, invstd, gw, gb):
    """``gb = sum g``, ``gw = sum g * (x - mean) * invstd`` per channel."""
    n, channels, length = x.shape
    for c in numba.prange(channels):
        mu = mean[c]
        inv = invstd[c]
        sum_g = 0.0
        sum_gx = 0.0
        for k in range(n):
            for t in range(length):
                sum_g += g[k, c, t]
                sum_gx += g[k, c, t] * ((x[k, c, t] - mu) * inv)
        gb[c] = sum_g
        gw[c] = sum_gx


def _affine(weight, bias, channels):
    w = np.ones(channels) if weight is None else weight.astype(np.float64)
    b = np.zeros(channels) if bias is None else bias.astype(np.float64)
    return w, b


def _batch_norm_train_forward_numba(x, weight, bias, eps):
    channels = x.shape[1]
    w, b = _affine(weight, bias, channels)
    y = np.empty_like(x)
    mean = np.zeros(channels)
    var = np.zeros(channels)
    if x.size:
        run(_bn_train_fwd, x.size, channels, x, w, b, float(eps), y, mean, var)
    return y, mean, var


def _batch_norm_train_backward_numba(grad_out, x, mean, invstd, weight, need_x, need_weight, need_bias):
    channels = x.shape[1]
    w, _ = _affine(weight, None, channels)
    gx = np.empty_like(x) if need_x else np.empty((0, 0, 0), dtype=x.dtype)
    gw = np.zeros(channels)
    gb = np.zeros(channels)
    if x.size:
        run(_bn_train_bwd, x.size, channels, grad_out, x, mean, invstd, w, need_x, gx, gw, gb)
    return (gx if need_x else None, gw.astype(x.dtype) if need_weight else None,
            gb.astype(x.dtype) if need_bias else None)


def _batch_norm_eval_forward_numba(x, mean, invstd, weight, bias):
    w, b = _affine(weight, bias, x.shape[1])
    scale = w * invstd
    y = np.empty_like(x)
    if x.size:
        run(_scale_shift, x.size, x.shape[1], x, scale, b - mean * scale, y)
    return y


def _batch_norm_eval_backward_numba(grad_out, x, mean, invstd, weight, need_x, need_weight, need_bias):
    channels = x.shape[1]
    w, _ = _affine(weight, None, channels)
    gx = None
    if need_x:
        gx = np.empty_like(x)
        if x.size:
            run(_scale_shift, x.size, channels, grad_out, w * invstd, np.zeros(channels), gx)
    gw = np.zeros(channels)
    gb = np.zeros(channels)
    if (need_weight or need_bias) and x.size:
        run(_bn_eval_sums, x.size, channels, grad_out, x, mean, invstd, gw, gb)
    return gx, gw.astype(x.dtype) if need_weight else None, gb.astype(x.dtype) if need_bias else None


batch_norm_train_forward = dispatch(_batch_norm_train_forward_numba, _reference.batch_norm_train_forward)
batch_norm_train_backward = dispatch(_batch_norm_train_backward_numba, _reference.batch_norm_train_backward)
batch_norm_eval_forward = dispatch(_batch_norm_eval_forward_numba, _reference.batch_norm_eval_forward)
batch_norm_eval_backward = dispatch(_batch_norm_eval_backward_numba, _reference.batch_norm_eval_backward)
