"""The register-blocked lanes path of conv2d (kernels/conv_lanes.py): stage by stage against its NumPy
twin, end to end against the formula's twin (reference/conv.py) and by finite differences, and
bit-for-bit reproducible (twice, and on 1 or 2 threads)."""
from __future__ import annotations

import contextlib

import numba
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.kernels import conv as conv_kernels
from hdlif_ref.kernels import conv_lanes as lanes
from hdlif_ref.kernels._simd import lanes_of
from hdlif_ref.kernels._threads import numba_threads
from hdlif_ref.kernels.reference import conv as reference
from hdlif_ref.kernels.reference import conv_lanes as twin

#: float32 unit roundoff; see test_conv.py: a float32 sum of K products is within (K + 2) U32 sum |terms|.
U32 = 2.0 ** -24


@st.composite
def lanes_case(draw, dtype=None):
    """A convolution the lanes path takes: any batch (partial and several blocks of lanes), 1-5
    channels, 1-9 pixels a side (odd sizes), kernels 1-3 (and as large as the padded input),
    strides 1-2 and paddings 0-2 per dimension."""
    dtype = dtype or draw(st.sampled_from([np.float64, np.float32]))
    n = draw(st.integers(1, 2 * lanes_of(dtype) + 3))
    c_in, c_out = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh = draw(st.sampled_from([k for k in (1, 2, 3) if k <= h + 2 * ph] + [h + 2 * ph]))
    kw = draw(st.sampled_from([k for k in (1, 2, 3) if k <= w + 2 * pw] + [w + 2 * pw]))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = rng.standard_normal((c_out, c_in, kh, kw)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype) if draw(st.booleans()) else None
    return x, weight, bias, stride, (ph, pw)


