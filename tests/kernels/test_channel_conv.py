"""SECA's 1-D channel convolution (SPEC E14): forward against np.correlate, backward by gradcheck."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hdlif_ref
from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.kernels import channel_conv


def np_reference(z, w):
    """Row by row: ``np.correlate`` of the row padded by K//2 zeros with the kernel ("valid")."""
    p = len(w) // 2
    return np.stack([np.correlate(np.pad(row, p), w, mode="valid") for row in z])


@st.composite
def case(draw):
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 9))
    k = draw(st.sampled_from([1, 3, 5, 7, 9, 11]))  # 11 > C for small C: padding covers it
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    return rng.standard_normal((n, c)), rng.standard_normal(k)


@given(zw=case())
def test_forward_matches_np_correlate(zw):
    z, w = zw
    for backend in ("numba", "numpy"):
        with hdlif_ref.backend(backend):
            out = ops.conv1d_channels(Tensor(z), Tensor(w))
        np.testing.assert_allclose(out.data, np_reference(z, w), rtol=1e-12, atol=1e-12)


def test_e14_formula_on_one_example():
    """out[n, c] = sum_k w[k] z[n, c + k - 1] for K = 3: the ends see one zero of padding."""
    z = np.array([[1.0, 2.0, 3.0, 4.0]])
    w = np.array([10.0, 100.0, 1000.0])
    out = ops.conv1d_channels(Tensor(z), Tensor(w)).data
    # c=0: 0*10 + 1*100 + 2*1000; c=3: 3*10 + 4*100 + 0*1000
    np.testing.assert_array_equal(out, [[2100.0, 3210.0, 4320.0, 430.0]])


@settings(max_examples=30)
@given(zw=case())
def test_gradcheck(zw):
    z, w = zw
    assert gradcheck(ops.conv1d_channels, [Tensor(z, requires_grad=True), Tensor(w, requires_grad=True)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_equals_twin(dtype):
    rng = np.random.default_rng(0)
    z, w, g = (rng.standard_normal(s).astype(dtype) for s in ((64, 512), (7,), (64, 512)))
    tol = 1e-13 if dtype == np.float64 else 2.0**-22
    np.testing.assert_allclose(channel_conv.conv1d_channels_forward.numba_impl(z, w),
                               channel_conv.conv1d_channels_forward.numpy_impl(z, w), rtol=tol, atol=tol * 10)
    for a, b in zip(channel_conv.conv1d_channels_backward.numba_impl(g, z, w, True, True),
                    channel_conv.conv1d_channels_backward.numpy_impl(g, z, w, True, True)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


def test_zero_size():
    z = Tensor(np.zeros((0, 5)), requires_grad=True)
    w = Tensor(np.ones(3), requires_grad=True)
    out = ops.conv1d_channels(z, w)
    assert out.shape == (0, 5)
    out.sum().backward()
    np.testing.assert_array_equal(w.grad, 0.0)


@pytest.mark.parametrize("call, message", [
    (lambda: ops.conv1d_channels(Tensor(np.zeros((2, 5))), Tensor(np.zeros(4))), r"K=4 taps; K must be odd"),
    (lambda: ops.conv1d_channels(Tensor(np.zeros((2, 5, 1))), Tensor(np.zeros(3))), r"z must have 2 dims"),
    (lambda: ops.conv1d_channels(Tensor(np.zeros((2, 5))), Tensor(np.zeros((3, 1)))), r"weight must have 1 dim \(\[K\]\)"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
