"""Fused multi-step LIF kernels (SPEC E7, the baseline): forward, STBP and online backward.

Layout as in :mod:`.hdlif` (``I, s, m: [T, N, F]``, state ``[N, F]``, ``lam, theta:
[T, C]``). ``soft`` chooses the reset: hard ``u = m (1 - s)`` (DC default) or soft
``u = m - theta s``. The spike is binary, ``s = H(m - theta)`` with ``H(0) = 1``;
its derivative is a surrogate ``sg(m - theta)`` chosen by an integer code
(:mod:`.surrogates`: 0 triangle, SPEC E7's default
``max(gamma - |m - theta|, 0) / gamma^2``, 1 sigmoid, 2 atan, 3 fast-sigmoid), used
wherever ``s`` appears, including inside the reset (the reset is differentiated,
not detached; DC in ``docs/neurons.md``):

    hard:  du/dm = (1 - s) - m sg,      du/dtheta = m sg
    soft:  du/dm = 1 - theta sg,        du/dtheta = theta sg - s

The surrogate depends on the value of ``m``, so the forward keeps ``m`` itself
(``u_{t-1}`` and ``s`` are recomputed from it). The surrogate's constants ``a, b``
(:func:`.surrogates.kernel_constants`) arrive as scalars of the data's dtype so that
no float64 constant promotes float32 arithmetic.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._backend import dispatch
from ._blocking import BLOCK, lane_dot, lane_sum, lane_sum2, launch, partial_sums
from ._config import njit, njit_parallel
from .reference import neurons as _ref
from .surrogates import kernel_constants


@njit
def _surrogate(code, x, a, b, zero, one):
    """``sg(x)``, ``x = m - theta``, of surrogate ``code`` (the codes and constants of :mod:`.surrogates`)."""
    if code == 0:  # triangle
        return max(a - abs(x), zero) * b
    if code == 1:  # sigmoid: a S(a x) (1 - S(a x)) = a e / (1 + e)^2 with e = exp(-a |x|)
        e = np.exp(-a * abs(x))
        d = one + e
        return a * e / (d * d)
    if code == 2:  # atan
        z = b * x
        return a / (one + z * z)
    z = a * abs(x) + one  # fast-sigmoid
    return one / (z * z)


@njit_parallel
def _lif_fwd(I, u0, lam, theta, soft, block, s, u_last, m_out):
    T, N, F = I.shape
    S = F // lam.shape[1]
    zero = I.dtype.type(0)
    one = I.dtype.type(1)
    nfb = (F + block - 1) // block
    for item in prange(N * nfb):
        n = item // nfb
        f0 = (item % nfb) * block
        f1 = min(f0 + block, F)
        u = u0[n, f0:f1].copy()
        for t in range(T):
            f = f0
            while f < f1:
                c = f // S
                fe = min(f1, (c + 1) * S)
                lam_tc = lam[t, c]
                theta_tc = theta[t, c]
                u_seg = u[f - f0:fe - f0]
                I_seg, s_seg, m_seg = I[t, n, f:fe], s[t, n, f:fe], m_out[t, n, f:fe]
                for j in range(fe - f):
                    m = lam_tc * u_seg[j] + I_seg[j]
                    fired = m >= theta_tc
                    m_seg[j] = m
                    s_seg[j] = one if fired else zero
                    if soft:
                        u_seg[j] = m - theta_tc if fired else m
                    else:
                        u_seg[j] = zero if fired else m
                f = fe
        u_last[n, f0:f1] = u


@njit(inline="always")
def _reset_partials(m, theta, sg, soft, zero, one):
    """``(du/dm, du/dtheta)`` of the reset (module docstring), the spike's derivative taken as ``sg``."""
    fired = m >= theta
    if soft:
        return one - theta * sg, theta * sg - (one if fired else zero)
    return (zero if fired else one) - m * sg, m * sg


@njit(inline="always")
def _state_from_charge(m_seg, theta, soft, u_seg):
    """``u = reset(m)`` element by element, as the forward computed it (hard: 0 where fired; soft: ``m - theta``)."""
    zero = m_seg.dtype.type(0)
    for j in range(len(m_seg)):
        m = m_seg[j]
        if soft:
            u_seg[j] = m - theta if m >= theta else m
        else:
            u_seg[j] = zero if m >= theta else m


