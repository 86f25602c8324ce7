"""batch_norm: forward against the plain formula, backward by gradcheck, running statistics by hand."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hdlif_ref
from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.kernels import norm as norm_kernels

BACKENDS = ("numba", "numpy")


def formula(x, weight, bias, mean, var, eps):
    """``weight * (x - mean) / sqrt(var + eps) + bias`` per channel (axis 1), written out here."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def batch_stats(x):
    axes = (0,) + tuple(range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes)  # var: biased (ddof=0), what training normalizes by


@st.composite
def bn_case(draw):
    image = draw(st.booleans())
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = (n, c, draw(st.integers(1, 3)), draw(st.integers(1, 3))) if image else (n + 1, c)
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x = rng.standard_normal(shape) * draw(st.sampled_from([1e-3, 1.0, 50.0])) + draw(st.sampled_from([0.0, 3.0]))
    affine = draw(st.sampled_from(["both", "none", "weight", "bias"]))
    weight = rng.standard_normal(c) if affine in ("both", "weight") else None
    bias = rng.standard_normal(c) if affine in ("both", "bias") else None
    return x, weight, bias


def _leaf(a):
    return None if a is None else Tensor(a, requires_grad=True)


@given(case=bn_case(), training=st.booleans())
def test_forward_matches_formula(case, training):
    x, weight, bias = case
    if training and x.size // x.shape[1] < 2:
        return  # refused (tested below)
    rng = np.random.default_rng(0)
    running_mean = rng.standard_normal(x.shape[1])
    running_var = rng.uniform(0.5, 2.0, x.shape[1])
    mean, var = batch_stats(x) if training else (running_mean, running_var)
    expected = formula(x, weight, bias, mean, var, 1e-5)
    for backend in BACKENDS:
        with hdlif_ref.backend(backend):
            out = ops.batch_norm(Tensor(x), _leaf(weight), _leaf(bias), running_mean.copy(),
                                 running_var.copy(), training)
        np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-10, err_msg=backend)


