"""conv2d: forward against scipy.signal.correlate, backward by gradcheck, Numba against its NumPy twin.

The independent reference is SciPy's N-d correlation: for every image ``n`` and
output channel ``o``, ``out[n, o] = bias[o] + sum_c correlate(xpad[n, c], w[o, c], "valid")``
taken every ``stride`` rows/columns, over the channels ``c`` of ``o``'s group.
"""
from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.signal
from hypothesis import example, given, settings
from hypothesis import strategies as st

import hdlif_ref
from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.kernels import _blas as blas
from hdlif_ref.kernels import conv as conv_kernels
from hdlif_ref.kernels._threads import numba_threads

#: float32 unit roundoff; a float32 sum of K products differs from the exact one by at
#: most (K + 2) * U32 * sum |terms| (K roundings in the accumulation, 2 from casting
#: the float64 inputs to float32), whatever the summation order (Higham, Thm 3.1).
U32 = 2.0 ** -24


def scipy_conv2d(x, w, b, stride, padding, groups):
    (sh, sw), (ph, pw) = stride, padding
    n, c_in = x.shape[:2]
    c_out, cg = w.shape[:2]
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    per_group = c_out // groups
    out = None
    for k in range(n):
        for o in range(c_out):
            g = o // per_group
            acc = sum(scipy.signal.correlate(xpad[k, g * cg + c], w[o, c], mode="valid", method="direct")
                      for c in range(cg))
            acc = acc[::sh, ::sw] + (0.0 if b is None else b[o])
            if out is None:
                out = np.zeros((n, c_out) + acc.shape)
            out[k, o] = acc
    return out