@njit(inline="always")
def _stbp_segment(sg_code, soft, lam_tc, theta_tc, sg_a, sg_b, gs_seg, m_seg, up_seg, gu_seg, gI_seg, dl_seg,
                  dt_seg):
    """One channel segment of one step of :func:`_lif_bwd`: ``gI``, the ``lam`` and ``theta`` products, and
    ``dL/du_{t-1}`` in ``gu_seg`` (inlined; called with a constant ``sg_code`` its loop vectorizes)."""
    zero = gs_seg.dtype.type(0)
    one = gs_seg.dtype.type(1)
    for j in range(len(gs_seg)):
        m = m_seg[j]
        sg = _surrogate(sg_code, m - theta_tc, sg_a, sg_b, zero, one)
        du_dm, du_dtheta = _reset_partials(m, theta_tc, sg, soft, zero, one)
        gm = gs_seg[j] * sg + gu_seg[j] * du_dm
        dt_seg[j] = gu_seg[j] * du_dtheta - gs_seg[j] * sg
        gI_seg[j] = gm
        dl_seg[j] = gm * up_seg[j]
        gu_seg[j] = gm * lam_tc


@njit_parallel
def _lif_bwd(gs, gu_last, m_all, u0, lam, theta, soft, sg_code, sg_a, sg_b, block, need_lam,
             gI, gu0, glam_part, gtheta_part):
    # dL/dm_t = dL/ds_t sg_t + dL/du_t du_t/dm_t;  dL/dtheta_t = -dL/ds_t sg_t + dL/du_t du_t/dtheta_t;
    # dL/du_{t-1} = lam_t dL/dm_t (the online backward, SPEC E5, is _lif_bwd_online).
    T, N, F = gs.shape
    S = F // lam.shape[1]
    zero = gs.dtype.type(0)
    nfb = (F + block - 1) // block
    for item in prange(N * nfb):
        n = item // nfb
        f0 = (item % nfb) * block
        f1 = min(f0 + block, F)
        B = f1 - f0
        gu = gu_last[n, f0:f1].copy()
        d_lam = np.empty(B, dtype=gs.dtype)
        d_theta = np.empty(B, dtype=gs.dtype)
        u_prev = np.empty(B, dtype=gs.dtype)
        for t in range(T - 1, -1, -1):
            f = f0
            while f < f1:
                c = f // S
                fe = min(f1, (c + 1) * S)
                a, b = f - f0, fe - f0
                lam_tc = lam[t, c]
                theta_tc = theta[t, c]
                up_seg = u_prev[a:b]
                if not need_lam:
                    up_seg[:] = zero  # products unused; keeps the inner loop free of branches
                elif t == 0:
                    up_seg[:] = u0[n, f:fe]
                else:  # u_{t-1} from m_{t-1}, as the forward computed it
                    _state_from_charge(m_all[t - 1, n, f:fe], theta[t - 1, c], soft, up_seg)
                gs_seg, m_seg, gu_seg, gI_seg = gs[t, n, f:fe], m_all[t, n, f:fe], gu[a:b], gI[t, n, f:fe]
                dl_seg, dt_seg = d_lam[a:b], d_theta[a:b]
                if sg_code == 0:  # the default (triangle) as a constant, as in _lif_bwd_online
                    _stbp_segment(0, soft, lam_tc, theta_tc, sg_a, sg_b, gs_seg, m_seg, up_seg, gu_seg, gI_seg,
                                  dl_seg, dt_seg)
                else:
                    _stbp_segment(sg_code, soft, lam_tc, theta_tc, sg_a, sg_b, gs_seg, m_seg, up_seg, gu_seg,
                                  gI_seg, dl_seg, dt_seg)
                glam_part[item, t, c], gtheta_part[item, t, c] = lane_sum2(d_lam, d_theta, a, b)
                f = fe
        gu0[n, f0:f1] = gu


@njit(inline="always")
def _online_segment(sg_code, soft, theta_tc, sg_a, sg_b, gs_seg, m_seg, gI_seg):
    """``dL/dI`` of one channel segment of an online step: ``dL/ds sg + 0 * du/dm``, the STBP recursion's
    ``dL/dm`` with ``dL/du = 0`` (its product with ``du/dm`` kept: NaN, not 0, where ``m`` is infinite)."""
    zero = gs_seg.dtype.type(0)
    one = gs_seg.dtype.type(1)
    for j in range(len(gs_seg)):
        m = m_seg[j]
        sg = _surrogate(sg_code, m - theta_tc, sg_a, sg_b, zero, one)
        du_dm, _ = _reset_partials(m, theta_tc, sg, soft, zero, one)
        gI_seg[j] = gs_seg[j] * sg + zero * du_dm


