"""Plain-NumPy twin of :mod:`hdlif_ref.kernels.channel_conv`: SECA's 1-D convolution across channels.

SPEC E14: ``out[n, c] = sum_k weight[k] * z[n, c + k - P]`` with ``P = K // 2``, ``K`` odd,
zero padding, no bias (cross-correlation, as PyTorch's ``conv1d``). ``z, out: [N, C]``,
``weight: [K]``.
"""
from __future__ import annotations

import numpy as np


def conv1d_channels_forward(z, weight):
    """``out: [N, C]``: the kernel slid along the channel axis of ``z`` padded by ``P`` zeros each side."""
    k_size = weight.shape[0]
    p = k_size // 2
    channels = z.shape[1]
    zpad = np.pad(z, ((0, 0), (p, p)))
    out = np.zeros(z.shape, dtype=np.float64)
    for k in range(k_size):
        out += weight[k] * zpad[:, k:k + channels]
    return out.astype(z.dtype)


def conv1d_channels_backward(grad_out, z, weight, need_z, need_weight):
    """``gz[n, c] = sum_k weight[k] * g[n, c - k + P]``, ``gw[k] = sum_{n, c} g[n, c] * z[n, c + k - P]``."""
    k_size = weight.shape[0]
    p = k_size // 2
    channels = z.shape[1]
    gz = gw = None
    if need_z:
        gzpad = np.zeros((z.shape[0], channels + 2 * p))
        for k in range(k_size):
            gzpad[:, k:k + channels] += weight[k] * grad_out
        gz = gzpad[:, p:p + channels].astype(z.dtype)
    if need_weight:
        zpad = np.pad(z, ((0, 0), (p, p))).astype(np.float64)
        gw = np.array([np.sum(grad_out * zpad[:, k:k + channels]) for k in range(k_size)]).astype(z.dtype)
    return gz, gw
