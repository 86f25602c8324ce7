"""Checked functional forms of the neurons (SPEC E1-E9) on whole sequences, and their traces.

Each ``*_seq`` function checks its arguments and calls one fused op (one graph
node): ``s = hdlif_seq(I, lam, theta)`` on ``I: [T, N, ...]``; ``backward`` of the
result gives the exact STBP gradients (SPEC E4) for ``I`` and every parameter,
or with ``gradient="online"`` the truncated online gradients (E5). Parameters
are ``[T]`` (per layer) or ``[T, C]`` (per channel; the channel is dim 1 of each
step ``[N, C, ...]``, so dim 2 of ``I``). Inputs may be Tensors or float arrays,
float32 or float64 (mixed: float64).

The ``*_record`` functions return every intermediate of the forward as NumPy
arrays (:mod:`.records`), computed with the readable NumPy twins; they equal the
fused forward bit for bit (tested), which is what the theory helpers and the
golden-vector writer need.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from ..autograd.ops._args import mark_finite
from ..autograd.ops.neuron import HDLIFSeq, LIFSeq, MemBNHDLIFSeq, ParallelHDLIFSeq, params_tc, rows_of
from ..kernels.reference import neurons as _ref
from ..kernels.surrogates import resolve_gamma, surrogate_code
from ._checks import (GRADIENTS, RESETS, check_choice, check_membn, check_param,
                      check_seq_input)
from .records import HDLIFRecord, LIFRecord, MemBNRecord


def _channels(shape: tuple[int, ...]) -> int | None:
    return shape[2] if len(shape) >= 3 else None


def _check_params(op: str, shape: tuple[int, ...], per_layer_ok: bool = True, **params) -> None:
    for name, p in params.items():
        check_param(op, name, p, shape[0], _channels(shape), shape[1:], per_layer_ok)


def _data(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


# ---------------------------------------------------------------------------- fused sequences
def hdlif_seq(I, lam, theta, gradient: str = "stbp") -> Tensor:
    """HD-LIF on a whole sequence (SPEC E1, E2): ``s*: [T, N, ...]`` from ``I: [T, N, ...]``, ``u_0 = 0``.

    ``m_t = lam_t u_{t-1} + I_t``, ``s*_t = relu(m_t - theta_t)``, ``u_t = min(m_t, theta_t)``.
    Backward: exact STBP (E4), or the online gradients (E5) with ``gradient="online"``.
    """
    shape = check_seq_input("hdlif_seq", I)
    _check_params("hdlif_seq", shape, lam=lam, theta=theta)
    check_choice("hdlif_seq", "gradient", gradient, GRADIENTS)
    return HDLIFSeq.apply(I, lam, theta, gradient=gradient)


def lif_seq(I, lam, theta, reset: str = "hard", gamma: float | None = None, gradient: str = "stbp",
            surrogate: str = "triangle") -> Tensor:
    """LIF baseline on a whole sequence (SPEC E7): binary spikes ``s: [T, N, ...]``.

    ``s_t = H(m_t - theta_t)`` (``H(0) = 1``); ``reset="hard"``: ``u_t = m_t (1 - s_t)``,
    ``"soft"``: ``u_t = m_t - theta_t s_t``. Backward with the surrogate ``surrogate``
    (``"triangle"``, the paper's, ``"sigmoid"``, ``"atan"``, ``"fast-sigmoid"``) of
    width/slope ``gamma`` (None: its default 1, 4, 2, 25; :mod:`hdlif_ref.kernels.surrogates`).
    """
    shape = check_seq_input("lif_seq", I)
    _check_params("lif_seq", shape, lam=lam, theta=theta)
    check_choice("lif_seq", "reset", reset, RESETS)
    code = surrogate_code("lif_seq", surrogate)
    gamma = resolve_gamma("lif_seq", surrogate, gamma)
    check_choice("lif_seq", "gradient", gradient, GRADIENTS)
    s = LIFSeq.apply(I, lam, theta, soft=reset == "soft", gamma=gamma, gradient=gradient, surrogate=code)
    mark_finite(s.data, 1.0)  # binary spikes (as lif_step's): the next layer's input check needs no pass over them
    return s


def parallel_hdlif_seq(I, theta) -> Tensor:
    """Parallel HD-LIF (SPEC E8): ``s*_t = relu(I_t - theta_t)``; no state, so STBP = online."""
    shape = check_seq_input("parallel_hdlif_seq", I)
    _check_params("parallel_hdlif_seq", shape, theta=theta)
    return ParallelHDLIFSeq.apply(I, theta)


def membn_hdlif_seq(I, lam, theta, alpha, beta, bn_weight, bn_bias, running_mean=None, running_var=None,
                    training: bool = True, momentum: float = 0.1, bn_eps: float = 1e-5,
                    gradient: str = "stbp") -> Tensor:
    """Mem-BN HD-LIF (SPEC E9) on ``I: [T, N, C, ...]``: ``s*: [T, N, C, ...]``.

    ``mhat_t = alpha_t m_t + beta_t BN_t(m_t)`` with a per-step, per-channel batch norm
    (affine ``bn_weight``, ``bn_bias``: ``[T, C]``); training mode normalizes with the
    batch statistics (biased variance) and, if the arrays are given, updates
    ``running_mean`` / ``running_var`` (``[T, C]``, unbiased variance, as PyTorch);
    eval mode uses them.
    """
    op = "membn_hdlif_seq"
    shape = check_seq_input(op, I, min_ndim=3)
    check_membn(op, shape[1:], lam, theta, alpha, beta, bn_weight, bn_bias, running_mean, running_var,
                 training, momentum, bn_eps, shape[0])
    check_choice(op, "gradient", gradient, GRADIENTS)
    return MemBNHDLIFSeq.apply(I, lam, theta, alpha, beta, bn_weight, bn_bias, running_mean=running_mean,
                               running_var=running_var, training=bool(training), momentum=float(momentum),
                               bn_eps=float(bn_eps), gradient=gradient)


# ---------------------------------------------------------------------------- records
def _kernel_view(I, *params):
    I, params = _data(I), [_data(p) for p in params]
    dtype = np.result_type(I, *params)
    T = I.shape[0]
    rows, F = rows_of(I.shape[1:], any(p.ndim == 2 for p in params))
    I3 = np.ascontiguousarray(I, dtype=dtype).reshape(T, rows, F)
    return I3, params_tc(dtype, *params), np.zeros((rows, F), dtype=dtype)


def hdlif_record(I, lam, theta) -> HDLIFRecord:
    """Every intermediate (``m``, ``u``, ``s``) of :func:`hdlif_seq`'s forward, as NumPy arrays."""
    shape = check_seq_input("hdlif_record", I)
    _check_params("hdlif_record", shape, lam=lam, theta=theta)
    I3, (lam2, theta2), u0 = _kernel_view(I, lam, theta)
    m, s, u, _ = _ref.hdlif_trace(I3, u0, lam2, theta2)
    return HDLIFRecord(I=I3.reshape(shape), lam=_data(lam), theta=_data(theta), m=m.reshape(shape),
                       u=u.reshape(shape), s=s.reshape(shape))


def lif_record(I, lam, theta, reset: str = "hard", gamma: float | None = None,
               surrogate: str = "triangle") -> LIFRecord:
    """Every intermediate (``m``, ``u``, ``s``) of :func:`lif_seq`'s forward, as NumPy arrays
    (with the surrogate the theory helpers differentiate by)."""
    shape = check_seq_input("lif_record", I)
    _check_params("lif_record", shape, lam=lam, theta=theta)
    check_choice("lif_record", "reset", reset, RESETS)
    surrogate_code("lif_record", surrogate)
    gamma = resolve_gamma("lif_record", surrogate, gamma)
    I3, (lam2, theta2), u0 = _kernel_view(I, lam, theta)
    m, s, u = _ref.lif_trace(I3, u0, lam2, theta2, reset == "soft")
    return LIFRecord(I=I3.reshape(shape), lam=_data(lam), theta=_data(theta), m=m.reshape(shape),
                     u=u.reshape(shape), s=s.reshape(shape), reset=reset, gamma=gamma, surrogate=surrogate)


def membn_hdlif_record(I, lam, theta, alpha, beta, bn_weight, bn_bias, running_mean=None, running_var=None,
                       training: bool = True, bn_eps: float = 1e-5) -> MemBNRecord:
    """Every intermediate (``m``, ``mhat``, ``u``, ``s``, statistics) of :func:`membn_hdlif_seq`'s
    forward; running statistics are read (eval) but never updated."""
    op = "membn_hdlif_record"
    shape = check_seq_input(op, I, min_ndim=3)
    check_membn(op, shape[1:], lam, theta, alpha, beta, bn_weight, bn_bias, running_mean, running_var,
                 training, 0.0, bn_eps, shape[0])
    params = [_data(p) for p in (lam, theta, alpha, beta, bn_weight, bn_bias)]
    dtype = np.result_type(_data(I), *params)
    T, N, C = shape[:3]
    I4 = np.ascontiguousarray(_data(I), dtype=dtype).reshape(T, N, C, -1)
    params = params_tc(dtype, *params)
    if training:
        mean = var = np.empty((T, C), dtype)
    else:
        mean = np.ascontiguousarray(running_mean, dtype=dtype)
        var = np.ascontiguousarray(running_var, dtype=dtype)
    s, u, m, mhat, _, mean, var, _ = _ref.membn_hdlif_trace(I4, np.zeros(I4.shape[1:], dtype), *params, mean, var,
                                                            training, bn_eps)
    return MemBNRecord(I=I4.reshape(shape), m=m.reshape(shape), mhat=mhat.reshape(shape), u=u.reshape(shape),
                       s=s.reshape(shape), mean=mean, var=var)


__all__ = ["hdlif_seq", "lif_seq", "parallel_hdlif_seq", "membn_hdlif_seq", "hdlif_record", "lif_record",
           "membn_hdlif_record"]
