"""Pooling: forward against plain loops written here, backward by gradcheck, Numba against the twin."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import hdlif_ref
from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.kernels import pool as pool_kernels

BACKENDS = ("numba", "numpy")


def loop_pool(x, kh, kw, sh, sw, ph, pw, kind):
    """Pooling as a loop over windows; padding holds no values (avg divides by kh*kw anyway)."""
    n, c, h, w = x.shape
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c, ho, wo))
    for a in range(n):
        for b in range(c):
            for p in range(ho):
                for q in range(wo):
                    rows = range(max(p * sh - ph, 0), min(p * sh - ph + kh, h))
                    cols = range(max(q * sw - pw, 0), min(q * sw - pw + kw, w))
                    vals = [x[a, b, r, s] for r in rows for s in cols]
                    out[a, b, p, q] = sum(vals) / (kh * kw) if kind == "avg" else max(vals)
    return out


@st.composite
def pool_case(draw, distinct=False):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    assume(kh <= h + 2 * ph and kw <= w + 2 * pw)
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if distinct:  # values at least 1/8 apart: no ties, so the max is differentiable
        x = rng.permutation(n * c * h * w).reshape(n, c, h, w) / 8.0 - 1.0
    else:
        x = rng.standard_normal((n, c, h, w))
    return x, (kh, kw), (sh, sw), (ph, pw)


@given(case=pool_case())
def test_avg_pool_forward_matches_loop(case):
    x, k, s, p = case
    expected = loop_pool(x, *k, *s, *p, "avg")
    for backend in BACKENDS:
        with hdlif_ref.backend(backend):
            out = ops.avg_pool2d(Tensor(x), k, s, p)
        np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-14, err_msg=backend)


@given(case=pool_case())
def test_max_pool_forward_matches_loop(case):
    x, k, s, p = case
    expected = loop_pool(x, *k, *s, *p, "max")
    for backend in BACKENDS:
        with hdlif_ref.backend(backend):
            out = ops.max_pool2d(Tensor(x), k, s, p)
        np.testing.assert_array_equal(out.data, expected, err_msg=backend)


@settings(max_examples=25)
@given(case=pool_case())
def test_avg_pool_gradcheck(case):
    x, k, s, p = case
    assert gradcheck(lambda t: ops.avg_pool2d(t, k, s, p), [Tensor(x, requires_grad=True)])


@settings(max_examples=25)
@given(case=pool_case(distinct=True))
def test_max_pool_gradcheck(case):
    x, k, s, p = case
    assert gradcheck(lambda t: ops.max_pool2d(t, k, s, p), [Tensor(x, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_ties_nan_and_padding(backend):
    """Ties: the first maximum in row-major order takes the gradient; a NaN wins; padding never does."""
    x = np.array([[[[1.0, 3.0, 3.0],
                    [3.0, 0.0, np.nan],
                    [-np.inf, -np.inf, 2.0]]]])
    t = Tensor(x, requires_grad=True)
    with hdlif_ref.backend(backend):
        out = ops.max_pool2d(t, 2, 1)            # windows: {1,3,3,0}, {3,3,0,nan}, {3,0,-inf,-inf}, {0,nan,-inf,2}
        out.backward(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]]))
        np.testing.assert_array_equal(out.data, [[[[3.0, np.nan], [3.0, np.nan]]]])
        np.testing.assert_array_equal(t.grad, [[[[0.0, 1.0, 0.0], [100.0, 0.0, 1010.0], [0.0, 0.0, 0.0]]]])
        # a window of -inf values next to the -inf padding: the gradient goes to a real element
        u = Tensor(np.full((1, 1, 2, 2), -np.inf), requires_grad=True)
        out = ops.max_pool2d(u, 3, 1, 1)
        out.backward(np.ones(out.shape))
        assert np.all(out.data == -np.inf)
        assert u.grad.sum() == out.size and np.all(u.grad >= 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_avg_pool_counts_zero_padding(backend):
    """count_include_pad=True: a 3x3 window at a corner of an all-ones input averages 4 ones and 5 zeros."""
    with hdlif_ref.backend(backend):
        out = ops.avg_pool2d(Tensor(np.ones((1, 1, 4, 4))), 3, 1, 1)
    assert out.data[0, 0, 0, 0] == pytest.approx(4 / 9)
    assert out.data[0, 0, 1, 1] == pytest.approx(1.0)
    assert out.data[0, 0, 0, 1] == pytest.approx(6 / 9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size, expected_shape", [(1, (2, 3, 1, 1)), ((2, 3), (2, 3, 2, 3)), (6, None)])
def test_adaptive_avg_pool(backend, size, expected_shape):
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 6))
    t = Tensor(x, requires_grad=True)
    with hdlif_ref.backend(backend):
        if expected_shape is None:
            with pytest.raises(ValueError, match=r"output_size=\(6, 6\) must divide the input size \(4, 6\)"):
                ops.adaptive_avg_pool2d(t, size)
            return
        out = ops.adaptive_avg_pool2d(t, size)
        assert out.shape == expected_shape
        oh, ow = expected_shape[2:]
        blocks = x.reshape(2, 3, oh, 4 // oh, ow, 6 // ow).mean(axis=(3, 5))
        np.testing.assert_allclose(out.data, blocks, rtol=1e-12)
        assert gradcheck(lambda u: ops.adaptive_avg_pool2d(u, size), [t])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_equals_twin_on_larger_shapes(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 16, 17, 12)).astype(dtype)
    for window in [(2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 2, 1, 2, 1, 0), (17, 12, 1, 1, 0, 0)]:
        ho, wo = (17 + 2 * window[4] - window[0]) // window[2] + 1, (12 + 2 * window[5] - window[1]) // window[3] + 1
        g = rng.standard_normal((4, 16, ho, wo)).astype(dtype)
        a = pool_kernels.avg_pool2d_forward.numba_impl(x, *window)
        b = pool_kernels.avg_pool2d_forward.numpy_impl(x, *window)
        # both sum at most kh*kw float32 values (Numba in float64): rtol from that count
        rtol = 1e-12 if dtype == np.float64 else (window[0] * window[1] + 2) * 2.0**-24
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(x).max())
        np.testing.assert_allclose(pool_kernels.avg_pool2d_backward.numba_impl(g, 17, 12, *window),
                                   pool_kernels.avg_pool2d_backward.numpy_impl(g, 17, 12, *window),
                                   rtol=rtol, atol=rtol * np.abs(g).max())
        (m, i), (m2, i2) = (pool_kernels.max_pool2d_forward.numba_impl(x, *window),
                            pool_kernels.max_pool2d_forward.numpy_impl(x, *window))
        np.testing.assert_array_equal(m, m2)
        np.testing.assert_array_equal(i, i2)
        np.testing.assert_array_equal(pool_kernels.max_pool2d_backward.numba_impl(g, i, 17, 12),
                                      pool_kernels.max_pool2d_backward.numpy_impl(g, i, 17, 12))
        assert a.dtype == dtype and m.dtype == dtype


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_size_batch(backend):
    t = Tensor(np.zeros((0, 3, 4, 4)), requires_grad=True)
    with hdlif_ref.backend(backend):
        for op in (ops.avg_pool2d, ops.max_pool2d):
            out = op(t, 2)
            assert out.shape == (0, 3, 2, 2)
            out.sum().backward()
            assert t.grad.shape == t.shape


X = Tensor(np.zeros((1, 2, 4, 4)))


@pytest.mark.parametrize("call, message", [
    (lambda: ops.avg_pool2d(Tensor(np.zeros((2, 4, 4))), 2), r"avg_pool2d: x must have 4 dims"),
    (lambda: ops.max_pool2d(X, 5), r"max_pool2d: kernel 5x5 is larger than the padded input 4x4"),
    (lambda: ops.max_pool2d(X, 3, padding=2), r"padding=\(2, 2\) must be at most half the kernel size"),
    (lambda: ops.avg_pool2d(X, 0), r"kernel_size=0 must be an int or a pair of ints, each >= 1"),
    (lambda: ops.avg_pool2d(X, 2, stride=(1, 0)), r"stride=\(1, 0\) must be"),
    (lambda: ops.adaptive_avg_pool2d(X, 3), r"output_size=\(3, 3\) must divide the input size \(4, 4\)"),
    (lambda: ops.adaptive_avg_pool2d(X, 0), r"output_size=0 must be"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(2, 9), w=st.integers(2, 9),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**31 - 1),
       special=st.booleans())
def test_2x2_path_is_the_generic_kernel_bit_for_bit(n, c, h, w, dtype, seed, special):
    """The 2x2 / stride-2 / unpadded kernels against the generic window kernels on the same input:
    odd sizes (a row or column left out), batch 1, channel 1, signed zeros, huge and tiny values."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    if special:
        pool = np.array([0.0, -0.0, 1e38, -1e38, 1e-40, 3.0, -3.0], dtype=dtype)
        x = rng.choice(pool, size=x.shape).astype(dtype)
    ho, wo = h // 2, w // 2
    g = rng.standard_normal((n, c, ho, wo)).astype(dtype)
    if special:
        g = rng.choice(np.array([0.0, -0.0, 2.0], dtype=dtype), size=g.shape).astype(dtype)
    window = (2, 2, 2, 2, 0, 0)
    fast = pool_kernels.avg_pool2d_forward.numba_impl(x, *window)
    generic = np.empty_like(fast)
    pool_kernels._avg_pool_fwd(x.reshape(n * c, h, w), *window, generic.reshape(n * c, ho, wo))
    assert fast.tobytes() == generic.tobytes()  # bit for bit, -0.0 included
    fast_g = pool_kernels.avg_pool2d_backward.numba_impl(g, h, w, *window)
    generic_g = np.empty_like(fast_g)
    pool_kernels._avg_pool_bwd(g.reshape(n * c, ho, wo), *window, generic_g.reshape(n * c, h, w))
    assert fast_g.tobytes() == generic_g.tobytes()
    expected = loop_pool(x.astype(np.float64), *window, "avg")
    np.testing.assert_allclose(fast, expected, rtol=6 * 2.0**-24 if dtype == np.float32 else 1e-15,
                               atol=2 * float(np.finfo(dtype).smallest_subnormal))  # 1e-40 / 4 is subnormal


