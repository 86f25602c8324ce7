"""Independent references for the neuron tests: plain Python loops over elements and steps.

Written from SPEC E1-E9 directly, scalar by scalar, in the arrays' own dtype (NumPy
scalar arithmetic: float32 stays float32), so the library's vectorized kernels can
be compared with them bit for bit. Nothing here imports the library's neurons.
"""
from __future__ import annotations

import math

import numpy as np


def param_at(p: np.ndarray, t: int, idx: tuple[int, ...]):
    """``p[t]`` (per layer) or ``p[t, c]`` with ``c = idx[1]`` (the channel of a step ``[N, C, ...]``)."""
    return p[t] if p.ndim == 1 else p[t, idx[1]]


def hdlif_loop(I, lam, theta):
    """SPEC E1-E2 element by element: returns ``(m, s, u)``, each ``[T, N, ...]``."""
    T = I.shape[0]
    m_out, s_out, u_out = np.zeros_like(I), np.zeros_like(I), np.zeros_like(I)
    for idx in np.ndindex(I.shape[1:]):
        u = I.dtype.type(0)
        for t in range(T):
            lam_t, theta_t = param_at(lam, t, idx), param_at(theta, t, idx)
            m = lam_t * u + I[(t,) + idx]
            if m >= theta_t:  # H(0) = 1: exactly on the threshold the neuron "fires" a zero surplus
                s, u = m - theta_t, theta_t
            else:
                s, u = I.dtype.type(0), m
            m_out[(t,) + idx], s_out[(t,) + idx], u_out[(t,) + idx] = m, s, u
    return m_out, s_out, u_out


def lif_loop(I, lam, theta, reset="hard"):
    """SPEC E7 element by element: returns ``(m, s, u)``."""
    T = I.shape[0]
    m_out, s_out, u_out = np.zeros_like(I), np.zeros_like(I), np.zeros_like(I)
    one, zero = I.dtype.type(1), I.dtype.type(0)
    for idx in np.ndindex(I.shape[1:]):
        u = zero
        for t in range(T):
            lam_t, theta_t = param_at(lam, t, idx), param_at(theta, t, idx)
            m = lam_t * u + I[(t,) + idx]
            s = one if m >= theta_t else zero
            if reset == "hard":
                u = zero if s else m  # m (1 - s)
            else:
                u = m - theta_t if s else m  # m - theta s
            m_out[(t,) + idx], s_out[(t,) + idx], u_out[(t,) + idx] = m, s, u
    return m_out, s_out, u_out


def parallel_loop(I, theta):
    """SPEC E8 element by element: ``s*_t = relu(I_t - theta_t)``."""
    s_out = np.zeros_like(I)
    for t in range(I.shape[0]):
        for idx in np.ndindex(I.shape[1:]):
            x, theta_t = I[(t,) + idx], param_at(theta, t, idx)
            s_out[(t,) + idx] = x - theta_t if x >= theta_t else 0
    return s_out


def membn_loop(I, lam, theta, alpha, beta, w, b, mean=None, var=None, bn_eps=1e-5):
    """SPEC E9 in float64 with ``math.fsum`` statistics: returns ``(m, mhat, s, u, means, vars)``.

    Batch statistics (biased variance) when ``mean`` is None, else the given ``[T, C]`` ones.
    """
    I = I.astype(np.float64)
    T, N, C = I.shape[:3]
    spatial = I.shape[3:]
    m_out, mhat_out, s_out, u_out = (np.zeros_like(I) for _ in range(4))
    means, variances = np.zeros((T, C)), np.zeros((T, C))
    u = np.zeros(I.shape[1:])
    for t in range(T):
        for idx in np.ndindex(I.shape[1:]):
            m_out[(t,) + idx] = param_at(lam, t, idx) * u[idx] + I[(t,) + idx]
        for c in range(C):
            values = [m_out[(t, n, c) + sp] for n in range(N) for sp in np.ndindex(spatial)]
            if mean is None:
                mu = math.fsum(values) / len(values)
                v = math.fsum((x - mu) ** 2 for x in values) / len(values)
            else:
                mu, v = float(mean[t, c]), float(var[t, c])
            means[t, c], variances[t, c] = mu, v
        for idx in np.ndindex(I.shape[1:]):
            c = idx[1]
            m = m_out[(t,) + idx]
            bn = w[t, c] * (m - means[t, c]) / math.sqrt(variances[t, c] + bn_eps) + b[t, c]
            mhat = param_at(alpha, t, idx) * m + param_at(beta, t, idx) * bn
            theta_t = param_at(theta, t, idx)
            s = mhat - theta_t if mhat >= theta_t else 0.0
            u[idx] = theta_t if mhat >= theta_t else mhat
            mhat_out[(t,) + idx], s_out[(t,) + idx], u_out[(t,) + idx] = mhat, s, u[idx]
    return m_out, mhat_out, s_out, u_out, means, variances


def nudge_off_threshold(I, lam, theta, margin=1e-3):
    """Move ``I`` so that every ``|m_t - theta_t| >= margin`` (HD-LIF): finite differences need no kink.

    Step by step: an element too close at step ``t`` gets ``I_t += 3 margin``, which moves
    only ``m_t`` (earlier steps are untouched), then later steps are re-examined.
    """
    I = I.copy()
    for t in range(I.shape[0]):
        m, _, _ = hdlif_loop(I, lam, theta)
        th = np.stack([param_at(theta, t, idx) for idx in np.ndindex(I.shape[1:])]).reshape(I.shape[1:]) \
            if I[t].size else np.zeros(I.shape[1:], I.dtype)
        close = np.abs(m[t] - th) < margin
        I[t] = np.where(close, I[t] + 3 * margin, I[t])
    return I
