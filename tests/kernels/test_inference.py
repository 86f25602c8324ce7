"""The frozen model's element-wise passes (kernels/inference.py): plain loops written here,
Numba against the twin bit for bit, rounding ties and clip bounds, in-place contract, errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hdlif_ref
from hdlif_ref.kernels import inference

BACKENDS = ("numba", "numpy")


def loop_scale_shift(y, scale, bias):
    """``y[t, n, c, k] * scale[t or 0, c] + bias[t or 0, c]``, one element at a time."""
    T, N, C = y.shape[:3]
    flat = y.reshape(T, N, C, -1)
    out = np.empty_like(flat)
    s, b = np.reshape(scale, (-1, C)), np.reshape(bias, (-1, C))
    for t in range(T):
        ts, tb = (t if s.shape[0] > 1 else 0), (t if b.shape[0] > 1 else 0)
        for n in range(N):
            for c in range(C):
                for k in range(flat.shape[3]):
                    prod = y.dtype.type(flat[t, n, c, k] * s[ts, c])  # rounded to y's dtype, then the sum
                    out[t, n, c, k] = prod + b[tb, c]
    return out.reshape(y.shape)


def loop_levels(s, step, qmax):
    """``clip(round(s / step), 0, qmax)`` with Python's ``round`` (half to even, as SPEC E13)."""
    out = np.empty_like(s)
    for i, v in np.ndenumerate(s):
        q = float(round(float(s.dtype.type(v / s.dtype.type(step)))))
        out[i] = min(max(q, 0.0), qmax)
    return out


@st.composite
def affine_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    T, N, C = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 5))
    spatial = draw(st.sampled_from([(), (1,), (3,), (2, 3), (5, 5)]))
    # each of scale and bias: every step ([C] or [1, C]) or per step ([T, C]), independently
    scale_shape, bias_shape = (draw(st.sampled_from([(C,), (1, C), (T, C)])) for _ in range(2))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    y = rng.standard_normal((T, N, C) + spatial).astype(dtype)
    return y, rng.standard_normal(scale_shape).astype(dtype), rng.standard_normal(bias_shape).astype(dtype)


@given(case=affine_case())
def test_scale_shift_matches_loop_and_twin_bit_for_bit(case):
    y, scale, bias = case
    expected = loop_scale_shift(y, scale, bias)
    for backend in BACKENDS:
        work = y.copy()
        with hdlif_ref.backend(backend):
            out = inference.scale_shift_(work, scale, bias)
        assert out is work, backend  # in place, returns its argument
        np.testing.assert_array_equal(out, expected, err_msg=backend)


def test_scale_shift_large_enough_for_both_threads():
    rng = np.random.default_rng(3)
    y = rng.standard_normal((4, 8, 16, 32, 32)).astype(np.float32)  # 512 Ki elements: the parallel path
    scale, bias = rng.standard_normal((4, 16)).astype(np.float32), rng.standard_normal((4, 16)).astype(np.float32)
    with hdlif_ref.backend("numpy"):
        expected = inference.scale_shift_(y.copy(), scale, bias)
    with hdlif_ref.backend("numba"):
        np.testing.assert_array_equal(inference.scale_shift_(y.copy(), scale, bias), expected)


@st.composite
def levels_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    bits = draw(st.integers(1, 8))
    step = draw(st.sampled_from([0.25, 0.5, 1.0, 0.1, 0.37]))
    qmax = 2**bits - 1
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    n = draw(st.integers(0, 300))
    # values on the rounding ties (k + 1/2) * step, on the levels, below 0 and above qmax, and random
    ties = (rng.integers(-2, qmax + 3, n) + 0.5) * step
    levels = rng.integers(-2, qmax + 3, n) * step
    noise = rng.uniform(-2 * step, (qmax + 2) * step, n)
    s = np.concatenate([ties, levels, noise, [0.0, -0.0, qmax * step, (qmax + 0.5) * step]]).astype(dtype)
    shape = draw(st.sampled_from([(-1,), (1, -1), (-1, 1, 1)]))
    return rng.permutation(s).reshape(shape), step, qmax


