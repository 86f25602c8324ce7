"""linear: forward against a plain loop, backward by gradcheck, BLAS path against the einsum twin."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hdlif_ref
from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.kernels import linear as linear_kernels


def loop_linear(x, w, b):
    lead = x.shape[:-1]
    out = np.zeros(lead + (w.shape[0],))
    for idx in np.ndindex(*lead):
        for o in range(w.shape[0]):
            out[idx + (o,)] = sum(x[idx + (i,)] * w[o, i] for i in range(w.shape[1])) + (0.0 if b is None else b[o])
    return out


@st.composite
def linear_case(draw):
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
    f_in, f_out = draw(st.integers(0, 4)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x = rng.standard_normal(lead + (f_in,))
    w = rng.standard_normal((f_out, f_in))
    b = rng.standard_normal(f_out) if draw(st.booleans()) else None
    return x, w, b


@given(case=linear_case())
def test_forward_matches_loop(case):
    x, w, b = case
    for backend in ("numba", "numpy"):
        with hdlif_ref.backend(backend):
            out = ops.linear(Tensor(x), Tensor(w), None if b is None else Tensor(b))
        assert out.shape == x.shape[:-1] + (w.shape[0],)
        np.testing.assert_allclose(out.data, loop_linear(x, w, b), rtol=1e-12, atol=1e-12)


@settings(max_examples=25)
@given(case=linear_case())
def test_gradcheck(case):
    x, w, b = case
    inputs = [Tensor(a, requires_grad=True) for a in (x, w, b) if a is not None]
    assert gradcheck(lambda *t: ops.linear(*t), inputs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_path_equals_twin(dtype):
    """Both sum F_in (or M) products; float32 within (count + 2) U32 sum |terms| of each other's exact value."""
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((64, 300), (40, 300), (40,)))
    g = rng.standard_normal((64, 40)).astype(dtype)
    fast = (linear_kernels.linear_forward.numba_impl(x, w, b),) + linear_kernels.linear_backward.numba_impl(
        g, x, w, True, True, True)
    twin = (linear_kernels.linear_forward.numpy_impl(x, w, b),) + linear_kernels.linear_backward.numpy_impl(
        g, x, w, True, True, True)
    bound = 1e-12 if dtype == np.float64 else 2 * (300 + 2) * 2.0**-24
    mags = (np.abs(x) @ np.abs(w).T + np.abs(b), np.abs(g) @ np.abs(w), np.abs(g).T @ np.abs(x), np.abs(g).sum(0))
    for a, c, mag in zip(fast, twin, mags):
        assert a.dtype == dtype and c.dtype == dtype
        assert np.all(np.abs(a.astype(np.float64) - c) <= bound * mag)


def test_dtypes():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    out = ops.linear(x, w)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    assert ops.linear(x, Tensor(np.ones((4, 3)))).dtype == np.float64


@pytest.mark.parametrize("call, message", [
    (lambda: ops.linear(Tensor(np.zeros((2, 3))), Tensor(np.zeros((4, 5)))), r"x has 3 input features .* F_in = 5"),
    (lambda: ops.linear(Tensor(np.zeros((2, 3))), Tensor(np.zeros(3))), r"weight must have 2 dims"),
    (lambda: ops.linear(Tensor(np.zeros(())), Tensor(np.zeros((1, 1)))), r"x must have at least 1 dim"),
    (lambda: ops.linear(Tensor(np.zeros((2, 3))), Tensor(np.zeros((4, 3))), Tensor(np.zeros(3))),
     r"bias has shape \(3,\); expected \(4,\)"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
