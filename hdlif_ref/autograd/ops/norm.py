"""Batch normalization (fused forward and backward), PyTorch's conventions.

Per channel ``c`` over the ``M = N*H*W`` (or ``N``) values of ``x``:

* training: ``mean_c``, ``var_c`` (biased, ``/ M``) of the batch;
  ``y = weight_c * (x - mean_c) / sqrt(var_c + eps) + bias_c``; the running statistics
  are updated in place: ``running = (1 - momentum) * running + momentum * stat`` with
  the batch mean and the *unbiased* batch variance ``var_c * M / (M - 1)``;
* evaluation: the same formula with ``running_mean`` and ``running_var``.

SPEC (Training, DC after E16): each time step normalizes with that step's batch statistics,
and the layers keep running statistics per step (``per_step=True``) or shared: one step is
:func:`batch_norm`; a whole sequence with per-step statistics, :func:`batch_norm_steps` (the
same numbers in one op). Kernels: :mod:`hdlif_ref.kernels.norm`.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ...kernels import norm as _kernels
from ..function import Function
from ..tensor import Tensor
from ._args import FLOAT_DTYPES, as_c, check_ndim, common_dtype, shape_of


def update_running_stats(running_mean, running_var, mean, var, count: int, momentum: float) -> None:
    """In place: ``running = (1 - momentum) running + momentum stat``, the variance unbiased (``count`` values)."""
    running_mean[...] = (1.0 - momentum) * running_mean + momentum * mean
    running_var[...] = (1.0 - momentum) * running_var + momentum * var * (count / (count - 1))


class BatchNorm(Function):
    name = "batch_norm"

    @staticmethod
    def forward(ctx, x, *affine, has_weight, has_bias, running_mean, running_var, training,
                momentum, eps):
        dtype = common_dtype(x, *affine)
        shape = x.shape
        x3 = as_c(x, dtype).reshape(shape[0], shape[1], math.prod(shape[2:]))
        weight = as_c(affine[0], dtype) if has_weight else None
        bias = as_c(affine[-1], dtype) if has_bias else None
        if training:
            y, mean, var = _kernels.batch_norm_train_forward(x3, weight, bias, eps)
            if running_mean is not None:
                update_running_stats(running_mean, running_var, mean, var, x3.shape[0] * x3.shape[2], momentum)
        else:
            mean = running_mean.astype(np.float64)
            var = running_var.astype(np.float64)
            y = _kernels.batch_norm_eval_forward(x3, mean, 1.0 / np.sqrt(var + eps), weight, bias)
        ctx.save_for_backward(x3, mean, 1.0 / np.sqrt(var + eps), weight)
        ctx.meta = (shape, training, has_weight, has_bias)
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        x3, mean, invstd, weight = ctx.saved_tensors
        shape, training, has_weight, has_bias = ctx.meta
        needs = ctx.needs_input_grad
        need_w = has_weight and needs[1]
        need_b = has_bias and needs[1 + has_weight]
        kernel = _kernels.batch_norm_train_backward if training else _kernels.batch_norm_eval_backward
        gx, gw, gb = kernel(as_c(g, x3.dtype).reshape(x3.shape), x3, mean, invstd, weight,
                            needs[0], need_w, need_b)
        grads = [gx.reshape(shape) if gx is not None else None]
        if has_weight:
            grads.append(gw)
        if has_bias:
            grads.append(gb)
        return tuple(grads)


class BatchNormSteps(Function):
    """Training-mode batch norm of every step of ``x: [T, N, C, ...]`` with that step's batch statistics
    (the per-step batch norm of SPEC E16's DC) in one op and one kernel launch each way: what ``T``
    :class:`BatchNorm` ops on ``x[t]`` and a ``stack`` compute, bit for bit, without the ``2 T``
    extra ops and the two copies (the stack's, and the unstack's in the backward).

    ``affine`` holds the weight ``T`` times, then the bias ``T`` times (those given), for the steps
    ``T - 1`` down to ``0``: the backward returns one gradient per step and input, so the autograd
    casts and adds them into the parameters exactly as it adds the ``T`` one-step ops' (it reaches
    those in that order), whatever the parameters' dtypes, their ``.grad`` before, or their other uses.
    """

    name = "batch_norm_steps"

    @staticmethod
    def forward(ctx, x, *affine, has_weight, has_bias, running_mean, running_var, momentum, eps):
        dtype = common_dtype(x, *affine)
        shape = x.shape
        steps = shape[0]
        x4 = as_c(x, dtype).reshape(shape[0], shape[1], shape[2], math.prod(shape[3:]))
        weight = as_c(affine[0], dtype) if has_weight else None
        bias = as_c(affine[steps * has_weight], dtype) if has_bias else None
        y, mean, var = _kernels.batch_norm_steps_train_forward(x4, weight, bias, eps)
        if running_mean is not None:
            for t in range(steps):
                update_running_stats(running_mean[t], running_var[t], mean[t], var[t], x4.shape[1] * x4.shape[3],
                                     momentum)
        ctx.save_for_backward(x4, mean, 1.0 / np.sqrt(var + eps), weight)
        ctx.meta = (shape, has_weight, has_bias)
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        x4, mean, invstd, weight = ctx.saved_tensors
        shape, has_weight, has_bias = ctx.meta
        steps = shape[0]
        needs = ctx.needs_input_grad
        gx, gw, gb = _kernels.batch_norm_steps_train_backward(as_c(g, x4.dtype).reshape(x4.shape), x4, mean, invstd,
                                                             weight, needs[0])
        grads = [gx.reshape(shape) if gx is not None else None]
        first = 1
        for has, sums in ((has_weight, gw), (has_bias, gb)):
            if has:
                need = needs[first]
                # as each one-step op returns it: the float64 sums in x's dtype, steps T - 1 down to 0
                grads += [sums[t].astype(x4.dtype) if need else None for t in range(steps - 1, -1, -1)]
                first += steps
        return tuple(grads)


def check_affine(op, xs, channels, weight, bias, momentum, eps) -> list:
    """``momentum`` in [0, 1], ``eps`` > 0, ``weight`` and ``bias`` ``[C]`` or None: the ones given, in order."""
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{op}: momentum={momentum!r} must be a number in [0, 1]")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0.0:
        raise ValueError(f"{op}: eps={eps!r} must be a positive number")
    affine = []
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            vs = shape_of(op, name, value)
            if vs != (channels,):
                raise ValueError(f"{op}: {name} has shape {vs}; expected ({channels},) for x of shape {xs}")
            affine.append(value)
    return affine


def check_running(op, name, value, shape, training):
    """``value``: ``None`` (training only) or a float ndarray of ``shape``, writeable in training (updated in place)."""
    if value is None:
        if not training:
            raise ValueError(f"{op}: {name} is None; evaluation mode (training=False) needs the running "
                             f"statistics")
        return
    if not isinstance(value, np.ndarray) or value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be a float32/float64 ndarray (updated in place), got "
                        f"{type(value).__name__}{'' if not isinstance(value, np.ndarray) else ' ' + str(value.dtype)}")
    if value.shape != shape:
        raise ValueError(f"{op}: {name} has shape {value.shape}; expected {shape}")
    if training and not value.flags.writeable:
        raise ValueError(f"{op}: {name} is read-only; training mode updates it in place")


def batch_norm(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5) -> Tensor:
    """Batch normalization of ``x: [N, C, H, W]`` or ``[N, C]`` per channel.

    Parameters
    ----------
    x : Tensor ``[N, C, H, W]`` or ``[N, C]``
    weight, bias : Tensor ``[C]`` or None (None: no scale / no shift)
    running_mean, running_var : ndarray ``[C]`` (float32/float64), or None in training mode
        (no running statistics kept). Updated **in place** when ``training``:
        ``running = (1 - momentum) * running + momentum * batch_stat``, with the unbiased
        batch variance for ``running_var``.
    training : bool
        True: normalize with the batch statistics (biased variance), needs more than one
        value per channel. False: normalize with the running statistics.
    momentum : float in [0, 1]
    eps : float > 0, added to the variance

    Returns a Tensor of ``x``'s shape.
    """
    op = "batch_norm"
    xs = shape_of(op, "x", x)
    check_ndim(op, "x", xs, (2, 4), "[N, C, H, W] or [N, C]")
    channels = xs[1]
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{op}: training={training!r} must be a bool")
    training = bool(training)
    affine = check_affine(op, xs, channels, weight, bias, momentum, eps)
    check_running(op, "running_mean", running_mean, (channels,), training)
    check_running(op, "running_var", running_var, (channels,), training)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    count = math.prod(xs) // channels if channels else 0
    if training and count < 2:
        raise ValueError(f"{op}: training mode needs more than one value per channel to estimate the "
                         f"variance; x has shape {xs} ({count} per channel)")
    return BatchNorm.apply(x, *affine, has_weight=weight is not None, has_bias=bias is not None,
                           running_mean=running_mean, running_var=running_var, training=training,
                           momentum=float(momentum), eps=float(eps))


def batch_norm_steps(x, weight, bias, running_mean, running_var, momentum=0.1, eps=1e-5) -> Tensor:
    """Training-mode batch normalization of each step of ``x: [T, N, C, H, W]`` or ``[T, N, C]`` with that
    step's batch statistics: :func:`batch_norm` (``training=True``) on every ``x[t]`` with the running
    statistics ``running_mean[t]``, ``running_var[t]``, in one op.

    Parameters
    ----------
    x : Tensor ``[T, N, C, H, W]`` or ``[T, N, C]``
    weight, bias : Tensor ``[C]`` or None, shared by the steps
    running_mean, running_var : ndarray ``[T, C]`` (float32/float64), updated in place row by row, or None
    momentum : float in [0, 1]
    eps : float > 0

    Returns a Tensor of ``x``'s shape.
    """
    op = "batch_norm_steps"
    xs = shape_of(op, "x", x)
    check_ndim(op, "x", xs, (3, 5), "[T, N, C, H, W] or [T, N, C]")
    steps, channels = xs[0], xs[2]
    affine = check_affine(op, xs, channels, weight, bias, momentum, eps)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        check_running(op, name, value, (steps, channels), True)
    count = math.prod(xs) // (steps * channels) if steps and channels else 0
    if count < 2:
        raise ValueError(f"{op}: needs more than one value per step and channel to estimate the variance; "
                         f"x has shape {xs} ({count} per step and channel)")
    per_step = [value for value in affine for _ in range(steps)]  # each parameter once per step
    return BatchNormSteps.apply(x, *per_step, has_weight=weight is not None, has_bias=bias is not None,
                                running_mean=running_mean, running_var=running_var, momentum=float(momentum),
                                eps=float(eps))
