"""Fused multi-step HD-LIF kernels (SPEC E1-E5): forward, STBP backward, online backward.

Layout (see :mod:`._blocking`): ``I, s, mask: [T, N, F]``, state ``u0, u_last: [N, F]``,
``lam, theta: [T, C]`` with ``F = C * S``; all C-contiguous and of one float dtype.
The public entry points (:data:`hdlif_forward`, :data:`hdlif_backward_stbp`,
:data:`hdlif_backward_online`) allocate outputs and dispatch to the Numba kernel
or to its NumPy twin in :mod:`.reference.neurons`; they assume the layout is
right (the checked user-facing API is :mod:`hdlif_ref.neurons`).

What the forward keeps for the backward: the firing masks ``H(m_t - theta_t)``
(one byte each) and, only when ``lam`` needs a gradient, the input ``I`` (a
reference, no copy) from which the backward recomputes ``u_{t-1}`` item by item
(``u_t = theta_t`` where the mask is set, else ``lam_t u_{t-1} + I_t``: the same
operations as the forward, so the same bits).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._backend import dispatch
from ._blocking import BLOCK, lane_dot, lane_sum, lane_sum2, launch, partial_sums
from ._config import njit_parallel
from .reference import neurons as _ref


@njit_parallel
def _hdlif_fwd(I, u0, lam, theta, block, s, u_last, mask):
    # SPEC E1: m = lam u + I;  E2: s* = relu(m - theta), u = min(m, theta), H(0) = 1.
    T, N, F = I.shape
    S = F // lam.shape[1]
    zero = I.dtype.type(0)
    nfb = (F + block - 1) // block
    for item in prange(N * nfb):
        n = item // nfb
        f0 = (item % nfb) * block
        f1 = min(f0 + block, F)
        u = u0[n, f0:f1].copy()
        for t in range(T):
            f = f0
            while f < f1:  # one channel segment at a time: lam, theta are loop constants
                c = f // S
                fe = min(f1, (c + 1) * S)
                lam_tc = lam[t, c]
                theta_tc = theta[t, c]
                # slices, not index arithmetic: contiguous views let LLVM vectorize
                u_seg = u[f - f0:fe - f0]
                I_seg, s_seg, mask_seg = I[t, n, f:fe], s[t, n, f:fe], mask[t, n, f:fe]
                for j in range(fe - f):
                    m = lam_tc * u_seg[j] + I_seg[j]
                    fired = m >= theta_tc
                    s_seg[j] = m - theta_tc if fired else zero
                    u_seg[j] = theta_tc if fired else m
                    mask_seg[j] = fired
                f = fe
        u_last[n, f0:f1] = u


@njit_parallel
def _hdlif_bwd(gs, gu_last, mask, I, u0, lam, theta, block, need_lam,
               gI, gu0, glam_part, gtheta_part):
    # STBP (SPEC E4), written as the recursion it unrolls to:
    #   dL/dm_t = H_t dL/ds*_t + (1 - H_t) dL/du_t,   dL/du_{t-1} = lam_t dL/dm_t,
    #   dL/dtheta_t += H_t (dL/du_t - dL/ds*_t),      dL/dlam_t += dL/dm_t u_{t-1}.
    T, N, F = gs.shape
    S = F // lam.shape[1]
    zero = gs.dtype.type(0)
    nfb = (F + block - 1) // block
    for item in prange(N * nfb):
        n = item // nfb
        f0 = (item % nfb) * block
        f1 = min(f0 + block, F)
        B = f1 - f0
        # u_prev[t] = u_{t-1}; left at 0 when lam needs no gradient (its products are then unused),
        # so that the inner loop below has no branch
        u_prev = np.zeros((T, B), dtype=gs.dtype)
        if need_lam:
            u_prev[0] = u0[n, f0:f1]
            for t in range(T - 1):
                f = f0
                while f < f1:
                    c = f // S
                    fe = min(f1, (c + 1) * S)
                    lam_tc = lam[t, c]
                    theta_tc = theta[t, c]
                    up_seg, un_seg = u_prev[t, f - f0:fe - f0], u_prev[t + 1, f - f0:fe - f0]
                    I_seg, mask_seg = I[t, n, f:fe], mask[t, n, f:fe]
                    for j in range(fe - f):
                        un_seg[j] = theta_tc if mask_seg[j] else lam_tc * up_seg[j] + I_seg[j]
                    f = fe
        gu = gu_last[n, f0:f1].copy()
        d_lam = np.empty(B, dtype=gs.dtype)
        d_theta = np.empty(B, dtype=gs.dtype)
        for t in range(T - 1, -1, -1):
            f = f0
            while f < f1:
                c = f // S
                fe = min(f1, (c + 1) * S)
                lam_tc = lam[t, c]
                a, b = f - f0, fe - f0
                gu_seg, up_seg, dl_seg, dt_seg = gu[a:b], u_prev[t, a:b], d_lam[a:b], d_theta[a:b]
                gs_seg, gI_seg, mask_seg = gs[t, n, f:fe], gI[t, n, f:fe], mask[t, n, f:fe]
                for j in range(b - a):
                    fired = mask_seg[j]
                    g_u = gu_seg[j]
                    g_s = gs_seg[j]
                    gm = g_s if fired else g_u
                    dt_seg[j] = g_u - g_s if fired else zero
                    gI_seg[j] = gm
                    dl_seg[j] = gm * up_seg[j]
                    gu_seg[j] = gm * lam_tc
                glam_part[item, t, c], gtheta_part[item, t, c] = lane_sum2(d_lam, d_theta, a, b)
                f = fe
        gu0[n, f0:f1] = gu


@njit_parallel
def _hdlif_bwd_online(gs, mask, I, u0, lam, theta, block, need_lam, gI, glam_part, gtheta_part):
    # Online (SPEC E5): u_{t-1} is a constant, so dL/du_t = 0 and each step stands alone:
    #   dL/dm_t = H_t dL/ds*_t = dL/dI_t,   dL/dtheta_t = -sum dL/dm_t,   dL/dlam_t = sum dL/dm_t u_{t-1}.
    # (E4's recursion with dL/du = 0, with the same sums in the same order: the same bits as that
    # recursion run with a zero dL/du, but no scratch arrays and one stream written, so it vectorizes.)
    T, N, F = gs.shape
    S = F // lam.shape[1]
    zero = gs.dtype.type(0)
    nfb = (F + block - 1) // block
    for item in prange(N * nfb):
        n = item // nfb
        f0 = (item % nfb) * block
        f1 = min(f0 + block, F)
        u = u0[n, f0:f1]  # u_{t-1}; a copy only if later steps must advance it
        if need_lam and T > 1:
            u = u.copy()
        for t in range(T):
            f = f0
            while f < f1:
                c = f // S
                fe = min(f1, (c + 1) * S)
                gs_seg, gI_seg, mask_seg = gs[t, n, f:fe], gI[t, n, f:fe], mask[t, n, f:fe]
                for j in range(fe - f):
                    gI_seg[j] = gs_seg[j] if mask_seg[j] else zero
                gtheta_part[item, t, c] = zero - lane_sum(gI_seg, 0, fe - f)
                if need_lam:
                    glam_part[item, t, c] = lane_dot(gI_seg, u[f - f0:fe - f0], 0, fe - f)
                f = fe
            if need_lam and t < T - 1:  # u_t as the forward computed it (E1, E2)
                f = f0
                while f < f1:
                    c = f // S
                    fe = min(f1, (c + 1) * S)
                    lam_tc, theta_tc = lam[t, c], theta[t, c]
                    u_seg, I_seg, mask_seg = u[f - f0:fe - f0], I[t, n, f:fe], mask[t, n, f:fe]
                    for j in range(fe - f):
                        u_seg[j] = theta_tc if mask_seg[j] else lam_tc * u_seg[j] + I_seg[j]
                    f = fe


def _forward_numba(I, u0, lam, theta, out=None):
    s, u_last, mask = out if out is not None else (np.empty_like(I), np.empty_like(u0),
                                                   np.empty(I.shape, dtype=np.bool_))
    launch(_hdlif_fwd, I.size, I, u0, lam, theta, BLOCK, s, u_last, mask)
    return s, u_last, mask


def _backward_stbp_numba(gs, gu_last, mask, I, u0, lam, theta, need_lam):
    gI, gu0 = np.empty_like(gs), np.empty_like(u0)
    glam_part, gtheta_part = partial_sums(gs, lam.shape[1])
    launch(_hdlif_bwd, gs.size, gs, gu_last, mask, I, u0, lam, theta, BLOCK, bool(need_lam),
           gI, gu0, glam_part, gtheta_part)
    return gI, gu0, (glam_part.sum(axis=0) if need_lam else None), gtheta_part.sum(axis=0)


def _backward_online_numba(gs, mask, I, u0, lam, theta, need_lam):
    gI = np.empty_like(gs)
    glam_part, gtheta_part = partial_sums(gs, lam.shape[1])
    launch(_hdlif_bwd_online, gs.size, gs, mask, I, u0, lam, theta, BLOCK, bool(need_lam),
           gI, glam_part, gtheta_part)
    return gI, (glam_part.sum(axis=0) if need_lam else None), gtheta_part.sum(axis=0)


#: ``(s, u_last, mask) = hdlif_forward(I, u0, lam, theta, out=None)`` (SPEC E1, E2); ``out``: optional
#: ``(s, u_last, mask)`` arrays (C-contiguous, of those shapes and dtypes) written into and returned.
hdlif_forward = dispatch(_forward_numba, _ref.hdlif_forward)
#: ``(gI, gu0, glam, gtheta) = hdlif_backward_stbp(gs, gu_last, mask, I, u0, lam, theta, need_lam)`` (E4).
hdlif_backward_stbp = dispatch(_backward_stbp_numba, _ref.hdlif_backward_stbp)
#: ``(gI, glam, gtheta) = hdlif_backward_online(gs, mask, I, u0, lam, theta, need_lam)`` (E5).
hdlif_backward_online = dispatch(_backward_online_numba, _ref.hdlif_backward_online)
