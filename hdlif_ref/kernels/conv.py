"""2-D convolution (cross-correlation, NCHW) by im2col + GEMM, one image per ``prange`` iteration.

    out[n, o, p, q] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * xpad[n, g*Cg + c, p*sh + i, q*sw + j]

with ``g = o // (C_out / groups)``, ``Cg = C_in / groups`` and ``xpad`` the input
zero-padded by ``(ph, pw)``. Per image ``n`` (docs/performance.md, "Convolution"):

* forward: ``_im2col_image`` gathers ``col: [C_in*kh*kw, Ho*Wo]`` (zeros where a window
  reads padding) into the thread's own buffer, then one GEMM per group writes
  ``out[n, group rows] = W_g @ col_g`` straight into the NCHW output (no transpose),
  then the bias is added while the rows are in cache;
* backward: ``dW_g += gy[n]_g @ col_g^T`` into the partial sum of the image's group
  of images. For stride 1, ``dx`` is the forward kernel applied to the gradient with
  the flipped, transposed weight and padding ``k - 1 - p`` (no scatter-add; the GEMM
  has ``K = C_out*kh*kw`` instead of ``C_out``); otherwise ``dcol_g = W_g^T @ gy[n]_g``
  (into the same buffer) and ``_col2im_image`` adds the columns back into ``dx[n]``;
* small planes: a block of images side by side in ``col`` keeps the GEMMs about
  ``GEMM_COLUMNS`` wide (the output is then copied from the block's buffer);
* stride 1, 3-column kernels, at most ``DIRECT_MAX_OUT_CHANNELS`` output channels
  (:func:`_use_direct`, shapes only): the forward and the stride-1 ``dx`` run the direct
  kernel of :mod:`.conv_direct` instead (no ``col``); the weight gradient keeps im2col + GEMM.

Numba owns the cores (one ``prange`` over images) and each thread calls BLAS
(:mod:`._blas`, single-threaded for the duration): no hand-off between two thread
pools inside a convolution. Iterations are handed out one at a time
(``parallel_chunksize(1)``), so a thread slowed by another process gets fewer.
Each iteration writes its own images of the output, its own buffer and (backward)
its own partial weight gradient; the partials belong to ``WEIGHT_GRAD_GROUPS``
fixed groups of images and are summed in a fixed order, so results do not depend
on the thread count. The plain-NumPy twin is
:mod:`hdlif_ref.kernels.reference.conv`.
"""
from __future__ import annotations

import contextlib

import numba
import numpy as np

from . import conv_direct as _direct
from . import conv_lanes as _lanes
from ._backend import dispatch
from ._blas import blas_threads_for_kernels, gemm, gemm_for
from ._config import njit, njit_parallel
from ._threads import WORKERS_SPIN, chunksize, current_threads, numba_threads, run
from .reference import conv as _reference

#: The weight gradient is accumulated in this many partial sums (one per group of
#: consecutive images), independent of the thread count.
WEIGHT_GRAD_GROUPS = 8
#: Small planes are batched: a block of images side by side gives GEMMs of about this many
#: columns (single-threaded BLAS runs near its peak from ~128-256 columns on).
GEMM_COLUMNS = 256
#: The direct kernel (:mod:`.conv_direct`) runs convolutions with at most this many output
#: channels on planes of at least this many pixels (:func:`_use_direct`).
DIRECT_MAX_OUT_CHANNELS = 32
DIRECT_MIN_PLANE = 16
#: The register-blocked lanes path (:mod:`.conv_lanes`) runs when at least this share of its
#: vector lanes hold images (``N`` over ``N`` rounded up to a multiple of the lane count), and
#: for 1x1 kernels or more than ``LANES_MAX_PARTIAL_OUT_CHANNELS`` output channels only when every
#: lane does (:func:`conv_path`).
LANES_MIN_FILL = 0.75
LANES_MAX_PARTIAL_OUT_CHANNELS = 128
#: A convolution (forward, or one of its gradients) of fewer multiply-adds than this runs on one
#: thread: the join of a parallel loop waits for a woken thread, which on a busy machine may wait
#: for a time slice (docs/performance.md, "Threads on a busy machine"). With spinning idle workers
#: a loop starts at once and the smaller size applies (:func:`._threads.idle_workers_spin`).
PARALLEL_MIN_MACS_ASLEEP = 1 << 25
PARALLEL_MIN_MACS_SPINNING = 1 << 20
PARALLEL_MIN_MACS = PARALLEL_MIN_MACS_SPINNING if WORKERS_SPIN else PARALLEL_MIN_MACS_ASLEEP
#: Tests and benchmarks may force one path (``"lanes"``, ``"direct"`` or ``"gemm"``) for every shape
#: it applies to; ``None``: :func:`conv_path` decides.
FORCED_PATH = None