@njit_parallel
def _lif_bwd_online(gs, m_all, u0, lam, theta, soft, sg_code, sg_a, sg_b, block, need_lam,
                    gI, glam_part, gtheta_part):
    # Online (SPEC E5 applied to E7): dL/du_t = 0, so each step stands alone:
    #   dL/dm_t = dL/ds_t sg_t = dL/dI_t,   dL/dtheta_t = -sum dL/dm_t,   dL/dlam_t = sum dL/dm_t u_{t-1}.
    # (The STBP recursion's values with dL/du = 0, its sums in the same order, signs of zeros aside, but no
    # scratch arrays and one stream written, so that it vectorizes; _online_segment keeps the recursion's
    # 0 * du/dm, which is NaN where a membrane overflowed to +-inf, as there.)
    T, N, F = gs.shape
    S = F // lam.shape[1]
    zero = gs.dtype.type(0)
    nfb = (F + block - 1) // block
    for item in prange(N * nfb):
        n = item // nfb
        f0 = (item % nfb) * block
        f1 = min(f0 + block, F)
        u_prev = np.empty(f1 - f0 if need_lam and T > 1 else 0, dtype=gs.dtype)  # u_{t-1} for t > 0
        for t in range(T):
            f = f0
            while f < f1:
                c = f // S
                fe = min(f1, (c + 1) * S)
                theta_tc = theta[t, c]
                gs_seg, gI_seg, m_seg = gs[t, n, f:fe], gI[t, n, f:fe], m_all[t, n, f:fe]
                if sg_code == 0:  # the default (triangle) as a constant: its loop then vectorizes
                    _online_segment(0, soft, theta_tc, sg_a, sg_b, gs_seg, m_seg, gI_seg)
                else:
                    _online_segment(sg_code, soft, theta_tc, sg_a, sg_b, gs_seg, m_seg, gI_seg)
                gtheta_part[item, t, c] = zero - lane_sum(gI_seg, 0, fe - f)
                if need_lam:
                    if t == 0:
                        glam_part[item, t, c] = lane_dot(gI_seg, u0[n, f:fe], 0, fe - f)
                    else:  # u_{t-1} from m_{t-1}, as the forward computed it
                        up_seg = u_prev[f - f0:fe - f0]
                        _state_from_charge(m_all[t - 1, n, f:fe], theta[t - 1, c], soft, up_seg)
                        glam_part[item, t, c] = lane_dot(gI_seg, up_seg, 0, fe - f)
                f = fe


def _forward_numba(I, u0, lam, theta, soft, out=None):
    s, u_last, m = out if out is not None else (np.empty_like(I), np.empty_like(u0), np.empty_like(I))
    launch(_lif_fwd, I.size, I, u0, lam, theta, bool(soft), BLOCK, s, u_last, m)
    return s, u_last, m


def _backward_stbp_numba(gs, gu_last, m, u0, lam, theta, soft, surrogate, gamma, need_lam):
    sg_a, sg_b = kernel_constants(surrogate, gamma, gs.dtype)
    gI, gu0 = np.empty_like(gs), np.empty_like(u0)
    glam_part, gtheta_part = partial_sums(gs, lam.shape[1])
    launch(_lif_bwd, gs.size, gs, gu_last, m, u0, lam, theta, bool(soft), int(surrogate), sg_a, sg_b, BLOCK,
           bool(need_lam), gI, gu0, glam_part, gtheta_part)
    return gI, gu0, (glam_part.sum(axis=0) if need_lam else None), gtheta_part.sum(axis=0)


def _backward_online_numba(gs, m, u0, lam, theta, soft, surrogate, gamma, need_lam):
    sg_a, sg_b = kernel_constants(surrogate, gamma, gs.dtype)
    gI = np.empty_like(gs)
    glam_part, gtheta_part = partial_sums(gs, lam.shape[1])
    launch(_lif_bwd_online, gs.size, gs, m, u0, lam, theta, bool(soft), int(surrogate), sg_a, sg_b, BLOCK,
           bool(need_lam), gI, glam_part, gtheta_part)
    return gI, (glam_part.sum(axis=0) if need_lam else None), gtheta_part.sum(axis=0)


#: ``(s, u_last, m) = lif_forward(I, u0, lam, theta, soft, out=None)`` (SPEC E7); ``out`` as
#: :data:`.hdlif.hdlif_forward`'s.
lif_forward = dispatch(_forward_numba, _ref.lif_forward)
#: ``(gI, gu0, glam, gtheta) = lif_backward_stbp(gs, gu_last, m, u0, lam, theta, soft, surrogate, gamma,
#: need_lam)``; ``surrogate`` is a code of :data:`.surrogates.SURROGATES`, ``gamma`` its width/slope.
lif_backward_stbp = dispatch(_backward_stbp_numba, _ref.lif_backward_stbp)
#: ``(gI, glam, gtheta) = lif_backward_online(gs, m, u0, lam, theta, soft, surrogate, gamma, need_lam)``.
lif_backward_online = dispatch(_backward_online_numba, _ref.lif_backward_online)
