"""Batch normalization over ``x: [N, C, L]``: fused Numba kernels, one ``prange`` iteration per channel.

Formulas in :mod:`hdlif_ref.kernels.reference.norm` (the plain-NumPy twin). Sums
run in float64 for both dtypes (two passes: mean, then squared deviations, so the
variance does not suffer from cancellation); ``y`` and ``gx`` are written in
``x``'s dtype. Each iteration owns one channel, so results do not depend on the
thread count. Launched by :func:`._threads.run`: one thread for small tensors, else
channels handed out dynamically.

Summation order (:func:`channel_stats`, :func:`channel_grad_sums`): a channel's ``N * L``
values are summed as ``L`` column sums over the batch (``acc[t] += x[k, c, t]``, ``k`` in
order), then the columns in order. The order depends on the shape only, and the column
loop is element-wise over a contiguous row, which LLVM vectorizes without reassociating
anything (``fastmath`` stays off); a single running sum is one latency-bound chain, 3.5-4x
slower on the networks' shapes (docs/performance.md, "Batch norm and pooling").
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ._backend import dispatch
from ._config import njit, njit_parallel
from ._threads import run
from .reference import norm as _reference


@njit
def channel_stats(x, c):
    """``(mean, biased variance)`` of channel ``c`` of ``x: [N, C, L]`` in float64 (module doc: the order)."""
    n, _, length = x.shape
    count = n * length
    acc = np.zeros(length)
    for k in range(n):
        row = x[k, c]
        for t in range(length):
            acc[t] += row[t]
    total = 0.0
    for t in range(length):
        total += acc[t]
    mu = total / count
    acc[:] = 0.0
    for k in range(n):
        row = x[k, c]
        for t in range(length):
            d = row[t] - mu
            acc[t] += d * d
    squares = 0.0
    for t in range(length):
        squares += acc[t]
    return mu, squares / count


@njit
def channel_grad_sums(g, x, c, mu, inv):
    """``(sum g, sum g * (x - mu) * inv)`` over channel ``c`` in float64, in :func:`channel_stats`' order."""
    n, _, length = x.shape
    acc_g = np.zeros(length)
    acc_gx = np.zeros(length)
    for k in range(n):
        g_row, x_row = g[k, c], x[k, c]
        for t in range(length):
            acc_g[t] += g_row[t]
            acc_gx[t] += g_row[t] * ((x_row[t] - mu) * inv)
    sum_g = 0.0
    sum_gx = 0.0
    for t in range(length):
        sum_g += acc_g[t]
        sum_gx += acc_gx[t]
    return sum_g, sum_gx


@njit
def _normalize_channel(x, c, weight, bias, eps, y):
    """Channel ``c`` of ``x: [N, C, L]``: its batch statistics, then ``y = weight * (x - mean) / sqrt(var +
    eps) + bias`` there; returns ``(mean, var)``."""
    n, _, length = x.shape
    mu, v = channel_stats(x, c)
    scale = weight[c] / math.sqrt(v + eps)
    shift = bias[c] - mu * scale
    for k in range(n):
        x_row, y_row = x[k, c], y[k, c]
        for t in range(length):
            y_row[t] = x_row[t] * scale + shift
    return mu, v


@njit
def _channel_grads(g, x, c, mu, inv, weight, need_x, gx):
    """Channel ``c``'s ``(sum g, sum g xhat)`` and, if ``need_x``, its input gradient into ``gx``."""
    n, _, length = x.shape
    count = n * length
    sum_g, sum_gx = channel_grad_sums(g, x, c, mu, inv)
    if need_x:
        scale = weight[c] * inv
        mg = sum_g / count
        mgx = sum_gx / count
        for k in range(n):
            g_row, x_row, gx_row = g[k, c], x[k, c], gx[k, c]
            for t in range(length):
                xhat = (x_row[t] - mu) * inv
                gx_row[t] = scale * (g_row[t] - mg - xhat * mgx)
    return sum_g, sum_gx


@njit_parallel
def _bn_train_fwd(x, weight, bias, eps, y, mean, var):
    """Batch statistics per channel, then ``y = weight * (x - mean) / sqrt(var + eps) + bias``."""
    for c in numba.prange(x.shape[1]):
        mean[c], var[c] = _normalize_channel(x, c, weight, bias, eps, y)


@njit_parallel
def _bn_train_bwd(g, x, mean, invstd, weight, need_x, gx, gw, gb):
    """``gb = sum g``, ``gw = sum g xhat``, ``gx = weight invstd (g - gb/M - xhat gw/M)``."""
    for c in numba.prange(x.shape[1]):
        gb[c], gw[c] = _channel_grads(g, x, c, mean[c], invstd[c], weight, need_x, gx)


