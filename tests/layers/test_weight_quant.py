"""Compressed synapses: SPEC E11 (binary) and E12 (ternary), forward, straight-through backward, packing."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hdlif_ref.autograd import Tensor, ops
from hdlif_ref.kernels.weight_codes import pack_ternary, ternary_codes, unpack_ternary

WEIGHTS = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=4, max_side=4),
                     elements=st.floats(-2, 2, allow_subnormal=False))


def e11_by_loop(w):
    """SPEC E11, one output channel at a time: a_c * sign(w), sign(0) = +1."""
    out = np.empty_like(w)
    for c in range(w.shape[0]):
        a = np.mean(np.abs(w[c]))
        out[c] = a * np.where(w[c] >= 0, 1.0, -1.0)
    return out


def e12_by_loop(w):
    """SPEC E12, one output channel at a time."""
    out = np.zeros_like(w)
    for c in range(w.shape[0]):
        flat = w[c].ravel()
        delta = 0.7 * np.mean(np.abs(flat))
        kept = [x for x in flat if abs(x) > delta]
        a = sum(abs(x) for x in kept) / len(kept) if kept else 0.0
        out[c] = np.array([a * np.sign(x) if abs(x) > delta else 0.0 for x in flat]).reshape(w[c].shape)
    return out


@given(WEIGHTS)
def test_e11_binary_forward(w):
    np.testing.assert_allclose(ops.quantize_weight(Tensor(w), "binary").data, e11_by_loop(w), rtol=1e-12)


@given(WEIGHTS)
def test_e12_ternary_forward(w):
    np.testing.assert_allclose(ops.quantize_weight(Tensor(w), "ternary").data, e12_by_loop(w), rtol=1e-12)


def test_e12_all_zero_channel_has_zero_scale_and_zero_weights():
    w = np.array([[0.0, 0.0, 0.0], [0.5, -1.0, 0.1]])
    codes, a = ternary_codes(w)
    assert a[0] == 0.0 and not codes[0].any()
    # channel 1: mean |w| = 0.5333, delta = 0.3733: keeps 0.5 and -1.0, a = 0.75
    np.testing.assert_allclose(a[1], 0.75)
    np.testing.assert_array_equal(codes[1], [1, -1, 0])


def test_e11_sign_of_zero_is_plus_one():
    out = ops.quantize_weight(Tensor(np.array([[0.0, -2.0]])), "binary").data
    np.testing.assert_array_equal(out, [[1.0, -1.0]])


@given(WEIGHTS)
def test_straight_through_backward_follows_the_documented_rule(w):
    g = np.random.default_rng(0).standard_normal(w.shape)
    for mode, expected in (("binary", g * (np.abs(w) <= 1)), ("ternary", g)):
        t = Tensor(w, requires_grad=True)
        ops.quantize_weight(t, mode).backward(g)
        np.testing.assert_array_equal(t.grad, expected)


def test_fp32_mode_is_the_weight_itself_and_unknown_modes_are_refused():
    t = Tensor(np.ones((2, 2)))
    assert ops.quantize_weight(t, "fp32") is t
    with pytest.raises(ValueError, match=r"weight_mode='int4'; allowed: fp32, binary, ternary"):
        ops.quantize_weight(t, "int4")


@given(hnp.arrays(np.int8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
                  elements=st.integers(-1, 1)))
def test_ternary_packing_round_trips_at_two_bits_per_code(codes):
    packed = pack_ternary(codes)
    assert packed.dtype == np.uint8 and packed.size == (codes.size + 3) // 4
    np.testing.assert_array_equal(unpack_ternary(packed, codes.shape), codes)


def test_unpacking_a_corrupt_payload_is_an_error():
    with pytest.raises(ValueError, match="0b11"):
        unpack_ternary(np.array([0xFF], dtype=np.uint8), (4,))
    with pytest.raises(ValueError, match="expected 1 uint8 bytes"):
        unpack_ternary(np.zeros(2, dtype=np.uint8), (4,))


def test_e12_hand_case_weights_exactly_on_delta_are_dropped():
    """SPEC E12's strict ``|w| > delta_c``, by hand: |w| = (.4375, .4375, 1, .25, .875, .5, 1, .5) has mean 0.625
    exactly (dyadic), and 0.7 x 0.625 rounds to exactly 0.4375, so the first two weights sit on delta_c and
    get code 0 (``>=`` would keep them: codes 1, -1 and a_c = 4.75 / 7 instead of 3.875 / 5)."""
    w = np.array([[0.4375, -0.4375, 1.0, -0.25, 0.875, 0.5, -1.0, 0.5]])
    assert 0.7 * np.mean(np.abs(w)) == 0.4375
    codes, a = ternary_codes(w)
    np.testing.assert_array_equal(codes, [[0, 0, 1, 0, 1, 1, -1, 1]])
    assert a[0] == (1.0 + 0.875 + 0.5 + 1.0 + 0.5) / 5  # = 0.775
    leaf = Tensor(w.copy(), requires_grad=True)
    y = ops.quantize_weight(leaf, "ternary")
    np.testing.assert_array_equal(y.data, 0.775 * np.array([[0, 0, 1, 0, 1, 1, -1, 1]]))
    y.backward(np.arange(8.0).reshape(1, 8))
    np.testing.assert_array_equal(leaf.grad, np.arange(8.0).reshape(1, 8))  # straight through, on delta too


def test_e11_mask_includes_one_and_sign_of_zero_is_plus_one_by_hand():
    w = np.array([[1.0, -1.0, 1.5, 0.0, -0.5]])
    leaf = Tensor(w.copy(), requires_grad=True)
    y = ops.quantize_weight(leaf, "binary")
    np.testing.assert_array_equal(y.data, 0.8 * np.array([[1, -1, 1, 1, -1]]))  # a_c = 4 / 5
    y.backward(np.full((1, 5), 2.0))
    np.testing.assert_array_equal(leaf.grad, [[2.0, 2.0, 0.0, 2.0, 2.0]])  # 1[|w| <= 1]: |w| = 1 keeps it
