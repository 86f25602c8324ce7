"""Plain-NumPy twin of :mod:`hdlif_ref.kernels.conv`: 2-D convolution written as its formula.

    out[n, o, p, q] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * xpad[n, g*Cg + c, p*sh + i, q*sw + j]

(cross-correlation, as PyTorch's ``conv2d``; ``g = o // (C_out/groups)``, ``Cg = C_in/groups``,
``xpad`` is ``x`` zero-padded by ``ph`` rows and ``pw`` columns on each side).
The windows are a strided view (``sliding_window_view``) and the sums are
``einsum``s over named axes, so each line reads as the formula (``optimize=True`` lets
NumPy evaluate them as matrix products; the arithmetic is the same sum).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x, kh, kw, stride, padding, groups):
    """``xpad`` windows as ``[N, groups, Cg, Ho, Wo, kh, kw]`` (a view, no copy)."""
    (sh, sw), (ph, pw) = stride, padding
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xpad, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    n, c = x.shape[:2]
    return win.reshape(n, groups, c // groups, *win.shape[2:])


def conv2d_forward(x, weight, bias, stride, padding, groups):
    """Convolution forward.

    Parameters
    ----------
    x : [N, C_in, H, W]
    weight : [C_out, C_in/groups, kh, kw]
    bias : [C_out] or None
    stride, padding : (int, int) pairs ``(sh, sw)``, ``(ph, pw)``
    groups : int dividing ``C_in`` and ``C_out``

    Returns ``out: [N, C_out, Ho, Wo]``, ``Ho = (H + 2 ph - kh) // sh + 1`` (same for ``Wo``),
    in ``x``'s dtype (``x``, ``weight`` and ``bias`` share it).
    """
    c_out, cg, kh, kw = weight.shape
    win = _windows(x, kh, kw, stride, padding, groups)
    w = weight.reshape(groups, c_out // groups, cg, kh, kw)
    out = np.einsum("ngcpqij,gocij->ngopq", win, w, optimize=True)
    out = out.reshape(x.shape[0], c_out, *out.shape[3:])
    if bias is not None:
        out = out + bias[None, :, None, None]
    return np.ascontiguousarray(out, dtype=x.dtype)


def conv2d_backward(grad_out, x, weight, stride, padding, groups, need_x, need_weight, need_bias):
    """Gradients of :func:`conv2d_forward` for ``grad_out: [N, C_out, Ho, Wo]``.

    ``gx[n, g*Cg + c, p*sh + i - ph, q*sw + j - pw] += sum_o weight[o, c, i, j] * grad_out[n, o, p, q]``,
    ``gw[o, c, i, j] = sum_{n, p, q} grad_out[n, o, p, q] * xpad[n, g*Cg + c, p*sh + i, q*sw + j]``,
    ``gb[o] = sum_{n, p, q} grad_out[n, o, p, q]``. Returns ``(gx, gw, gb)``, ``None`` where not needed.
    """
    (sh, sw), (ph, pw) = stride, padding
    n, c_in, height, width = x.shape
    c_out, cg, kh, kw = weight.shape
    ho, wo = grad_out.shape[2:]
    g = grad_out.reshape(n, groups, c_out // groups, ho, wo)
    w = weight.reshape(groups, c_out // groups, cg, kh, kw)
    gx = gw = gb = None
    if need_bias:
        gb = grad_out.sum(axis=(0, 2, 3), dtype=np.float64).astype(x.dtype)
    if need_weight:
        win = _windows(x, kh, kw, stride, padding, groups)
        gw = np.einsum("ngopq,ngcpqij->gocij", g, win, optimize=True).reshape(weight.shape).astype(x.dtype)
    if need_x:
        gxpad = np.zeros((n, groups, cg, height + 2 * ph, width + 2 * pw), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                # every output (p, q) read xpad[p*sh + i, q*sw + j] with weight[:, :, i, j]
                gxpad[:, :, :, i:i + sh * ho:sh, j:j + sw * wo:sw] += np.einsum(
                    "ngopq,goc->ngcpq", g, w[:, :, :, i, j], optimize=True)
        gx = np.ascontiguousarray(
            gxpad.reshape(n, c_in, height + 2 * ph, width + 2 * pw)[:, :, ph:ph + height, pw:pw + width])
    return gx, gw, gb
