"""Fully connected layer: ``linear(x, weight, bias) = x @ weight^T + bias`` (PyTorch's layout).

Kernels: :mod:`hdlif_ref.kernels.linear` (BLAS GEMMs; NumPy ``einsum`` twin).
"""
from __future__ import annotations

import math

import numpy as np

from ...kernels import linear as _kernels
from ..function import Function
from ..tensor import Tensor
from ._args import as_c, check_ndim, common_dtype, shape_of


class Linear(Function):
    """``out[..., o] = sum_i x[..., i] * weight[o, i] + bias[o]``."""

    name = "linear"

    @staticmethod
    def forward(ctx, x, weight, *bias):
        dtype = common_dtype(x, weight, *bias)
        shape = x.shape
        x2 = as_c(x, dtype).reshape(math.prod(shape[:-1]), shape[-1])
        weight = as_c(weight, dtype)
        b = as_c(bias[0], dtype) if bias else None
        ctx.save_for_backward(x2, weight)
        ctx.meta = (shape, bool(bias))
        out = _kernels.linear_forward(x2, weight, b)
        return out.reshape(shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, g):
        x2, weight = ctx.saved_tensors
        shape, has_bias = ctx.meta
        needs = ctx.needs_input_grad
        g2 = as_c(g, x2.dtype).reshape(x2.shape[0], weight.shape[0])
        gx, gw, gb = _kernels.linear_backward(g2, x2, weight, needs[0], needs[1], has_bias and needs[2])
        gx = gx.reshape(shape) if gx is not None else None
        return (gx, gw, gb) if has_bias else (gx, gw)


def linear(x, weight, bias=None) -> Tensor:
    """``x @ weight^T + bias`` for ``x: [..., F_in]``, ``weight: [F_out, F_in]``, ``bias: [F_out]`` or None.

    Returns ``[..., F_out]``; float32 and float64 (mixed inputs compute in float64).
    """
    op = "linear"
    xs, ws = shape_of(op, "x", x), shape_of(op, "weight", weight)
    if len(xs) < 1:
        raise ValueError(f"{op}: x must have at least 1 dim [..., F_in], got shape {xs}")
    check_ndim(op, "weight", ws, (2,), "[F_out, F_in]")
    if xs[-1] != ws[1]:
        raise ValueError(f"{op}: x has {xs[-1]} input features (shape {xs}) but weight {ws} expects "
                         f"F_in = {ws[1]}")
    args = (x, weight)
    if bias is not None:
        bs = shape_of(op, "bias", bias)
        if bs != (ws[0],):
            raise ValueError(f"{op}: bias has shape {bs}; expected ({ws[0]},) (one per output feature)")
        args = (x, weight, bias)
    return Linear.apply(*args)
