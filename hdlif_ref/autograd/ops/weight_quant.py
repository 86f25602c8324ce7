"""Compressed synapses: binary (SPEC E11) and ternary (SPEC E12) weights, straight-through.

Forward: the quantized weight ``a_c * code`` from :mod:`hdlif_ref.kernels.weight_codes`.
Backward (DC): binary ``dL/dw = dL/dw_b * 1[|w| <= 1]``; ternary ``dL/dw = dL/dw_t``;
no gradient through the scale ``a_c``.
"""
from __future__ import annotations

import numpy as np

from ...kernels.weight_codes import apply_scale, binary_codes, ternary_codes
from ..function import Function
from ..tensor import Tensor

WEIGHT_MODES = ("fp32", "binary", "ternary")


class BinarizeWeight(Function):
    name = "binarize_weight"

    @staticmethod
    def forward(ctx, w):
        codes, a = binary_codes(w)
        ctx.save_for_backward(w)
        return apply_scale(codes, a, w.dtype)

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return g * (np.abs(w) <= 1)


class TernarizeWeight(Function):
    name = "ternarize_weight"

    @staticmethod
    def forward(ctx, w):
        codes, a = ternary_codes(w)
        return apply_scale(codes, a, w.dtype)

    @staticmethod
    def backward(ctx, g):
        return g


def quantize_weight(w: Tensor, mode: str) -> Tensor:
    """The weight a synapse uses: ``w`` itself (``"fp32"``), E11 (``"binary"``) or E12 (``"ternary"``)."""
    if mode == "fp32":
        return w
    if mode == "binary":
        return BinarizeWeight.apply(w)
    if mode == "ternary":
        return TernarizeWeight.apply(w)
    raise ValueError(f"weight_mode={mode!r}; allowed: {', '.join(WEIGHT_MODES)}")