@pytest.mark.parametrize("h, w", [(5, 7), (4, 5), (5, 4), (4, 4), (3, 2)])
@pytest.mark.parametrize("per_item", [1, 2, 7])
def test_2x2_backward_writes_every_element(h, w, per_item):
    """The 2x2 backward's output comes uninitialized (np.empty): it writes the shares and the odd last
    row and column that no window covers, whatever the planes per iteration."""
    from hdlif_ref.kernels.reference import pool as twin
    g = np.random.default_rng(0).standard_normal((6, h // 2, w // 2))
    gx = np.full((6, h, w), np.nan)
    pool_kernels._avg_pool_2x2_bwd(g, per_item, gx)
    want = twin.avg_pool2d_backward(g[None], h, w, 2, 2, 2, 2, 0, 0)[0]
    assert gx.tobytes() == want.tobytes()
    out = np.full((6, h // 2, w // 2), np.nan)
    pool_kernels._avg_pool_2x2_fwd(gx, per_item, out)
    assert not np.isnan(out).any()


# ------------------------------------------------------------- the 2x2 forward on runs of rows (vector shuffles)
def _assert_rows_kernel_gives(kernel, src, width, per_item, want):
    """``kernel(src flat, width, per_item, out)`` writes every element of ``out`` (two sentinels: one left alone
    would keep one of them) and gives ``want``: NaN where ``want`` has NaN (its sign and payload are the
    hardware's choice of operand, which LLVM may commute), every other value bit for bit."""
    want = want.reshape(-1)
    nan = np.isnan(want)
    for sentinel in (np.nan, 7.0):
        got = np.full(want.size, sentinel, dtype=want.dtype)
        kernel(src.reshape(-1), width, per_item, got)
        assert np.array_equal(np.isnan(got), nan)
        assert got[~nan].tobytes() == want[~nan].tobytes()


@settings(max_examples=80, deadline=None)
@given(planes=st.integers(1, 70), half_h=st.integers(1, 5), w=st.sampled_from([2, 4, 8, 16]),
       dtype=st.sampled_from([np.float32, np.float64]), per_item=st.sampled_from([1, 2, 3, 256]),
       seed=st.integers(0, 2**31 - 1), special=st.booleans())
def test_2x2_rows_kernel_is_the_plane_kernel_bit_for_bit(planes, half_h, w, dtype, per_item, seed, special):
    """``_avg_pool_2x2_fwd_rows`` (runs of ``4L`` inputs through vector shuffles, then the rows after the last
    whole run one by one) against the per-plane 2x2 kernel: bit for bit, signed zeros, NaN, infinities,
    subnormals and sums past float32's range included; one or many planes, runs cut by the end of the array
    or not; every output written (:func:`_assert_rows_kernel_gives`)."""
    from hdlif_ref.kernels._simd import AVGPOOL_WIDTHS
    assert w in AVGPOOL_WIDTHS
    h = 2 * half_h
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((planes, h, w)).astype(dtype)
    if special:
        pool = np.array([0.0, -0.0, 3e38, -3e38, 1e-40, 1e-310, 3.0, np.inf, -np.inf, np.nan], dtype=dtype)
        x = rng.choice(pool, size=x.shape).astype(dtype)
    want = np.empty((planes, h // 2, w // 2), dtype=dtype)
    pool_kernels._avg_pool_2x2_fwd(x, 1, want)
    _assert_rows_kernel_gives(pool_kernels._avg_pool_2x2_fwd_rows, x, w, per_item, want)


@settings(max_examples=60, deadline=None)
@given(planes=st.integers(1, 70), half_h=st.integers(1, 5), w=st.sampled_from([2, 4, 8, 16]),
       dtype=st.sampled_from([np.float32, np.float64]), per_item=st.sampled_from([1, 2, 3, 256]),
       seed=st.integers(0, 2**31 - 1), special=st.booleans())
def test_2x2_rows_backward_is_the_plane_backward_bit_for_bit(planes, half_h, w, dtype, per_item, seed, special):
    """``_avg_pool_2x2_bwd_rows`` against the per-plane 2x2 backward: every input written, each with its window's
    share bit for bit: signed zeros (``0.0 + (-0) / 4`` is ``+0``), subnormal shares that round, infinities
    (:func:`_assert_rows_kernel_gives`)."""
    h = 2 * half_h
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((planes, h // 2, w // 2)).astype(dtype)
    if special:
        pool = np.array([0.0, -0.0, 3e38, -3e38, 1e-45, 3e-45, 1e-310, 3.0, np.inf, -np.inf, np.nan], dtype=dtype)
        g = rng.choice(pool, size=g.shape).astype(dtype)
    want = np.empty((planes, h, w), dtype=dtype)
    pool_kernels._avg_pool_2x2_bwd(g, 1, want)
    _assert_rows_kernel_gives(pool_kernels._avg_pool_2x2_bwd_rows, g, w, per_item, want)


@pytest.mark.parametrize("shape, rows", [((64, 32, 8, 8), True), ((64, 64, 4, 4), True), ((1, 1, 2, 2), True),
                                         ((3, 2, 6, 16), True), ((2, 3, 5, 8), False), ((2, 3, 8, 6), False),
                                         ((2, 3, 8, 32), False), ((2, 3, 9, 9), False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_2x2_forward_takes_the_rows_kernel_on_even_heights_and_its_widths(monkeypatch, shape, rows, dtype):
    """The dispatch: the rows kernels for an even height and a width of ``AVGPOOL_WIDTHS``, the per-plane kernels
    otherwise; the forward gives the windows' float64 means rounded once to the dtype, the backward a quarter
    of each output's gradient to each input of its window (0 to a last odd row or column)."""
    called = []
    for name in ("_avg_pool_2x2_fwd_rows", "_avg_pool_2x2_bwd_rows"):
        original = getattr(pool_kernels, name)
        monkeypatch.setattr(pool_kernels, name, lambda *a, name=name, original=original: called.append(name)
                            or original(*a))
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    got = pool_kernels.avg_pool2d_forward.numba_impl(x, 2, 2, 2, 2, 0, 0)
    g = np.random.default_rng(2).standard_normal(got.shape).astype(dtype)
    gx = pool_kernels.avg_pool2d_backward.numba_impl(g, shape[2], shape[3], 2, 2, 2, 2, 0, 0)
    assert called == (["_avg_pool_2x2_fwd_rows", "_avg_pool_2x2_bwd_rows"] if rows else [])
    spread = np.zeros(shape)
    spread[..., :shape[2] // 2 * 2, :shape[3] // 2 * 2] = np.repeat(np.repeat(g.astype(np.float64) / 4, 2, axis=2), 2,
                                                                     axis=3)
    assert np.array_equal(gx, spread.astype(dtype))  # g / 4 is exact
    h, w = shape[2] // 2 * 2, shape[3] // 2 * 2
    x64 = x[..., :h, :w].astype(np.float64)
    exact = (x64[..., 0::2, 0::2] + x64[..., 0::2, 1::2] + x64[..., 1::2, 0::2] + x64[..., 1::2, 1::2]) / 4
    np.testing.assert_allclose(got, exact, rtol=float(np.finfo(dtype).eps), atol=0)


@pytest.mark.parametrize("make, shrink", [(lambda a: a[::-1, ::-1, ::-1, ::-1], 1), (lambda a: a[:, :, :, ::2], 2),
                                          (lambda a: np.broadcast_to(a[0, 0, 0, 0], a.shape), 1),
                                          (lambda a: np.asfortranarray(a), 1)])
def test_2x2_forward_and_backward_of_views_in_any_layout(make, shrink):
    """Reversed, strided, broadcast and F-ordered inputs and gradients: the rows kernels read memory in order,
    so the wrappers give them a C-ordered copy (``reshape(-1)`` of the first three is a strided view, which the
    vector loads would read as if it were contiguous)."""
    from hdlif_ref.kernels._simd import AVGPOOL_WIDTHS
    base = np.random.default_rng(3).standard_normal((2, 3, 4, 16 * shrink))
    x = make(base)
    assert not x.flags.c_contiguous and x.shape[3] in AVGPOOL_WIDTHS  # the rows kernels' shapes
    c = np.ascontiguousarray(x)
    got = pool_kernels.avg_pool2d_forward.numba_impl(x, 2, 2, 2, 2, 0, 0)
    assert got.tobytes() == pool_kernels.avg_pool2d_forward.numba_impl(c, 2, 2, 2, 2, 0, 0).tobytes()
    g = make(np.random.default_rng(4).standard_normal((2, 3, 2, got.shape[3] * shrink)))
    assert g.shape == got.shape and not g.flags.c_contiguous
    gx = pool_kernels.avg_pool2d_backward.numba_impl(g, x.shape[2], x.shape[3], 2, 2, 2, 2, 0, 0)
    want = pool_kernels.avg_pool2d_backward.numba_impl(np.ascontiguousarray(g), x.shape[2], x.shape[3], 2, 2, 2, 2, 0, 0)
    assert gx.tobytes() == want.tobytes()


def test_the_pooling_intrinsic_refuses_a_width_it_has_no_shuffles_for():
    import numba

    from hdlif_ref.kernels._simd import vavgpool2x2

    @numba.njit
    def six(x, out):
        vavgpool2x2(x, 0, out, 0, 6)

    with pytest.raises(numba.core.errors.TypingError):
        six(np.zeros(64, np.float32), np.zeros(16, np.float32))
