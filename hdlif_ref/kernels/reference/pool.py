"""Plain-NumPy twin of :mod:`hdlif_ref.kernels.pool`: 2-D average and max pooling (NCHW).

A window of output ``(p, q)`` covers the padded-input rows ``p*sh .. p*sh + kh - 1`` and
columns ``q*sw .. q*sw + kw - 1``:

* average: ``out = sum(window of xpad zero-padded) / (kh * kw)``; zero padding is
  counted in the average (PyTorch's default ``count_include_pad=True``);
* max: ``out = max(window of xpad padded with -inf)`` (NaN propagates); the gradient goes
  to the first real element of the window, in row-major order, equal to the maximum
  (as PyTorch's ``max_pool2d`` for finite values), or to the first NaN if there is one.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x, kh, kw, sh, sw, ph, pw, fill):
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return sliding_window_view(xpad, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw):
    """``out: [N, C, Ho, Wo]`` for ``x: [N, C, H, W]``, ``Ho = (H + 2 ph - kh) // sh + 1``."""
    win = _windows(x, kh, kw, sh, sw, ph, pw, 0.0)
    return np.ascontiguousarray(win.sum(axis=(4, 5)) / (kh * kw), dtype=x.dtype)


def avg_pool2d_backward(grad_out, height, width, kh, kw, sh, sw, ph, pw):
    """``gx: [N, C, height, width]``: each output's gradient spread evenly over its window."""
    n, c, ho, wo = grad_out.shape
    gxpad = np.zeros((n, c, height + 2 * ph, width + 2 * pw), dtype=grad_out.dtype)
    share = grad_out / (kh * kw)
    for i in range(kh):
        for j in range(kw):
            gxpad[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw] += share
    return np.ascontiguousarray(gxpad[:, :, ph:ph + height, pw:pw + width])


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw):
    """``(out, index)``: the window maxima and, for each, the flat index ``h * W + w`` in ``x``'s plane.

    The index is the first real (non-padding) element of the window, in row-major
    order, equal to the maximum; if the window holds a NaN the maximum is NaN and the
    index is the first NaN.
    """
    n, c, height, width = x.shape
    win = _windows(x, kh, kw, sh, sw, ph, pw, -np.inf)
    ho, wo = win.shape[2:4]
    flat = win.reshape(n, c, ho, wo, kh * kw)
    real = _windows(np.ones((1, 1, height, width), dtype=bool), kh, kw, sh, sw, ph, pw, False)
    real = real.reshape(1, 1, ho, wo, kh * kw)
    out = flat.max(axis=-1)  # NaN propagates; padding (-inf) never exceeds a real element
    top = out[..., None]
    hit = real & np.where(np.isnan(top), np.isnan(flat), flat == top)
    k = np.argmax(hit, axis=-1)  # the first True
    i, j = np.divmod(k, kw)
    h = np.arange(ho)[:, None] * sh + i - ph
    w = np.arange(wo)[None, :] * sw + j - pw
    return np.ascontiguousarray(out, dtype=x.dtype), (h * width + w).astype(np.int64)


def max_pool2d_backward(grad_out, index, height, width):
    """``gx: [N, C, height, width]`` with ``grad_out`` added at each window's ``index``."""
    n, c, ho, wo = grad_out.shape
    gx = np.zeros((n * c, height * width), dtype=grad_out.dtype)
    rows = np.repeat(np.arange(n * c), ho * wo)
    np.add.at(gx, (rows, index.reshape(-1)), grad_out.reshape(-1))
    return gx.reshape(n, c, height, width)
