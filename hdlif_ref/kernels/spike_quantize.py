"""Multi-bit spike quantizer kernels (SPEC E13): forward and LSQ-style backward.

    Q(x; s, n) = s * clip(round(x / s), 0, qmax),   qmax = 2^n - 1,  round half to even

Backward (LSQ-style, DC of the spec), with ``v = x / s``: inside ``0 <= v <= qmax``
``dQ/dx = 1`` and ``dQ/ds = round(v) - v``; above (``v > qmax``) ``dQ/dx = 0`` and
``dQ/ds = qmax``; below (``v < 0``) both are 0.

Layout: any contiguous array, flattened; ``step`` and ``qmax`` are scalars of the
data's dtype. Work items are blocks of ``BLOCK`` elements, each writing its own
partial sum of ``dL/ds``.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._backend import dispatch
from ._blocking import BLOCK, lane_sum, launch, n_blocks
from ._config import njit_parallel
from .reference import spike_quantize as _ref


@njit_parallel
def _quantize_fwd(x, step, qmax, block, out):
    E = x.shape[0]
    zero = x.dtype.type(0)
    for item in prange((E + block - 1) // block):
        x_seg = x[item * block:min(E, (item + 1) * block)]
        out_seg = out[item * block:min(E, (item + 1) * block)]
        for j in range(x_seg.shape[0]):
            q = np.rint(x_seg[j] / step)
            out_seg[j] = step * min(max(q, zero), qmax)


@njit_parallel
def _quantize_bwd(g, x, step, qmax, block, gx, gstep_part):
    E = x.shape[0]
    zero = x.dtype.type(0)
    for item in prange((E + block - 1) // block):
        a, b = item * block, min(E, (item + 1) * block)
        g_seg, x_seg, gx_seg = g[a:b], x[a:b], gx[a:b]
        d_step = np.empty(b - a, dtype=x.dtype)
        for j in range(b - a):
            v = x_seg[j] / step
            inside = v >= zero and v <= qmax
            gx_seg[j] = g_seg[j] if inside else zero
            if inside:
                d_step[j] = g_seg[j] * (np.rint(v) - v)
            else:
                d_step[j] = g_seg[j] * qmax if v > qmax else zero
        gstep_part[item] = lane_sum(d_step, 0, b - a)


def _forward_numba(x, step, qmax):
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    launch(_quantize_fwd, flat.size, flat, step, qmax, BLOCK, out)
    return out.reshape(x.shape)


def _backward_numba(g, x, step, qmax):
    flat, g_flat = x.reshape(-1), g.reshape(-1)
    gx = np.empty_like(flat)
    part = np.zeros(n_blocks(flat.shape[0]), dtype=x.dtype)
    launch(_quantize_bwd, flat.size, g_flat, flat, step, qmax, BLOCK, gx, part)
    return gx.reshape(x.shape), x.dtype.type(part.sum())


#: ``q = spike_quantize_forward(x, step, qmax)`` (SPEC E13).
spike_quantize_forward = dispatch(_forward_numba, _ref.spike_quantize_forward)
#: ``(gx, gstep) = spike_quantize_backward(g, x, step, qmax)`` (SPEC E13, LSQ-style DC).
spike_quantize_backward = dispatch(_backward_numba, _ref.spike_quantize_backward)
