"""The online neuron backward kernels (SPEC E5) against the STBP ones (E4) run one step at a time.

An online step gets no gradient through ``u_t`` and gives none to ``u_{t-1}``; E4 then reduces to
E5's step-alone form: ``dL/dI_t = H_t g_t`` (LIF: ``sg_t g_t``), ``dL/dtheta_t = -sum dL/dI_t``,
``dL/dlam_t = sum dL/dI_t u_{t-1}``. So on each backend the online kernel over ``T`` steps must give
what the STBP kernel gives for each step alone, with a zero ``dL/du_t`` and the state the forward
reached. (The one-step ops call the online kernels in exactly that case: ``tests/neurons``.)
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hdlif_ref
from hdlif_ref.kernels import BACKENDS
from hdlif_ref.kernels import hdlif as hdlif_kernels
from hdlif_ref.kernels import lif as lif_kernels
from hdlif_ref.kernels.surrogates import DEFAULT_GAMMA, SURROGATES

from ..neurons._strategies import LAMS, THETAS, VALUES


@st.composite
def kernel_case(draw):
    """``(I [T, N, F], u0 [N, F], lam [T, C], theta [T, C], g [T, N, F])`` in the kernels' layout, values on the
    thresholds' grid; ``C = 1`` is a per-layer parameter. Long rows cross work items and channel segments."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    T, N, C = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    S = draw(st.sampled_from([1, 3, 8, 700, 2049]))  # 2049: a channel longer than a work item
    F = C * S
    I = draw(hnp.arrays(dtype, (T, N, F), elements=VALUES))
    u0 = draw(hnp.arrays(dtype, (N, F), elements=VALUES))
    lam = draw(hnp.arrays(dtype, (T, C), elements=LAMS))
    theta = draw(hnp.arrays(dtype, (T, C), elements=THETAS))
    g = draw(hnp.arrays(dtype, (T, N, F), elements=VALUES))
    return I, u0, lam, theta, g


def _compare(online, steps, need_lam):
    gI, glam, gtheta = online
    np.testing.assert_array_equal(gI, np.concatenate([s[0] for s in steps]))
    np.testing.assert_array_equal(gtheta, np.concatenate([s[3] for s in steps]))
    if need_lam:
        np.testing.assert_array_equal(glam, np.concatenate([s[2] for s in steps]))
    else:
        assert glam is None


@given(case=kernel_case(), need_lam=st.booleans())
@settings(max_examples=40, deadline=None)
def test_hdlif_online_kernel_is_e4_one_step_at_a_time(case, need_lam):
    I, u0, lam, theta, g = case
    for backend in BACKENDS:
        with hdlif_ref.backend(backend):
            _, _, mask = hdlif_kernels.hdlif_forward(I, u0, lam, theta)
            online = hdlif_kernels.hdlif_backward_online(g, mask, I, u0, lam, theta, need_lam)
            steps, u = [], u0
            for t in range(I.shape[0]):
                one = slice(t, t + 1)
                _, u_next, mask_t = hdlif_kernels.hdlif_forward(I[one], u, lam[one], theta[one])
                steps.append(hdlif_kernels.hdlif_backward_stbp(g[one], np.zeros_like(u), mask_t, I[one], u,
                                                               lam[one], theta[one], need_lam))
                u = u_next
            _compare(online, steps, need_lam)


@given(case=kernel_case(), need_lam=st.booleans(), soft=st.booleans(), surrogate=st.sampled_from(SURROGATES))
@settings(max_examples=40, deadline=None)
def test_lif_online_kernel_is_the_stbp_kernel_one_step_at_a_time(case, need_lam, soft, surrogate):
    I, u0, lam, theta, g = case
    code, gamma = SURROGATES.index(surrogate), DEFAULT_GAMMA[surrogate]
    for backend in BACKENDS:
        with hdlif_ref.backend(backend):
            _, _, m = lif_kernels.lif_forward(I, u0, lam, theta, soft)
            online = lif_kernels.lif_backward_online(g, m, u0, lam, theta, soft, code, gamma, need_lam)
            steps, u = [], u0
            for t in range(I.shape[0]):
                one = slice(t, t + 1)
                _, u_next, m_t = lif_kernels.lif_forward(I[one], u, lam[one], theta[one], soft)
                steps.append(lif_kernels.lif_backward_stbp(g[one], np.zeros_like(u), m_t, u, lam[one], theta[one],
                                                           soft, code, gamma, need_lam))
                u = u_next
            _compare(online, steps, need_lam)


@pytest.mark.parametrize("soft", [False, True])
def test_lif_online_kernel_keeps_the_nan_of_an_overflowed_membrane(soft):
    """float32 currents of -3e38 at two steps overflow ``m`` to ``-inf``. With a hard reset the STBP recursion's
    ``0 * du/dm`` (``du/dm = 1 - m sg``) is then NaN, and the online kernel must give the same: on each backend
    what the STBP kernel gives one step at a time, and the same on both backends."""
    I = np.full((3, 1, 4), 0.1, np.float32)
    I[:, 0, 0] = [-3e38, -3e38, 0.1]
    u0 = np.zeros((1, 4), np.float32)
    lam, theta = np.full((3, 1), 0.9, np.float32), np.ones((3, 1), np.float32)
    g = np.ones_like(I)
    results = {}
    with np.errstate(over="ignore", invalid="ignore"):
        for backend in BACKENDS:
            with hdlif_ref.backend(backend):
                _, _, m = lif_kernels.lif_forward(I, u0, lam, theta, soft)
                online = lif_kernels.lif_backward_online(g, m, u0, lam, theta, soft, 0, 1.0, True)
                steps, u = [], u0
                for t in range(3):
                    one = slice(t, t + 1)
                    _, u_next, m_t = lif_kernels.lif_forward(I[one], u, lam[one], theta[one], soft)
                    steps.append(lif_kernels.lif_backward_stbp(g[one], np.zeros_like(u), m_t, u, lam[one],
                                                               theta[one], soft, 0, 1.0, True))
                    u = u_next
            _compare(online, steps, True)
            results[backend] = online
    assert np.isinf(m[1, 0, 0]) and np.isnan(results["numba"][0]).any() != soft
    for a, b in zip(results["numba"], results["numpy"]):
        np.testing.assert_array_equal(a, b)
