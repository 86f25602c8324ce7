"""The paper's theorems as tests: E4 (separability), E6 and E6' (online vs STBP), from kernels and theory.

``eps[i, t] = d s*_i / d m_t`` is measured three ways: float64 finite differences of
the forward, the STBP backward fed a one-hot upstream gradient at step ``i``, and
the product formula of :mod:`hdlif_ref.neurons.theory`.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlif_ref.autograd import Tensor, no_grad
from hdlif_ref.neurons import hdlif_record, hdlif_seq, lif_record, lif_seq, theory

from ._loops import nudge_off_threshold
from ._strategies import neuron_case


def grad_I(fn, I, g):
    """``dL/dI`` of ``L = <g, fn(I)>`` through the library's backward."""
    x = Tensor(np.array(I, dtype=np.float64), requires_grad=True)
    fn(x).backward(np.asarray(g, dtype=np.float64))
    return x.grad


def eps_by_backward(fn, I):
    """``eps[i, t] = dL/dI_t`` for ``dL/ds = e_i`` (one-hot at step ``i``): ``[T, T, ...]``."""
    T = I.shape[0]
    out = np.zeros((T,) + I.shape)
    for i in range(T):
        g = np.zeros(I.shape)
        g[i] = 1.0
        out[i] = grad_I(fn, I, g)
    return out


def eps_by_finite_differences(fn, I, h=1e-6):
    """``eps[i, t] = (s_i(I_t + h) - s_i(I_t - h)) / 2h``, all elements of ``I_t`` at once (they are independent)."""
    T = I.shape[0]
    out = np.zeros((T,) + I.shape)
    with no_grad():
        for t in range(T):
            plus, minus = I.copy(), I.copy()
            plus[t] += h
            minus[t] -= h
            out[:, t] = (fn(plus).data - fn(minus).data) / (2 * h)
    return out