@st.composite
def conv_case(draw, max_n=3, max_c=4, max_hw=7):
    groups = draw(st.sampled_from([1, 1, 2, 4]))
    cg = draw(st.integers(1, max(1, max_c // groups)))
    og = draw(st.integers(1, max(1, max_c // groups)))
    n = draw(st.integers(1, max_n))
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    # kernels from 1 up to 3, or exactly as large as the padded input
    kh = draw(st.sampled_from([k for k in (1, 2, 3) if k <= h + 2 * ph] + [h + 2 * ph]))
    kw = draw(st.sampled_from([k for k in (1, 2, 3) if k <= w + 2 * pw] + [w + 2 * pw]))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cg * groups, h, w))
    weight = rng.standard_normal((og * groups, cg, kh, kw))
    bias = rng.standard_normal(og * groups) if draw(st.booleans()) else None
    return x, weight, bias, stride, (ph, pw), groups


def _fixed(n, c_in, c_out, h, w, k, stride, padding, groups, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c_in, h, w)), rng.standard_normal((c_out, c_in // groups, k, k)),
            rng.standard_normal(c_out), (stride, stride), (padding, padding), groups)


# the paths hypothesis might not draw: "same" width at stride 1 (one contiguous copy per row
# of col), with 3x3 and 5x5 kernels and a single-column input
@example(case=_fixed(2, 3, 4, 5, 6, 3, 1, 1, 1))
@example(case=_fixed(1, 2, 2, 4, 4, 5, 1, 2, 2))
@example(case=_fixed(2, 2, 3, 3, 1, 3, 1, 1, 1))
@given(case=conv_case())
def test_forward_matches_scipy_correlate(case):
    x, w, b, stride, padding, groups = case
    expected = scipy_conv2d(x, w, b, stride, padding, groups)
    for backend in ("numba", "numpy"):
        with hdlif_ref.backend(backend):
            out = ops.conv2d(Tensor(x), Tensor(w), None if b is None else Tensor(b), stride, padding, groups)
        assert out.shape == expected.shape
        np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12, err_msg=backend)


@settings(max_examples=25)
@example(case=_fixed(2, 3, 4, 5, 6, 3, 1, 1, 1))  # dx by the transposed convolution
@example(case=_fixed(1, 2, 2, 4, 4, 5, 1, 2, 2))
@example(case=_fixed(2, 2, 3, 5, 6, 3, 2, 1, 1))  # stride 2: dx by col2im
@example(case=_fixed(1, 2, 2, 3, 3, 1, 1, 1, 1))  # padding >= kernel: dx by col2im
@given(case=conv_case())
def test_backward_gradcheck(case):
    x, w, b, stride, padding, groups = case
    inputs = [Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)]
    if b is not None:
        inputs.append(Tensor(b, requires_grad=True))
    fn = lambda *t: ops.conv2d(*t, stride=stride, padding=padding, groups=groups)  # noqa: E731
    assert gradcheck(fn, inputs)


def test_gradcheck_kernel_as_large_as_the_padded_input_with_stride():
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((2, 2, 3, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 5, 6)), requires_grad=True)
    out = ops.conv2d(x, w, padding=1, stride=2)
    assert out.shape == (2, 3, 1, 1)
    assert gradcheck(lambda x, w: ops.conv2d(x, w, padding=1, stride=2), [x, w])


def test_gradient_of_x_only_and_of_weight_only():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    assert gradcheck(lambda x: ops.conv2d(x, Tensor(w), padding=1), [Tensor(x, requires_grad=True)])
    assert gradcheck(lambda w: ops.conv2d(Tensor(x), w, padding=1), [Tensor(w, requires_grad=True)])


# ------------------------------------------------------------------ Numba against the twin
LARGER = [
    # (N, C_in, C_out, H, W, k, stride, padding, groups)
    (5, 16, 24, 12, 12, 3, 1, 1, 1),    # "same" 3x3: the contiguous-copy path of _im2col/_col2im
    (5, 16, 24, 13, 11, 3, 2, 1, 1),    # stride 2: the general path
    (4, 16, 16, 9, 9, 3, 1, 1, 16),     # depthwise
    (4, 12, 8, 10, 7, 5, 1, 2, 4),      # grouped, 5x5, non-square input
    (3, 8, 8, 6, 6, 1, 1, 0, 1),        # 1x1
    (3, 4, 6, 7, 7, 4, 1, 0, 2),        # even kernel, no padding
]


def _case(rng, dtype, n, c_in, c_out, h, w, k, s, p, g):
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = rng.standard_normal((c_out, c_in // g, k, k)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    grad = rng.standard_normal((n, c_out, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)).astype(dtype)
    return x, weight, bias, grad, (s, s), (p, p), g


def _both(x, weight, bias, grad, stride, padding, groups):
    fwd = (conv_kernels.conv2d_forward.numba_impl(x, weight, bias, stride, padding, groups),
           conv_kernels.conv2d_forward.numpy_impl(x, weight, bias, stride, padding, groups))
    bwd = (conv_kernels.conv2d_backward.numba_impl(grad, x, weight, stride, padding, groups, True, True, True),
           conv_kernels.conv2d_backward.numpy_impl(grad, x, weight, stride, padding, groups, True, True, True))
    return fwd, bwd


@pytest.mark.parametrize("shape", LARGER)
def test_numba_equals_twin_float64(shape):
    args = _case(np.random.default_rng(5), np.float64, *shape)
    (a, b), (ga, gb) = _both(*args)
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    for u, v in zip(ga, gb):
        np.testing.assert_allclose(u, v, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("shape", LARGER)
def test_numba_float32_within_the_rounding_bound(shape):
    """float32 results (both backends) against float64, within (K + 2) U32 sum |terms|.

    K is the number of products in one sum: ``C_in/groups * k * k`` for the output,
    ``C_out/groups * k * k`` for ``gx``, ``N * Ho * Wo`` for ``gw`` and bias.
    """
    rng = np.random.default_rng(6)
    x, w, b, g, stride, padding, groups = _case(rng, np.float64, *shape)
    exact = conv_kernels.conv2d_forward.numpy_impl(x, w, b, stride, padding, groups)
    scale = conv_kernels.conv2d_forward.numpy_impl(np.abs(x), np.abs(w), np.abs(b), stride, padding, groups)
    exact_g = conv_kernels.conv2d_backward.numpy_impl(g, x, w, stride, padding, groups, True, True, True)
    scale_g = conv_kernels.conv2d_backward.numpy_impl(np.abs(g), np.abs(x), np.abs(w), stride, padding, groups,
                                                      True, True, True)
    n, c_out, ho, wo = g.shape
    k = w.shape[2] * w.shape[3]
    terms = (w.shape[1] * k + 1, c_out // groups * k, n * ho * wo, n * ho * wo)
    f32 = [a.astype(np.float32) for a in (x, w, b, g)]
    for impl_f, impl_b in ((conv_kernels.conv2d_forward.numba_impl, conv_kernels.conv2d_backward.numba_impl),
                           (conv_kernels.conv2d_forward.numpy_impl, conv_kernels.conv2d_backward.numpy_impl)):
        out = impl_f(f32[0], f32[1], f32[2], stride, padding, groups)
        grads = impl_b(f32[3], f32[0], f32[1], stride, padding, groups, True, True, True)
        assert out.dtype == np.float32 and all(gr.dtype == np.float32 for gr in grads)
        for got, want, mag, count in zip((out,) + grads, (exact,) + exact_g, (scale,) + scale_g, terms):
            assert np.all(np.abs(got - want) <= (count + 2) * U32 * mag + 1e-30)


@pytest.mark.parametrize("gemm_columns, parts", [(1, 8), (50, 2), (50, 3), (10**6, 1)])
def test_blocking_does_not_change_the_result(monkeypatch, gemm_columns, parts):
    """One image per GEMM; blocks of 2 images (7 images: a short last block) in 2 or 3 parts;
    the whole batch in one block. (im2col + GEMM forced: these shapes would take the direct kernel.)"""
    monkeypatch.setattr(conv_kernels, "DIRECT_MAX_OUT_CHANNELS", -1)
    monkeypatch.setattr(conv_kernels, "GEMM_COLUMNS", gemm_columns)
    monkeypatch.setattr(conv_kernels, "WEIGHT_GRAD_GROUPS", parts)
    args = _case(np.random.default_rng(7), np.float64, 7, 3, 5, 5, 5, 3, 1, 1, 1)
    (a, b), (ga, gb) = _both(*args)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for u, v in zip(ga, gb):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [
    (21, 128, 96, 8, 8, 3, 1, 1, 1),  # im2col + GEMM, GEMMs large enough for a multi-threaded BLAS to split
    (21, 24, 32, 8, 8, 3, 1, 1, 1),   # the direct kernel (forward and dx)
])
def test_results_do_not_depend_on_the_thread_count(shape):
    """Bit for bit: an image's work, and each partial weight gradient, is the same on 1 or all threads."""
    x, w, b, g, stride, padding, groups = _case(np.random.default_rng(8), np.float32, *shape)

    def run():
        out = conv_kernels.conv2d_forward.numba_impl(x, w, b, stride, padding, groups)
        return (out,) + conv_kernels.conv2d_backward.numba_impl(g, x, w, stride, padding, groups, True, True, True)

    with numba_threads(1):
        one = run()
    with numba_threads(numba.config.NUMBA_NUM_THREADS):
        many = run()
    for u, v in zip(one, many):
        np.testing.assert_array_equal(u, v)


def test_without_blas_thread_control_the_loop_runs_on_one_thread(monkeypatch):
    """The fallback (BLAS threads not settable): same numbers, BLAS keeps its threads."""
    args = _case(np.random.default_rng(9), np.float64, 4, 3, 4, 5, 5, 3, 1, 1, 1)
    expected = _both(*args)
    monkeypatch.setattr(blas, "_setters", None)
    monkeypatch.setattr(blas, "_setters_searched", True)
    with blas.blas_threads_for_kernels() as threads:
        assert threads == 1
    got = _both(*args)
    np.testing.assert_allclose(got[0][0], expected[0][0], rtol=1e-12)
    for u, v in zip(got[1][0], expected[1][0]):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-13)


def test_blas_thread_count_is_restored():
    if not blas.blas_thread_control():
        pytest.skip("no control over SciPy's BLAS threads on this platform (the fallback is tested above)")
    get, _ = blas._setters
    before = get()
    args = _case(np.random.default_rng(10), np.float32, 2, 2, 2, 4, 4, 3, 1, 1, 1)
    _both(*args)
    assert get() == before


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("shape", [(0, 3, 5, 5), (2, 0, 5, 5)])
def test_zero_size_batch_and_channels(backend, shape):
    """N = 0 gives an empty output; C_in = 0 gives the bias alone (an empty sum)."""
    x = Tensor(np.zeros(shape), requires_grad=True)
    w = Tensor(np.ones((4, shape[1], 3, 3)), requires_grad=True)
    b = Tensor(np.arange(4.0), requires_grad=True)
    with hdlif_ref.backend(backend):
        out = ops.conv2d(x, w, b, padding=1)
        assert out.shape == (shape[0], 4, 5, 5)
        np.testing.assert_array_equal(out.data, np.broadcast_to(np.arange(4.0)[:, None, None], out.shape))
        out.sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape
    np.testing.assert_array_equal(w.grad, 0.0)
    np.testing.assert_array_equal(b.grad, np.full(4, shape[0] * 25.0))


def test_dtypes_float32_stays_float32_and_mixed_promotes():
    rng = np.random.default_rng(8)
    x32 = Tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32), requires_grad=True)
    w32 = Tensor(rng.standard_normal((2, 3, 3, 3)).astype(np.float32), requires_grad=True)
    w64 = Tensor(w32.data.astype(np.float64), requires_grad=True)
    out = ops.conv2d(x32, w32)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x32.grad.dtype == np.float32 and w32.grad.dtype == np.float32
    mixed = ops.conv2d(x32, w64)
    assert mixed.dtype == np.float64
    mixed.sum().backward()
    assert w64.grad.dtype == np.float64


def test_non_contiguous_inputs_and_gradients():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 2, 6, 6))[:, :, ::-1, 1:]  # a strided view
    w = rng.standard_normal((3, 2, 3, 3)).transpose(0, 1, 3, 2)
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    out = ops.conv2d(xt, wt, padding=1)
    np.testing.assert_allclose(out.data, scipy_conv2d(x, w, None, (1, 1), (1, 1), 1), rtol=1e-12, atol=1e-12)
    out.sum().backward()  # the gradient reaching conv2d is a read-only broadcast view
    ref = Tensor(np.ascontiguousarray(x), requires_grad=True)
    ops.conv2d(ref, Tensor(np.ascontiguousarray(w)), padding=1).sum().backward()
    np.testing.assert_allclose(xt.grad, ref.grad, rtol=1e-12)


