"""The public op functions: check arguments, then call one ``Function.apply``.

Each function here is one row of the op table in ``docs/autograd.md``. Arguments
that are not differentiated (axes, shapes, indices, labels) are checked here, so
a mistake raises ``ValueError``/``TypeError`` naming the op, the argument and
what is allowed, instead of failing deep inside NumPy.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

from ..tensor import Tensor
from ._args import finite_bound, mark_finite
from .elementwise import (Abs, Add, AsType, Clip, Div, Exp, Log, Maximum, Minimum, Mul, Neg,
                          Pow, Relu, Sigmoid, Sqrt, Sub, Tanh, Where)
from .linalg import MatMul
from .loss import CrossEntropy, LogSoftmax
from .reduce import Max, Mean, Sum, Var
from .shape import BroadcastTo, Concatenate, GetItem, Pad, Permute, Reshape, Stack, Unstack

REDUCTIONS = ("mean", "sum", "none")


def _data(x: Any) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, (Tensor, np.ndarray)) else np.shape(x)


def normalize_axes(op: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """``None`` -> all axes; int or tuple -> sorted non-negative tuple, checked."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis={axis!r} is out of range for a tensor with {ndim} dims "
                             f"(allowed {-ndim}..{ndim - 1})")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis={axis!r} repeats an axis")
    return tuple(sorted(out))


def _normalize_axis(op: str, axis: Any, ndim: int) -> int:
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis={axis!r} is out of range for {ndim} dims (allowed {-ndim}..{ndim - 1})")
    return int(axis) % ndim


# ------------------------------------------------------------------ element-wise
def add(a, b) -> Tensor: return Add.apply(a, b)
def sub(a, b) -> Tensor: return Sub.apply(a, b)
def mul(a, b) -> Tensor: return Mul.apply(a, b)
def div(a, b) -> Tensor: return Div.apply(a, b)
def neg(x) -> Tensor: return Neg.apply(x)
def exp(x) -> Tensor: return Exp.apply(x)
def log(x) -> Tensor: return Log.apply(x)
def sqrt(x) -> Tensor: return Sqrt.apply(x)
def abs(x) -> Tensor: return Abs.apply(x)  # noqa: A001 - the op's name
def relu(x) -> Tensor: return Relu.apply(x)
def sigmoid(x) -> Tensor: return Sigmoid.apply(x)
def tanh(x) -> Tensor: return Tanh.apply(x)
def maximum(a, b) -> Tensor: return Maximum.apply(a, b)
def minimum(a, b) -> Tensor: return Minimum.apply(a, b)


def pow(x, exponent) -> Tensor:  # noqa: A001 - the op's name
    """``x ** exponent`` for a real scalar exponent."""
    if isinstance(exponent, (bool, np.bool_)) or not isinstance(exponent, numbers.Real):
        raise TypeError(f"pow: exponent must be a real Python number, got {type(exponent).__name__} "
                        f"(tensor exponents are not supported; use exp(b * log(a)))")
    return Pow.apply(x, exponent=exponent)


def where(cond, a, b) -> Tensor:
    """``a`` where ``cond`` is True, else ``b``; ``cond`` is a boolean array (not differentiated)."""
    cond = np.asarray(cond.data if isinstance(cond, Tensor) else cond)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: cond has dtype {cond.dtype}; it must be a boolean array (e.g. x > 0)")
    return Where.apply(a, b, cond=cond)


def clip(x, lo=None, hi=None) -> Tensor:
    """Clamp to ``[lo, hi]`` (scalars; ``None`` leaves that side open)."""
    for name, v in (("lo", lo), ("hi", hi)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
            raise TypeError(f"clip: {name}={v!r} must be a real number or None")
    if lo is None and hi is None:
        raise ValueError("clip: lo and hi are both None; give at least one bound")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"clip: lo={lo} is greater than hi={hi}")
    return Clip.apply(x, lo=lo, hi=hi)