@given(case=neuron_case(dtype=np.float64, max_T=5, max_side=3, max_dims=3))
@settings(max_examples=30)
def test_e4_eps_finite_differences_equal_product_formula(case):
    I, lam, theta = case
    I = nudge_off_threshold(I, lam, theta)
    fn = lambda x: hdlif_seq(x, lam, theta)  # noqa: E731
    formula = theory.eps(hdlif_record(I, lam, theta))
    np.testing.assert_allclose(eps_by_finite_differences(fn, I), formula, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(eps_by_backward(fn, I), formula, rtol=1e-12, atol=1e-12)
    # E4 structure: chi[t,t] in {0, 1}, chi[t,t-1] in {0, lam_t}
    rec = hdlif_record(I, lam, theta)
    assert set(np.unique(theory.chi_diag(rec))) <= {0.0, 1.0}


@given(seed=st.integers(0, 2**32 - 1), reset=st.sampled_from(["hard", "soft"]))
@settings(max_examples=20)
def test_e4_separability_hdlif_but_not_lif(seed, reset):
    """Move m a little without crossing any threshold: HD-LIF's eps is unchanged, LIF's is not."""
    rng = np.random.default_rng(seed)
    T = 4
    I = rng.uniform(-0.5, 1.5, (T, 64))
    lam, theta = np.full(T, 0.5), np.ones(T)
    # move only neurons whose m stays >= 5e-3 from the threshold at every step in both models;
    # |dI| <= 1e-3 moves m_t by at most 1e-3 (1 + lam + lam^2 + ...) < 2e-3
    far = np.all(np.abs(hdlif_record(I, lam, theta).m - 1.0) > 5e-3, axis=0) & \
        np.all(np.abs(lif_record(I, lam, theta, reset).m - 1.0) > 5e-3, axis=0)
    I_moved = I + np.where(far, rng.uniform(-1e-3, 1e-3, I.shape), 0.0)
    rec, rec_moved = hdlif_record(I, lam, theta), hdlif_record(I_moved, lam, theta)
    assert np.array_equal(rec.m >= 1.0, rec_moved.m >= 1.0)  # no threshold crossed
    assert not np.array_equal(rec.m, rec_moved.m)
    hd = lambda x: hdlif_seq(x, lam, theta)  # noqa: E731
    np.testing.assert_array_equal(eps_by_backward(hd, I), eps_by_backward(hd, I_moved))
    np.testing.assert_array_equal(theory.eps(rec), theory.eps(rec_moved))

    lrec, lrec_moved = lif_record(I, lam, theta, reset), lif_record(I_moved, lam, theta, reset)
    assert np.array_equal(lrec.s, lrec_moved.s)  # the LIF spikes did not change either
    lif = lambda x: lif_seq(x, lam, theta, reset=reset)  # noqa: E731
    eps_lif, eps_lif_moved = eps_by_backward(lif, I), eps_by_backward(lif, I_moved)
    np.testing.assert_allclose(eps_lif, theory.eps(lrec), rtol=1e-12, atol=1e-12)  # theory agrees with E7 kernels
    assert np.abs(eps_lif - eps_lif_moved).max() > 1e-5  # LIF's eps depends on the values of m


@given(case=neuron_case(dtype=np.float64, max_T=6, max_dims=3), data=st.data())
@settings(max_examples=40)
def test_e6_prime_online_equals_chi_diag_times_stbp_for_any_upstream(case, data):
    """SPEC E6': element by element, online = chi[t,t] * STBP, thresholds hit exactly included."""
    I, lam, theta = case
    g = data.draw(st.sampled_from([1.0, -2.0, 0.5])) * np.cos(3.0 * np.arange(I.size)).reshape(I.shape)
    stbp = grad_I(lambda x: hdlif_seq(x, lam, theta), I, g)
    online = grad_I(lambda x: hdlif_seq(x, lam, theta, gradient="online"), I, g)
    np.testing.assert_array_equal(online, theory.online_from_stbp(stbp, hdlif_record(I, lam, theta)))


@given(case=neuron_case(dtype=np.float64, max_T=6, max_dims=3), data=st.data())
@settings(max_examples=40)
def test_e6_online_is_nonnegative_multiple_of_stbp_for_equal_upstream(case, data):
    """SPEC E6: with dL/ds*_i = g for every i, online = chi/(chi + sum_{i>t} eps) * STBP; same sign."""
    I, lam, theta = case
    g_step = data.draw(st.sampled_from([1.0, -0.75])) * np.sin(1.0 + np.arange(I[0].size)).reshape(I.shape[1:])
    g = np.broadcast_to(g_step, I.shape)
    stbp = grad_I(lambda x: hdlif_seq(x, lam, theta), I, g)
    online = grad_I(lambda x: hdlif_seq(x, lam, theta, gradient="online"), I, g)
    ratio = theory.e6_ratio(hdlif_record(I, lam, theta))
    assert np.all((ratio >= 0) & (ratio <= 1))
    np.testing.assert_allclose(online, ratio * stbp, rtol=1e-12, atol=1e-12)
    assert np.all(online * stbp >= 0)


def _cosine(a, b):
    return float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_e6_cosine_online_vs_stbp_is_one_for_hdlif_and_below_one_for_lif():
    """Cosine between online and STBP dL/dI over the entries the online gradient updates (its support).

    HD-LIF: exactly 1 (E6'). LIF: measurably below 1 on random data (no such identity).
    The cosine over all entries is printed too (below 1 for both: online is zero where
    HD-LIF did not fire, while STBP is not).
    """
    rng = np.random.default_rng(2024)
    T = 8
    I = rng.normal(0.4, 0.8, (T, 64, 16))
    lam, theta = np.full(T, 0.5), np.ones(T)
    g = rng.standard_normal(I.shape)
    report = {}
    for name, fn in (("hdlif", lambda x, mode: hdlif_seq(x, lam, theta, gradient=mode)),
                     ("lif", lambda x, mode: lif_seq(x, lam, theta, gradient=mode))):
        stbp = grad_I(lambda x: fn(x, "stbp"), I, g)
        online = grad_I(lambda x: fn(x, "online"), I, g)
        support = online != 0
        report[name] = (_cosine(online[support], stbp[support]), _cosine(online, stbp))
    print(f"\ncosine(online, STBP) on the online support / overall: "
          f"HD-LIF {report['hdlif'][0]:.6f} / {report['hdlif'][1]:.6f}, "
          f"LIF {report['lif'][0]:.6f} / {report['lif'][1]:.6f}")
    assert abs(report["hdlif"][0] - 1.0) < 1e-12
    assert report["lif"][0] < 0.99