@settings(max_examples=30)
@given(case=bn_case(), training=st.booleans())
def test_gradcheck(case, training):
    x, weight, bias = case
    if training and x.size // x.shape[1] < 2:
        return
    c = x.shape[1]
    inputs = [Tensor(x, requires_grad=True)] + [_leaf(a) for a in (weight, bias) if a is not None]

    def fn(*t):
        it = iter(t[1:])
        w = next(it) if weight is not None else None
        b = next(it) if bias is not None else None
        # fresh running statistics each call: the forward updates them in place
        return ops.batch_norm(t[0], w, b, np.zeros(c), np.full(c, 1.5), training)

    # x scaled by 1e-3 makes the normalized output steep in x: relax atol accordingly
    assert gradcheck(fn, inputs, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_running_statistics_after_several_steps(backend, dtype):
    """Three training steps, then eval: running stats follow PyTorch's update, computed by hand here."""
    rng = np.random.default_rng(1)
    momentum, eps = 0.3, 1e-5
    running_mean = np.zeros(3, dtype=dtype)
    running_var = np.ones(3, dtype=dtype)
    hand_mean, hand_var = np.zeros(3), np.ones(3)
    with hdlif_ref.backend(backend):
        for _ in range(3):
            x = (rng.standard_normal((4, 3, 2, 5)) * [[[[1.0]], [[2.0]], [[0.5]]]] + 1.0).astype(dtype)
            ops.batch_norm(Tensor(x), None, None, running_mean, running_var, True, momentum, eps)
            values = x.astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1)  # [C, M]
            m = values.shape[1]
            batch_mean = values.sum(axis=1) / m
            unbiased = ((values - batch_mean[:, None]) ** 2).sum(axis=1) / (m - 1)
            hand_mean = (1 - momentum) * hand_mean + momentum * batch_mean
            hand_var = (1 - momentum) * hand_var + momentum * unbiased
        tol = 1e-12 if dtype == np.float64 else 1e-6
        assert running_mean.dtype == dtype and running_var.dtype == dtype
        np.testing.assert_allclose(running_mean, hand_mean, rtol=tol, atol=tol)
        np.testing.assert_allclose(running_var, hand_var, rtol=tol, atol=tol)
        # evaluation uses them, and leaves them alone
        x = rng.standard_normal((2, 3, 2, 2)).astype(dtype)
        before = running_mean.copy(), running_var.copy()
        out = ops.batch_norm(Tensor(x), None, None, running_mean, running_var, False, momentum, eps)
        np.testing.assert_allclose(out.data, formula(x.astype(np.float64), None, None, hand_mean, hand_var, eps),
                                   rtol=tol * 10, atol=tol * 10)
        np.testing.assert_array_equal(running_mean, before[0])
        np.testing.assert_array_equal(running_var, before[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_equals_twin_on_larger_shapes(dtype):
    """Both compute statistics and outputs in float64, so they agree to float64 summation-order noise
    (then one rounding to float32)."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((8, 16, 10, 10)) * 3 + 2).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = rng.standard_normal(16).astype(dtype), rng.standard_normal(16).astype(dtype)
    x3, g3 = x.reshape(8, 16, 100), g.reshape(8, 16, 100)
    tol = 1e-11 if dtype == np.float64 else 2.0**-23
    y, mean, var = norm_kernels.batch_norm_train_forward.numba_impl(x3, w, b, 1e-5)
    y2, mean2, var2 = norm_kernels.batch_norm_train_forward.numpy_impl(x3, w, b, 1e-5)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, y2, rtol=tol, atol=tol)
    np.testing.assert_allclose(mean, mean2, rtol=1e-12)
    np.testing.assert_allclose(var, var2, rtol=1e-12)
    invstd = 1.0 / np.sqrt(var + 1e-5)
    for name in ("batch_norm_train_backward", "batch_norm_eval_backward"):
        kernel = getattr(norm_kernels, name)
        for got, want in zip(kernel.numba_impl(g3, x3, mean, invstd, w, True, True, True),
                             kernel.numpy_impl(g3, x3, mean, invstd, w, True, True, True)):
            assert got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    np.testing.assert_allclose(norm_kernels.batch_norm_eval_forward.numba_impl(x3, mean, invstd, w, b),
                               norm_kernels.batch_norm_eval_forward.numpy_impl(x3, mean, invstd, w, b),
                               rtol=tol, atol=tol)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 9), c=st.integers(1, 3), length=st.integers(1, 70), seed=st.integers(0, 2**31 - 1),
       offset=st.sampled_from([0.0, 1e4]), dtype=st.sampled_from([np.float32, np.float64]))
def test_channel_sums_against_exactly_rounded_sums(n, c, length, seed, offset, dtype):
    """The kernels' float64 sums (column sums over the batch, then over positions) against
    ``math.fsum`` (exactly rounded): within ``M * 2^-52`` of the sum of magnitudes, ``M = N * L``."""
    import math
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c, length)) + offset).astype(dtype)
    g = rng.standard_normal((n, c, length)).astype(dtype)
    count = n * length
    for ch in range(c):
        values = x[:, ch].astype(np.float64).ravel()
        mu, var = norm_kernels.channel_stats(x, ch)
        exact_mu = math.fsum(values) / count
        assert abs(mu - exact_mu) <= count * 2.0**-52 * np.abs(values).sum() / count
        deviations = (values - mu) ** 2
        assert abs(var - math.fsum(deviations) / count) <= 2 * count * 2.0**-52 * deviations.sum() / count
        inv = 1.0 / math.sqrt(var + 1e-5)
        sum_g, sum_gx = norm_kernels.channel_grad_sums(g, x, ch, mu, inv)
        gs = g[:, ch].astype(np.float64).ravel()
        products = gs * ((values - mu) * inv)
        assert abs(sum_g - math.fsum(gs)) <= count * 2.0**-52 * np.abs(gs).sum()
        assert abs(sum_gx - math.fsum(products)) <= 2 * count * 2.0**-52 * np.abs(products).sum()


def test_channel_sums_follow_the_documented_order():
    """Column sums over the batch, then the columns in order (kernels/norm.py): the same float64
    operations written as plain Python loops give the same bits (the fused kernel relies on it)."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((5, 2, 7)) * 1e3 + 1e5).astype(np.float32)  # large offset: order shows
    g = rng.standard_normal(x.shape).astype(np.float32)
    for c in range(2):
        n, length = x.shape[0], x.shape[2]
        cols = [0.0] * length
        for k in range(n):
            for t in range(length):
                cols[t] += float(x[k, c, t])
        mu = 0.0
        for t in range(length):
            mu += cols[t]
        mu /= n * length
        cols = [0.0] * length
        for k in range(n):
            for t in range(length):
                d = float(x[k, c, t]) - mu
                cols[t] += d * d
        var = 0.0
        for t in range(length):
            var += cols[t]
        var /= n * length
        assert norm_kernels.channel_stats(x, c) == (mu, var)
        inv = 1.0 / np.sqrt(var + 1e-5)
        cg, cgx = [0.0] * length, [0.0] * length
        for k in range(n):
            for t in range(length):
                cg[t] += float(g[k, c, t])
                cgx[t] += float(g[k, c, t]) * ((float(x[k, c, t]) - mu) * inv)
        sum_g = sum_gx = 0.0
        for t in range(length):
            sum_g += cg[t]
            sum_gx += cgx[t]
        assert norm_kernels.channel_grad_sums(g, x, c, mu, inv) == (sum_g, sum_gx)


def test_dtypes():
    x = Tensor(np.random.default_rng(3).standard_normal((4, 2, 3, 3)).astype(np.float32), requires_grad=True)
    w = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    out = ops.batch_norm(x, w, None, np.zeros(2, np.float32), np.ones(2, np.float32), True)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_size_batch_in_evaluation(backend):
    x = Tensor(np.zeros((0, 3, 2, 2)), requires_grad=True)
    w = Tensor(np.ones(3), requires_grad=True)
    with hdlif_ref.backend(backend):
        out = ops.batch_norm(x, w, None, np.zeros(3), np.ones(3), False)
        assert out.shape == (0, 3, 2, 2)
        out.sum().backward()
    assert x.grad.shape == x.shape
    np.testing.assert_array_equal(w.grad, 0.0)


def test_constant_channel_is_normalized_to_bias():
    """var = 0: y = bias exactly (x - mean = 0), and the gradient is finite."""
    x = Tensor(np.full((3, 2, 2, 2), 7.0), requires_grad=True)
    b = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    out = ops.batch_norm(x, Tensor(np.ones(2)), b, None, None, True)
    np.testing.assert_array_equal(out.data, np.broadcast_to(np.array([0.5, -1.0])[:, None, None], (3, 2, 2, 2)))
    out.backward(np.ones(out.shape))
    assert np.all(np.isfinite(x.grad))


RM, RV = np.zeros(3), np.ones(3)
X = Tensor(np.zeros((2, 3, 2, 2)))


@pytest.mark.parametrize("call, error, message", [
    (lambda: ops.batch_norm(Tensor(np.zeros((2, 3, 2))), None, None, RM, RV, True), ValueError,
     r"x must have 2 or 4 dims"),
    (lambda: ops.batch_norm(X, Tensor(np.ones(2)), None, RM, RV, True), ValueError,
     r"weight has shape \(2,\); expected \(3,\)"),
    (lambda: ops.batch_norm(X, None, None, np.zeros(4), RV, True), ValueError,
     r"running_mean has shape \(4,\); expected \(3,\)"),
    (lambda: ops.batch_norm(X, None, None, None, None, False), ValueError,
     r"running_mean is None; evaluation mode"),
    (lambda: ops.batch_norm(X, None, None, RM, None, True), ValueError, r"give both running_mean and running_var"),
    (lambda: ops.batch_norm(X, None, None, [0.0] * 3, RV, True), TypeError, r"running_mean must be a float32"),
    (lambda: ops.batch_norm(X, None, None, RM, RV, True, momentum=1.5), ValueError, r"momentum=1.5 must be"),
    (lambda: ops.batch_norm(X, None, None, RM, RV, True, eps=0.0), ValueError, r"eps=0.0 must be a positive"),
    (lambda: ops.batch_norm(X, None, None, RM, RV, "yes"), TypeError, r"training='yes' must be a bool"),
    (lambda: ops.batch_norm(Tensor(np.zeros((1, 3))), None, None, RM, RV, True), ValueError,
     r"more than one value per channel .* \(1 per channel\)"),
    (lambda: ops.batch_norm(X, None, None, np.broadcast_to(RM, (3,)), RV, True), ValueError,
     r"running_mean is read-only"),
])
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------ every step in one op (batch_norm_steps)
@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 4), n=st.integers(1, 4), c=st.integers(1, 4), length=st.integers(1, 9),
       dtype=st.sampled_from([np.float32, np.float64]), affine=st.booleans(), need_x=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_steps_kernels_are_the_one_step_kernels_bit_for_bit(T, n, c, length, dtype, affine, need_x, seed):
    """Numba and NumPy: the per-step statistics, outputs and gradients of one launch equal T launches of the
    one-step kernels on x[t], bit for bit."""
    if n * length < 2:
        return
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((T, n, c, length)) * 3 + 1).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    weight = rng.uniform(0.5, 2, c).astype(dtype) if affine else None
    bias = rng.uniform(-1, 1, c).astype(dtype) if affine else None
    for name in BACKENDS:
        with hdlif_ref.backend(name):
            y, mean, var = norm_kernels.batch_norm_steps_train_forward(x, weight, bias, 1e-5)
            invstd = 1.0 / np.sqrt(var + 1e-5)
            gx, gw, gb = norm_kernels.batch_norm_steps_train_backward(g, x, mean, invstd, weight, need_x)
            for t in range(T):
                y_t, mean_t, var_t = norm_kernels.batch_norm_train_forward(x[t], weight, bias, 1e-5)
                assert y[t].tobytes() == y_t.tobytes() and mean[t].tobytes() == mean_t.tobytes(), name
                assert var[t].tobytes() == var_t.tobytes(), name
                gx_t, gw_t, gb_t = norm_kernels.batch_norm_train_backward(g[t], x[t], mean_t, invstd[t], weight,
                                                                         need_x, True, True)
                assert gw[t].astype(dtype).tobytes() == gw_t.tobytes()
                assert gb[t].astype(dtype).tobytes() == gb_t.tobytes()
                if need_x:
                    assert gx[t].tobytes() == gx_t.tobytes(), name
            assert (gx is None) == (not need_x)


