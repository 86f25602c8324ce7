"""2-D average and max pooling (NCHW): Numba kernels, one ``prange`` iteration per ``(n, c)`` plane.

Window of output ``(p, q)``: padded-input rows ``p*sh .. p*sh + kh - 1``, columns
``q*sw .. q*sw + kw - 1``. Average pooling counts the zero padding in the
average (divisor ``kh * kw``, PyTorch's ``count_include_pad=True``); max pooling
pads with ``-inf`` and records, per output, the flat index ``h * W + w`` of the
first real element equal to the maximum (the first NaN if any), which the
backward uses. Each iteration reads and writes only its own plane; launched by
:func:`._threads.run` (one thread for small tensors, else planes handed out
dynamically). The plain-NumPy twin is :mod:`hdlif_ref.kernels.reference.pool`.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ._backend import dispatch
from ._config import njit_parallel
from ._threads import run
from .reference import pool as _reference


@njit_parallel
def _avg_pool_fwd(x, kh, kw, sh, sw, ph, pw, out):
    """out[t, p, q] = sum of x[t] over the window / (kh * kw)   (x: [N*C, H, W])."""
    height, width = x.shape[1], x.shape[2]
    ho, wo = out.shape[1], out.shape[2]
    scale = 1.0 / (kh * kw)
    for t in numba.prange(x.shape[0]):
        src = x[t]
        for p in range(ho):
            h0 = max(p * sh - ph, 0)
            h1 = min(p * sh - ph + kh, height)
            for q in range(wo):
                w0 = max(q * sw - pw, 0)
                w1 = min(q * sw - pw + kw, width)
                total = 0.0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        total += src[h, w]
                out[t, p, q] = total * scale


@njit_parallel
def _avg_pool_bwd(g, kh, kw, sh, sw, ph, pw, gx):
    """gx[t] = sum over windows of g[t, p, q] / (kh * kw) spread on the window's real elements."""
    height, width = gx.shape[1], gx.shape[2]
    ho, wo = g.shape[1], g.shape[2]
    scale = 1.0 / (kh * kw)
    for t in numba.prange(g.shape[0]):
        dst = gx[t]
        dst[:, :] = 0.0
        for p in range(ho):
            h0 = max(p * sh - ph, 0)
            h1 = min(p * sh - ph + kh, height)
            for q in range(wo):
                w0 = max(q * sw - pw, 0)
                w1 = min(q * sw - pw + kw, width)
                share = g[t, p, q] * scale
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        dst[h, w] += share


@njit_parallel
def _max_pool_fwd(x, kh, kw, sh, sw, ph, pw, out, index):
    """out[t, p, q] = max of x[t] over the window; index[t, p, q] = its flat position h*W + w."""
    height, width = x.shape[1], x.shape[2]
    ho, wo = out.shape[1], out.shape[2]
    for t in numba.prange(x.shape[0]):
        src = x[t]
        for p in range(ho):
            h0 = max(p * sh - ph, 0)
            h1 = min(p * sh - ph + kh, height)
            for q in range(wo):
                w0 = max(q * sw - pw, 0)
                w1 = min(q * sw - pw + kw, width)
                best = src[h0, w0]
                at = h0 * width + w0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        v = src[h, w]
                        if v > best or (math.isnan(v) and not math.isnan(best)):
                            best = v
                            at = h * width + w
                out[t, p, q] = best
                index[t, p, q] = at


@njit_parallel
def _max_pool_bwd(g, index, gx):
    """gx[t].flat[index[t, p, q]] += g[t, p, q]   (gx: [N*C, H*W])."""
    for t in numba.prange(g.shape[0]):
        dst = gx[t]
        dst[:] = 0.0
        for p in range(g.shape[1]):
            for q in range(g.shape[2]):
                dst[index[t, p, q]] += g[t, p, q]


def _out_size(height, width, kh, kw, sh, sw, ph, pw):
    return (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1


def _avg_pool2d_forward_numba(x, kh, kw, sh, sw, ph, pw):
    n, c, height, width = x.shape
    ho, wo = _out_size(height, width, kh, kw, sh, sw, ph, pw)
    out = np.empty((n, c, ho, wo), dtype=x.dtype)
    if out.size:
        run(_avg_pool_fwd, x.size, n * c, x.reshape(n * c, height, width), kh, kw, sh, sw, ph, pw,
            out.reshape(n * c, ho, wo))
    return out


def _avg_pool2d_backward_numba(grad_out, height, width, kh, kw, sh, sw, ph, pw):
    n, c, ho, wo = grad_out.shape
    gx = np.zeros((n, c, height, width), dtype=grad_out.dtype)
    if gx.size:
        run(_avg_pool_bwd, gx.size, n * c, grad_out.reshape(n * c, ho, wo), kh, kw, sh, sw, ph, pw,
            gx.reshape(n * c, height, width))
    return gx


def _max_pool2d_forward_numba(x, kh, kw, sh, sw, ph, pw):
    n, c, height, width = x.shape
    ho, wo = _out_size(height, width, kh, kw, sh, sw, ph, pw)
    out = np.empty((n, c, ho, wo), dtype=x.dtype)
    index = np.empty((n, c, ho, wo), dtype=np.int64)
    if out.size:
        run(_max_pool_fwd, x.size, n * c, x.reshape(n * c, height, width), kh, kw, sh, sw, ph, pw,
            out.reshape(n * c, ho, wo), index.reshape(n * c, ho, wo))
    return out, index


def _max_pool2d_backward_numba(grad_out, index, height, width):
    n, c, ho, wo = grad_out.shape
    gx = np.zeros((n, c, height, width), dtype=grad_out.dtype)
    if gx.size:
        run(_max_pool_bwd, gx.size, n * c, grad_out.reshape(n * c, ho, wo), index.reshape(n * c, ho, wo),
            gx.reshape(n * c, height * width))
    return gx


avg_pool2d_forward = dispatch(_avg_pool2d_forward_numba, _reference.avg_pool2d_forward)
avg_pool2d_backward = dispatch(_avg_pool2d_backward_numba, _reference.avg_pool2d_backward)
max_pool2d_forward = dispatch(_max_pool2d_forward_numba, _reference.max_pool2d_forward)
max_pool2d_backward = dispatch(_max_pool2d_backward_numba, _reference.max_pool2d_backward)
