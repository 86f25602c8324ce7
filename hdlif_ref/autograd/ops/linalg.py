"""Matrix product with NumPy ``matmul`` semantics for operands of ndim >= 2.

Batch axes broadcast; the backward reduces them with ``unbroadcast``:
``dA = G @ B^T``, ``dB = A^T @ G`` (``^T`` swaps the last two axes).
1-D operands are promoted to matrices by the public wrapper, as NumPy does.
"""
from __future__ import annotations

import numpy as np

from ..function import Function, unbroadcast


class MatMul(Function):
    name = "matmul"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = unbroadcast(np.matmul(g, np.swapaxes(b, -1, -2)), a.shape) if need_a else None
        gb = unbroadcast(np.matmul(np.swapaxes(a, -1, -2), g), b.shape) if need_b else None
        return ga, gb
