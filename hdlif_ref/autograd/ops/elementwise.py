"""Element-wise ops with NumPy broadcasting. Formulas: docs/autograd.md.

Conventions at kinks (documented, as in PyTorch): ``abs'(0) = 0``,
``relu'(0) = 0`` (the neurons' ``H(0) = 1`` lives in their own ops, SPEC E3),
``clip`` passes the gradient where ``lo <= x <= hi`` (bounds included), and
``maximum``/``minimum`` split the gradient equally between tied inputs.
"""
from __future__ import annotations

import numpy as np

from ..function import Function, unbroadcast


class Add(Function):
    name = "add"

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(g, sa) if need_a else None, unbroadcast(g, sb) if need_b else None)


class Sub(Function):
    name = "sub"

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(g, sa) if need_a else None, unbroadcast(-g, sb) if need_b else None)


class Mul(Function):
    name = "mul"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(g * b, a.shape) if need_a else None,
                unbroadcast(g * a, b.shape) if need_b else None)


class Div(Function):
    name = "div"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = unbroadcast(g / b, a.shape) if need_a else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if need_b else None
        return ga, gb


class Neg(Function):
    name = "neg"

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return -g


class Pow(Function):
    """``x ** p`` for a scalar exponent ``p``: ``d/dx = p * x ** (p - 1)``."""

    name = "pow"

    @staticmethod
    def forward(ctx, x, exponent):
        ctx.save_for_backward(x)
        ctx.exponent = exponent
        return x ** exponent

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        p = ctx.exponent
        if p == 0:
            return np.zeros_like(x)
        return g * (p * x ** (p - 1))


class Exp(Function):
    name = "exp"

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class Log(Function):
    name = "log"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / x


class Sqrt(Function):
    name = "sqrt"

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g / (2 * y)


class Abs(Function):
    name = "abs"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * np.sign(x)


class Relu(Function):
    name = "relu"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0)


class Sigmoid(Function):
    name = "sigmoid"

    @staticmethod
    def forward(ctx, x):
        # exp of a non-positive number only: no overflow for large |x|
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        d = np.multiply(y, y, out=np.empty_like(y))  # one temporary, updated in place: g * (y - y^2)
        np.subtract(y, d, out=d)
        d *= g
        return d


class Tanh(Function):
    name = "tanh"

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        d = np.multiply(y, y, out=np.empty_like(y))  # one temporary, updated in place: g * (1 - y^2)
        np.subtract(1, d, out=d)
        d *= g
        return d


def _tie_split(g, a, b, a_wins):
    """Gradients of max/min: the winner takes ``g``, ties split it equally."""
    tie = a == b
    wa = np.where(tie, 0.5, a_wins).astype(g.dtype, copy=False)
    return g * wa, g * (1 - wa)


class Maximum(Function):
    name = "maximum"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga, gb = _tie_split(g, a, b, a > b)
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


class Minimum(Function):
    name = "minimum"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga, gb = _tie_split(g, a, b, a < b)
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


class Where(Function):
    """``where(cond, a, b)``; ``cond`` is a boolean array, not differentiated."""

    name = "where"

    @staticmethod
    def forward(ctx, a, b, cond):
        ctx.cond = cond
        ctx.shapes = (a.shape, b.shape)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        zero = np.zeros((), dtype=g.dtype)
        return unbroadcast(np.where(ctx.cond, g, zero), sa), unbroadcast(np.where(ctx.cond, zero, g), sb)


class Clip(Function):
    """``clip(x, lo, hi)`` with scalar bounds (``None``: unbounded on that side)."""

    name = "clip"

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.bounds = (lo, hi)
        return np.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        inside = np.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        return g * inside


class AsType(Function):
    """Cast between float32 and float64; the gradient is cast back."""

    name = "astype"

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.in_dtype)
