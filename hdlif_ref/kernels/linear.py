"""Fully connected layer ``out = x @ weight^T + bias``: BLAS GEMMs on the arrays as laid out.

``x: [M, F_in]`` and ``weight: [F_out, F_in]`` are C-contiguous; the GEMM reads
``weight`` with a transpose flag, so nothing is copied. The bias is added in place.
Every FLOP is in a GEMM, run by SciPy's BLAS on one thread (the thread policy of
docs/performance.md): the layers here are small, and NumPy's multi-threaded BLAS
on a shared 2-core machine made a ``[256, 256] @ [256, 10]`` take 8 ms instead of
0.03 ms and slowed the kernels after it. The plain-NumPy twin
(:mod:`hdlif_ref.kernels.reference.linear`) uses ``einsum`` instead.
"""
from __future__ import annotations

import numpy as np

from ._backend import dispatch
from ._blas import blas_threads_for_kernels, gemm, gemm_for
from .reference import linear as _reference


def _matmul(a, b, trans_a, trans_b, rows, cols):
    """``op(a) @ op(b)`` into a new ``[rows, cols]`` array, single-threaded BLAS."""
    out = np.empty((rows, cols), dtype=a.dtype)
    with blas_threads_for_kernels():
        gemm(gemm_for(a.dtype), trans_a, trans_b, np.ascontiguousarray(a), np.ascontiguousarray(b), 0.0, out)
    return out


def _linear_forward_fast(x, weight, bias):
    out = _matmul(x, weight, False, True, x.shape[0], weight.shape[0])
    if bias is not None:
        out += bias
    return out


def _linear_backward_fast(grad_out, x, weight, need_x, need_weight, need_bias):
    gx = _matmul(grad_out, weight, False, False, grad_out.shape[0], weight.shape[1]) if need_x else None
    gw = _matmul(grad_out, x, True, False, grad_out.shape[1], x.shape[1]) if need_weight else None
    gb = grad_out.sum(axis=0, dtype=np.float64).astype(x.dtype) if need_bias else None
    return gx, gw, gb


linear_forward = dispatch(_linear_forward_fast, _reference.linear_forward)
linear_backward = dispatch(_linear_backward_fast, _reference.linear_backward)