@pytest.mark.parametrize("shape", [(3, 4, 2, 3, 3), (2, 5, 3)])
def test_steps_op_gradcheck(shape):
    rng = np.random.default_rng(0)
    c = shape[2]
    x = Tensor(rng.standard_normal(shape) * 2 + 0.5, requires_grad=True)
    w = Tensor(rng.uniform(0.5, 2, c), requires_grad=True)
    b = Tensor(rng.uniform(-1, 1, c), requires_grad=True)
    assert gradcheck(lambda x, w, b: ops.batch_norm_steps(x, w, b, None, None), [x, w, b])


def test_steps_op_is_batch_norm_per_step_with_running_statistics():
    """The formula per step, and each step's row of the running statistics updated as batch_norm updates it."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 2, 5, 2))
    w, b = rng.uniform(0.5, 2, 2), rng.uniform(-1, 1, 2)
    rm, rv = rng.standard_normal((3, 2)), rng.uniform(0.5, 2, (3, 2))
    rm_ref, rv_ref = rm.copy(), rv.copy()
    y = ops.batch_norm_steps(Tensor(x), Tensor(w), Tensor(b), rm, rv, momentum=0.3, eps=1e-4)
    for t in range(3):
        mean, var = batch_stats(x[t])
        np.testing.assert_allclose(y.data[t], formula(x[t], w, b, mean, var, 1e-4), rtol=1e-12, atol=1e-12)
        ops.batch_norm(Tensor(x[t]), Tensor(w), Tensor(b), rm_ref[t], rv_ref[t], True, momentum=0.3, eps=1e-4)
    np.testing.assert_array_equal(rm, rm_ref)
    np.testing.assert_array_equal(rv, rv_ref)


@pytest.mark.parametrize("call, error, message", [
    (lambda: ops.batch_norm_steps(Tensor(np.ones((2, 3, 4))), None, None, np.zeros((2, 3)), None), ValueError,
     "give both"),
    (lambda: ops.batch_norm_steps(Tensor(np.ones((2, 3, 4))), None, None, np.zeros((3, 4)), np.ones((3, 4))),
     ValueError, r"running_mean has shape \(3, 4\); expected \(2, 4\)"),
    (lambda: ops.batch_norm_steps(Tensor(np.ones((2, 1, 4))), None, None, None, None), ValueError,
     "more than one value per step and channel"),
    (lambda: ops.batch_norm_steps(Tensor(np.ones((2, 3, 4, 5))), None, None, None, None), ValueError,
     r"\[T, N, C, H, W\] or \[T, N, C\]"),
    (lambda: ops.batch_norm_steps(Tensor(np.ones((2, 3, 4))), Tensor(np.ones(3)), None, None, None), ValueError,
     r"weight has shape \(3,\); expected \(4,\)"),
    (lambda: ops.batch_norm_steps(Tensor(np.ones((2, 3, 4))), None, None, None, None, momentum=2), ValueError,
     "momentum=2"),
])
def test_steps_op_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
