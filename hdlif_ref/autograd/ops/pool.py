"""Pooling over NCHW: ``avg_pool2d``, ``max_pool2d``, ``adaptive_avg_pool2d``.

Window of output ``(p, q)``: padded-input rows ``p*sH .. p*sH + kH - 1`` and columns
``q*sW .. q*sW + kW - 1``; output size ``Ho = (H + 2 pH - kH) // sH + 1`` (floor, as
PyTorch's ``ceil_mode=False``).

* ``avg_pool2d``: the window's sum divided by ``kH * kW``: zero padding counts in the
  average (PyTorch's default ``count_include_pad=True``).
* ``max_pool2d``: padding is ``-inf`` (never selected); the gradient goes to the first
  real element of the window, in row-major order, equal to the maximum (the first
  NaN if the window holds one).
* ``adaptive_avg_pool2d``: average pooling with kernel = stride = ``(H/oH, W/oW)``;
  only output sizes that divide ``H`` and ``W`` (1 = global average pooling).

Kernels: :mod:`hdlif_ref.kernels.pool`.
"""
from __future__ import annotations

import numpy as np

from ...kernels import pool as _kernels
from ..function import Function
from ..tensor import Tensor
from ._args import as_c, check_ndim, finite_bound, int_pair, mark_finite, shape_of


class AvgPool2d(Function):
    name = "avg_pool2d"

    @staticmethod
    def forward(ctx, x, window):
        x = as_c(x, x.dtype)
        ctx.meta = (x.shape[2], x.shape[3], window)
        return _kernels.avg_pool2d_forward(x, *window)

    @staticmethod
    def backward(ctx, g):
        height, width, window = ctx.meta
        return _kernels.avg_pool2d_backward(as_c(g, g.dtype), height, width, *window)


class MaxPool2d(Function):
    name = "max_pool2d"

    @staticmethod
    def forward(ctx, x, window):
        x = as_c(x, x.dtype)
        out, index = _kernels.max_pool2d_forward(x, *window)
        ctx.save_for_backward(index)
        ctx.meta = (x.shape[2], x.shape[3])
        return out

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        height, width = ctx.meta
        return _kernels.max_pool2d_backward(as_c(g, g.dtype), index, height, width)


def _window(op, x, kernel_size, stride, padding):
    """Check the arguments; return ``(kH, kW, sH, sW, pH, pW)``."""
    xs = shape_of(op, "x", x)
    check_ndim(op, "x", xs, (4,), "[N, C, H, W]")
    kh, kw = int_pair(op, "kernel_size", kernel_size, 1)
    sh, sw = (kh, kw) if stride is None else int_pair(op, "stride", stride, 1)
    ph, pw = int_pair(op, "padding", padding, 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{op}: padding={(ph, pw)} must be at most half the kernel size {(kh, kw)} "
                         f"(each window must hold a real element)")
    height, width = xs[2], xs[3]
    if kh > height + 2 * ph or kw > width + 2 * pw:
        raise ValueError(f"{op}: kernel {kh}x{kw} is larger than the padded input "
                         f"{height + 2 * ph}x{width + 2 * pw} (x {xs}, padding {(ph, pw)})")
    return kh, kw, sh, sw, ph, pw


def avg_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Average pooling, ``x: [N, C, H, W]``; ``stride`` defaults to ``kernel_size``.

    Zero padding is counted in the average (divisor ``kH * kW``), as PyTorch's default
    ``count_include_pad=True``. ``padding`` at most half the kernel.
    """
    window = _window("avg_pool2d", x, kernel_size, stride, padding)
    return _bounded(x, AvgPool2d.apply(x, window=window), window)


def max_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Max pooling, ``x: [N, C, H, W]``; padding is ``-inf``; ``stride`` defaults to ``kernel_size``."""
    return MaxPool2d.apply(x, window=_window("max_pool2d", x, kernel_size, stride, padding))


def adaptive_avg_pool2d(x, output_size) -> Tensor:
    """Average pooling to ``output_size`` (int or pair), which must divide ``H`` and ``W``.

    ``output_size=1`` is global average pooling (``[N, C, 1, 1]``). Sizes that do not
    divide the input would need overlapping, unequal windows; they are refused.
    """
    op = "adaptive_avg_pool2d"
    xs = shape_of(op, "x", x)
    check_ndim(op, "x", xs, (4,), "[N, C, H, W]")
    oh, ow = int_pair(op, "output_size", output_size, 1)
    height, width = xs[2], xs[3]
    if height % oh or width % ow:
        raise ValueError(f"{op}: output_size={(oh, ow)} must divide the input size {(height, width)}; "
                         f"only equal, non-overlapping windows are supported")
    kh, kw = height // oh, width // ow
    window = (kh, kw, kh, kw, 0, 0)
    return _bounded(x, AvgPool2d.apply(x, window=window), window)


def _bounded(x, y: Tensor, window) -> Tensor:
    """``y``, the average pooling of ``x``, recorded finite when ``x`` was (:func:`._args.mark_finite`).

    Each output is a sum of at most ``kH kW`` inputs of magnitude at most ``B`` (zero padding
    adds nothing), divided by ``kH kW``: its magnitude, and its partial sums', are at most
    ``kH kW B`` times one rounding, finite when ``2 kH kW B`` is.
    """
    bound = finite_bound(x.data if isinstance(x, Tensor) else x)
    if bound is not None:
        limit = window[0] * window[1] * bound
        if 2 * limit < float(np.finfo(y.dtype).max):
            mark_finite(y.data, limit)
    return y
