"""Reductions over axes: sum, mean, max, var. Formulas: docs/autograd.md.

``axis`` is normalized by the public wrappers to a sorted tuple of non-negative
axes; the backward re-inserts the reduced axes (when ``keepdims`` was false) and
broadcasts the gradient back to the input's shape.
"""
from __future__ import annotations

import math

import numpy as np

from ..function import Function


def _expand(g: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Give ``g`` back the reduced axes (size 1) so it broadcasts against the input."""
    return g if keepdims else np.expand_dims(g, axes)


class Sum(Function):
    name = "sum"

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.meta = (x.shape, axes, keepdims)
        return np.sum(x, axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        shape, axes, keepdims = ctx.meta
        return np.broadcast_to(_expand(g, axes, keepdims), shape)


class Mean(Function):
    name = "mean"

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.meta = (x.shape, axes, keepdims)
        return np.mean(x, axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        shape, axes, keepdims = ctx.meta
        count = math.prod([shape[a] for a in axes]) if axes else 1
        return np.broadcast_to(_expand(g, axes, keepdims) / count, shape)


class Max(Function):
    """Maximum over axes; tied maxima share the gradient equally."""

    name = "max"

    @staticmethod
    def forward(ctx, x, axes, keepdims):
        m = np.max(x, axis=axes, keepdims=True)
        ctx.save_for_backward(x, m)
        ctx.meta = (axes, keepdims)
        return m if keepdims else np.squeeze(m, axis=axes)

    @staticmethod
    def backward(ctx, g):
        x, m = ctx.saved_tensors
        axes, keepdims = ctx.meta
        winners = x == m
        count = winners.sum(axis=axes, keepdims=True).astype(g.dtype)
        return winners * (_expand(g, axes, keepdims) / count)


class Var(Function):
    """Variance ``sum((x - mean)^2) / (n - ddof)``; ``d/dx = 2 (x - mean) / (n - ddof)``."""

    name = "var"

    @staticmethod
    def forward(ctx, x, axes, keepdims, ddof):
        mu = np.mean(x, axis=axes, keepdims=True)
        centered = x - mu
        n = math.prod([x.shape[a] for a in axes]) if axes else 1
        ctx.save_for_backward(centered)
        ctx.meta = (axes, keepdims, n - ddof)
        return np.sum(centered * centered, axis=axes, keepdims=keepdims) / (n - ddof)

    @staticmethod
    def backward(ctx, g):
        (centered,) = ctx.saved_tensors
        axes, keepdims, dof = ctx.meta
        return _expand(g, axes, keepdims) * (2 / dof) * centered