def astype(x, dtype) -> Tensor:
    """Cast to float32 or float64 (differentiable: the gradient is cast back)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"astype: dtype={dtype} is not allowed; use float32 or float64")
    return AsType.apply(x, dtype=dtype)


# ------------------------------------------------------------------ linear algebra
def matmul(a, b) -> Tensor:
    """Matrix product with NumPy ``matmul`` rules (batch axes broadcast; 1-D operands promoted)."""
    sa, sb = _shape(a), _shape(b)
    if len(sa) == 0 or len(sb) == 0:
        raise ValueError(f"matmul: operands must have at least 1 dim, got shapes {sa} and {sb}")
    if sa[-1] != (sb[0] if len(sb) == 1 else sb[-2]):
        raise ValueError(f"matmul: shapes {sa} and {sb} do not align (last dim of the first must "
                         f"equal the second-to-last of the second)")
    if len(sa) == 1 and len(sb) == 1:  # vector . vector -> 0-d
        return reshape(MatMul.apply(reshape(a, (1, sa[0])), reshape(b, (sb[0], 1))), ())
    if len(sa) == 1:
        return reshape(matmul(reshape(a, (1, sa[0])), b), sb[:-2] + sb[-1:])
    if len(sb) == 1:
        return reshape(matmul(a, reshape(b, (sb[0], 1))), sa[:-1])
    return MatMul.apply(a, b)


# ------------------------------------------------------------------ reductions
def sum(x, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - the op's name
    return Sum.apply(x, axes=normalize_axes("sum", axis, len(_shape(x))), keepdims=bool(keepdims))


def mean(x, axis=None, keepdims=False) -> Tensor:
    return Mean.apply(x, axes=normalize_axes("mean", axis, len(_shape(x))), keepdims=bool(keepdims))


def max(x, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - the op's name
    axes = normalize_axes("max", axis, len(_shape(x)))
    if any(_shape(x)[a] == 0 for a in axes):
        raise ValueError(f"max: cannot reduce over an empty axis (shape {_shape(x)}, axis={axis!r})")
    return Max.apply(x, axes=axes, keepdims=bool(keepdims))


def var(x, axis=None, keepdims=False, ddof=0) -> Tensor:
    """Variance with ``ddof`` (0: biased, as NumPy's default and batch norm's batch statistic)."""
    axes = normalize_axes("var", axis, len(_shape(x)))
    n = math.prod([_shape(x)[a] for a in axes]) if axes else 1
    if not isinstance(ddof, (int, np.integer)) or not 0 <= ddof < n:
        raise ValueError(f"var: ddof={ddof!r} must be an integer in [0, {n}) for {n} reduced elements")
    return Var.apply(x, axes=axes, keepdims=bool(keepdims), ddof=int(ddof))


# ------------------------------------------------------------------ shape
def reshape(x, shape) -> Tensor:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    src = _shape(x)
    size = math.prod(src)
    known = math.prod([s for s in shape if s != -1])
    free = shape.count(-1)
    fits = (free == 0 and known == size) or (free == 1 and known > 0 and size % known == 0)
    if not fits or any(s < -1 for s in shape):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {src} ({size} elements) "
                         f"into shape {shape} (at most one -1 allowed)")
    y = Reshape.apply(x, shape=shape)
    bound = finite_bound(x.data if isinstance(x, Tensor) else x)
    if bound is not None:  # the same values: still finite by construction (flattened spikes, say)
        mark_finite(y.data, bound)
    return y


def permute(x, axes) -> Tensor:
    ndim = len(_shape(x))
    given = tuple(axes)
    if any(not isinstance(a, (int, np.integer)) or not -ndim <= a < ndim for a in given):
        raise ValueError(f"permute: axes={given!r} has an axis out of range for {ndim} dims "
                         f"(allowed {-ndim}..{ndim - 1})")
    axes = tuple(int(a) % ndim for a in given)
    if sorted(axes) != list(range(ndim)):
        raise ValueError(f"permute: axes={given!r} is not a permutation of 0..{ndim - 1}")
    return Permute.apply(x, axes=axes)


def transpose(x, axes=None) -> Tensor:
    """Reverse the axes (``axes=None``) or permute them as given."""
    ndim = len(_shape(x))
    return permute(x, tuple(range(ndim))[::-1] if axes is None else axes)


def broadcast_to(x, shape) -> Tensor:
    shape = tuple(int(s) for s in shape)
    try:
        ok = np.broadcast_shapes(_shape(x), shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"broadcast_to: shape {_shape(x)} cannot broadcast to {shape}")
    return BroadcastTo.apply(x, shape=shape)


def getitem(x, index) -> Tensor:
    """``x[index]`` with slices, ints, ``None``, ``...``, integer or boolean arrays."""
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, Tensor) for p in parts):
        raise TypeError("getitem: index with a Tensor is not supported; index with an integer or "
                        "boolean ndarray (e.g. t.data > 0)")
    parts = tuple(np.asarray(p) if isinstance(p, list) else p for p in parts)
    index = parts if isinstance(index, tuple) else parts[0]
    return GetItem.apply(x, index=index)


def concatenate(tensors: Sequence, axis: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    ndim = len(_shape(tensors[0]))
    axis = _normalize_axis("concatenate", axis, ndim)
    for i, t in enumerate(tensors):
        s = _shape(t)
        ref = _shape(tensors[0])
        if len(s) != ndim or s[:axis] + s[axis + 1:] != ref[:axis] + ref[axis + 1:]:
            raise ValueError(f"concatenate: tensor {i} has shape {s}, incompatible with {ref} "
                             f"along axis {axis}")
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors: Sequence, axis: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    ref = _shape(tensors[0])
    for i, t in enumerate(tensors):
        if _shape(t) != ref:
            raise ValueError(f"stack: tensor {i} has shape {_shape(t)}, tensor 0 has {ref}")
    axis = _normalize_axis("stack", axis, len(ref) + 1)
    return Stack.apply(*tensors, axis=axis)


def unstack(x, axis: int = 0) -> tuple[Tensor, ...]:
    """The slices of ``x`` along ``axis``, as a tuple (one graph node; inverse of ``stack``)."""
    shape = _shape(x)
    axis = _normalize_axis("unstack", axis, len(shape))
    if shape[axis] == 0:
        raise ValueError(f"unstack: axis {axis} of shape {shape} is empty")
    out = Unstack.apply(x, axis=axis)
    return out if isinstance(out, tuple) else (out,)


def pad(x, pad_width, value: float = 0.0) -> Tensor:
    """Constant padding; ``pad_width`` as in ``numpy.pad`` (int, pair, or one pair per axis)."""
    ndim = len(_shape(x))
    try:
        widths = np.broadcast_to(np.asarray(pad_width), (ndim, 2))
    except ValueError:
        raise ValueError(f"pad: pad_width={pad_width!r} must be an int, a (before, after) pair or "
                         f"one pair per axis ({ndim} axes)") from None
    if widths.dtype.kind not in "iu" or (widths < 0).any():
        raise ValueError(f"pad: pad_width={pad_width!r} must hold non-negative integers")
    widths = tuple((int(b), int(a)) for b, a in widths)
    return Pad.apply(x, pad_width=widths, value=value)


# ------------------------------------------------------------------ losses
def log_softmax(x, axis: int = -1) -> Tensor:
    return LogSoftmax.apply(x, axis=_normalize_axis("log_softmax", axis, len(_shape(x))))


def cross_entropy(logits, labels, label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    """Cross-entropy of ``logits [N, C]`` against integer ``labels [N]`` in ``[0, C)``.

    ``label_smoothing`` in ``[0, 1]`` mixes the one-hot target with the uniform one;
    ``reduction`` is ``"mean"`` (over ``N``), ``"sum"`` or ``"none"`` (shape ``[N]``).
    """
    shape = _shape(logits)
    if len(shape) != 2:
        raise ValueError(f"cross_entropy: logits must be [N, C], got shape {shape}")
    labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels have dtype {labels.dtype}; they must be integers")
    if labels.shape != shape[:1]:
        raise ValueError(f"cross_entropy: labels have shape {labels.shape}, logits {shape}: "
                         f"expected labels of shape ({shape[0]},)")
    if labels.size and (labels.min() < 0 or labels.max() >= shape[1]):
        bad = labels[(labels < 0) | (labels >= shape[1])][0]
        raise ValueError(f"cross_entropy: label {bad} is outside [0, {shape[1]}) ({shape[1]} classes)")
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing={label_smoothing!r} must be in [0, 1]")
    if reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction={reduction!r}; allowed: {', '.join(REDUCTIONS)}")
    return CrossEntropy.apply(logits, labels=labels, label_smoothing=float(label_smoothing),
                              reduction=reduction)


# ------------------------------------------------------------------ not differentiable
def lt(a, b) -> np.ndarray: return np.less(_data(a), _data(b))
def le(a, b) -> np.ndarray: return np.less_equal(_data(a), _data(b))
def gt(a, b) -> np.ndarray: return np.greater(_data(a), _data(b))
def ge(a, b) -> np.ndarray: return np.greater_equal(_data(a), _data(b))
def eq(a, b) -> np.ndarray: return np.equal(_data(a), _data(b))
def ne(a, b) -> np.ndarray: return np.not_equal(_data(a), _data(b))
def sign(x) -> np.ndarray: return np.sign(_data(x))
def argmax(x, axis=None) -> np.ndarray: return np.argmax(_data(x), axis=axis)
def argmin(x, axis=None) -> np.ndarray: return np.argmin(_data(x), axis=axis)