@given(case=levels_case())
def test_spike_levels_match_loop_and_twin_on_ties_and_bounds(case):
    s, step, qmax = case
    expected = loop_levels(s, step, qmax)
    for backend in BACKENDS:
        work = s.copy()
        with hdlif_ref.backend(backend):
            out = inference.spike_levels_(work, step, qmax)
        assert out is work, backend
        np.testing.assert_array_equal(out, expected, err_msg=backend)


def test_spike_levels_round_half_to_even():
    s = np.array([0.5, 1.5, 2.5, 3.5, -0.5, 15.5, 16.0, 14.5], dtype=np.float32)
    for backend in BACKENDS:
        with hdlif_ref.backend(backend):
            out = inference.spike_levels_(s.copy(), 1.0, 15)
        np.testing.assert_array_equal(out, [0, 2, 2, 4, 0, 15, 15, 14], err_msg=backend)


def test_spike_levels_equal_the_quantizer_divided_by_its_step():
    """The same E13 quantizer as the training kernel: ``Q(x) = step * level``."""
    from hdlif_ref.kernels.spike_quantize import spike_quantize_forward

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 5, 100_000).astype(np.float32)
    step, qmax = np.float32(0.3125), np.float32(15)  # 5/16: step * level (level <= 15) is exact
    levels = inference.spike_levels_(x.copy(), step, qmax)
    np.testing.assert_array_equal(step * levels, spike_quantize_forward(x, step, qmax))


@pytest.mark.parametrize("backend", BACKENDS)
def test_errors_name_the_argument(backend):
    y = np.zeros((2, 3, 4, 5), dtype=np.float32)
    with hdlif_ref.backend(backend):
        with pytest.raises(ValueError, match=r"scale must be \[C\], \[1, C\] or \[T, C\] with T=2, C=4.*got \(3,\)"):
            inference.scale_shift_(y, np.ones(3, np.float32), np.ones(4, np.float32))
        with pytest.raises(ValueError, match=r"bias must be .* got \(3, 4\)"):
            inference.scale_shift_(y, np.ones(4, np.float32), np.ones((3, 4), np.float32))
        with pytest.raises(ValueError, match="y must be a writeable C-contiguous array.*not contiguous"):
            inference.scale_shift_(y[:, :, :, ::2], np.ones(4, np.float32), np.ones(4, np.float32))
        with pytest.raises(ValueError, match=r"y must be \[T, N, C, ...\]"):
            inference.scale_shift_(np.zeros((2, 3), np.float32), np.ones(3, np.float32), np.ones(3, np.float32))
        with pytest.raises(TypeError, match="s must be a float32 or float64 ndarray"):
            inference.spike_levels_(np.zeros(4, dtype=np.int32), 1.0, 15)
        with pytest.raises(ValueError, match="step must be > 0 in float32, got 0.0"):
            inference.spike_levels_(np.zeros(4, dtype=np.float32), 0.0, 15)
        assert np.all(y == 0)  # nothing was written


# ---------------------------------------------------------------------------- HD-LIF with levels
def loop_hdlif_levels(I, u0, lam, theta, step, qmax):
    """SPEC E1, E2 one element and step at a time (``H(0) = 1``), each spike then as :func:`loop_levels`."""
    T, N, F = I.shape
    C = lam.shape[1]
    levels, u = np.empty_like(I), u0.copy()
    for t in range(T):
        for n in range(N):
            for f in range(F):
                c = f // (F // C)
                m = I.dtype.type(lam[t, c] * u[n, f]) + I[t, n, f]  # the product rounded, then the sum
                fired = m >= theta[t, c]
                levels[t, n, f] = m - theta[t, c] if fired else 0
                u[n, f] = theta[t, c] if fired else m
    return loop_levels(levels, step, qmax), u


