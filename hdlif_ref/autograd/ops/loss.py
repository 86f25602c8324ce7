"""log-softmax and cross-entropy (SPEC E16, E17 use ``CE(o_t, y)``). Formulas: docs/autograd.md."""
from __future__ import annotations

import numpy as np

from ..function import Function


def log_softmax_array(x: np.ndarray, axis: int) -> np.ndarray:
    """Numerically stable ``x - logsumexp(x)`` along ``axis`` (max subtracted first)."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


class LogSoftmax(Function):
    """``y = x - logsumexp(x)``; ``dx = g - softmax(x) * sum(g)`` along the axis."""

    name = "log_softmax"

    @staticmethod
    def forward(ctx, x, axis):
        y = log_softmax_array(x, axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g - np.exp(y) * np.sum(g, axis=ctx.axis, keepdims=True)


class CrossEntropy(Function):
    """Cross-entropy of logits ``[N, C]`` against integer labels ``[N]``.

    With label smoothing ``eps`` the target is ``q = (1 - eps) * onehot(y) + eps / C``
    and ``loss_n = -sum_c q_c * log_softmax(x_n)_c``; ``d loss_n / d x_n = softmax(x_n) - q``.
    Reduction ``mean`` divides by ``N``.
    """

    name = "cross_entropy"

    @staticmethod
    def forward(ctx, logits, labels, label_smoothing, reduction):
        n, c = logits.shape
        logp = log_softmax_array(logits, axis=1)
        target = np.full((n, c), label_smoothing / c, dtype=logits.dtype)
        target[np.arange(n), labels] += 1 - label_smoothing
        losses = -np.sum(target * logp, axis=1)
        ctx.save_for_backward(logp, target)
        ctx.reduction = reduction
        if reduction == "mean":
            return np.mean(losses)
        if reduction == "sum":
            return np.sum(losses)
        return losses

    @staticmethod
    def backward(ctx, g):
        logp, target = ctx.saved_tensors
        n = logp.shape[0]
        if ctx.reduction == "mean":
            per_row = np.full((n, 1), g / n, dtype=logp.dtype)
        elif ctx.reduction == "sum":
            per_row = np.full((n, 1), g, dtype=logp.dtype)
        else:
            per_row = g[:, None]
        return (np.exp(logp) - target) * per_row
