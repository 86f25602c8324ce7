"""SECA's 1-D convolution across channels (SPEC E14), Numba kernels.

``out[n, c] = sum_k weight[k] * z[n, c + k - P]``, ``P = K // 2``, zero padding, no bias.
The arrays are small (``[N, C]`` with ``K`` of 3-9), so the kernels are serial: a
thread pool would cost more than the loop. Sums run in float64. The plain-NumPy
twin is :mod:`hdlif_ref.kernels.reference.channel_conv`.
"""
from __future__ import annotations

import numpy as np

from ._backend import dispatch
from ._config import njit
from .reference import channel_conv as _reference


@njit
def _conv1d_channels_fwd(z, weight, out):
    n, channels = z.shape
    k_size = weight.shape[0]
    p = k_size // 2
    for b in range(n):
        for c in range(channels):
            total = 0.0
            for k in range(max(0, p - c), min(k_size, channels + p - c)):
                total += weight[k] * z[b, c + k - p]
            out[b, c] = total


@njit
def _conv1d_channels_bwd(g, z, weight, need_z, gz, gw):
    n, channels = z.shape
    k_size = weight.shape[0]
    p = k_size // 2
    for k in range(k_size):
        total = 0.0
        for b in range(n):
            for c in range(max(0, p - k), min(channels, channels + p - k)):
                total += g[b, c] * z[b, c + k - p]
        gw[k] = total
    if need_z:
        for b in range(n):
            for c in range(channels):
                # out[b, c'] used z[b, c] with weight[k] where c = c' + k - p
                total = 0.0
                for k in range(max(0, c + p - channels + 1), min(k_size, c + p + 1)):
                    total += weight[k] * g[b, c - k + p]
                gz[b, c] = total


def _conv1d_channels_forward_numba(z, weight):
    out = np.empty_like(z)
    if z.size:
        _conv1d_channels_fwd(z, weight, out)
    return out


def _conv1d_channels_backward_numba(grad_out, z, weight, need_z, need_weight):
    gz = np.empty_like(z) if need_z else np.empty((0, 0), dtype=z.dtype)
    gw = np.zeros(weight.shape[0])
    if z.size:
        _conv1d_channels_bwd(grad_out, z, weight, need_z, gz, gw)
    elif need_z:
        gz[...] = 0.0
    return (gz if need_z else None), (gw.astype(z.dtype) if need_weight else None)


conv1d_channels_forward = dispatch(_conv1d_channels_forward_numba, _reference.conv1d_channels_forward)
conv1d_channels_backward = dispatch(_conv1d_channels_backward_numba, _reference.conv1d_channels_backward)