@st.composite
def hdlif_levels_case(draw):
    """Currents on a grid of 1/8 and thresholds on one of 1/4, so that m = theta and s*/step = k + 1/2 (a tie)
    happen, per-layer (C = 1) and per-channel parameters, rows longer than a work item."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    T, N, C = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    S = draw(st.sampled_from([1, 5, 2049]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    I = (rng.integers(-8, 24, (T, N, C * S)) / 8).astype(dtype)
    u0 = (rng.integers(-4, 8, (N, C * S)) / 8).astype(dtype)
    lam = rng.choice([0.0, 0.5, 0.75, 1.0], (T, C)).astype(dtype)
    theta = rng.choice([0.25, 0.5, 1.0], (T, C)).astype(dtype)
    step, qmax = draw(st.sampled_from([0.25, 0.5, 0.1])), 2 ** draw(st.integers(1, 4)) - 1
    return I, u0, lam, theta, step, qmax


@given(case=hdlif_levels_case())
def test_hdlif_levels_is_the_forward_then_the_levels_bit_for_bit(case):
    """The one-pass kernel against a plain loop and against the two passes it replaces (the HD-LIF forward, then
    ``spike_levels_``), on both backends, with and without ``out``."""
    from hdlif_ref.kernels.hdlif import hdlif_forward
    I, u0, lam, theta, step, qmax = case
    want_levels, want_u = loop_hdlif_levels(I, u0, lam, theta, step, qmax)
    for backend in BACKENDS:
        with hdlif_ref.backend(backend):
            s, u_last, _ = hdlif_forward(I, u0, lam, theta)
            two_passes = inference.spike_levels_(s, step, qmax)
            levels, u = inference.hdlif_levels(I, u0, lam, theta, step, qmax)
            out = (np.full_like(I, np.nan), np.full_like(u0, np.nan))
            got = inference.hdlif_levels(I, u0, lam, theta, step, qmax, out=out)
        assert got[0] is out[0] and got[1] is out[1], backend
        for a in (levels, out[0], two_passes):
            np.testing.assert_array_equal(a, want_levels, err_msg=backend)
        for a in (u, out[1], u_last):
            np.testing.assert_array_equal(a, want_u, err_msg=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hdlif_levels_errors_name_the_argument(backend):
    I, u0 = np.zeros((2, 1, 4), np.float32), np.zeros((1, 4), np.float32)
    lam = theta = np.ones((2, 2), np.float32)
    with hdlif_ref.backend(backend):
        with pytest.raises(TypeError, match="I must be"):
            inference.hdlif_levels(I.astype(np.int32), u0, lam, theta, 0.5, 15)
        with pytest.raises(TypeError, match=r"u0 must be a float32 array \(I's dtype\)"):
            inference.hdlif_levels(I, u0.astype(np.float64), lam, theta, 0.5, 15)
        with pytest.raises(ValueError, match="theta must be C-contiguous"):
            inference.hdlif_levels(I, u0, lam, np.ones((2, 4), np.float32)[:, ::2], 0.5, 15)
        with pytest.raises(ValueError, match=r"u0 must have shape \(1, 4\)"):
            inference.hdlif_levels(I, np.zeros((1, 3), np.float32), lam, theta, 0.5, 15)
        with pytest.raises(ValueError, match="lam and theta must both be"):
            inference.hdlif_levels(I, u0, np.ones((2, 3), np.float32), np.ones((2, 3), np.float32), 0.5, 15)
        with pytest.raises(ValueError, match="step must be > 0"):
            inference.hdlif_levels(I, u0, lam, theta, 0.0, 15)
        with pytest.raises(ValueError, match="step must be > 0 in float32, got 1e-46"):  # 0 once cast
            inference.hdlif_levels(I, u0, lam, theta, 1e-46, 15)
        with pytest.raises(ValueError, match="qmax must be >= 0, got -1"):
            inference.hdlif_levels(I, u0, lam, theta, 0.5, -1)
        with pytest.raises(ValueError, match="step must be > 0 in float32, got 1e-46"):
            inference.spike_levels_(np.zeros(4, np.float32), 1e-46, 15)
        with pytest.raises(ValueError, match=r"out must be a pair \(levels, u_last\)"):
            inference.hdlif_levels(I, u0, lam, theta, 0.5, 15, out=np.empty_like(I))
        with pytest.raises(ValueError, match=r"out\[0\] \(levels\) must be"):
            inference.hdlif_levels(I, u0, lam, theta, 0.5, 15, out=(np.empty((2, 1, 3), np.float32), u0.copy()))
