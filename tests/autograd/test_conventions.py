"""Documented conventions (docs/autograd.md): kinks, dtype policy, argument errors."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from hdlif_ref.autograd import NON_DIFFERENTIABLE, Tensor, ops


def leaf(x, dtype=np.float64):
    return Tensor(np.asarray(x, dtype=dtype), requires_grad=True)


def grad_of(fn, x):
    t = leaf(x)
    fn(t).sum().backward()
    return t.grad


# ------------------------------------------------------------------ kinks
def test_relu_and_abs_have_zero_derivative_at_zero():
    np.testing.assert_array_equal(grad_of(ops.relu, [-1.0, 0.0, 2.0]), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(grad_of(ops.abs, [-1.0, 0.0, 2.0]), [-1.0, 0.0, 1.0])


def test_clip_passes_gradient_on_its_bounds():
    g = grad_of(lambda t: ops.clip(t, -1.0, 1.0), [-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(grad_of(lambda t: ops.clip(t, lo=0.0), [-1.0, 0.0, 3.0]), [0, 1, 1])


def test_maximum_minimum_split_ties_equally():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([1.0, 5.0, 0.0])
    ops.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.0])
    a.zero_grad(), b.zero_grad()
    ops.minimum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(b.grad, [0.5, 0.0, 1.0])


def test_max_reduction_shares_gradient_among_tied_maxima():
    g = grad_of(lambda t: ops.max(t, axis=1), [[1.0, 3.0, 3.0], [5.0, 0.0, 1.0]])
    np.testing.assert_array_equal(g, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


def test_getitem_with_repeated_indices_adds_gradients():
    g = grad_of(lambda t: t[np.array([0, 2, 0, 0])], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(g, [3.0, 0.0, 1.0])


def test_sigmoid_is_finite_for_large_inputs():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = ops.sigmoid(Tensor(x)).data
    np.testing.assert_allclose(y, scipy.special.expit(x), rtol=1e-15, atol=1e-300)


def test_log_softmax_is_stable_for_large_logits():
    x = np.array([[1000.0, 0.0, -1000.0]])
    y = ops.log_softmax(Tensor(x)).data
    np.testing.assert_allclose(y, [[0.0, -1000.0, -2000.0]])


# ------------------------------------------------------------------ dtype policy
def test_float32_stays_float32_with_python_scalars():
    x = leaf([1.0, 2.0], np.float32)
    y = (x * 2.5 + 1) / 3 - 0.5
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_mixing_float32_and_float64_promotes_and_casts_gradients_back():
    a, b = leaf([1.0, 2.0], np.float32), leaf([3.0, 4.0], np.float64)
    y = a * b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])
    np.testing.assert_array_equal(b.grad, [1.0, 2.0])


@pytest.mark.parametrize("bad", [np.array([1, 2]), np.array([True, False]), np.array([1 + 2j, 0j])])
def test_differentiable_ops_refuse_non_float_arrays_naming_the_op(bad):
    with pytest.raises(TypeError, match=r"^mul: input 1 has dtype"):
        ops.mul(leaf([1.0, 2.0]), bad)
    with pytest.raises(TypeError, match=r"^add: input 0"):
        ops.add(bad, leaf([1.0, 2.0]))


def test_tensor_refuses_integer_arrays_unless_cast():
    with pytest.raises(TypeError, match="int64 is not allowed"):
        Tensor(np.array([1, 2], dtype=np.int64))
    assert Tensor(np.array([1, 2]), dtype=np.float32).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float64  # Python numbers: float64
    with pytest.raises(TypeError, match="float16"):
        Tensor([1.0], dtype=np.float16)


def test_tensor_wraps_without_copy_and_reports_its_array():
    a = np.zeros((2, 3), dtype=np.float32)
    t = Tensor(a, requires_grad=True)
    assert t.data is a and t.numpy() is a
    assert (t.shape, t.dtype, t.ndim, t.size) == ((2, 3), np.float32, 2, 6)
    assert Tensor(4.0).item() == 4.0
    with pytest.raises(ValueError, match="6 elements"):
        t.item()


# ------------------------------------------------------------------ operators
def test_operators_and_reflected_operators_build_the_graph():
    x = leaf([1.0, 2.0])
    arr = np.array([10.0, 20.0])
    y = 1.0 - x + arr * x / 2.0 + 3.0 / x + (-x) ** 2 + arr  # ndarray on the left too
    assert isinstance(y, Tensor)
    y.sum().backward()
    expected = -1 + arr / 2 - 3.0 / np.array([1.0, 2.0]) ** 2 + 2 * np.array([1.0, 2.0])
    np.testing.assert_allclose(x.grad, expected)


def test_comparisons_return_plain_boolean_arrays():
    x = Tensor([1.0, 2.0, 3.0])
    for result in (x < 2, x <= 2, x > 2, x >= 2, x == 2, x != 2):
        assert isinstance(result, np.ndarray) and result.dtype == np.bool_
    np.testing.assert_array_equal(x >= 2, [False, True, True])
    assert set(NON_DIFFERENTIABLE) <= set(dir(ops))
    assert isinstance(ops.argmax(x), np.integer)


def test_methods_match_functions():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x.T.data, x.data.T)
    np.testing.assert_array_equal(x.reshape(3, 2).data, x.data.reshape(3, 2))
    np.testing.assert_array_equal(x.permute(1, 0).data, x.data.T)
    np.testing.assert_array_equal(x.sum(axis=0).data, x.data.sum(axis=0))
    np.testing.assert_array_equal(x[1, 1:].data, x.data[1, 1:])


# ------------------------------------------------------------------ argument errors
@pytest.mark.parametrize("call, message", [
    (lambda x: ops.sum(x, axis=2), r"sum: axis=2 is out of range for a tensor with 2 dims \(allowed -2..1\)"),
    (lambda x: ops.mean(x, axis=(0, -2)), r"mean: axis=\(0, -2\) repeats an axis"),
    (lambda x: ops.reshape(x, (4, 2)), r"reshape: cannot reshape a tensor of shape \(2, 3\)"),
    (lambda x: ops.permute(x, (0, 0)), r"permute: axes=\(0, 0\) is not a permutation"),
    (lambda x: ops.permute(x, (0, 5)), r"permute: axes=\(0, 5\) has an axis out of range for 2 dims"),
    (lambda x: ops.broadcast_to(x, (3, 3)), r"broadcast_to: shape \(2, 3\) cannot broadcast to \(3, 3\)"),
    (lambda x: ops.matmul(x, x), r"matmul: shapes \(2, 3\) and \(2, 3\) do not align"),
    (lambda x: ops.pow(x, x), r"pow: exponent must be a real Python number, got Tensor"),
    (lambda x: ops.clip(x, 1.0, 0.0), r"clip: lo=1.0 is greater than hi=0.0"),
    (lambda x: ops.var(x, axis=0, ddof=2), r"var: ddof=2 must be an integer in \[0, 2\)"),
    (lambda x: ops.where(np.ones((2, 3)), x, x), r"where: cond has dtype float64"),
    (lambda x: ops.pad(x, -1), r"pad: pad_width=-1 must hold non-negative integers"),
    (lambda x: ops.concatenate([x, Tensor(np.ones((3, 3)))], axis=1), r"concatenate: tensor 1 has shape \(3, 3\)"),
    (lambda x: ops.stack([x, Tensor(np.ones(3))]), r"stack: tensor 1 has shape \(3,\)"),
    (lambda x: ops.astype(x, np.int32), r"astype: dtype=int32 is not allowed"),
    (lambda x: ops.log_softmax(x, axis=5), r"log_softmax: axis=5 is out of range"),
])
def test_bad_arguments_name_the_op_argument_and_allowed_values(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(Tensor(np.ones((2, 3))))


@pytest.mark.parametrize("labels, kwargs, error, message", [
    (np.array([0, 3]), {}, ValueError, r"label 3 is outside \[0, 3\)"),
    (np.array([0.0, 1.0]), {}, TypeError, r"labels have dtype float64"),
    (np.array([0, 1, 2]), {}, ValueError, r"expected labels of shape \(2,\)"),
    (np.array([0, 1]), {"label_smoothing": 1.5}, ValueError, r"label_smoothing=1.5 must be in \[0, 1\]"),
    (np.array([0, 1]), {"reduction": "avg"}, ValueError, r"reduction='avg'; allowed: mean, sum, none"),
])
def test_cross_entropy_argument_errors(labels, kwargs, error, message):
    with pytest.raises(error, match=message):
        ops.cross_entropy(Tensor(np.zeros((2, 3))), labels, **kwargs)
