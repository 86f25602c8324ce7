"""Pure step functions: ``(s_t, state) = hdlif_step(I_t, state, params)`` and its siblings.

One call is one time step ``t = state.t`` on ``I_t: [N, ...]`` and one graph node
(the fused step ops of :mod:`hdlif_ref.autograd.ops.neuron`). The new state holds
``u_t`` as an autograd tensor, so

* stepping ``T`` times and back-propagating through the states gives the STBP
  gradients of SPEC E4 (the same numbers as the fused ``*_seq`` ops);
* cutting the state between steps (``state.detach()``) gives the online
  gradients of SPEC E5.

The forward of a step is the fused sequence kernel run for one step, so
stepping ``T`` times equals the ``*_seq`` forward bit for bit.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from ..autograd.ops._args import mark_finite
from ..autograd.ops.neuron import HDLIFStep, LIFStep, MemBNHDLIFStep, ParallelHDLIFStep
from ..kernels.surrogates import resolve_gamma, surrogate_code
from ._checks import (RESETS, check_choice, check_membn, check_param, check_step_input,
                      shape_of)
from .records import HDLIFParams, LIFParams, MemBNParams, NeuronState, ParallelHDLIFParams


def _step_index(op: str, state, T: int) -> int:
    if not isinstance(state, NeuronState):
        raise TypeError(f"{op}: state must be a NeuronState, got {type(state).__name__}")
    if not 0 <= state.t < T:
        raise ValueError(f"{op}: state.t={state.t} but the parameters have T={T} time steps (allowed 0..{T - 1}); "
                         f"start a new sequence with a fresh NeuronState()")
    return state.t


def _u_prev(op: str, state: NeuronState, I_t) -> Tensor | np.ndarray:
    shape = shape_of(I_t)
    if state.u is None:
        data = I_t.data if isinstance(I_t, Tensor) else I_t
        return np.zeros(shape, dtype=data.dtype)  # SPEC E1: u_0 = 0
    if shape_of(state.u) != shape:
        raise ValueError(f"{op}: the state holds u of shape {shape_of(state.u)} but I_t has shape {shape}; "
                         f"reset the state before a batch of another shape")
    return state.u


def _check_step_params(op: str, shape, T: int, per_layer_ok: bool = True, **params) -> None:
    channels = shape[1] if len(shape) >= 2 else None
    for name, p in params.items():
        check_param(op, name, p, T, channels, shape, per_layer_ok)


def _T(op: str, name: str, p) -> int:
    shape = shape_of(p)
    if len(shape) not in (1, 2) or shape[0] < 1:
        raise ValueError(f"{op}: {name} has shape {shape}; allowed: [T] or [T, C] with T >= 1")
    return shape[0]


def hdlif_step(I_t, state: NeuronState, params: HDLIFParams) -> tuple[Tensor, NeuronState]:
    """One HD-LIF step (SPEC E1, E2) at ``t = state.t``: ``(s*_t, NeuronState(u_t, t + 1))``."""
    op = "hdlif_step"
    shape = check_step_input(op, I_t)
    T = _T(op, "lam", params.lam)
    _check_step_params(op, shape, T, lam=params.lam, theta=params.theta)
    t = _step_index(op, state, T)
    s, u = HDLIFStep.apply(I_t, _u_prev(op, state, I_t), params.lam, params.theta, t=t)
    return s, NeuronState(u, t + 1)


def lif_step(I_t, state: NeuronState, params: LIFParams) -> tuple[Tensor, NeuronState]:
    """One LIF step (SPEC E7; surrogate ``params.surrogate``) at ``t = state.t``: ``(s_t, NeuronState(u_t, t + 1))``."""
    op = "lif_step"
    shape = check_step_input(op, I_t)
    T = _T(op, "lam", params.lam)
    _check_step_params(op, shape, T, lam=params.lam, theta=params.theta)
    check_choice(op, "reset", params.reset, RESETS)
    code = surrogate_code(op, params.surrogate)
    gamma = resolve_gamma(op, params.surrogate, params.gamma)
    t = _step_index(op, state, T)
    s, u = LIFStep.apply(I_t, _u_prev(op, state, I_t), params.lam, params.theta, t=t,
                         soft=params.reset == "soft", gamma=gamma, surrogate=code)
    mark_finite(s.data, 1.0)  # binary spikes (H of anything, NaN included, is 0 or 1): spares the next check a pass
    return s, NeuronState(u, t + 1)


def parallel_hdlif_step(I_t, state: NeuronState, params: ParallelHDLIFParams) -> tuple[Tensor, NeuronState]:
    """One Parallel HD-LIF step (SPEC E8): ``s*_t = relu(I_t - theta_t)``; the state only counts steps."""
    op = "parallel_hdlif_step"
    shape = check_step_input(op, I_t)
    T = _T(op, "theta", params.theta)
    _check_step_params(op, shape, T, theta=params.theta)
    t = _step_index(op, state, T)
    return ParallelHDLIFStep.apply(I_t, params.theta, t=t), NeuronState(None, t + 1)


def membn_hdlif_step(I_t, state: NeuronState, params: MemBNParams) -> tuple[Tensor, NeuronState]:
    """One Mem-BN HD-LIF step (SPEC E9) on ``I_t: [N, C, ...]``: ``(s*_t, NeuronState(u_t, t + 1))``.

    In training mode the batch statistics of step ``t`` normalize ``m_t`` and update
    row ``t`` of the running statistics (if given); in eval mode those are used.
    """
    op = "membn_hdlif_step"
    shape = check_step_input(op, I_t, min_ndim=2)
    p = params
    T = _T(op, "bn_weight", p.bn_weight)
    check_membn(op, shape, p.lam, p.theta, p.alpha, p.beta, p.bn_weight, p.bn_bias, p.running_mean,
                 p.running_var, p.training, p.momentum, p.bn_eps, T)
    t = _step_index(op, state, T)
    s, u = MemBNHDLIFStep.apply(I_t, _u_prev(op, state, I_t), p.lam, p.theta, p.alpha, p.beta, p.bn_weight,
                                p.bn_bias, t=t, running_mean=p.running_mean, running_var=p.running_var,
                                training=bool(p.training), momentum=float(p.momentum), bn_eps=float(p.bn_eps))
    return s, NeuronState(u, t + 1)
