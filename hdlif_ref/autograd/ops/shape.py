"""Ops that move elements without arithmetic: reshape, permute, broadcast_to,
getitem, concatenate, stack, pad. Formulas: docs/autograd.md."""
from __future__ import annotations

import numpy as np

from ..function import Function, unbroadcast


class Reshape(Function):
    name = "reshape"

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return np.reshape(x, shape)

    @staticmethod
    def backward(ctx, g):
        return np.reshape(g, ctx.in_shape)


class Permute(Function):
    """Axis permutation (``transpose`` and ``permute`` both use it)."""

    name = "permute"

    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, g):
        return np.transpose(g, np.argsort(ctx.axes))


class BroadcastTo(Function):
    name = "broadcast_to"

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(g, ctx.in_shape)


def is_basic_index(index) -> bool:
    """True for indices made of ints, slices, ``None`` and ``...`` (no element repeats)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


class GetItem(Function):
    """``x[index]``: basic (slices) or advanced (integer / boolean arrays) indexing.

    Backward scatters the gradient back; with integer arrays an element picked
    twice receives both contributions (``np.add.at``).
    """

    name = "getitem"

    @staticmethod
    def forward(ctx, x, index):
        ctx.meta = (x.shape, index)
        return x[index]

    @staticmethod
    def backward(ctx, g):
        shape, index = ctx.meta
        out = np.zeros(shape, dtype=g.dtype)
        if is_basic_index(index):
            out[index] = g
        else:
            np.add.at(out, index, g)
        return out


class Concatenate(Function):
    name = "concatenate"

    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.meta = (axis, np.cumsum([a.shape[axis] for a in arrays])[:-1])
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        axis, splits = ctx.meta
        return tuple(np.split(g, splits, axis=axis))


def _slices(x: np.ndarray, axis: int, n: int) -> tuple[np.ndarray, ...]:
    """The ``n`` slices of ``x`` along ``axis`` as views, not copies (like ``reshape``'s output);
    along axis 0 of a contiguous array each one is contiguous, so the kernels downstream copy nothing."""
    lead = (slice(None),) * axis
    return tuple(x[lead + (i,)] for i in range(n))


class Stack(Function):
    name = "stack"

    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.meta = (axis, len(arrays))
        return np.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        axis, n = ctx.meta
        return _slices(g, axis, n)


class Unstack(Function):
    """Split along ``axis`` into its slices (the inverse of ``stack``); one output per slice."""

    name = "unstack"

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return _slices(x, axis, x.shape[axis])

    @staticmethod
    def backward(ctx, grads):
        return np.stack(grads, axis=ctx.axis)


class Pad(Function):
    """Constant padding; ``pad_width`` is a tuple of ``(before, after)`` per axis."""

    name = "pad"

    @staticmethod
    def forward(ctx, x, pad_width, value):
        ctx.region = tuple(slice(before, before + n) for (before, _), n in zip(pad_width, x.shape))
        return np.pad(x, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        return g[ctx.region]