@njit_parallel
def _bn_train_fwd_steps(x, weight, bias, eps, y, mean, var):
    """:func:`_bn_train_fwd` on every step ``x[t]`` of ``x: [T, N, C, L]`` in one launch, one item per
    ``(t, c)``: statistics ``mean, var: [T, C]`` per step and channel (the per-step batch norm of
    SPEC E16's DC), the same operations in the same order as ``T`` calls of the one-step kernel."""
    channels = x.shape[2]
    for item in numba.prange(x.shape[0] * channels):
        t, c = item // channels, item % channels
        mean[t, c], var[t, c] = _normalize_channel(x[t], c, weight, bias, eps, y[t])


@njit_parallel
def _bn_train_bwd_steps(g, x, mean, invstd, weight, need_x, gx, gw, gb):
    """:func:`_bn_train_bwd` on every step of ``[T, N, C, L]`` in one launch; ``gw, gb: [T, C]`` per step."""
    channels = x.shape[2]
    for item in numba.prange(x.shape[0] * channels):
        t, c = item // channels, item % channels
        gb[t, c], gw[t, c] = _channel_grads(g[t], x[t], c, mean[t, c], invstd[t, c], weight, need_x, gx[t])


@njit_parallel
def _scale_shift(x, scale, shift, y):
    """``y[n, c, t] = x[n, c, t] * scale[c] + shift[c]`` (eval forward; eval backward with shift 0)."""
    n, channels, length = x.shape
    for c in numba.prange(channels):
        a = scale[c]
        b = shift[c]
        for k in range(n):
            x_row, y_row = x[k, c], y[k, c]
            for t in range(length):
                y_row[t] = x_row[t] * a + b


@njit_parallel
def _bn_eval_sums(g, x, mean, invstd, gw, gb):
    """``gb = sum g``, ``gw = sum g * (x - mean) * invstd`` per channel."""
    for c in numba.prange(x.shape[1]):
        gb[c], gw[c] = channel_grad_sums(g, x, c, mean[c], invstd[c])


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


def _batch_norm_steps_train_forward_numba(x, weight, bias, eps):
    steps, channels = x.shape[0], x.shape[2]
    w, b = _affine(weight, bias, channels)
    y = np.empty_like(x)
    mean = np.zeros((steps, channels))
    var = np.zeros((steps, channels))
    if x.size:
        run(_bn_train_fwd_steps, x.size, steps * channels, x, w, b, float(eps), y, mean, var)
    return y, mean, var


def _batch_norm_steps_train_backward_numba(grad_out, x, mean, invstd, weight, need_x):
    steps, channels = x.shape[0], x.shape[2]
    w, _ = _affine(weight, None, channels)
    gx = np.empty_like(x) if need_x else np.empty((steps, 0, 0, 0), dtype=x.dtype)  # gx[t]: an empty step
    gw = np.zeros((steps, channels))
    gb = np.zeros((steps, channels))
    if x.size:
        run(_bn_train_bwd_steps, x.size, steps * channels, grad_out, x, mean, invstd, w, need_x, gx, gw, gb)
    return gx if need_x else None, gw, gb


batch_norm_train_forward = dispatch(_batch_norm_train_forward_numba, _reference.batch_norm_train_forward)
batch_norm_train_backward = dispatch(_batch_norm_train_backward_numba, _reference.batch_norm_train_backward)
batch_norm_eval_forward = dispatch(_batch_norm_eval_forward_numba, _reference.batch_norm_eval_forward)
batch_norm_eval_backward = dispatch(_batch_norm_eval_backward_numba, _reference.batch_norm_eval_backward)
#: ``(y, mean, var) = batch_norm_steps_train_forward(x, weight, bias, eps)``: ``x: [T, N, C, L]``, each step
#: normalized with its own batch statistics (``mean, var: [T, C]`` float64), as ``T`` calls of
#: :data:`batch_norm_train_forward`.
batch_norm_steps_train_forward = dispatch(_batch_norm_steps_train_forward_numba,
                                          _reference.batch_norm_steps_train_forward)
#: ``(gx, gw, gb) = batch_norm_steps_train_backward(grad_out, x, mean, invstd, weight, need_x)``: the
#: weight and bias gradients of each step, ``[T, C]`` in float64, and ``gx`` or None.
batch_norm_steps_train_backward = dispatch(_batch_norm_steps_train_backward_numba,
                                           _reference.batch_norm_steps_train_backward)