def _fixed(n, c_in, c_out, h, w, k, stride, padding, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    kh, kw = (k, k) if isinstance(k, int) else k
    return (rng.standard_normal((n, c_in, h, w)).astype(dtype),
            rng.standard_normal((c_out, c_in, kh, kw)).astype(dtype), rng.standard_normal(c_out).astype(dtype),
            (stride, stride) if isinstance(stride, int) else stride,
            (padding, padding) if isinstance(padding, int) else padding)


def _output_shape(x, weight, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    return (x.shape[0], weight.shape[0], (x.shape[2] + 2 * ph - weight.shape[2]) // sh + 1,
            (x.shape[3] + 2 * pw - weight.shape[3]) // sw + 1)


def _bounds(x, weight, bias, grad, stride, padding):
    """Exact (float64) results and their float32 rounding bounds ``(K + 2) U32 sum |terms|``."""
    x64, w64, g64 = (a.astype(np.float64) for a in (x, weight, grad))
    b64 = None if bias is None else bias.astype(np.float64)
    exact = (reference.conv2d_forward(x64, w64, b64, stride, padding, 1),) + reference.conv2d_backward(
        g64, x64, w64, stride, padding, 1, True, True, False)[:2]
    mags = (reference.conv2d_forward(np.abs(x64), np.abs(w64), None if b64 is None else np.abs(b64), stride,
                                     padding, 1),) + reference.conv2d_backward(
        np.abs(g64), np.abs(x64), np.abs(w64), stride, padding, 1, True, True, False)[:2]
    c_out, c_in, kh, kw = weight.shape
    n, _, ho, wo = grad.shape
    counts = (c_in * kh * kw + 1, c_out * kh * kw, n * ho * wo)
    return exact, mags, counts


@settings(max_examples=60)
@example(case=_fixed(17, 3, 5, 8, 8, 3, 1, 1))            # 3x3 "same", full and partial blocks (float64: 8 lanes)
@example(case=_fixed(9, 2, 3, 7, 9, 3, 2, 1))             # stride 2, odd sizes
@example(case=_fixed(8, 1, 1, 5, 6, 1, 2, 0))             # 1x1 stride 2: a phase without taps in dx
@example(case=_fixed(8, 2, 2, 6, 5, (3, 1), (2, 1), (0, 1)))  # padding [h, w], stride (2, 1)
@example(case=_fixed(1, 1, 1, 1, 1, 1, 1, 0))             # batch 1, channel 1, one pixel
@example(case=_fixed(16, 4, 4, 4, 4, 3, 1, 1, np.float32))  # float32: one full block of 16 lanes
@given(case=lanes_case())
def test_lanes_path_matches_the_formula(case):
    """Forward, dx and dW of the lanes path against reference.conv: float64 to 1e-12, float32 within
    the rounding bound of a sum of its K products (whatever the order of the sum)."""
    x, weight, bias, stride, padding = case
    out = lanes.conv2d_forward(x, weight, bias, stride, padding)
    assert out.shape == _output_shape(x, weight, stride, padding) and out.dtype == x.dtype
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
    gx, gw = lanes.conv2d_backward(grad, x, weight, stride, padding, True, True)
    assert gx.shape == x.shape and gw.shape == weight.shape and gx.dtype == gw.dtype == x.dtype
    got = (out, gx, gw)
    if x.dtype == np.float64:
        want = (reference.conv2d_forward(x, weight, bias, stride, padding, 1),) + reference.conv2d_backward(
            grad, x, weight, stride, padding, 1, True, True, False)[:2]
        for g, w, name in zip(got, want, ("out", "gx", "gw")):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=name)
    else:
        exact, mags, counts = _bounds(x, weight, bias, grad, stride, padding)
        for g, w, mag, k, name in zip(got, exact, mags, counts, ("out", "gx", "gw")):
            assert np.all(np.abs(g - w) <= (k + 2) * U32 * mag + 1e-30), name


@settings(max_examples=25)
@example(case=_fixed(11, 3, 4, 5, 7, 3, 2, 1))
@given(case=lanes_case())
def test_each_stage_matches_its_twin(case):
    """pack and the weight tiles (exactly), the correlation engine (forward and dx jobs) and the
    weight-gradient tiles."""
    x, weight, bias, stride, padding = case
    n, c_in, height, width = x.shape
    c_out, _, kh, kw = weight.shape

    def close(got, want, magnitudes, terms):
        """float64: to 1e-12; float32: within the rounding bound of a sum of ``terms`` products in another order,
        ``(terms + 2) U32 sum |products|`` (a fixed tolerance failed where the sum cancels: 0.0445 out of
        products of size ~50 differed by 1.7e-5)."""
        if x.dtype == np.float64:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        else:
            assert np.all(np.abs(got.astype(np.float64) - want) <= (terms + 2) * U32 * magnitudes + 1e-30)

    corr, _, wq = lanes.forward_geometry(height, width, kh, kw, stride, padding)
    xp = lanes.pack(x, corr.plane)
    np.testing.assert_array_equal(xp, twin.pack(x, corr.plane))
    bias = np.zeros(c_out, dtype=x.dtype) if bias is None else bias
    shape = _output_shape(x, weight, stride, padding)
    wt = lanes.tile_weights(weight, corr, False)
    np.testing.assert_array_equal(wt, twin.tile_weights(weight, corr, False))
    got, want, mag = (np.empty(shape, dtype=x.dtype) for _ in range(3))
    lanes.correlate(xp, n, c_in, corr, wt, bias, got)
    twin.correlate(xp, n, c_in, corr, wt, bias, want)
    twin.correlate(np.abs(xp), n, c_in, corr, np.abs(wt), np.abs(bias), mag)
    close(got, want, mag, c_in * kh * kw + 1)
    ho, wo = shape[2:]
    grad = np.random.default_rng(2).standard_normal(shape).astype(x.dtype)
    dcorr, mt, lt, grow = lanes.input_grad_geometry(height, width, kh, kw, stride, padding, ho, wo)
    gp = lanes.pack(grad, dcorr.plane)
    np.testing.assert_array_equal(gp, twin.pack(grad, dcorr.plane))
    wtx = lanes.tile_weights(weight, dcorr, True)
    np.testing.assert_array_equal(wtx, twin.tile_weights(weight, dcorr, True))
    got, want, mag = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    lanes.correlate(gp, n, c_out, dcorr, wtx, np.zeros(c_in, dtype=x.dtype), got)
    twin.correlate(gp, n, c_out, dcorr, wtx, np.zeros(c_in, dtype=x.dtype), want)
    twin.correlate(np.abs(gp), n, c_out, dcorr, np.abs(wtx), np.zeros(c_in, dtype=x.dtype), mag)
    close(got, want, mag, c_out * kh * kw)
    pairs = np.stack([np.repeat(np.arange(c_in), kh * kw), np.tile(corr.offs, c_in)], axis=1).astype(np.int64)
    pairs = np.concatenate([pairs, np.repeat(pairs[-1:], -len(pairs) % lanes.TILE_U, axis=0)])
    o4 = -(-c_out // lanes.TILE_O) * lanes.TILE_O
    tiles = np.empty((o4 // lanes.TILE_O, len(pairs) // lanes.TILE_U, lanes.TILE_O * lanes.TILE_U), dtype=x.dtype)
    want, mag = np.empty((o4, len(pairs)), dtype=x.dtype), np.empty((o4, len(pairs)), dtype=x.dtype)
    posx, posg = lanes.weight_grad_positions(ho, wo, wq, mt * grow + lt, grow)
    args = (corr.plane.nvec, gp, dcorr.plane.nvec, n, posx, posg, pairs, c_out)
    lanes._wgrad(xp, *args, 3, np.ones(xp.shape[0], dtype=np.uint8), tiles)
    twin.wgrad(xp, *args, want)
    twin.wgrad(np.abs(xp), corr.plane.nvec, np.abs(gp), *args[2:], mag)
    close(lanes.tiles_to_matrix(tiles)[:c_out], want[:c_out], mag[:c_out], n * ho * wo)


@pytest.mark.parametrize("stride, padding, k", [(1, 1, 3), (2, 1, 3), (2, 0, 1), ((1, 2), (0, 1), (2, 3))])
def test_gradcheck_on_the_lanes_path(monkeypatch, stride, padding, k):
    """dx, dW and the bias by finite differences in float64, every convolution forced onto the lanes path
    (9 images: a full block of 8 lanes and one image in a second block)."""
    monkeypatch.setattr(conv_kernels, "FORCED_PATH", "lanes")
    x, w, b, stride, padding = _fixed(9, 2, 3, 5, 6, k, stride, padding, seed=3)
    x, w, b = (Tensor(a, requires_grad=True) for a in (x, w, b))
    assert conv_kernels.conv_path(9, 2, 3, 5, 6, *w.shape[2:], stride, padding, 1, np.float64) == "lanes"
    assert gradcheck(lambda x, w, b: ops.conv2d(x, w, b, stride=stride, padding=padding), [x, w, b])


@pytest.mark.parametrize("shape", [
    (37, 16, 24, 8, 8, 3, 1, 1),   # W1-like: three blocks of 16, the last one partial
    (20, 8, 12, 9, 9, 3, 2, 1),    # stride 2
])
def test_bit_identical_twice_and_on_one_or_two_threads(shape):
    """float32: results depend on neither the run nor the thread count (each item writes its own
    outputs; dW tiles own their sums)."""
    x, w, b, stride, padding = _fixed(*shape, dtype=np.float32, seed=4)
    g = np.random.default_rng(5).standard_normal(_output_shape(x, w, stride, padding)).astype(np.float32)

    def run():
        with numba.parallel_chunksize(1):
            return (lanes.conv2d_forward(x, w, b, stride, padding),) + lanes.conv2d_backward(
                g, x, w, stride, padding, True, True)

    first, second = run(), run()
    with numba_threads(1):
        one = run()
    with numba_threads(numba.config.NUMBA_NUM_THREADS):
        many = run()
    for a, b_, c, d in zip(first, second, one, many):
        np.testing.assert_array_equal(a, b_)
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(a, d)


@pytest.mark.parametrize("shape", [(2, 0, 5, 5), (0, 3, 5, 5)])
def test_zero_channels_and_zero_batch_on_the_lanes_path(monkeypatch, shape):
    monkeypatch.setattr(conv_kernels, "FORCED_PATH", "lanes")
    x = Tensor(np.zeros(shape), requires_grad=True)
    w = Tensor(np.ones((4, shape[1], 3, 3)), requires_grad=True)
    b = Tensor(np.arange(4.0), requires_grad=True)
    out = ops.conv2d(x, w, b, padding=1)
    np.testing.assert_array_equal(out.data, np.broadcast_to(np.arange(4.0)[:, None, None], out.shape))
    out.sum().backward()
    np.testing.assert_array_equal(w.grad, 0.0)
    assert x.grad.shape == x.shape


# (N, C_in, C_out, H, k, stride): the convolutions of W1 (digits_net, batch 64) and W3 (ResNet-18 width 0.25,
# batch 32) take the lanes path; small batches, and grouped convolutions, do not (the rule of conv_path, as
# measured in docs/performance.md)
@pytest.mark.parametrize("n, c_in, c_out, h, k, s, dtype, groups, path", [
    (64, 16, 32, 8, 3, 1, np.float32, 1, "lanes"),
    (64, 32, 64, 4, 3, 1, np.float32, 1, "lanes"),
    (32, 128, 128, 4, 3, 1, np.float32, 1, "lanes"),
    (32, 16, 32, 32, 3, 2, np.float32, 1, "lanes"),
    (32, 16, 32, 32, 1, 2, np.float32, 1, "lanes"),
    (12, 16, 32, 8, 3, 1, np.float32, 1, "lanes"),     # 12 of 16 lanes: 0.75
    (11, 16, 32, 8, 3, 1, np.float32, 1, "direct"),
    (8, 64, 64, 8, 3, 1, np.float32, 1, "gemm"),
    (24, 32, 32, 8, 1, 1, np.float32, 1, "gemm"),       # 1x1: every lane filled, or im2col + GEMM
    (32, 32, 32, 8, 1, 1, np.float32, 1, "lanes"),
    (24, 256, 256, 8, 3, 1, np.float32, 1, "gemm"),     # over 128 output channels: likewise
    (64, 256, 256, 8, 3, 1, np.float32, 1, "lanes"),
    (6, 4, 4, 8, 3, 1, np.float64, 1, "lanes"),        # float64: 8 lanes
    (64, 16, 16, 8, 3, 1, np.float32, 16, "gemm"),
])
def test_path_rule(n, c_in, c_out, h, k, s, dtype, groups, path):
    assert conv_kernels.conv_path(n, c_in, c_out, h, h, k, k, (s, s), (k // 2, k // 2), groups, dtype) == path


# ------------------------------------------------------------------ silent blocks (module doc)
@contextlib.contextmanager
def skipping(on):
    before = lanes.SKIP_SILENT_BLOCKS
    lanes.SKIP_SILENT_BLOCKS = on
    try:
        yield
    finally:
        lanes.SKIP_SILENT_BLOCKS = before


def _silence(x, rng, lanes_n):
    """Zero every image of a random set of whole blocks (some as -0.0), and single images elsewhere;
    return the blocks that are all zeros."""
    n = x.shape[0]
    blocks = -(-n // lanes_n)
    silent = rng.random(blocks) < 0.5
    for b in np.flatnonzero(silent):
        x[b * lanes_n:(b + 1) * lanes_n] = rng.choice([0.0, -0.0], size=x[b * lanes_n:(b + 1) * lanes_n].shape)
    x[rng.integers(0, n)] = 0.0  # a silent image alone does not silence its block
    return np.array([not np.any(x[b * lanes_n:(b + 1) * lanes_n]) for b in range(blocks)])


@settings(max_examples=40)
@example(case=_fixed(40, 3, 5, 6, 6, 3, 1, 1, np.float32), seed=1)
@example(case=_fixed(17, 2, 3, 7, 9, 3, 2, 1), seed=2)
@given(case=lanes_case(), seed=st.integers(0, 2 ** 16))
def test_silent_blocks_are_skipped_with_the_dense_bits(case, seed):
    """Forward, dx and dW with silent blocks skipped equal the dense computation bit for bit (signed zeros
    included), and the blocks marked silent are exactly those whose packed values are all zero."""
    x, weight, bias, stride, padding = case
    rng = np.random.default_rng(seed)
    lanes_n = lanes_of(x.dtype)
    expected_silent = _silence(x, rng, lanes_n)
    shape = _output_shape(x, weight, stride, padding)
    g = rng.standard_normal(shape).astype(x.dtype)
    g[rng.random(shape) < 0.3] = -0.0
    corr, _, _ = lanes.forward_geometry(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], stride, padding)
    packed = lanes.pack(x, corr.plane)
    live = lanes.live_blocks(packed, weight)
    # silent: every value a tap reads is zero (with a stride, some inputs are never read)
    np.testing.assert_array_equal(live, twin.live_blocks(packed, weight))
    assert (live[expected_silent] == 0).all()

    def run(skip):
        with skipping(skip):
            return (lanes.conv2d_forward(x, weight, bias, stride, padding),) + lanes.conv2d_backward(
                g, x, weight, stride, padding, True, True)

    for got, want in zip(run(True), run(False)):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("dtype, tiny", [(np.float32, 1e-30), (np.float64, 1e-200)])
def test_a_weight_gradient_accumulator_at_minus_zero_keeps_the_dense_bits(dtype, tiny):
    """dW's accumulators run over the blocks: a live block whose products underflow leaves -0 (under the fused
    multiply-add), which the dense sum of a later silent block's +0 products turns into +0. Only silent blocks
    before the first live one may be skipped (found by review: skipping the later one kept -0)."""
    lanes_n = lanes_of(dtype)
    n = 3 * lanes_n
    x = np.zeros((n, 1, 1, 1), dtype)
    x[lanes_n:2 * lanes_n] = tiny            # block 0 silent, block 1 live, block 2 silent
    g = np.ones((n, 1, 1, 1), dtype)
    g[lanes_n:2 * lanes_n] = -tiny           # block 1's products: -tiny^2, below the smallest subnormal
    w = np.ones((1, 1, 1, 1), dtype)
    results = []
    for skip in (True, False):
        with skipping(skip):
            results.append(lanes.conv2d_backward(g, x, w, (1, 1), (0, 0), False, True)[1].copy())
    assert results[0].tobytes() == results[1].tobytes()


@pytest.mark.parametrize("partner, want", [(1.0, [0, 1, 1, 1]), (np.nan, [1, 1, 1, 1])])
def test_live_blocks_against_the_twin(partner, want):
    """Four blocks: zeros, a single NaN, a single subnormal (not zero), ones; a NaN in the partner makes all live."""
    g = np.zeros((64, 4, 5, 5), np.float32)
    g[16, 3, 4, 4] = np.nan
    g[47, 0, 0, 0] = np.float32(1e-45)
    g[48:] = 1.0
    corr, _, _ = lanes.forward_geometry(5, 5, 3, 3, (1, 1), (1, 1))
    packed = lanes.pack(g, corr.plane)
    partner = np.full(3, partner, np.float32)
    np.testing.assert_array_equal(lanes.live_blocks(packed, partner), want)
    np.testing.assert_array_equal(twin.live_blocks(packed, partner), want)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_partner_keeps_the_formulas_nan(monkeypatch, bad):
    """0 * inf is NaN: with a non-finite weight (forward, dx) or output gradient (dW) nothing is skipped."""
    x = np.zeros((16, 2, 4, 4), np.float32)  # one block, silent
    weight = np.ones((3, 2, 3, 3), np.float32)
    weight[1, 0, 1, 1] = bad
    g = np.ones((16, 3, 4, 4), np.float32)
    out = lanes.conv2d_forward(x, weight, None, (1, 1), (1, 1))
    assert np.isnan(out[:, 1]).all() and not np.isnan(out[:, [0, 2]]).any()
    weight[1, 0, 1, 1] = 1.0
    g[0, 2, 0, 0] = bad
    _, gw = lanes.conv2d_backward(g, x, weight, (1, 1), (1, 1), False, True)
    assert np.isnan(gw[2]).any()
    monkeypatch.setattr(lanes, "SKIP_SILENT_BLOCKS", False)
    _, want = lanes.conv2d_backward(g, x, weight, (1, 1), (1, 1), False, True)
    np.testing.assert_array_equal(gw, want)


def test_a_spiking_resnet_with_silent_layers_trains_to_the_same_bits(monkeypatch):
    """Two online steps of a small spiking ResNet whose deep layers are silent at initialization: the same
    losses, logits and parameters with and without the skip, and the skip did fire."""
    from hdlif_ref.models import spiking_resnet
    from hdlif_ref.training.optim import SGD
    from hdlif_ref.training.trainer import OnlineTrainer

    silent_calls = []
    original = lanes.live_blocks
    monkeypatch.setattr(lanes, "live_blocks", lambda xp, p: silent_calls.append(int((original(xp, p) == 0).sum()))
                        or original(xp, p))

    def train(skip):
        monkeypatch.setattr(lanes, "SKIP_SILENT_BLOCKS", skip)
        model = spiking_resnet(18, stem="cifar", width=0.125, T=2, weight_mode="ternary", spike_bits=4,
                               rng=np.random.default_rng(0))
        rng = np.random.default_rng(1)
        x, y = rng.standard_normal((16, 3, 8, 8)).astype(np.float32), rng.integers(0, 10, 16)
        trainer = OnlineTrainer(model, SGD(list(model.parameters()), lr=0.1, momentum=0.9), steps=1,
                                rng=np.random.default_rng(2))
        return [trainer.train_batch(x, y) for _ in range(2)], model.state_dict()

    (steps_a, state_a), (steps_b, state_b) = train(True), train(False)
    assert sum(silent_calls) > 0, "no block was silent: the test exercises nothing"
    for (loss_a, logits_a), (loss_b, logits_b) in zip(steps_a, steps_b):
        assert loss_a == loss_b
        np.testing.assert_array_equal(logits_a, logits_b)
    for key in state_b:
        np.testing.assert_array_equal(state_a[key], state_b[key], err_msg=key)


# ------------------------------------------------------------------ padded rows (module doc)
@settings(max_examples=60)
@example(h=8, w=8, kh=3, kw=3, stride=(1, 1), padding=(1, 1))
@example(h=3, w=3, kh=5, kw=5, stride=(1, 1), padding=(2, 2))
@example(h=7, w=9, kh=3, kw=3, stride=(2, 2), padding=(1, 1))
@given(h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 5), kw=st.integers(1, 5),
       stride=st.tuples(st.integers(1, 2), st.integers(1, 2)), padding=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_trimmed_jobs_leave_out_exactly_the_taps_on_padded_rows(h, w, kh, kw, stride, padding):
    """Forward: output (p, q) and tap (i, j) read input (p*sh + i - ph, q*sw + j - pw). The trimmed jobs cover
    every output position once and keep, per output row, every tap that reads some input element along
    the row; what they leave out reads padding only; they trim a row exactly when its first or last tap
    reads padding only (from the formula, not from the plane layout)."""
    (sh, sw), (ph, pw) = stride, padding
    if kh > h + 2 * ph or kw > w + 2 * pw:
        return
    corr, _, _ = lanes.forward_geometry(h, w, kh, kw, stride, padding)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    def reads(p, k):
        i, j = corr.taps[k]
        return 0 <= p * sh + i - ph < h and any(0 <= q * sw + j - pw < w for q in range(wo))

    kept_by_row = {}
    for t0, nt, ibase, rin, obase, orow, ostep, nu, nv in corr.trimmed_jobs:
        assert (rin, orow, ostep, nv) == (corr.jobs[0, 3], wo, 1, wo)
        for u in range(nu):
            assert (obase + u * orow) % wo == 0 and ibase + u * rin == (obase + u * orow) // wo * rin
            p = (obase + u * orow) // wo
            assert p not in kept_by_row
            kept_by_row[p] = set(range(t0, t0 + nt))
    assert sorted(kept_by_row) == list(range(ho))
    taps = set(range(len(corr.taps)))
    for p, kept in kept_by_row.items():
        assert {k for k in taps if reads(p, k)} <= kept  # nothing left out reads the image
        if kept:  # and nothing more is left out than the ends that read padding only
            assert reads(p, min(kept)) and reads(p, max(kept))
    assert corr.trims == any(not reads(p, 0) or not reads(p, len(corr.taps) - 1) for p in range(ho))


@settings(max_examples=60)
@example(h=8, w=8, kh=3, kw=3, stride=(1, 1), padding=(1, 1))
@example(h=7, w=9, kh=3, kw=3, stride=(2, 2), padding=(1, 1))
@given(h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 5), kw=st.integers(1, 5),
       stride=st.tuples(st.integers(1, 2), st.integers(1, 2)), padding=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_trimmed_input_gradient_jobs_leave_out_only_padding(h, w, kh, kw, stride, padding):
    """dx's jobs (one per phase, reading the padded output gradient): every (row, tap) the full jobs run and the
    trimmed ones do not reads only padding vectors of the gradient's plane, and the trimmed jobs write every
    position the full jobs write, once."""
    (sh, sw), (ph, pw) = stride, padding
    if kh > h + 2 * ph or kw > w + 2 * pw:
        return
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    corr, _, _, _ = lanes.input_grad_geometry(h, w, kh, kw, stride, padding, ho, wo)
    real = np.zeros(corr.plane.nvec, dtype=bool)
    real[corr.plane.dpos[corr.plane.dpos >= 0]] = True

    def runs(jobs):
        out = {}
        for t0, nt, ibase, rin, obase, orow, ostep, nu, nv in jobs:
            for u in range(nu):
                key = (obase + u * orow, ostep, nv)
                assert key not in out
                out[key] = (ibase + u * rin, set(range(t0, t0 + nt)))
        return out

    full, trimmed = runs(corr.jobs), runs(corr.trimmed_jobs)
    assert full.keys() == trimmed.keys()
    for key, (start, kept) in trimmed.items():
        assert start == full[key][0] and kept <= full[key][1]
        for k in full[key][1] - kept:
            first = start + corr.offs[k]
            assert 0 <= first and first + key[2] <= corr.plane.nvec
            assert not real[first:first + key[2]].any()


@contextlib.contextmanager
def trimming(on):
    before = lanes.TRIM_PADDED_ROWS
    lanes.TRIM_PADDED_ROWS = on
    try:
        yield
    finally:
        lanes.TRIM_PADDED_ROWS = before


@settings(max_examples=60)
@example(case=_fixed(40, 3, 5, 4, 4, 3, 1, 1, np.float32), seed=1)
@example(case=_fixed(17, 2, 3, 3, 3, 5, 1, 2), seed=2)
@example(case=_fixed(9, 2, 3, 7, 9, 3, 2, 1), seed=3)
@given(case=lanes_case(), seed=st.integers(0, 2 ** 16))
def test_trimmed_jobs_give_the_dense_bits(case, seed):
    """Forward and dx with the padded rows' taps left out equal every tap computed, bit for bit (signed zeros
    included), on inputs with zeros, -0 and values whose products underflow."""
    x, weight, bias, stride, padding = case
    rng = np.random.default_rng(seed)
    tiny = np.float32(1e-30) if x.dtype == np.float32 else 1e-200
    x[rng.random(x.shape) < 0.3] = -0.0
    x[rng.random(x.shape) < 0.2] = tiny
    weight[rng.random(weight.shape) < 0.2] = -tiny
    shape = _output_shape(x, weight, stride, padding)
    g = rng.standard_normal(shape).astype(x.dtype)
    g[rng.random(shape) < 0.3] = tiny

    def run(on):
        with trimming(on):
            return (lanes.conv2d_forward(x, weight, bias, stride, padding),
                    lanes.conv2d_backward(g, x, weight, stride, padding, True, False)[0])

    for got, want in zip(run(True), run(False)):
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype, tiny", [(np.float32, 1e-30), (np.float64, 1e-200)])
def test_a_negative_zero_bias_or_a_non_finite_weight_keeps_every_tap(dtype, tiny):
    """One channel, 3x3, padding 1: at the bottom row's centre the product w * tiny underflows to -0 and the
    next real tap adds -1 * (+0) = -0; the full job then adds the padding row's products (+0, positive
    weights), which turn it into +0. With a bias of -0 the two give -0 and +0: the check turns the
    trimming off. With an infinite weight the padding's 0 * inf is the formula's NaN."""
    x = np.zeros((lanes_of(dtype), 1, 3, 3), dtype)
    x[:, 0, 2, 1] = tiny
    weight = np.ones((1, 1, 3, 3), dtype)
    weight[0, 0, 1, 1] = -tiny  # the bottom row's centre reads x[2, 1] with the middle kernel row ...
    weight[0, 0, 1, 2] = -1.0   # ... and then x[2, 2] = +0: a -0 product keeps the accumulator at -0
    bias = np.array([-0.0], dtype)
    corr, _, _ = lanes.forward_geometry(3, 3, 3, 3, (1, 1), (1, 1))
    wt = lanes.tile_weights(weight, corr, False)
    xp = lanes.pack(x, corr.plane)
    results = {}
    for name, jobs in (("full", corr.jobs), ("trimmed", corr.trimmed_jobs)):  # the engine itself, no check
        out = np.empty((x.shape[0], 1, 3, 3), dtype)
        accs = np.empty((1, lanes.TILE_O, 9 * lanes_of(dtype)), dtype)
        with numba_threads(1):
            lanes._correlate(xp, x.shape[0], 1, corr.plane.nvec, corr.offs, jobs, wt, bias, 1, 9, accs,
                             np.ones(xp.shape[0], np.uint8), out.reshape(-1))
        results[name] = out
    assert np.signbit(results["trimmed"][0, 0, 2, 1]) and not np.signbit(results["full"][0, 0, 2, 1])
    assert not lanes.padding_adds_nothing(wt, bias)
    assert not twin.padding_adds_nothing(wt, bias)
    assert lanes.padding_adds_nothing(wt, np.zeros(1, dtype)) and twin.padding_adds_nothing(wt, np.zeros(1, dtype))
    for on in (True, False):
        with trimming(on):
            out = lanes.conv2d_forward(x, weight, bias, (1, 1), (1, 1))
        assert out.tobytes() == results["full"].tobytes()
    weight[0, 0, 0, 0] = np.inf  # read at output row 0 from the top padding row only
    wt = lanes.tile_weights(weight, corr, False)
    zero_bias = np.zeros(1, dtype)
    assert not lanes.padding_adds_nothing(wt, zero_bias) and not twin.padding_adds_nothing(wt, zero_bias)
    out = lanes.conv2d_forward(x, weight, None, (1, 1), (1, 1))
    assert np.isnan(out[:, 0, 0, :]).all()  # every position of the top row multiplies inf by a padding zero


def test_the_weight_gradient_owns_its_memory():
    """With c_in kh kw = 4 (one tile of pairs) the weight gradient was a view of the reused scratch buffer, and
    the next weight gradient overwrote it (found by review; on main too)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4, 3, 3)).astype(np.float32)
    w = rng.standard_normal((4, 4, 1, 1)).astype(np.float32)
    g = rng.standard_normal((16, 4, 3, 3)).astype(np.float32)
    first = lanes.conv2d_backward(g, x, w, (1, 1), (0, 0), False, True)[1]
    kept = first.copy()
    lanes.conv2d_backward(2 * g, x, w, (1, 1), (0, 0), False, True)
    np.testing.assert_array_equal(first, kept)
