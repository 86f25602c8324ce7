"""Argument checks shared by the neuron functions: clear errors naming the argument, value and rule."""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..autograd import Tensor
from ..autograd.ops._args import check_finite  # noqa: F401 - re-exported for the neuron modules

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
GRADIENTS = ("stbp", "online")
RESETS = ("hard", "soft")
MAX_SPIKE_BITS = 16


def as_float(op: str, name: str, x: Any) -> Tensor | np.ndarray:
    """A Tensor or float32/float64 ndarray, unchanged; anything else is a ``TypeError``."""
    data = x.data if isinstance(x, Tensor) else x
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{op}: {name} must be a Tensor or a float32/float64 ndarray, got {type(x).__name__}")
    if data.dtype not in FLOATS:
        raise TypeError(f"{op}: {name} has dtype {data.dtype}; allowed: float32, float64")
    return x


def shape_of(x: Any) -> tuple[int, ...]:
    return tuple(x.shape)


def check_seq_input(op: str, I: Any, min_ndim: int = 2) -> tuple[int, ...]:
    """``I: [T, N, ...]`` with ``T >= 1``; returns its shape."""
    shape = shape_of(as_float(op, "I", I))
    if len(shape) < min_ndim:
        layout = "[T, N, C, ...]" if min_ndim >= 3 else "[T, N, ...]"
        raise ValueError(f"{op}: I has shape {shape} ({len(shape)} dims); expected {layout} "
                         f"with at least {min_ndim} dims")
    if shape[0] < 1:
        raise ValueError(f"{op}: I has T = {shape[0]} time steps (shape {shape}); T must be >= 1")
    check_finite(op, "I", I)
    return shape


def check_step_input(op: str, I_t: Any, min_ndim: int = 1) -> tuple[int, ...]:
    """``I_t: [N, ...]``; returns its shape."""
    shape = shape_of(as_float(op, "I_t", I_t))
    if len(shape) < min_ndim:
        layout = "[N, C, ...]" if min_ndim >= 2 else "[N, ...]"
        raise ValueError(f"{op}: I_t has shape {shape}; expected one time step {layout} "
                         f"with at least {min_ndim} dims")
    check_finite(op, "I_t", I_t)
    return shape


def check_param(op: str, name: str, p: Any, T: int, channels: int | None, step_shape: tuple[int, ...],
                per_layer_ok: bool = True) -> None:
    """``p`` is ``[T]`` (per layer) or ``[T, C]`` with ``C`` the channel dim (dim 1) of a step tensor, all finite."""
    shape = shape_of(as_float(op, name, p))
    check_finite(op, name, p)
    if len(shape) == 1 and per_layer_ok:
        if shape[0] != T:
            raise ValueError(f"{op}: {name} has shape {shape} (T = {shape[0]}) but the input has T = {T} "
                             f"time steps; {name} must be [T] or [T, C]")
        return
    if len(shape) != 2:
        allowed = f"[T] = ({T},) or [T, C]" if per_layer_ok else "[T, C]"
        raise ValueError(f"{op}: {name} has shape {shape}; allowed: {allowed}")
    if shape[0] != T:
        raise ValueError(f"{op}: {name} has shape {shape} (T = {shape[0]}) but the input has T = {T} time steps")
    if len(step_shape) < 2:
        raise ValueError(f"{op}: {name} is per channel (shape {shape}) but a step of the input has shape "
                         f"{step_shape}, without a channel dim (dim 1 of [N, C, ...])")
    if channels is not None and shape[1] != channels:
        raise ValueError(f"{op}: {name} has {shape[1]} channels (shape {shape}) but the input has "
                         f"C = {channels} (dim 1 of each step [N, C, ...])")


def check_choice(op: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{op}: {name}={value!r}; allowed: {', '.join(repr(a) for a in allowed)}")
    return value


def check_positive(op: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{op}: {name}={value!r} must be a finite number > 0")
    return float(value)


def check_T(op: str, T: Any) -> int:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"{op}: T={T!r} must be an integer >= 1 (the number of time steps)")
    return int(T)


def check_spike_bits(op: str, bits: Any) -> int | None:
    if bits is None:
        return None
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{op}: spike_bits={bits!r} must be an integer in 1..{MAX_SPIKE_BITS} or None")
    if not 1 <= bits <= MAX_SPIKE_BITS:
        raise ValueError(f"{op}: spike_bits={bits!r} must be in 1..{MAX_SPIKE_BITS} (or None for unquantized "
                         f"spikes)")
    return int(bits)


def check_membn(op: str, step_shape, lam, theta, alpha, beta, bn_weight, bn_bias, running_mean,
                 running_var, training, momentum, bn_eps, T) -> None:
    """Mem-BN parameters (SPEC E9) against a step shape ``[N, C, ...]`` and ``T`` steps."""
    C = step_shape[1]
    for name, p in (("lam", lam), ("theta", theta), ("alpha", alpha), ("beta", beta)):
        check_param(op, name, p, T, C, step_shape)
    for name, p in (("bn_weight", bn_weight), ("bn_bias", bn_bias)):
        check_param(op, name, p, T, C, step_shape, per_layer_ok=False)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    for name, r in (("running_mean", running_mean), ("running_var", running_var)):
        if r is not None:
            if not isinstance(r, np.ndarray) or r.dtype not in (np.float32, np.float64):
                raise TypeError(f"{op}: {name} must be a float32/float64 ndarray [T, C], got "
                                f"{type(r).__name__}")
            if r.shape != (T, C):
                raise ValueError(f"{op}: {name} has shape {r.shape}; expected [T, C] = {(T, C)}")
    if not training and running_mean is None:
        raise ValueError(f"{op}: training=False (eval) needs running_mean and running_var")
    if training and step_shape[0] * math.prod(step_shape[2:]) == 0:
        raise ValueError(f"{op}: batch statistics (training=True) need at least one value per channel; a "
                         f"step has shape {step_shape}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{op}: momentum={momentum!r} must be in [0, 1]")
    check_positive(op, "bn_eps", bn_eps)
