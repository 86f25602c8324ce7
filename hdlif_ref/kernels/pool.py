"""2-D average and max pooling (NCHW): Numba kernels, one ``prange`` iteration per ``(n, c)`` plane
(the 2x2, stride-2, unpadded average pooling: several whole planes per iteration, same arithmetic; on
planes of even height and width 2-16, runs of row pairs through vector shuffles, same arithmetic again).

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
from ._simd import AVGPOOL_WIDTHS, lanes_of, vavgpool2x2, vavgpool2x2_grad
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
def _avg_pool_2x2_fwd(x, per_item, out):
    """:func:`_avg_pool_fwd` for a 2x2 window, stride 2, no padding (the networks' pooling), one
    iteration per ``per_item`` planes: the same four float64 additions in the same order, so the
    same bits. Without the generic window bounds the loop is 4-7x faster; with several planes per
    iteration and plain 3-D indexing (no row views, which cost more than a small plane's work)
    another 1.1-2.5x (docs/performance.md, "Batch norm and pooling")."""
    planes, ho, wo = out.shape
    for item in numba.prange((planes + per_item - 1) // per_item):
        for t in range(item * per_item, min(planes, (item + 1) * per_item)):
            for p in range(ho):
                for q in range(wo):
                    total = 0.0
                    total += x[t, 2 * p, 2 * q]
                    total += x[t, 2 * p, 2 * q + 1]
                    total += x[t, 2 * p + 1, 2 * q]
                    total += x[t, 2 * p + 1, 2 * q + 1]
                    out[t, p, q] = total * 0.25


@njit_parallel
def _avg_pool_2x2_fwd_rows(x, width, per_item, out):
    """:func:`_avg_pool_2x2_fwd` on planes of even height and a ``width`` of ``_simd.AVGPOOL_WIDTHS``, over the
    flat arrays (``x: [P*H*W]``, ``out: [P*(H/2)*(W/2)]``): the rows then pair up across planes, so every run of
    ``4L`` inputs (``L`` = 16 float32, 8 float64) is whole pairs of rows, whose ``L`` outputs ``vavgpool2x2``
    computes with vector shuffles and float64 lanes, ``per_item`` runs per iteration; the rows after the last
    whole run, one at a time. The same four float64 additions in the same order per output, so the same bits
    (tested against the scalar kernel); on the networks' 8x8 and 4x4 planes the scalar loops run two or four
    outputs per row and do not vectorize."""
    lanes = 64 // x.itemsize
    run_in = 4 * lanes
    runs = x.shape[0] // run_in
    for item in numba.prange((runs + per_item - 1) // per_item):
        for r in range(item * per_item, min(runs, (item + 1) * per_item)):
            if width == 2:  # a literal width per call: the intrinsic's shuffles are constants
                vavgpool2x2(x, r * run_in, out, r * lanes, 2)
            elif width == 4:
                vavgpool2x2(x, r * run_in, out, r * lanes, 4)
            elif width == 8:
                vavgpool2x2(x, r * run_in, out, r * lanes, 8)
            else:
                vavgpool2x2(x, r * run_in, out, r * lanes, 16)
    half = width // 2
    for pair in range(runs * run_in // (2 * width), x.shape[0] // (2 * width)):
        for q in range(half):
            top = pair * 2 * width + 2 * q
            total = 0.0
            total += x[top]
            total += x[top + 1]
            total += x[top + width]
            total += x[top + width + 1]
            out[pair * half + q] = total * 0.25


@njit_parallel
def _avg_pool_2x2_bwd_rows(g, width, per_item, gx):
    """:func:`_avg_pool_2x2_bwd` where :func:`_avg_pool_2x2_fwd_rows` applies (even height, a width of
    ``_simd.AVGPOOL_WIDTHS``; flat ``g: [P*(H/2)*(W/2)]``, ``gx: [P*H*W]``): ``L`` output gradients per run of
    ``4L`` inputs through ``vavgpool2x2_grad``, then the rows after the last whole run. Every input is in one
    window, so ``gx`` may arrive uninitialized; each gets ``0.0 + g / 4`` in float64, as there."""
    lanes = 64 // gx.itemsize
    run_in = 4 * lanes
    runs = gx.shape[0] // run_in
    for item in numba.prange((runs + per_item - 1) // per_item):
        for r in range(item * per_item, min(runs, (item + 1) * per_item)):
            if width == 2:  # a literal width per call: the intrinsic's shuffles are constants
                vavgpool2x2_grad(g, r * lanes, gx, r * run_in, 2)
            elif width == 4:
                vavgpool2x2_grad(g, r * lanes, gx, r * run_in, 4)
            elif width == 8:
                vavgpool2x2_grad(g, r * lanes, gx, r * run_in, 8)
            else:
                vavgpool2x2_grad(g, r * lanes, gx, r * run_in, 16)
    half = width // 2
    for pair in range(runs * run_in // (2 * width), gx.shape[0] // (2 * width)):
        for q in range(half):
            top = pair * 2 * width + 2 * q
            share = 0.0 + g[pair * half + q] * 0.25
            gx[top] = share
            gx[top + 1] = share
            gx[top + width] = share
            gx[top + width + 1] = share


@njit_parallel
def _avg_pool_2x2_bwd(g, per_item, gx):
    """:func:`_avg_pool_bwd` for a 2x2 window, stride 2, no padding, ``per_item`` planes per
    iteration. Each input in a window gets one share, ``0.0 + g / 4`` as there; a last odd row or
    column (in no window) gets 0, so ``gx`` may arrive uninitialized."""
    planes, ho, wo = g.shape
    height, width = gx.shape[1], gx.shape[2]
    for item in numba.prange((planes + per_item - 1) // per_item):
        for t in range(item * per_item, min(planes, (item + 1) * per_item)):
            for p in range(ho):
                for q in range(wo):
                    share = 0.0 + g[t, p, q] * 0.25
                    gx[t, 2 * p, 2 * q] = share
                    gx[t, 2 * p, 2 * q + 1] = share
                    gx[t, 2 * p + 1, 2 * q] = share
                    gx[t, 2 * p + 1, 2 * q + 1] = share
                if width > 2 * wo:
                    gx[t, 2 * p, width - 1] = 0.0
                    gx[t, 2 * p + 1, width - 1] = 0.0
            if height > 2 * ho:
                for w in range(width):
                    gx[t, height - 1, w] = 0.0


#: Input elements per iteration of the 2x2 kernels (whole planes, at least one).
PLANE_ITEM_ELEMENTS = 1 << 12


def _planes_per_item(height, width) -> int:
    return max(1, PLANE_ITEM_ELEMENTS // max(1, height * width))


def _is_2x2(kh, kw, sh, sw, ph, pw) -> bool:
    return kh == kw == sh == sw == 2 and ph == pw == 0


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


def _rows_items(size: int, dtype) -> tuple[int, int]:
    """``(per_item, items)`` of the row-pair kernels over ``size`` inputs: runs of ``4L`` inputs per iteration (about
    :data:`PLANE_ITEM_ELEMENTS` elements) and the iterations that cover them."""
    run_in = 4 * lanes_of(dtype)
    per = max(1, PLANE_ITEM_ELEMENTS // run_in)
    return per, -(-size // (run_in * per))


def _avg_pool2d_forward_numba(x, kh, kw, sh, sw, ph, pw):
    n, c, height, width = x.shape
    ho, wo = _out_size(height, width, kh, kw, sh, sw, ph, pw)
    out = np.empty((n, c, ho, wo), dtype=x.dtype)
    if out.size and _is_2x2(kh, kw, sh, sw, ph, pw) and height % 2 == 0 and width in AVGPOOL_WIDTHS:
        per, items = _rows_items(x.size, x.dtype)
        flat = np.ascontiguousarray(x).reshape(-1)  # the vector loads read memory in order: no strided views
        run(_avg_pool_2x2_fwd_rows, x.size, items, flat, width, per, out.reshape(-1))
    elif out.size and _is_2x2(kh, kw, sh, sw, ph, pw):
        per = _planes_per_item(height, width)
        run(_avg_pool_2x2_fwd, x.size, -(-n * c // per), x.reshape(n * c, height, width), per,
            out.reshape(n * c, ho, wo))
    elif out.size:
        run(_avg_pool_fwd, x.size, n * c, x.reshape(n * c, height, width), kh, kw, sh, sw, ph, pw,
            out.reshape(n * c, ho, wo))
    return out


def _avg_pool2d_backward_numba(grad_out, height, width, kh, kw, sh, sw, ph, pw):
    n, c, ho, wo = grad_out.shape
    if _is_2x2(kh, kw, sh, sw, ph, pw) and height % 2 == 0 and width in AVGPOOL_WIDTHS:  # writes every element
        gx = np.empty((n, c, height, width), dtype=grad_out.dtype)
        if gx.size:
            per, items = _rows_items(gx.size, gx.dtype)
            flat = np.ascontiguousarray(grad_out).reshape(-1)  # as the forward: no strided views
            run(_avg_pool_2x2_bwd_rows, gx.size, items, flat, width, per, gx.reshape(-1))
        return gx
    if _is_2x2(kh, kw, sh, sw, ph, pw):  # writes every element: no zeroing first
        gx = np.empty((n, c, height, width), dtype=grad_out.dtype)
        per = _planes_per_item(height, width)
        if gx.size:
            run(_avg_pool_2x2_bwd, gx.size, -(-n * c // per), grad_out.reshape(n * c, ho, wo), per,
                gx.reshape(n * c, height, width))
        return gx
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
