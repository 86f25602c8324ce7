"""Argument checks shared by the layer ops (conv, pooling, batch norm, linear).

Each helper raises ``ValueError``/``TypeError`` that names the op, the argument,
the value and what is allowed, so a mistake never reaches a Numba kernel.
"""
from __future__ import annotations

import math
import numbers
import weakref

import numpy as np

from ...kernels.finite import count_nonfinite
from ..tensor import Tensor

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def shape_of(op: str, name: str, x) -> tuple[int, ...]:
    """Shape of a Tensor or float ndarray; anything else is a ``TypeError``."""
    if isinstance(x, Tensor):
        return x.shape
    if isinstance(x, np.ndarray):
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op}: {name} has dtype {x.dtype}; expected float32 or float64")
        return x.shape
    raise TypeError(f"{op}: {name} must be a Tensor or a float ndarray, got {type(x).__name__}")


class NonFiniteInputError(ValueError):
    """An op or layer was given NaN or Inf (:func:`check_finite`); ``op``, ``name``, ``count``, ``size`` say which."""

    def __init__(self, message: str, op: str, name: str, count: int, size: int):
        super().__init__(message)
        self.op, self.name, self.count, self.size = op, name, count, size


#: Arrays known to be finite because of how they were made (:func:`mark_finite`): ``id -> (weakref, bound)``.
_FINITE: dict[int, tuple[weakref.ref, float]] = {}


def mark_finite(data: np.ndarray, bound: float) -> None:
    """Record that every value of ``data`` is finite with ``|value| <= bound``, known from how it was made
    (quantized spikes: ``step * (2^n - 1)``; see the callers), and make ``data`` read-only so that it stays so,
    with the arrays it is a view of (the callers' arrays are new: nothing else writes into them).

    :func:`check_finite` then skips its pass over ``data``. The record holds for this array object
    only (not for other views of its memory) and ends with the array; an array found writeable again
    loses it for good. ``bound`` must be finite.
    """
    if not math.isfinite(bound):
        raise ValueError(f"mark_finite: bound={bound!r} must be finite")
    array = data
    while isinstance(array, np.ndarray):
        array.flags.writeable = False
        array = array.base
    key = id(data)
    _FINITE[key] = (weakref.ref(data, lambda _, key=key: _FINITE.pop(key, None)), float(bound))


def finite_bound(data) -> float | None:
    """The bound :func:`mark_finite` recorded for this very array, or ``None`` (unknown, or writeable again)."""
    key = id(data)
    entry = _FINITE.get(key)
    if entry is None or entry[0]() is not data:
        return None
    if data.flags.writeable:  # it may have changed: the record is gone, even if made read-only again
        _FINITE.pop(key, None)
        return None
    return entry[1]


def check_finite(op: str, name: str, x) -> None:
    """:class:`NonFiniteInputError` (a ``ValueError``) if ``x`` holds a NaN or an infinity, naming the first one.

    One pass per call (:func:`hdlif_ref.kernels.finite.count_nonfinite`), never inside a
    kernel's loop: a NaN fails every comparison with a threshold, so without this check a
    neuron would silently swallow it and emit no spike (docs/training.md, "Non-finite values").
    No pass over an array that is finite by construction (:func:`mark_finite`: the quantized
    spikes a neuron emits, their average pooling).
    """
    data = x.data if isinstance(x, Tensor) else x
    if data.dtype.kind != "f" or finite_bound(data) is not None or count_nonfinite(data) == 0:
        return
    bad = ~np.isfinite(data)
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    count = int(bad.sum())
    raise NonFiniteInputError(f"{op}: {name} holds {count} non-finite value(s) (NaN or Inf) of {data.size}, "
                              f"the first {float(data[first])} at index {first}; inputs must be finite",
                              op, name, count, int(data.size))


def check_ndim(op: str, name: str, shape: tuple[int, ...], allowed: tuple[int, ...], layout: str) -> None:
    if len(shape) not in allowed:
        dims = " or ".join(str(a) for a in allowed)
        unit = "dim" if allowed == (1,) else "dims"
        raise ValueError(f"{op}: {name} must have {dims} {unit} ({layout}), got shape {shape}")


def int_pair(op: str, name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each ``>= minimum``, as a pair."""
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and value[0] >= minimum and value[1] >= minimum:
        return value  # already a pair of Python ints (the layers store theirs so): nothing to convert
    if type(value) is int and value >= minimum:
        return value, value
    pair = (value, value) if isinstance(value, (numbers.Integral,)) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = None
    if (pair is None or len(pair) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in pair)
            or min(pair) < minimum):
        raise ValueError(f"{op}: {name}={value!r} must be an int or a pair of ints, each >= {minimum}")
    return int(pair[0]), int(pair[1])


def positive_int(op: str, name: str, value) -> int:
    if type(value) is int and value >= 1:
        return value
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)) or value < 1:
        raise ValueError(f"{op}: {name}={value!r} must be a positive int")
    return int(value)


def common_dtype(*arrays: np.ndarray) -> np.dtype:
    """float64 if any array is float64, else float32 (the autograd dtype policy)."""
    first = arrays[0].dtype
    for a in arrays[1:]:
        if a.dtype is not first:
            return np.result_type(*arrays)
    return first


def as_c(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` as a C-contiguous array of ``dtype`` (no copy when it already is one)."""
    return np.ascontiguousarray(x, dtype=dtype)
