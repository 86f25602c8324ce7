"""Convolutions: ``conv2d`` (NCHW, groups) and SECA's ``conv1d_channels`` (SPEC E14).

Both are cross-correlations, as PyTorch's ``conv2d``/``conv1d``. The arithmetic is in
:mod:`hdlif_ref.kernels.conv` and :mod:`hdlif_ref.kernels.channel_conv` (Numba, or their
NumPy twins under ``HDLIF_REF_BACKEND=numpy``); this module checks arguments and
links the kernels to the autodiff graph.
"""
from __future__ import annotations

from ...kernels import channel_conv as _channel_kernels
from ...kernels import conv as _conv_kernels
from ..function import Function
from ..tensor import Tensor
from ._args import as_c, check_ndim, common_dtype, int_pair, positive_int, shape_of


class Conv2d(Function):
    """``out[n, o] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * xpad[n, g*Cg + c, p*sh + i, q*sw + j]``."""

    name = "conv2d"

    @staticmethod
    def forward(ctx, x, weight, *bias, stride, padding, groups):
        dtype = common_dtype(x, weight, *bias)
        x, weight = as_c(x, dtype), as_c(weight, dtype)
        b = as_c(bias[0], dtype) if bias else None
        ctx.save_for_backward(x, weight)
        ctx.params = (stride, padding, groups, bool(bias))
        return _conv_kernels.conv2d_forward(x, weight, b, stride, padding, groups)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        stride, padding, groups, has_bias = ctx.params
        needs = ctx.needs_input_grad
        gx, gw, gb = _conv_kernels.conv2d_backward(
            as_c(g, x.dtype), x, weight, stride, padding, groups,
            needs[0], needs[1], has_bias and needs[2])
        return (gx, gw, gb) if has_bias else (gx, gw)


class Conv1dChannels(Function):
    """SPEC E14: ``out[n, c] = sum_k weight[k] * z[n, c + k - K//2]`` (zero padding, no bias)."""

    name = "conv1d_channels"

    @staticmethod
    def forward(ctx, z, weight):
        dtype = common_dtype(z, weight)
        z, weight = as_c(z, dtype), as_c(weight, dtype)
        ctx.save_for_backward(z, weight)
        return _channel_kernels.conv1d_channels_forward(z, weight)

    @staticmethod
    def backward(ctx, g):
        z, weight = ctx.saved_tensors
        need_z, need_w = ctx.needs_input_grad
        return _channel_kernels.conv1d_channels_backward(as_c(g, z.dtype), z, weight, need_z, need_w)


def conv2d(x, weight, bias=None, stride=1, padding=0, groups=1) -> Tensor:
    """2-D convolution (cross-correlation), NCHW, dilation 1.

    Parameters
    ----------
    x : Tensor ``[N, C_in, H, W]``
    weight : Tensor ``[C_out, C_in / groups, kH, kW]``
    bias : Tensor ``[C_out]`` or None
    stride : int or (int, int), >= 1
    padding : int or (int, int), >= 0 (zeros)
    groups : int dividing ``C_in`` and ``C_out`` (1: dense; ``C_in``: depthwise)

    Returns ``[N, C_out, Ho, Wo]`` with ``Ho = (H + 2 pH - kH) // sH + 1`` (likewise ``Wo``).
    float32 and float64; mixed inputs compute in float64.
    """
    op = "conv2d"
    xs, ws = shape_of(op, "x", x), shape_of(op, "weight", weight)
    check_ndim(op, "x", xs, (4,), "[N, C_in, H, W]")
    check_ndim(op, "weight", ws, (4,), "[C_out, C_in/groups, kH, kW]")
    stride = int_pair(op, "stride", stride, 1)
    padding = int_pair(op, "padding", padding, 0)
    groups = positive_int(op, "groups", groups)
    n, c_in, height, width = xs
    c_out, cg, kh, kw = ws
    if c_in % groups or c_out % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels ({c_in}) and the "
                         f"output channels ({c_out})")
    if cg * groups != c_in:
        raise ValueError(f"{op}: channel mismatch: x has {c_in} channels, weight {ws} expects "
                         f"C_in/groups = {cg} per group x {groups} groups = {cg * groups}")
    if kh < 1 or kw < 1:
        raise ValueError(f"{op}: weight has an empty kernel {kh}x{kw} (shape {ws})")
    if kh > height + 2 * padding[0] or kw > width + 2 * padding[1]:
        raise ValueError(f"{op}: kernel {kh}x{kw} is larger than the padded input "
                         f"{height + 2 * padding[0]}x{width + 2 * padding[1]} (x {xs}, padding {padding})")
    args = (x, weight)
    if bias is not None:
        bs = shape_of(op, "bias", bias)
        if bs != (c_out,):
            raise ValueError(f"{op}: bias has shape {bs}; expected ({c_out},) (one per output channel)")
        args = (x, weight, bias)
    return Conv2d.apply(*args, stride=stride, padding=padding, groups=groups)


def conv1d_channels(z, weight) -> Tensor:
    """SECA's 1-D convolution across channels (SPEC E14): ``z: [N, C]``, ``weight: [K]``, K odd.

    ``out[n, c] = sum_k weight[k] * z[n, c + k - K//2]``, zero padding ``K//2`` on each
    side, no bias (cross-correlation, as PyTorch's ``conv1d``). Returns ``[N, C]``.
    """
    op = "conv1d_channels"
    zs, ws = shape_of(op, "z", z), shape_of(op, "weight", weight)
    check_ndim(op, "z", zs, (2,), "[N, C]")
    check_ndim(op, "weight", ws, (1,), "[K]")
    if ws[0] % 2 == 0:
        raise ValueError(f"{op}: weight has K={ws[0]} taps; K must be odd (zero padding K//2 keeps C)")
    return Conv1dChannels.apply(z, weight)
