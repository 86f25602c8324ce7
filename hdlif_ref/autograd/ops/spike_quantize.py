"""The spike quantizer op (SPEC E13): ``Q(x; s, n)`` with the LSQ-style backward (a DC).

    Q(x; s, n) = s * clip(round(x / s), 0, 2^n - 1)        (round half to even)

The backward is a definition, not the derivative of ``Q`` (which is 0 almost
everywhere in ``x``): with ``v = x / s``, ``dQ/dx = 1`` and ``dQ/ds = round(v) - v``
inside ``0 <= v <= qmax``, ``dQ/dx = 0`` and ``dQ/ds = qmax`` above, both 0 below.
Formulas and kernels: :mod:`hdlif_ref.kernels.spike_quantize`.
"""
from __future__ import annotations

import numpy as np

from ...kernels import spike_quantize as _kernels
from ..function import Function


class SpikeQuantize(Function):
    """``q = spike_quantize(x, step, bits=n)``: ``x`` any shape, ``step`` a scalar (shape ``()``)."""

    name = "spike_quantize"

    @staticmethod
    def forward(ctx, x, step, bits=4):
        dtype = np.result_type(x.dtype, step.dtype)
        x = np.ascontiguousarray(x, dtype=dtype)
        s = dtype.type(step.reshape(()))
        qmax = dtype.type(2 ** bits - 1)
        ctx.save_for_backward(x)
        ctx.s, ctx.qmax, ctx.step_shape = s, qmax, step.shape
        return _kernels.spike_quantize_forward(x, s, qmax)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        gx, gstep = _kernels.spike_quantize_backward(np.ascontiguousarray(g, dtype=x.dtype), x, ctx.s, ctx.qmax)
        return gx, np.asarray(gstep, dtype=x.dtype).reshape(ctx.step_shape)
