"""Plain-NumPy twin of :mod:`hdlif_ref.kernels.linear`: ``out = x @ weight^T + bias``.

``x: [M, F_in]``, ``weight: [F_out, F_in]`` (PyTorch layout), ``bias: [F_out]`` or ``None``.
Written with ``einsum`` (NumPy's own loops, not BLAS), an implementation independent
of the fast path.
"""
from __future__ import annotations

import numpy as np


def linear_forward(x, weight, bias):
    """``out[m, o] = sum_i x[m, i] * weight[o, i] + bias[o]``, ``out: [M, F_out]``."""
    out = np.einsum("mi,oi->mo", x, weight)
    if bias is not None:
        out = out + bias[None, :]
    return out.astype(x.dtype, copy=False)


def linear_backward(grad_out, x, weight, need_x, need_weight, need_bias):
    """``gx = g @ weight``, ``gw = g^T @ x``, ``gb = sum_m g``; ``None`` where not needed."""
    gx = np.einsum("mo,oi->mi", grad_out, weight) if need_x else None
    gw = np.einsum("mo,mi->oi", grad_out, x) if need_weight else None
    gb = grad_out.sum(axis=0, dtype=np.float64).astype(x.dtype) if need_bias else None
    return gx, gw, gb
