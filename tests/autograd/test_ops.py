"""Every op of the table: forward against NumPy/SciPy, backward against float64 finite differences.

Each case draws shapes (broadcasting and size-1 axes included) and values with
hypothesis, moves values away from the op's kinks (finite differences are
meaningless on a kink; the kink conventions are tested exactly in
test_conventions.py), and returns ``(fn, inputs, expected)``: ``fn`` builds the
op on tensors, ``expected`` is the forward computed independently.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hdlif_ref.autograd import OPS, Tensor, gradcheck, ops

FLOATS = st.floats(-2.0, 2.0, allow_nan=False, allow_subnormal=False, width=64)


def arrays(draw, shape):
    return draw(hnp.arrays(np.float64, shape, elements=FLOATS))


def small_shape(draw, min_dims=0, max_dims=3, min_side=1):
    return draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=4))


def two_broadcastable(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    return shapes.input_shapes


def leaf(x):
    return Tensor(np.array(x, dtype=np.float64), requires_grad=True)


def away_from_zero(x, margin=0.5):
    return np.where(x >= 0, x + margin, x - margin)


# --------------------------------------------------------------------------- cases
def case_binary(np_fn, op_fn, transform_b=None):
    def build(draw):
        sa, sb = two_broadcastable(draw)
        a, b = arrays(draw, sa), arrays(draw, sb)
        if transform_b is not None:
            b = transform_b(b)
        return op_fn, [leaf(a), leaf(b)], np_fn(a, b)
    return build


def case_unary(np_fn, op_fn, transform=lambda x: x, min_dims=0):
    def build(draw):
        x = transform(arrays(draw, small_shape(draw, min_dims=min_dims)))
        return op_fn, [leaf(x)], np_fn(x)
    return build


def case_tie_free_pair(np_fn, op_fn):
    """Values on a quarter grid and on the grid shifted by 1/8: never equal, >= 1/8 apart."""
    def build(draw):
        sa, sb = two_broadcastable(draw)
        a = np.round(arrays(draw, sa) * 4) / 4
        b = np.round(arrays(draw, sb) * 4) / 4 + 0.125
        return op_fn, [leaf(a), leaf(b)], np_fn(a, b)
    return build


def case_pow(draw):
    x = np.abs(arrays(draw, small_shape(draw))) + 0.5
    p = draw(st.sampled_from([-1.5, -1, 0, 0.5, 1, 2, 3]))
    return (lambda t: ops.pow(t, p)), [leaf(x)], np.power(x, p)


def case_where(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3)).input_shapes
    cond = draw(hnp.arrays(np.bool_, shapes[0]))
    a, b = arrays(draw, shapes[1]), arrays(draw, shapes[2])
    return (lambda x, y: ops.where(cond, x, y)), [leaf(a), leaf(b)], np.where(cond, a, b)


def case_clip(draw):
    lo, hi = -0.5, 0.75
    x = arrays(draw, small_shape(draw))
    x = np.where((np.abs(x - lo) < 1e-2) | (np.abs(x - hi) < 1e-2), 0.0, x)
    return (lambda t: ops.clip(t, lo, hi)), [leaf(x)], np.clip(x, lo, hi)


def case_astype(draw):
    x = arrays(draw, small_shape(draw))
    # float64 -> float32 -> float64 -> op: the gradient travels through both casts
    return (lambda t: ops.astype(ops.astype(t, np.float32), np.float64) * 3.0), [leaf(x)], \
        (x.astype(np.float32).astype(np.float64) * 3.0)


def case_matmul(draw):
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)).input_shapes
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    form = draw(st.sampled_from(["batched", "vector_left", "vector_right", "vector_both"]))
    sa = (k,) if form in ("vector_left", "vector_both") else batch[0] + (n, k)
    sb = (k,) if form in ("vector_right", "vector_both") else batch[1] + (k, m)
    a, b = arrays(draw, sa), arrays(draw, sb)
    return ops.matmul, [leaf(a), leaf(b)], np.matmul(a, b)


def axis_and_keepdims(draw, ndim):
    if ndim == 0 or draw(st.booleans()):
        axis = None
    else:
        axis = tuple(draw(st.sets(st.integers(-ndim, ndim - 1).map(lambda a: a % ndim), min_size=1)))
    return axis, draw(st.booleans())


def case_reduction(np_fn, op_name):
    def build(draw):
        x = arrays(draw, small_shape(draw))
        axis, keepdims = axis_and_keepdims(draw, x.ndim)
        fn = getattr(ops, op_name)
        return (lambda t: fn(t, axis=axis, keepdims=keepdims)), [leaf(x)], \
            np_fn(x, axis=axis, keepdims=keepdims)
    return build


def case_max(draw):
    shape = small_shape(draw)
    size = int(np.prod(shape))
    seed = draw(st.integers(0, 2**32 - 1))
    # distinct values (>= 0.1 apart) so no maximum is tied; ties are tested exactly elsewhere
    x = np.random.default_rng(seed).permutation(size).reshape(shape) * 0.1
    axis, keepdims = axis_and_keepdims(draw, x.ndim)
    return (lambda t: ops.max(t, axis=axis, keepdims=keepdims)), [leaf(x)], \
        np.max(x, axis=axis, keepdims=keepdims)


def case_var(draw):
    x = arrays(draw, small_shape(draw, min_dims=1, min_side=2))
    axis, keepdims = axis_and_keepdims(draw, x.ndim)
    ddof = draw(st.integers(0, 1))
    return (lambda t: ops.var(t, axis=axis, keepdims=keepdims, ddof=ddof)), [leaf(x)], \
        np.var(x, axis=axis, keepdims=keepdims, ddof=ddof)


def case_reshape(draw):
    x = arrays(draw, small_shape(draw))
    shape = (-1,) if draw(st.booleans()) else tuple(reversed(x.shape)) + (1,)
    return (lambda t: ops.reshape(t, shape)), [leaf(x)], np.reshape(x, shape)


def case_permute(draw):
    x = arrays(draw, small_shape(draw, min_dims=1))
    axes = tuple(draw(st.permutations(range(x.ndim))))
    use_transpose = draw(st.booleans())
    if use_transpose:
        return (lambda t: ops.transpose(t)), [leaf(x)], np.transpose(x)
    return (lambda t: ops.permute(t, axes)), [leaf(x)], np.transpose(x, axes)


def case_broadcast_to(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=1, max_dims=3, max_side=3))
    x = arrays(draw, shapes.input_shapes[0])
    target = (2,) + shapes.result_shape
    return (lambda t: ops.broadcast_to(t, target)), [leaf(x)], np.broadcast_to(x, target)


def case_getitem(draw):
    x = arrays(draw, small_shape(draw, min_dims=1))
    kind = draw(st.sampled_from(["slice", "int_array", "bool_mask", "mixed"]))
    if kind == "slice":
        index = tuple(slice(draw(st.integers(0, n - 1)), None, draw(st.integers(1, 2))) for n in x.shape)
    elif kind == "int_array":  # repeats on purpose: their gradients must add up
        index = np.array(draw(st.lists(st.integers(-x.shape[0], x.shape[0] - 1), min_size=1, max_size=5)))
    elif kind == "bool_mask":
        index = draw(hnp.arrays(np.bool_, x.shape))
    else:
        index = (Ellipsis, draw(st.integers(0, x.shape[-1] - 1)), None)
    return (lambda t: ops.getitem(t, index)), [leaf(x)], x[index]


def case_concatenate(draw):
    base = small_shape(draw, min_dims=1)
    axis = draw(st.integers(0, len(base) - 1))
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        shape = list(base)
        shape[axis] = draw(st.integers(0, 3))
        parts.append(arrays(draw, tuple(shape)))
    return (lambda *ts: ops.concatenate(ts, axis=axis)), [leaf(p) for p in parts], \
        np.concatenate(parts, axis=axis)


def case_stack(draw):
    shape = small_shape(draw)
    parts = [arrays(draw, shape) for _ in range(draw(st.integers(1, 3)))]
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    return (lambda *ts: ops.stack(ts, axis=axis)), [leaf(p) for p in parts], np.stack(parts, axis=axis)


def case_unstack(draw):
    shape = small_shape(draw, min_dims=1)
    x = arrays(draw, shape)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    used = draw(st.sampled_from(["all", "first"]))  # unused outputs must get zero gradients
    def fn(t):
        parts = ops.unstack(t, axis=axis)
        return ops.stack(parts, axis=0) * 2.0 if used == "all" else parts[0] * 2.0
    parts = [np.take(x, i, axis=axis) for i in range(x.shape[axis])]
    return fn, [leaf(x)], (np.stack(parts) if used == "all" else parts[0]) * 2.0


def case_pad(draw):
    x = arrays(draw, small_shape(draw, min_dims=1))
    widths = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in x.shape)
    value = draw(st.sampled_from([0.0, -1.5]))
    return (lambda t: ops.pad(t, widths, value)), [leaf(x)], \
        np.pad(x, widths, mode="constant", constant_values=value)


def case_log_softmax(draw):
    x = arrays(draw, small_shape(draw, min_dims=1)) * 5
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    return (lambda t: ops.log_softmax(t, axis=axis)), [leaf(x)], scipy.special.log_softmax(x, axis=axis)


def cross_entropy_by_loop(logits, labels, smoothing, reduction):
    """The definition, one sample and one class at a time."""
    n, c = logits.shape
    losses = []
    for i in range(n):
        logz = np.log(sum(np.exp(logits[i, k]) for k in range(c)))
        q = [smoothing / c + (1 - smoothing) * (k == labels[i]) for k in range(c)]
        losses.append(-sum(q[k] * (logits[i, k] - logz) for k in range(c)))
    losses = np.array(losses)
    return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]


def case_cross_entropy(draw):
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    logits = arrays(draw, (n, c)) * 3
    labels = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    smoothing = draw(st.sampled_from([0.0, 0.1, 1.0]))
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    return (lambda t: ops.cross_entropy(t, labels, smoothing, reduction)), [leaf(logits)], \
        cross_entropy_by_loop(logits, labels, smoothing, reduction)


CASES = {
    "add": case_binary(np.add, ops.add),
    "sub": case_binary(np.subtract, ops.sub),
    "mul": case_binary(np.multiply, ops.mul),
    "div": case_binary(np.divide, ops.div, transform_b=away_from_zero),
    "neg": case_unary(np.negative, ops.neg),
    "pow": case_pow,
    "exp": case_unary(np.exp, ops.exp),
    "log": case_unary(np.log, ops.log, transform=lambda x: np.abs(x) + 0.5),
    "sqrt": case_unary(np.sqrt, ops.sqrt, transform=lambda x: np.abs(x) + 0.5),
    "abs": case_unary(np.abs, ops.abs, transform=away_from_zero),
    "relu": case_unary(lambda x: np.where(x > 0, x, 0.0), ops.relu, transform=away_from_zero),
    "sigmoid": case_unary(scipy.special.expit, ops.sigmoid, transform=lambda x: 4 * x),
    "tanh": case_unary(np.tanh, ops.tanh),
    "maximum": case_tie_free_pair(np.maximum, ops.maximum),
    "minimum": case_tie_free_pair(np.minimum, ops.minimum),
    "where": case_where,
    "clip": case_clip,
    "astype": case_astype,
    "matmul": case_matmul,
    "sum": case_reduction(np.sum, "sum"),
    "mean": case_reduction(np.mean, "mean"),
    "max": case_max,
    "var": case_var,
    "reshape": case_reshape,
    "permute": case_permute,
    "broadcast_to": case_broadcast_to,
    "getitem": case_getitem,
    "concatenate": case_concatenate,
    "stack": case_stack,
    "unstack": case_unstack,
    "pad": case_pad,
    "log_softmax": case_log_softmax,
    "cross_entropy": case_cross_entropy,
}

#: Finite-difference settings for cases that need them: a float32 cast in the middle rounds
#: to ~6e-8 relative, so the step must be far larger than that rounding.
GRADCHECK_OPTIONS = {"astype": dict(eps=1e-2, atol=1e-4, rtol=1e-4)}

#: Ops added to the table by later floors, with the test module that gradchecks them.
GRADCHECKED_ELSEWHERE: dict[str, str] = {
    # straight-through estimators: their backward is a definition (SPEC E11/E12 DC), not the
    # derivative of the forward, so they are checked against that definition instead
    "binarize_weight": "tests/layers/test_weight_quant.py",
    "ternarize_weight": "tests/layers/test_weight_quant.py",
    # layers (issue 3)
    "conv2d": "tests/kernels/test_conv.py",
    "conv1d_channels": "tests/kernels/test_channel_conv.py",
    "avg_pool2d": "tests/kernels/test_pool.py",
    "max_pool2d": "tests/kernels/test_pool.py",
    "batch_norm": "tests/kernels/test_norm.py",
    "batch_norm_steps": "tests/kernels/test_norm.py",
    "linear": "tests/kernels/test_linear.py",
    # neurons (issue 4): exact gradients gradchecked; LIF's surrogate and the spike quantizer's
    # LSQ backward are definitions (SPEC E7, E13 DC), checked against autodiff of their primitives
    "hdlif_seq": "tests/neurons/test_gradients.py",
    "hdlif_step": "tests/neurons/test_gradients.py",
    "parallel_hdlif_seq": "tests/neurons/test_gradients.py",
    "parallel_hdlif_step": "tests/neurons/test_gradients.py",
    "membn_hdlif_seq": "tests/neurons/test_membn.py",
    "membn_hdlif_step": "tests/neurons/test_membn.py",
    "lif_seq": "tests/neurons/test_lif.py",
    "lif_step": "tests/neurons/test_lif.py",
    "spike_quantize": "tests/neurons/test_quantizer.py",
    # the three nodes above in one (the same bits as they, and finite differences): issue 21
    "bn_hdlif_step": "tests/neurons/test_fused.py",
    # batch norm -> LIF step in one (the same bits as the two nodes; LIF's surrogate is a definition): issue 21
    "bn_lif_step": "tests/neurons/test_fused.py",
}


def test_every_op_in_the_table_has_a_gradcheck_case():
    missing = set(OPS) - set(CASES) - set(GRADCHECKED_ELSEWHERE)
    assert not missing, f"ops without a gradcheck test: {sorted(missing)}"
    assert set(CASES) <= set(OPS), f"cases for ops not in the table: {sorted(set(CASES) - set(OPS))}"


def test_op_table_names_match_their_functions():
    for name, fn in OPS.items():
        assert fn.name == name


@pytest.mark.parametrize("op", sorted(CASES))
@given(data=st.data())
def test_forward_matches_numpy(op, data):
    fn, inputs, expected = CASES[op](data.draw)
    out = fn(*inputs)
    assert out.shape == np.shape(expected)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", sorted(CASES))
@given(data=st.data())
def test_backward_matches_finite_differences(op, data):
    fn, inputs, _ = CASES[op](data.draw)
    assert gradcheck(fn, inputs, **GRADCHECK_OPTIONS.get(op, {}))
