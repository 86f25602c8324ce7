"""Fused Mem-BN HD-LIF kernels (SPEC E9): forward and backward (STBP, or online with ``online``).

    m_t    = lam_t u_{t-1} + I_t
    mhat_t = alpha_t m_t + beta_t BN_t(m_t),   BN_t(m) = w_t (m - mu_t) / sqrt(var_t + eps) + b_t
    s*_t   = relu(mhat_t - theta_t),           u_t = min(mhat_t, theta_t)

Layout: ``I, s, m, u, mask: [T, N, C, S]``, state ``[N, C, S]``, every parameter
``[T, C]``. With batch statistics (training) ``mu_t, var_t`` are the mean and the
biased variance of ``m_t`` over ``N`` and ``S`` for each channel; otherwise they
are given (running statistics, eval). Statistics couple the elements of a channel
at each step, so a work item is a whole channel: ``prange`` over ``c``, each
iteration walking ``t`` and writing only channel ``c`` (statistics sums in
float64, in a fixed order).

The forward keeps ``m``, ``u`` and the masks (the backward needs ``m`` for
``alpha``'s gradient and the normalization, ``u_{t-1}`` for ``lam``'s).
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._backend import dispatch
from ._blocking import launch
from ._config import njit_parallel
from .reference import neurons as _ref


@njit_parallel
def _membn_fwd(I, u0, lam, theta, alpha, beta, w, b, use_batch_stats, bn_eps,
               mean, var, invstd, s, u_all, m_all, mask):
    T, N, C, S = I.shape
    zero = I.dtype.type(0)
    count = N * S
    for c in prange(C):
        u = u0[:, c, :].copy()
        for t in range(T):
            lam_tc, theta_tc = lam[t, c], theta[t, c]
            for n in range(N):
                u_n, I_n, m_n = u[n], I[t, n, c], m_all[t, n, c]
                for k in range(S):
                    m_n[k] = lam_tc * u_n[k] + I_n[k]
            if use_batch_stats:
                acc = 0.0
                for n in range(N):
                    for k in range(S):
                        acc += m_all[t, n, c, k]
                mu64 = acc / count
                acc = 0.0
                for n in range(N):
                    for k in range(S):
                        d = m_all[t, n, c, k] - mu64
                        acc += d * d
                mean[t, c] = mu64
                var[t, c] = acc / count
            mu = mean[t, c]
            inv = I.dtype.type(1.0 / math.sqrt(np.float64(var[t, c]) + bn_eps))
            invstd[t, c] = inv
            a, bb, w_tc, b_tc = alpha[t, c], beta[t, c], w[t, c], b[t, c]
            for n in range(N):
                u_n, m_n = u[n], m_all[t, n, c]
                s_n, uo_n, mask_n = s[t, n, c], u_all[t, n, c], mask[t, n, c]
                for k in range(S):
                    m = m_n[k]
                    mhat = a * m + bb * (w_tc * ((m - mu) * inv) + b_tc)
                    fired = mhat >= theta_tc
                    s_n[k] = mhat - theta_tc if fired else zero
                    u_n[k] = theta_tc if fired else mhat
                    uo_n[k] = u_n[k]
                    mask_n[k] = fired


@njit_parallel
def _membn_bwd(gs, gu_last, m_all, u_all, mask, u0, lam, theta, alpha, beta, w, b, mean, invstd,
               use_batch_stats, online, gI, gu0, glam, gtheta, galpha, gbeta, gw, gb):
    # Per step, backwards: dL/dmhat = H dL/ds* + (1 - H) dL/du (E3 with mhat for m);
    # mhat = alpha m + beta y, y = w xhat + b, xhat = (m - mu) invstd; batch statistics add
    # the usual BN terms: dL/dm = alpha g + invstd (gx - mean(gx) - xhat mean(gx xhat)),
    # gx = dL/dxhat = beta w g. Then dL/dI_t = dL/dm_t, dL/du_{t-1} = lam_t dL/dm_t.
    T, N, C, S = gs.shape
    zero = gs.dtype.type(0)
    count = N * S
    for c in prange(C):
        gu = np.zeros((N, S), dtype=gs.dtype) if online else gu_last[:, c, :].copy()
        for t in range(T - 1, -1, -1):
            mu, inv = mean[t, c], invstd[t, c]
            a, bb, w_tc, b_tc, lam_tc = alpha[t, c], beta[t, c], w[t, c], b[t, c], lam[t, c]
            acc_theta = acc_alpha = acc_beta = acc_w = acc_b = acc_gx = acc_gxx = 0.0
            for n in range(N):
                for k in range(S):
                    m = m_all[t, n, c, k]
                    g_u = gu[n, k]
                    g_s = gs[t, n, c, k]
                    if mask[t, n, c, k]:
                        g = g_s
                        acc_theta += g_u - g_s
                    else:
                        g = g_u
                    xhat = (m - mu) * inv
                    y = w_tc * xhat + b_tc
                    gy = g * bb
                    acc_alpha += g * m
                    acc_beta += g * y
                    acc_w += gy * xhat
                    acc_b += gy
                    acc_gx += gy * w_tc
                    acc_gxx += gy * w_tc * xhat
                    gI[t, n, c, k] = g  # dL/dmhat for now; the second pass turns it into dL/dm
            gtheta[t, c], galpha[t, c], gbeta[t, c] = acc_theta, acc_alpha, acc_beta
            gw[t, c], gb[t, c] = acc_w, acc_b
            mean_gx = gs.dtype.type(acc_gx / count) if count else zero
            mean_gxx = gs.dtype.type(acc_gxx / count) if count else zero
            acc_lam = 0.0
            for n in range(N):
                for k in range(S):
                    g = gI[t, n, c, k]
                    gx = g * bb * w_tc
                    if use_batch_stats:
                        xhat = (m_all[t, n, c, k] - mu) * inv
                        g_bn = inv * (gx - mean_gx - xhat * mean_gxx)
                    else:
                        g_bn = inv * gx
                    gm = a * g + g_bn
                    gI[t, n, c, k] = gm
                    u_prev = u0[n, c, k] if t == 0 else u_all[t - 1, n, c, k]
                    acc_lam += gm * u_prev
                    gu[n, k] = zero if online else gm * lam_tc
            glam[t, c] = acc_lam
        gu0[:, c, :] = gu


def _forward_numba(I, u0, lam, theta, alpha, beta, w, b, mean, var, use_batch_stats, bn_eps):
    T, N, C, S = I.shape
    s, u_all, m_all = np.empty_like(I), np.empty_like(I), np.empty_like(I)
    mask = np.empty(I.shape, dtype=np.bool_)
    invstd = np.empty(lam.shape, dtype=I.dtype)
    if use_batch_stats:
        mean, var = np.empty(lam.shape, dtype=I.dtype), np.empty(lam.shape, dtype=I.dtype)
    launch(_membn_fwd, I.size, I, u0, lam, theta, alpha, beta, w, b, bool(use_batch_stats), float(bn_eps),
               mean, var, invstd, s, u_all, m_all, mask)
    return s, u_all, m_all, mask, mean, var, invstd


def _backward_numba(gs, gu_last, m_all, u_all, mask, u0, lam, theta, alpha, beta, w, b, mean,
                    invstd, use_batch_stats, online):
    gI, gu0 = np.empty_like(gs), np.empty_like(u0)
    grads = [np.empty(lam.shape, dtype=gs.dtype) for _ in range(6)]
    launch(_membn_bwd, gs.size, gs, gu_last, m_all, u_all, mask, u0, lam, theta, alpha, beta, w, b, mean, invstd,
               bool(use_batch_stats), bool(online), gI, gu0, *grads)
    return (gI, gu0, *grads)


#: ``(s, u, m, mask, mean, var, invstd) = membn_hdlif_forward(I, u0, lam, theta, alpha, beta,
#: w, b, mean, var, use_batch_stats, bn_eps)`` (SPEC E9); with batch statistics the ``mean``,
#: ``var`` arguments are ignored and the batch ones returned.
membn_hdlif_forward = dispatch(_forward_numba, _ref.membn_hdlif_forward)
#: ``(gI, gu0, glam, gtheta, galpha, gbeta, gw, gb) = membn_hdlif_backward(gs, gu_last, m, u,
#: mask, u0, lam, theta, alpha, beta, w, b, mean, invstd, use_batch_stats, online)``.
membn_hdlif_backward = dispatch(_backward_numba, _ref.membn_hdlif_backward)
