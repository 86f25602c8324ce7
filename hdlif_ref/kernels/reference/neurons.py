"""NumPy twins of the neuron kernels (SPEC E1-E9): one readable loop over ``t`` each.

Same signatures and layout as the Numba entry points in :mod:`hdlif_ref.kernels.hdlif`,
``lif``, ``parallel`` and ``membn``: ``I: [T, N, F]`` with ``F = C * S``, state
``[N, F]``, parameters ``[T, C]`` (Mem-BN: ``I: [T, N, C, S]``). Element-wise
arithmetic is written in the same order as in the kernels, so forwards agree bit
for bit; sums (the ``[T, C]`` gradients) agree to rounding.
"""
from __future__ import annotations

import numpy as np

from ..surrogates import kernel_constants


def _per_channel(p_t: np.ndarray, N: int, F: int) -> np.ndarray:
    """A step's parameter ``[C]`` as ``[1, F]``: each channel's value repeated over its ``S`` elements."""
    C = p_t.shape[0]
    return np.repeat(p_t, F // C if C else 0)[None, :]


def _sum_per_channel(x: np.ndarray, C: int) -> np.ndarray:
    """``[N, F] -> [C]``: sum over the batch and each channel's ``S`` elements."""
    N, F = x.shape
    return x.reshape(N, C, F // C if C else 0).sum(axis=(0, 2))


# ---------------------------------------------------------------------------- HD-LIF
def hdlif_trace(I, u0, lam, theta):
    """HD-LIF forward keeping every intermediate: ``(m, s, u, mask)``, each ``[T, N, F]``.

    SPEC E1: ``m_t = lam_t u_{t-1} + I_t``; E2: ``s*_t = relu(m_t - theta_t)``,
    ``u_t = min(m_t, theta_t)`` (written as a select so ``u_t`` is exactly
    ``theta_t`` where the neuron fired); the mask is ``H(m_t - theta_t)`` with
    ``H(0) = 1`` (E3).
    """
    T, N, F = I.shape
    m, s, u = np.empty_like(I), np.empty_like(I), np.empty_like(I)
    mask = np.empty(I.shape, dtype=np.bool_)
    u_prev = u0
    for t in range(T):
        lam_t, theta_t = _per_channel(lam[t], N, F), _per_channel(theta[t], N, F)
        m[t] = lam_t * u_prev + I[t]
        mask[t] = m[t] >= theta_t
        s[t] = np.where(mask[t], m[t] - theta_t, 0)
        u[t] = np.where(mask[t], theta_t, m[t])
        u_prev = u[t]
    return m, s, u, mask


def into(out, results: tuple) -> tuple:
    """``results``, or, with ``out`` (arrays of their shapes and dtypes), copied into ``out``, which is returned:
    the twins of kernels that take ``out=`` compute afresh and copy."""
    if out is None:
        return results
    for dst, src in zip(out, results):
        dst[...] = src
    return tuple(out)


def hdlif_forward(I, u0, lam, theta, out=None):
    """``(s, u_last, mask)``: spikes ``s*`` (E2), the final state, the firing masks (into ``out`` if given)."""
    _, s, u, mask = hdlif_trace(I, u0, lam, theta)
    return into(out, (s, (u[-1].copy() if len(u) else u0.copy()), mask))


def _u_prev(mask, I, u0, lam, theta):
    """``u_{t-1}`` for every step, recomputed from the masks and the input (as the kernel does)."""
    T, N, F = I.shape
    u_prev = np.empty_like(I)
    u = u0
    for t in range(T):
        u_prev[t] = u
        lam_t, theta_t = _per_channel(lam[t], N, F), _per_channel(theta[t], N, F)
        u = np.where(mask[t], theta_t, lam_t * u + I[t])
    return u_prev


def _hdlif_backward(gs, gu_last, mask, I, u0, lam, theta, need_lam, online):
    T, N, F = gs.shape
    C = lam.shape[1]
    u_prev = _u_prev(mask, I, u0, lam, theta) if need_lam else None
    gI = np.empty_like(gs)
    glam = np.zeros(lam.shape, dtype=gs.dtype)
    gtheta = np.zeros(theta.shape, dtype=gs.dtype)
    gu = np.zeros_like(u0) if online else gu_last
    for t in range(T - 1, -1, -1):
        lam_t = _per_channel(lam[t], N, F)
        # SPEC E3/E4: dL/dm_t = H dL/ds*_t + (1 - H) dL/du_t; u_t = theta_t where H = 1.
        gm = np.where(mask[t], gs[t], gu)
        gtheta[t] = _sum_per_channel(np.where(mask[t], gu - gs[t], 0), C)
        gI[t] = gm
        if need_lam:
            glam[t] = _sum_per_channel(gm * u_prev[t], C)  # dm_t/dlam_t = u_{t-1}
        gu = np.zeros_like(gm) if online else gm * lam_t  # dm_t/du_{t-1} = lam_t
    return gI, np.array(gu, copy=True), (glam if need_lam else None), gtheta


def hdlif_backward_stbp(gs, gu_last, mask, I, u0, lam, theta, need_lam):
    """STBP (SPEC E4): ``(gI, gu0, glam, gtheta)``; ``glam`` is None unless ``need_lam``."""
    return _hdlif_backward(gs, gu_last, mask, I, u0, lam, theta, need_lam, False)


def hdlif_backward_online(gs, mask, I, u0, lam, theta, need_lam):
    """Online (SPEC E5, ``u_{t-1}`` detached): ``(gI, glam, gtheta)``."""
    gI, _, glam, gtheta = _hdlif_backward(gs, u0, mask, I, u0, lam, theta, need_lam, True)
    return gI, glam, gtheta


# ---------------------------------------------------------------------------- LIF
def lif_trace(I, u0, lam, theta, soft):
    """LIF forward keeping every intermediate: ``(m, s, u)``, each ``[T, N, F]`` (SPEC E7).

    ``s_t = H(m_t - theta_t)`` (``H(0) = 1``); hard reset ``u_t = m_t (1 - s_t)``,
    soft reset ``u_t = m_t - theta_t s_t``, both written as selects.
    """
    T, N, F = I.shape
    m, s, u = np.empty_like(I), np.empty_like(I), np.empty_like(I)
    u_prev = u0
    for t in range(T):
        lam_t, theta_t = _per_channel(lam[t], N, F), _per_channel(theta[t], N, F)
        m[t] = lam_t * u_prev + I[t]
        fired = m[t] >= theta_t
        s[t] = np.where(fired, 1, 0)
        u[t] = np.where(fired, m[t] - theta_t, m[t]) if soft else np.where(fired, 0, m[t])
        u_prev = u[t]
    return m, s, u


def lif_forward(I, u0, lam, theta, soft, out=None):
    """``(s, u_last, m)``: binary spikes, the final state, the charges kept for the backward (into ``out``)."""
    m, s, u = lif_trace(I, u0, lam, theta, soft)
    return into(out, (s, (u[-1].copy() if len(u) else u0.copy()), m))


def lif_surrogate(code, x, a, b):
    """Surrogate ``sg(x)`` of ``dH(x)/dx``, ``x = m - theta`` (SPEC E7), by code (:mod:`..surrogates`).

    0 triangle ``max(a - |x|, 0) b``; 1 sigmoid ``a e / (1 + e)^2`` with ``e = exp(-a |x|)``;
    2 atan ``a / (1 + (b x)^2)``; 3 fast-sigmoid ``1 / (a |x| + 1)^2``. ``a, b`` are scalars of
    the data's dtype from :func:`..surrogates.kernel_constants`.
    """
    one = a.dtype.type(1)
    if code == 0:
        return np.maximum(a - np.abs(x), 0) * b
    if code == 1:
        e = np.exp(-a * np.abs(x))
        d = one + e
        return a * e / (d * d)
    if code == 2:
        z = b * x
        return a / (one + z * z)
    z = a * np.abs(x) + one
    return one / (z * z)


def _lif_backward(gs, gu_last, m, u0, lam, theta, soft, surrogate, gamma, need_lam, online):
    T, N, F = gs.shape
    C = lam.shape[1]
    dt = gs.dtype.type
    sg_a, sg_b = kernel_constants(surrogate, gamma, gs.dtype)
    gI = np.empty_like(gs)
    glam = np.zeros(lam.shape, dtype=gs.dtype)
    gtheta = np.zeros(theta.shape, dtype=gs.dtype)
    gu = np.zeros_like(u0) if online else gu_last
    for t in range(T - 1, -1, -1):
        lam_t, theta_t = _per_channel(lam[t], N, F), _per_channel(theta[t], N, F)
        sg = lif_surrogate(surrogate, m[t] - theta_t, sg_a, sg_b)
        fired = m[t] >= theta_t
        if soft:
            du_dm = dt(1) - theta_t * sg
            du_dtheta = theta_t * sg - np.where(fired, dt(1), dt(0))
        else:
            du_dm = np.where(fired, dt(0), dt(1)) - m[t] * sg
            du_dtheta = m[t] * sg
        gm = gs[t] * sg + gu * du_dm
        gtheta[t] = _sum_per_channel(gu * du_dtheta - gs[t] * sg, C)
        gI[t] = gm
        if need_lam:
            if t == 0:
                u_prev = u0
            else:
                theta_p = _per_channel(theta[t - 1], N, F)
                fired_p = m[t - 1] >= theta_p
                u_prev = (np.where(fired_p, m[t - 1] - theta_p, m[t - 1]) if soft
                          else np.where(fired_p, 0, m[t - 1]))
            glam[t] = _sum_per_channel(gm * u_prev, C)
        gu = np.zeros_like(gm) if online else gm * lam_t
    return gI, np.array(gu, copy=True), (glam if need_lam else None), gtheta


def lif_backward_stbp(gs, gu_last, m, u0, lam, theta, soft, surrogate, gamma, need_lam):
    """STBP with surrogate code ``surrogate`` of width/slope ``gamma`` (SPEC E7): ``(gI, gu0, glam, gtheta)``."""
    return _lif_backward(gs, gu_last, m, u0, lam, theta, soft, surrogate, gamma, need_lam, False)


def lif_backward_online(gs, m, u0, lam, theta, soft, surrogate, gamma, need_lam):
    """Online (SPEC E5 applied to E7): ``(gI, glam, gtheta)``."""
    gI, _, glam, gtheta = _lif_backward(gs, u0, m, u0, lam, theta, soft, surrogate, gamma, need_lam, True)
    return gI, glam, gtheta


# ---------------------------------------------------------------------------- Parallel HD-LIF
def parallel_hdlif_forward(I, theta, out=None):
    """``(s, mask)`` with ``s*_t = relu(I_t - theta_t)`` and ``mask = H(I_t - theta_t)`` (SPEC E8; into ``out``)."""
    T, N, F = I.shape
    s = np.empty_like(I)
    mask = np.empty(I.shape, dtype=np.bool_)
    for t in range(T):
        theta_t = _per_channel(theta[t], N, F)
        mask[t] = I[t] >= theta_t
        s[t] = np.where(mask[t], I[t] - theta_t, 0)
    return into(out, (s, mask))


def parallel_hdlif_backward(gs, mask, theta):
    """``(gI, gtheta)``: ``gI = H gs``, ``gtheta = -sum H gs`` (STBP = online: no state)."""
    T, N, F = gs.shape
    gI = np.where(mask, gs, 0).astype(gs.dtype, copy=False)
    gtheta = np.stack([_sum_per_channel(-gI[t], theta.shape[1]) for t in range(T)]) if T else \
        np.zeros(theta.shape, gs.dtype)
    return gI, gtheta.astype(gs.dtype, copy=False)


# ---------------------------------------------------------------------------- Mem-BN HD-LIF
def membn_hdlif_forward(I, u0, lam, theta, alpha, beta, w, b, mean, var, use_batch_stats, bn_eps):
    """Mem-BN HD-LIF (SPEC E9) on ``I: [T, N, C, S]``: ``(s, u, m, mask, mean, var, invstd)``."""
    s, u, m, _, mask, mean, var, invstd = membn_hdlif_trace(I, u0, lam, theta, alpha, beta, w, b, mean, var,
                                                            use_batch_stats, bn_eps)
    return s, u, m, mask, mean, var, invstd


def membn_hdlif_trace(I, u0, lam, theta, alpha, beta, w, b, mean, var, use_batch_stats, bn_eps):
    """Mem-BN HD-LIF (SPEC E9) keeping ``mhat``: ``(s, u, m, mhat, mask, mean, var, invstd)``.

    ``mhat_t = alpha_t m_t + beta_t (w_t (m_t - mu_t) invstd_t + b_t)``, fired where
    ``mhat_t >= theta_t``. With ``use_batch_stats`` the statistics are the batch mean
    and biased variance of ``m_t`` per channel (accumulated in float64); otherwise
    ``mean``, ``var`` are used as given.
    """
    T, N, C, S = I.shape
    dtype = I.dtype
    s, u, m, mhat = np.empty_like(I), np.empty_like(I), np.empty_like(I), np.empty_like(I)
    mask = np.empty(I.shape, dtype=np.bool_)
    if use_batch_stats:
        mean, var = np.empty(lam.shape, dtype), np.empty(lam.shape, dtype)
    invstd = np.empty(lam.shape, dtype)
    col = lambda p: p[None, :, None]  # noqa: E731 - a [C] parameter against [N, C, S]
    u_prev = u0
    for t in range(T):
        m[t] = col(lam[t]) * u_prev + I[t]
        if use_batch_stats:
            mu64 = m[t].astype(np.float64).mean(axis=(0, 2))
            mean[t] = mu64
            var[t] = ((m[t] - mu64[None, :, None]) ** 2).mean(axis=(0, 2))
        invstd[t] = 1.0 / np.sqrt(var[t].astype(np.float64) + bn_eps)
        xhat = (m[t] - col(mean[t])) * col(invstd[t])
        mhat[t] = col(alpha[t]) * m[t] + col(beta[t]) * (col(w[t]) * xhat + col(b[t]))
        mask[t] = mhat[t] >= col(theta[t])
        s[t] = np.where(mask[t], mhat[t] - col(theta[t]), 0)
        u[t] = np.where(mask[t], col(theta[t]), mhat[t])
        u_prev = u[t]
    return s, u, m, mhat, mask, mean, var, invstd


def membn_hdlif_backward(gs, gu_last, m, u, mask, u0, lam, theta, alpha, beta, w, b, mean, invstd,
                         use_batch_stats, online):
    """Backward of :func:`membn_hdlif_forward`: ``(gI, gu0, glam, gtheta, galpha, gbeta, gw, gb)``.

    STBP through time (SPEC E4 with ``mhat`` for ``m``), or online (E5: ``dL/du = 0``
    from the next step) when ``online``. With batch statistics the BN backward
    includes the statistics' dependence on ``m_t``.
    """
    T, N, C, S = gs.shape
    dtype = gs.dtype
    count = N * S
    col = lambda p: p[None, :, None]  # noqa: E731
    gI = np.empty_like(gs)
    grads = {k: np.zeros(lam.shape, dtype) for k in ("lam", "theta", "alpha", "beta", "w", "b")}
    gu = np.zeros_like(u0) if online else gu_last
    per_c = lambda x: x.sum(axis=(0, 2), dtype=np.float64)  # noqa: E731 - [N, C, S] -> [C]
    for t in range(T - 1, -1, -1):
        g = np.where(mask[t], gs[t], gu)  # dL/dmhat_t
        grads["theta"][t] = per_c(np.where(mask[t], gu - gs[t], 0))
        xhat = (m[t] - col(mean[t])) * col(invstd[t])
        y = col(w[t]) * xhat + col(b[t])
        gy = g * col(beta[t])
        grads["alpha"][t] = per_c(g * m[t])
        grads["beta"][t] = per_c(g * y)
        grads["w"][t] = per_c(gy * xhat)
        grads["b"][t] = per_c(gy)
        gx = g * col(beta[t]) * col(w[t])
        if use_batch_stats and count:
            mean_gx = (per_c(gx) / count).astype(dtype)
            mean_gxx = (per_c(gx * xhat) / count).astype(dtype)
            g_bn = col(invstd[t]) * (gx - col(mean_gx) - xhat * col(mean_gxx))
        else:
            g_bn = col(invstd[t]) * gx
        gm = col(alpha[t]) * g + g_bn
        gI[t] = gm
        grads["lam"][t] = per_c(gm * (u0 if t == 0 else u[t - 1]))
        gu = np.zeros_like(gm) if online else gm * col(lam[t])
    return (gI, np.array(gu, copy=True), grads["lam"], grads["theta"], grads["alpha"],
            grads["beta"], grads["w"], grads["b"])
