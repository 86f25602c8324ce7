"""Fully connected layer ``out = x @ weight^T + bias``: BLAS GEMMs on the arrays as laid out.

``x: [M, F_in]`` and ``weight: [F_out, F_in]`` are C-contiguous; ``weight.T`` is a
transposed view that ``np.matmul`` hands to BLAS with a transpose flag, so nothing
is copied. The bias is added in place. There is no Numba code here on purpose:
every FLOP is in a GEMM, and BLAS is the fastest way to run one (a Numba loop
would only add a pass over the output). The plain-NumPy twin
(:mod:`hdlif_ref.kernels.reference.linear`) uses ``einsum`` instead.
"""
from __future__ import annotations

import numpy as np

from ._backend import dispatch
from .reference import linear as _reference


def _linear_forward_fast(x, weight, bias):
    out = np.matmul(x, weight.T)
    if bias is not None:
        out += bias
    return out


def _linear_backward_fast(grad_out, x, weight, need_x, need_weight, need_bias):
    gx = np.matmul(grad_out, weight) if need_x else None
    gw = np.matmul(grad_out.T, x) if need_weight else None
    gb = grad_out.sum(axis=0, dtype=np.float64).astype(x.dtype) if need_bias else None
    return gx, gw, gb


linear_forward = dispatch(_linear_forward_fast, _reference.linear_forward)
linear_backward = dispatch(_linear_backward_fast, _reference.linear_backward)