@njit
def _inside(n_out, size, pad, k, stride):
    """``(lo, hi)``: the outputs ``p`` in ``[0, n_out)`` whose input index ``p*stride - pad + k``
    lies inside ``[0, size)`` are exactly ``lo <= p < hi`` (``lo == hi``: none)."""
    lo = min(n_out, max(0, (pad - k + stride - 1) // stride))
    hi = max(lo, min(n_out, (size - 1 + pad - k) // stride + 1))
    return lo, hi


@njit
def _im2col_image(src, height, width, kh, kw, sh, sw, ph, pw, ho, wo, col, off):
    """col[(c*kh + i)*kw + j, off + p*wo + q] = xpad[c, p*sh + i, q*sw + j]   (src: [C, H*W]).

    The valid ranges of ``p`` and ``q`` depend on ``(i, j)`` only, so they are computed once
    per kernel offset. When ``sh = sw = 1`` and ``wo = W`` ("same" width), the rows ``p``
    of one ``(c, i, j)`` sit at a constant flat offset from their source, so one
    contiguous copy moves them all, and the few entries whose window reads the
    left/right padding are zeroed after.
    """
    channels = src.shape[0]
    plane = ho * wo
    hw = height * width
    flat = sh == 1 and sw == 1 and wo == width
    for i in range(kh):
        p_lo, p_hi = _inside(ho, height, ph, i, sh)  # output rows reading a real input row
        for j in range(kw):
            q_lo, q_hi = _inside(wo, width, pw, j, sw)  # output columns reading a real input column
            edges = q_lo > 0 or q_hi < wo
            # the flat path's source and destination ranges; entries cut at the ends of
            # the plane are ones that read the left/right padding (zeroed by ``edges``)
            s0 = p_lo * wo
            s1 = p_hi * wo
            d0 = s0 + (i - ph) * width + (j - pw)
            d1 = s1 + (i - ph) * width + (j - pw)
            if d0 < 0:
                s0 -= d0
                d0 = 0
            if d1 > hw:
                s1 -= d1 - hw
                d1 = hw
            for c in range(channels):
                row = col[(c * kh + i) * kw + j, off:off + plane]
                x = src[c]
                row[:p_lo * wo] = 0.0
                row[p_hi * wo:plane] = 0.0
                if flat:
                    if d1 > d0:
                        row[s0:s1] = x[d0:d1]
                    if edges:  # a few entries per row (one for 3x3): scalar stores
                        for p in range(p_lo, p_hi):
                            for q in range(q_lo):
                                row[p * wo + q] = 0.0
                            for q in range(q_hi, wo):
                                row[p * wo + q] = 0.0
                else:
                    for p in range(p_lo, p_hi):
                        dst = p * wo
                        h = (p * sh - ph + i) * width
                        row[dst:dst + q_lo] = 0.0
                        for q in range(q_lo, q_hi):
                            row[dst + q] = x[h + q * sw - pw + j]
                        row[dst + q_hi:dst + wo] = 0.0


@njit
def _col2im_image(col, off, height, width, kh, kw, sh, sw, ph, pw, ho, wo, dst):
    """dst[c] = the sum of the entries of ``col[:, off:off + Ho*Wo]`` that ``_im2col_image`` copied from xpad[c].

    ``dst: [C, H*W]``; entries read from the padding have nowhere to go. Used for strides
    above 1 (and padding >= kernel): stride 1 takes the transposed-convolution path instead.
    """
    dst[:, :] = 0.0
    for i in range(kh):
        p_lo, p_hi = _inside(ho, height, ph, i, sh)
        for j in range(kw):
            q_lo, q_hi = _inside(wo, width, pw, j, sw)
            for c in range(dst.shape[0]):
                row = col[(c * kh + i) * kw + j, off:off + ho * wo]
                x = dst[c]
                for p in range(p_lo, p_hi):
                    h = (p * sh - ph + i) * width
                    for q in range(q_lo, q_hi):
                        x[h + q * sw - pw + j] += row[p * wo + q]


@njit_parallel
def _conv_fwd(fn, x, height, width, weight, bias, kh, kw, sh, sw, ph, pw, ho, wo, groups, nb, out,
              cols, ys):
    """out[n] = W @ im2col(x[n]) + bias for blocks of ``nb`` images, one block per iteration.

    ``x: [N, C_in, H*W]``, ``weight: [C_out, K]``, ``out: [N, C_out, Ho*Wo]``; per thread
    ``cols[t]: [C_in*kh*kw, nb*Ho*Wo]`` and, when ``nb > 1``, ``ys[t]: [C_out, nb*Ho*Wo]``
    (a block's images side by side, so small planes still make wide GEMMs).
    """
    n_images = x.shape[0]
    plane = ho * wo
    og = weight.shape[0] // groups
    kg = weight.shape[1]
    for block in numba.prange((n_images + nb - 1) // nb):
        t = numba.get_thread_id()
        n0 = block * nb
        m = min(nb, n_images - n0)
        col = cols[t, :, :m * plane]
        for b in range(m):
            _im2col_image(x[n0 + b], height, width, kh, kw, sh, sw, ph, pw, ho, wo, col, b * plane)
        y = out[n0] if nb == 1 else ys[t, :, :m * plane]
        for g in range(groups):
            gemm(fn, False, False, weight[g * og:(g + 1) * og], col[g * kg:(g + 1) * kg], 0.0,
                 y[g * og:(g + 1) * og])
        for b in range(m):
            for o in range(out.shape[1]):
                dst = out[n0 + b, o]
                src = y[o, b * plane:(b + 1) * plane]
                shift = bias[o]
                for k in range(plane):
                    dst[k] = src[k] + shift


@njit_parallel
def _conv_bwd(fn, g, x, height, width, weight, kh, kw, sh, sw, ph, pw, ho, wo, groups, nb,
              need_x, need_weight, dx, gw_parts, cols, gys):
    """Per block of ``nb`` images: ``gw_parts[part] += gy @ col^T``, ``dx = col2im(W^T @ gy)``.

    ``g: [N, C_out, Ho*Wo]``, ``x, dx: [N, C_in, H*W]``, ``gw_parts: [P, C_out, K]`` (zeroed by
    the caller); part ``k`` holds the blocks ``k*B//P .. (k+1)*B//P - 1`` of the ``B`` blocks.
    """
    n_images = x.shape[0]
    plane = ho * wo
    blocks = (n_images + nb - 1) // nb
    parts = gw_parts.shape[0]
    og = weight.shape[0] // groups
    kg = weight.shape[1]
    for part in numba.prange(parts):
        t = numba.get_thread_id()
        for block in range(part * blocks // parts, (part + 1) * blocks // parts):
            n0 = block * nb
            m = min(nb, n_images - n0)
            col = cols[t, :, :m * plane]
            if nb == 1:
                gy = g[n0]
            else:
                gy = gys[t, :, :m * plane]
                for b in range(m):
                    for o in range(gy.shape[0]):
                        gy[o, b * plane:(b + 1) * plane] = g[n0 + b, o]
            if need_weight:
                for b in range(m):
                    _im2col_image(x[n0 + b], height, width, kh, kw, sh, sw, ph, pw, ho, wo, col, b * plane)
                for k in range(groups):
                    gemm(fn, False, True, gy[k * og:(k + 1) * og], col[k * kg:(k + 1) * kg], 1.0,
                         gw_parts[part, k * og:(k + 1) * og])
            if need_x:
                for k in range(groups):
                    gemm(fn, True, False, weight[k * og:(k + 1) * og], gy[k * og:(k + 1) * og], 0.0,
                         col[k * kg:(k + 1) * kg])
                for b in range(m):
                    _col2im_image(col, b * plane, height, width, kh, kw, sh, sw, ph, pw, ho, wo, dx[n0 + b])


@njit_parallel
def _channel_sums(g, out):
    """out[o] = sum_{n, p} g[n, o, p], accumulated in float64 (the bias gradient).

    Eight running sums (element ``k`` of each row goes to sum ``k % 8``), added in a fixed tree
    at the end: one float64 accumulator would make the loop wait on each addition's latency
    (57 us for a [64, 16, 64] gradient; no reassociation is allowed to break the chain)."""
    for o in numba.prange(g.shape[1]):
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        length = g.shape[2]
        for n in range(g.shape[0]):
            row = g[n, o]
            k = 0
            while k + 8 <= length:
                s0 += row[k]
                s1 += row[k + 1]
                s2 += row[k + 2]
                s3 += row[k + 3]
                s4 += row[k + 4]
                s5 += row[k + 5]
                s6 += row[k + 6]
                s7 += row[k + 7]
                k += 8
            while k < length:
                s0 += row[k]
                k += 1
        out[o] = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def _use_direct(c_in, c_out, height, width, kh, kw, stride, padding, groups):
    """True where the direct kernel (:mod:`.conv_direct`) applies and is the faster path.

    It applies to ``groups = 1``, stride 1, 3-column kernels with ``ph < kh``, ``pw < 3``. It is
    the faster one (measured on this machine, docs/performance.md "Direct kernel") when the
    convolution has at most ``DIRECT_MAX_OUT_CHANNELS`` output channels: im2col + GEMM's GEMM
    then has that few rows, and BLAS packs the whole of ``col`` for little arithmetic. With 64
    output channels the two are even; from 128 on the GEMM, near the BLAS peak, wins. Planes
    below ``DIRECT_MIN_PLANE`` pixels keep im2col + GEMM (not measured). Shapes only: the choice
    never depends on the thread count.
    """
    (sh, sw), (ph, pw) = stride, padding
    return (groups == 1 and sh == 1 and sw == 1 and kw == 3 and ph < kh and pw < kw
            and c_out <= DIRECT_MAX_OUT_CHANNELS and height * width >= DIRECT_MIN_PLANE)


def conv_path(n, c_in, c_out, height, width, kh, kw, stride, padding, groups, dtype) -> str:
    """The kernel that runs a convolution of these shapes: ``"lanes"``, ``"direct"`` or ``"gemm"``.

    The rule (measured, docs/performance.md "Register-blocked kernels"): the lanes path for
    ``groups = 1`` when the batch fills its vector lanes (16 float32 or 8 float64 images per
    vector): all of them for 1x1 kernels and for more than ``LANES_MAX_PARTIAL_OUT_CHANNELS``
    output channels (im2col + GEMM is at its best there), at least ``LANES_MIN_FILL`` of them
    otherwise; else the direct kernel where :func:`_use_direct` says so, else im2col + GEMM.
    Shapes only: never the thread count or the data, so the result of a convolution does not
    depend on them.
    """
    forced = FORCED_PATH
    lanes_ok = groups == 1
    if forced == "lanes" and lanes_ok:
        return "lanes"
    if forced in ("lanes", "direct") and _use_direct(c_in, c_out, height, width, kh, kw, stride, padding, groups):
        return "direct"
    if forced is not None:
        return "gemm"
    lanes = _lanes.lanes_of(dtype)
    capacity = -(-n // lanes) * lanes
    full = kh * kw == 1 or c_out > LANES_MAX_PARTIAL_OUT_CHANNELS
    if lanes_ok and n > 0 and (n == capacity if full else n >= LANES_MIN_FILL * capacity):
        return "lanes"
    if _use_direct(c_in, c_out, height, width, kh, kw, stride, padding, groups):
        return "direct"
    return "gemm"


def _images_per_block(n, columns, plane):
    """Images side by side in one block: about ``columns`` positions, while leaving at least
    ``WEIGHT_GRAD_GROUPS`` blocks to share among the threads. Shapes only, never the thread count."""
    return max(1, min(-(-columns // max(plane, 1)), n // WEIGHT_GRAD_GROUPS))


def _images_per_gemm(n, plane):
    """Images side by side in one GEMM: enough for ``GEMM_COLUMNS`` columns (see :func:`_images_per_block`)."""
    return _images_per_block(n, GEMM_COLUMNS, plane)


def _convolve(x, weight, bias, stride, padding, groups, out, path=None):
    """out = conv2d(x, weight) + bias into ``out: [N, C_out, Ho, Wo]`` (every array C-contiguous).

    On ``path`` (default: :func:`conv_path`'s choice).
    """
    n, c_in, height, width = x.shape
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = out.shape[2], out.shape[3]
    path = path or conv_path(n, c_in, c_out, height, width, kh, kw, stride, padding, groups, x.dtype)
    if path == "lanes":
        with chunksize(1):
            _lanes.conv2d_forward(x, weight, bias, stride, padding, out=out)
        return
    if path == "direct":
        nb = _images_per_block(n, _direct.DIRECT_COLUMNS, (height + ph) * (width + pw))
        wp, block_stride, _, length = _direct.block_geometry(height, width, ph, pw, nb)
        threads = current_threads()
        with chunksize(1):
            _direct._conv_direct_fwd(x.reshape(n, c_in, height * width), height, width, weight, bias, ph, pw,
                                     ho, wo, nb, out.reshape(n, c_out, ho * wo),
                                     np.zeros((threads, c_in, length), dtype=x.dtype),
                                     np.empty((threads, c_out, nb * block_stride), dtype=x.dtype))
        return
    with blas_threads_for_kernels() as threads, chunksize(1):
        nb = _images_per_gemm(n, ho * wo)
        cols = np.empty((threads, c_in * kh * kw, nb * ho * wo), dtype=x.dtype)
        ys = np.empty((threads, c_out, nb * ho * wo) if nb > 1 else (0, 0, 0), dtype=x.dtype)
        _conv_fwd(gemm_for(x.dtype), x.reshape(n, c_in, height * width), height, width,
                  weight.reshape(c_out, cg * kh * kw), bias, kh, kw, sh, sw, ph, pw, ho, wo, groups, nb,
                  out.reshape(n, c_out, ho * wo), cols, ys)


def _threads_for(macs: int):
    """One thread below :data:`PARALLEL_MIN_MACS` multiply-adds, else the caller's count."""
    return numba_threads(1) if macs < PARALLEL_MIN_MACS else contextlib.nullcontext()


def _conv2d_forward_numba(x, weight, bias, stride, padding, groups):
    """Numba (+ BLAS) ``conv2d_forward`` (see :func:`reference.conv.conv2d_forward`)."""
    # the kernels read flat views: any other layout is copied once (no copy for C-ordered arrays;
    # an F-ordered 1x1 weight gave a wrong result before)
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    n, c_in, height, width = x.shape
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ho = (height + 2 * ph - kh) // sh + 1
    wo = (width + 2 * pw - kw) // sw + 1
    out = np.empty((n, c_out, ho, wo), dtype=x.dtype)
    if out.size == 0:
        return out
    bias = bias if bias is not None else np.zeros(c_out, dtype=x.dtype)
    with _threads_for(out.size * cg * kh * kw):
        _convolve(x, weight, bias, stride, padding, groups, out)
    return out


def _conv2d_backward_numba(grad_out, x, weight, stride, padding, groups, need_x, need_weight, need_bias):
    """Numba + BLAS ``conv2d_backward`` (see :func:`reference.conv.conv2d_backward`)."""
    grad_out, x, weight = (np.ascontiguousarray(a) for a in (grad_out, x, weight))  # as the forward
    with _threads_for(grad_out.size * weight.shape[1] * weight.shape[2] * weight.shape[3]):
        return _conv2d_backward(grad_out, x, weight, stride, padding, groups, need_x, need_weight, need_bias)


def _conv2d_backward(grad_out, x, weight, stride, padding, groups, need_x, need_weight, need_bias):
    n, c_in, height, width = x.shape
    c_out, cg, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = grad_out.shape[2], grad_out.shape[3]
    g3 = grad_out.reshape(n, c_out, ho * wo)
    gb = None
    if need_bias:
        sums = np.zeros(c_out)
        if g3.size:
            run(_channel_sums, g3.size, c_out, g3, sums)
        gb = sums.astype(x.dtype)
    if (need_x or need_weight) and g3.size and x.size and conv_path(
            n, c_in, c_out, height, width, kh, kw, stride, padding, groups, x.dtype) == "lanes":
        with chunksize(1):  # the lanes path allocates its own results
            lx, lw = _lanes.conv2d_backward(grad_out, x, weight, stride, padding, need_x, need_weight)
        return lx, lw, gb
    gx = np.zeros_like(x) if need_x else None
    gw = np.zeros_like(weight) if need_weight else None
    if not (need_x or need_weight) or g3.size == 0 or x.size == 0:
        return gx, gw, gb
    # stride 1: dx is the forward convolution of the gradient with the flipped, transposed kernel
    # (padding k - 1 - p), which needs no scatter-add and makes a better-shaped GEMM
    transposed = need_x and sh == 1 and sw == 1 and ph < kh and pw < kw
    if transposed:
        og = c_out // groups
        flipped = np.ascontiguousarray(weight.reshape(groups, og, cg, kh, kw)[:, :, :, ::-1, ::-1]
                                       .transpose(0, 2, 1, 3, 4)).reshape(c_in, og, kh, kw)
        _convolve(grad_out, flipped, np.zeros(c_in, dtype=x.dtype), (1, 1), (kh - 1 - ph, kw - 1 - pw), groups, gx,
                  path="direct" if FORCED_PATH in (None, "direct") and _use_direct(
                      c_out, c_in, ho, wo, kh, kw, (1, 1), (kh - 1 - ph, kw - 1 - pw), groups) else "gemm")
        need_x = False
        if not need_weight:
            return gx, gw, gb
    with blas_threads_for_kernels() as threads, chunksize(1):
        nb = _images_per_gemm(n, ho * wo)
        parts = min(WEIGHT_GRAD_GROUPS, -(-n // nb))
        # without a weight gradient the loop still runs over the parts: give it their count
        gw_parts = np.zeros((parts, c_out, cg * kh * kw) if need_weight else (parts, 0, 0), dtype=x.dtype)
        cols = np.empty((threads, c_in * kh * kw, nb * ho * wo), dtype=x.dtype)
        gys = np.empty((threads, c_out, nb * ho * wo) if nb > 1 else (0, 0, 0), dtype=x.dtype)
        _conv_bwd(gemm_for(x.dtype), g3, x.reshape(n, c_in, height * width), height, width,
                  weight.reshape(c_out, cg * kh * kw), kh, kw, sh, sw, ph, pw, ho, wo, groups, nb,
                  need_x, need_weight, gx.reshape(n, c_in, height * width) if need_x else
                  np.empty((0, 0, 0), dtype=x.dtype), gw_parts, cols, gys)
    if need_weight:
        np.sum(gw_parts, axis=0, out=gw.reshape(c_out, cg * kh * kw))
    return gx, gw, gb


conv2d_forward = dispatch(_conv2d_forward_numba, _reference.conv2d_forward)
conv2d_backward = dispatch(_conv2d_backward_numba, _reference.conv2d_backward)