def _layouts(a):
    return {"C": a, "F": np.asfortranarray(a), "T": a.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)}


@pytest.mark.parametrize("shape", [(4, 8, 8, 12, 3, 1, 1, 1), (4, 16, 32, 8, 3, 2, 1, 1), (4, 16, 32, 8, 1, 2, 0, 1),
                                   (2, 8, 8, 6, 3, 1, 1, 2), (64, 16, 32, 8, 3, 1, 1, 1)])
def test_the_kernel_api_takes_any_memory_layout(shape):
    # the kernels read flat views; before, an F-ordered x gave a wrong dx (by 35) and an F-ordered
    # 1x1 weight a wrong forward, silently: every layout must give the twin's result
    n, ci, co, h, k, s, p, groups = shape
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, ci, h, h)).astype(np.float32)
    w = rng.standard_normal((co, ci // groups, k, k)).astype(np.float32)
    ho = (h + 2 * p - k) // s + 1
    g = rng.standard_normal((n, co, ho, ho)).astype(np.float32)
    with hdlif_ref.backend("numpy"):  # the twins
        y_ref = conv_kernels.conv2d_forward(x, w, None, (s, s), (p, p), groups)
        grads_ref = conv_kernels.conv2d_backward(g, x, w, (s, s), (p, p), groups, True, True, True)
    for xx in _layouts(x).values():
        for ww in _layouts(w).values():
            np.testing.assert_allclose(conv_kernels.conv2d_forward(xx, ww, None, (s, s), (p, p), groups), y_ref,
                                       rtol=1e-4, atol=1e-4)
            for gg in _layouts(g).values():
                grads = conv_kernels.conv2d_backward(gg, xx, ww, (s, s), (p, p), groups, True, True, True)
                for got, ref in zip(grads, grads_ref):
                    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------ the direct kernel (stride 1, 3 columns)
@st.composite
def direct_case(draw):
    """Shapes the direct kernel takes (asserted): stride 1, kw = 3, ph < kh, pw < 3, few output
    channels (also a multiple of 4 plus a remainder), planes from 4x4 (16 pixels) up."""
    n = draw(st.integers(1, 5))
    c_in, c_out = draw(st.integers(1, 5)), draw(st.integers(1, 9))  # C_in = 0: test_zero_size_batch_and_channels
    kh = draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, 2))
    h = draw(st.integers(max(2, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, 3 - 2 * pw, -(-16 // h)), 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x = rng.standard_normal((n, c_in, h, w))
    weight = rng.standard_normal((c_out, c_in, kh, 3))
    bias = rng.standard_normal(c_out) if draw(st.booleans()) else None
    return x, weight, bias, (1, 1), (ph, pw), 1


def _takes_direct(x, weight, stride, padding, groups):
    return conv_kernels._use_direct(x.shape[1], weight.shape[0], x.shape[2], x.shape[3], weight.shape[2],
                                    weight.shape[3], stride, padding, groups)


@settings(max_examples=30)
@example(case=_fixed(3, 5, 9, 8, 8, 3, 1, 1, 1))   # 3x3 "same", 9 outputs = 2 blocks of 4 + 1
@given(case=direct_case())
def test_direct_kernel_matches_scipy_and_its_backward_the_twin(case):
    """Forward against scipy.signal.correlate; dx (the direct kernel on the flipped weight, when
    C_in <= 32) and dW against the NumPy twin, float64."""
    x, w, b, stride, padding, groups = case
    assert _takes_direct(x, w, stride, padding, groups)
    out = conv_kernels.conv2d_forward.numba_impl(x, w, b, stride, padding, groups)
    np.testing.assert_allclose(out, scipy_conv2d(x, w, b, stride, padding, groups), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(out.shape)
    got = conv_kernels.conv2d_backward.numba_impl(g, x, w, stride, padding, groups, True, True, True)
    want = conv_kernels.conv2d_backward.numpy_impl(g, x, w, stride, padding, groups, True, True, True)
    for u, v in zip(got, want):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding, kh", [((1, 1), 3), ((0, 2), 2)])
def test_direct_kernel_gradcheck(padding, kh):
    """dx by the direct kernel (the transposed convolution, padding k - 1 - p), dW and the bias, by
    finite differences."""
    rng = np.random.default_rng(11)
    x = Tensor(rng.standard_normal((2, 3, 4, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((5, 3, kh, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(5), requires_grad=True)
    assert _takes_direct(x.data, w.data, (1, 1), padding, 1)
    assert _takes_direct(np.zeros((2, 5, 4 + 2 * padding[0] - kh + 1, 5 + 2 * padding[1] - 2)), np.zeros((3, 5, kh, 3)),
                         (1, 1), (kh - 1 - padding[0], 2 - padding[1]), 1)  # dx's convolution
    assert gradcheck(lambda x, w, b: ops.conv2d(x, w, b, padding=padding), [x, w, b])


@pytest.mark.parametrize("columns", [1, 100, 10**6])
def test_direct_blocks_do_not_change_the_result(monkeypatch, columns):
    """One image per block; blocks of 2 images (7 images: a short last block, whose unused image
    slots hold the previous block's images); the whole batch in one block. Inputs and bias are
    large, so that a stray read of a stale image would show."""
    from hdlif_ref.kernels import conv_direct

    monkeypatch.setattr(conv_direct, "DIRECT_COLUMNS", columns)
    monkeypatch.setattr(conv_kernels, "WEIGHT_GRAD_GROUPS", 1)
    x, w, b, g, stride, padding, groups = _case(np.random.default_rng(12), np.float64, 7, 3, 6, 6, 5, 3, 1, 1, 1)
    x = x + 1e6 * np.arange(1, 8)[:, None, None, None]
    assert _takes_direct(x, w, stride, padding, groups)
    (a, r), (ga, gr) = _both(x, w, b, g, stride, padding, groups)
    np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(ga[0], gr[0], rtol=1e-12, atol=1e-12)


def test_direct_and_gemm_paths_agree(monkeypatch):
    """The same convolution (float32, 8x8 planes, 16 -> 32 channels, W1's second layer) by both
    paths, within the float32 rounding bound of each against float64."""
    x, w, b, g, stride, padding, groups = _case(np.random.default_rng(13), np.float64, 9, 16, 32, 8, 8, 3, 1, 1, 1)
    exact = conv_kernels.conv2d_forward.numpy_impl(x, w, b, stride, padding, groups)
    scale = conv_kernels.conv2d_forward.numpy_impl(np.abs(x), np.abs(w), np.abs(b), stride, padding, groups)
    assert _takes_direct(x, w, stride, padding, groups)
    f32 = [a.astype(np.float32) for a in (x, w, b)]
    for limit in (32, -1):  # the direct kernel, then im2col + GEMM
        monkeypatch.setattr(conv_kernels, "DIRECT_MAX_OUT_CHANNELS", limit)
        out = conv_kernels.conv2d_forward.numba_impl(*f32, stride, padding, groups)
        assert np.all(np.abs(out - exact) <= (16 * 9 + 3) * U32 * scale)


# ------------------------------------------------------------------ bad input
X = Tensor(np.zeros((2, 4, 5, 5)))
W = Tensor(np.zeros((6, 4, 3, 3)))


@pytest.mark.parametrize("call, message", [
    (lambda: ops.conv2d(X, Tensor(np.zeros((6, 3, 3, 3)))), r"channel mismatch: x has 4 channels"),
    (lambda: ops.conv2d(X, Tensor(np.zeros((6, 4, 8, 3)))), r"kernel 8x3 is larger than the padded input 5x5"),
    (lambda: ops.conv2d(X, Tensor(np.zeros((6, 4, 8, 3))), padding=1), r"larger than the padded input 7x7"),
    (lambda: ops.conv2d(Tensor(np.zeros((4, 5, 5))), W), r"x must have 4 dims .*got shape \(4, 5, 5\)"),
    (lambda: ops.conv2d(X, Tensor(np.zeros((6, 4, 3)))), r"weight must have 4 dims"),
    (lambda: ops.conv2d(X, Tensor(np.zeros((6, 1, 3, 3))), groups=3), r"groups=3 must divide the input channels \(4\)"),
    (lambda: ops.conv2d(X, Tensor(np.zeros((5, 2, 3, 3))), groups=2), r"groups=2 must divide .* output channels \(5\)"),
    (lambda: ops.conv2d(X, W, Tensor(np.zeros(5))), r"bias has shape \(5,\); expected \(6,\)"),
    (lambda: ops.conv2d(X, W, stride=0), r"stride=0 must be an int or a pair of ints, each >= 1"),
    (lambda: ops.conv2d(X, W, padding=(1, -1)), r"padding=\(1, -1\) must be .* each >= 0"),
    (lambda: ops.conv2d(X, W, padding=1.5), r"padding=1.5 must be an int"),
    (lambda: ops.conv2d(X, W, groups=0), r"groups=0 must be a positive int"),
])
def test_bad_arguments_raise_value_error_naming_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_non_float_input_is_a_type_error():
    with pytest.raises(TypeError, match=r"conv2d: x has dtype int64"):
        ops.conv2d(np.zeros((1, 1, 3, 3), dtype=np.int64), W)
    with pytest.raises(TypeError, match=r"conv2d: weight must be a Tensor or a float ndarray, got list"):
        ops.conv2d(X, [[1.0]])
