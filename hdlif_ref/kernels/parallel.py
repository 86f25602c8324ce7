"""Parallel HD-LIF kernels (SPEC E8): ``s*_t = relu(I_t - theta_t)``, no leak, no state.

Layout as in :mod:`.hdlif` (``I, s, mask: [T, N, F]``, ``theta: [T, C]``). With no
state there is no temporal term: the STBP gradient (E4) and the online gradient
(E5) coincide, so one backward serves both:
``dL/dI_t = H(I_t - theta_t) dL/ds*_t`` and ``dL/dtheta_t = -sum H dL/ds*_t`` (``H(0) = 1``).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._backend import dispatch
from ._blocking import BLOCK, lane_sum, launch, n_blocks
from ._config import njit_parallel
from .reference import neurons as _ref


@njit_parallel
def _parallel_fwd(I, theta, block, s, mask):
    T, N, F = I.shape
    S = F // theta.shape[1]
    zero = I.dtype.type(0)
    nfb = (F + block - 1) // block
    for item in prange(N * nfb):
        n = item // nfb
        f0 = (item % nfb) * block
        f1 = min(f0 + block, F)
        for t in range(T):
            f = f0
            while f < f1:
                c = f // S
                fe = min(f1, (c + 1) * S)
                theta_tc = theta[t, c]
                I_seg, s_seg, mask_seg = I[t, n, f:fe], s[t, n, f:fe], mask[t, n, f:fe]
                for j in range(fe - f):
                    x = I_seg[j]
                    fired = x >= theta_tc
                    s_seg[j] = x - theta_tc if fired else zero
                    mask_seg[j] = fired
                f = fe


@njit_parallel
def _parallel_bwd(gs, mask, theta, block, gI, gtheta_part):
    T, N, F = gs.shape
    S = F // theta.shape[1]
    zero = gs.dtype.type(0)
    nfb = (F + block - 1) // block
    for item in prange(N * nfb):
        n = item // nfb
        f0 = (item % nfb) * block
        f1 = min(f0 + block, F)
        d_theta = np.empty(f1 - f0, dtype=gs.dtype)
        for t in range(T):
            f = f0
            while f < f1:
                c = f // S
                fe = min(f1, (c + 1) * S)
                a, b = f - f0, fe - f0
                gs_seg, gI_seg, mask_seg, dt_seg = gs[t, n, f:fe], gI[t, n, f:fe], mask[t, n, f:fe], d_theta[a:b]
                for j in range(b - a):
                    fired = mask_seg[j]
                    gI_seg[j] = gs_seg[j] if fired else zero
                    dt_seg[j] = -gs_seg[j] if fired else zero
                gtheta_part[item, t, c] = lane_sum(d_theta, a, b)
                f = fe


def _forward_numba(I, theta, out=None):
    s, mask = out if out is not None else (np.empty_like(I), np.empty(I.shape, dtype=np.bool_))
    launch(_parallel_fwd, I.size, I, theta, BLOCK, s, mask)
    return s, mask


def _backward_numba(gs, mask, theta):
    T, N, F = gs.shape
    gI = np.empty_like(gs)
    gtheta_part = np.zeros((N * n_blocks(F), T, theta.shape[1]), dtype=gs.dtype)
    launch(_parallel_bwd, gs.size, gs, mask, theta, BLOCK, gI, gtheta_part)
    return gI, gtheta_part.sum(axis=0)


#: ``(s, mask) = parallel_hdlif_forward(I, theta, out=None)`` (SPEC E8); ``out`` as :data:`.hdlif.hdlif_forward`'s.
parallel_hdlif_forward = dispatch(_forward_numba, _ref.parallel_hdlif_forward)
#: ``(gI, gtheta) = parallel_hdlif_backward(gs, mask, theta)``: STBP and online alike.
parallel_hdlif_backward = dispatch(_backward_numba, _ref.parallel_hdlif_backward)
