"""Compressed synapses: binary (SPEC E11) and ternary (SPEC E12) weights, straight-through.

Forward: the quantized weight ``a_c * code`` from :mod:`hdlif_ref.kernels.weight_codes`.
Backward (DC): binary ``dL/dw = dL/dw_b * 1[|w| <= 1]``; ternary ``dL/dw = dL/dw_t``;
no gradient through the scale ``a_c``.

Inside a :func:`~hdlif_ref.autograd.batch_cache.batch_cache` block (one online batch, the
weights fixed) the quantized weight is computed once and handed to the op as ``quantized``
at every later step: the op and its backward are the same, only the forward's arithmetic
is skipped (docs/performance.md, "Once per batch").
"""
from __future__ import annotations

import numpy as np

from ...kernels.weight_codes import apply_scale, binary_codes, ternary_codes
from ..batch_cache import active_cache
from ..function import Function
from ..tensor import Tensor

WEIGHT_MODES = ("fp32", "binary", "ternary")


def binarize(w: np.ndarray) -> np.ndarray:
    """SPEC E11 forward: ``a_c * sign(w)`` as an array of ``w``'s dtype."""
    codes, a = binary_codes(w)
    return apply_scale(codes, a, w.dtype)


def ternarize(w: np.ndarray) -> np.ndarray:
    """SPEC E12 forward: ``a_c * sign(w) * 1[|w| > delta_c]`` as an array of ``w``'s dtype."""
    codes, a = ternary_codes(w)
    return apply_scale(codes, a, w.dtype)


class BinarizeWeight(Function):
    name = "binarize_weight"

    @staticmethod
    def forward(ctx, w, quantized=None):
        ctx.save_for_backward(w)
        return binarize(w) if quantized is None else quantized

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return g * (np.abs(w) <= 1)


class TernarizeWeight(Function):
    name = "ternarize_weight"

    @staticmethod
    def forward(ctx, w, quantized=None):
        return ternarize(w) if quantized is None else quantized

    @staticmethod
    def backward(ctx, g):
        return g


_QUANTIZERS = {"binary": BinarizeWeight, "ternary": TernarizeWeight}


def quantize_weight(w: Tensor, mode: str) -> Tensor:
    """The weight a synapse uses: ``w`` itself (``"fp32"``), E11 (``"binary"``) or E12 (``"ternary"``)."""
    if mode == "fp32":
        return w
    if mode in _QUANTIZERS:
        op = _QUANTIZERS[mode]
        cache = active_cache()
        if cache is not None and isinstance(w, Tensor):
            return op.apply(w, quantized=cache.weight(w, mode, binarize if mode == "binary" else ternarize))
        return op.apply(w)
    raise ValueError(f"weight_mode={mode!r}; allowed: {', '.join(WEIGHT_MODES)}")
