"""The backward walk: accumulation, graph freeing, deep graphs, multi-output ops, errors."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from hdlif_ref.autograd import Function, GradcheckError, Tensor, gradcheck, no_grad, ops, unbroadcast


def leaf(x):
    return Tensor(np.asarray(x, dtype=np.float64), requires_grad=True)


def test_leaf_gradients_accumulate_over_uses_and_calls():
    x = leaf([1.0, 2.0])
    y = (x * x + x).sum()  # dy/dx = 2x + 1
    y.backward()
    np.testing.assert_array_equal(x.grad, [3.0, 5.0])
    (x * 2.0).sum().backward()  # a second graph adds to .grad
    np.testing.assert_array_equal(x.grad, [5.0, 7.0])
    x.zero_grad()
    assert x.grad is None


def test_diamond_graph_sums_both_paths():
    x = leaf(3.0)
    a = x * 2.0
    b = a * a + a.exp()  # db/da = 2a + e^a, da/dx = 2
    b.backward()
    np.testing.assert_allclose(x.grad, 2 * (2 * 6.0 + np.exp(6.0)))


def test_chain_of_10000_ops_backpropagates_without_recursion_error():
    x = leaf(np.ones(3))
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full(3, 1.0001 ** 10_000), rtol=1e-10)


def _graph_with_saved_intermediates():
    """Loss whose graph saves arrays that nothing but the graph refers to."""
    x = leaf(np.linspace(-1, 1, 6))
    hidden = (x * 3.0).exp()  # Exp saves its output; Mul saves x and a constant
    loss = (hidden * hidden).sum()  # Mul saves `hidden` twice
    return x, loss


def _saved_refs(root):
    refs, stack, seen = [], [root._ctx], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        refs += [weakref.ref(a) for a in node.saved_tensors]
        stack += [p._ctx for p in node.parents if p is not None]
    return refs


def test_backward_releases_saved_arrays():
    x, loss = _graph_with_saved_intermediates()
    refs = _saved_refs(loss)
    assert refs
    loss.backward()
    gc.collect()
    alive = [r for r in refs if r() is not None and r() is not x.data]
    assert not alive, f"{len(alive)} saved arrays still alive after backward()"


def test_graph_does_not_keep_intermediates_that_no_op_saved():
    """A node links to a computed input by an Edge, not the tensor: an output that no op
    saved is freed when the user drops it, before backward, and backward still works."""
    x = leaf(np.linspace(-1, 1, 6))
    a = x * 2.0  # Mul saves x (a leaf) and the constant
    b = a + 1.0  # Add saves nothing
    c = b + 0.5
    loss = c.sum()
    refs = {name: weakref.ref(t.data) for name, t in (("a", a), ("b", b), ("c", c))}
    del a, b, c
    gc.collect()
    alive = [name for name, r in refs.items() if r() is not None]
    assert not alive, f"the graph keeps {alive} alive"
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.full(6, 2.0))


def test_graph_keeps_what_an_op_saved():
    """The other side: an array an op saved for its backward stays alive until that backward."""
    x = leaf(np.linspace(-1, 1, 6))
    h = (x * 3.0).exp()  # Exp saves its output
    ref = weakref.ref(h.data)
    loss = (h + 1.0).sum()  # Add saves nothing: only Exp's save can keep h alive
    del h
    gc.collect()
    assert ref() is not None
    loss.backward()
    np.testing.assert_allclose(x.grad, 3.0 * np.exp(3.0 * np.linspace(-1, 1, 6)), rtol=1e-14)


def test_retain_graph_keeps_saved_arrays_and_allows_a_second_backward():
    x, loss = _graph_with_saved_intermediates()
    refs = _saved_refs(loss)
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    gc.collect()
    assert all(r() is not None for r in refs)
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_second_backward_through_freed_graph_raises_clearly():
    _, loss = _graph_with_saved_intermediates()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        loss.backward()


def test_non_scalar_backward_needs_grad():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"one element.*shape \(2,\)"):
        y.backward()
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 20.0])


def test_backward_grad_of_wrong_shape_raises():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(ValueError, match=r"grad has shape \(3,\)"):
        y.backward(np.ones(3))


def test_backward_on_tensor_without_graph_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with no_grad():
        y = (x * x).sum()
    assert not y.requires_grad and y.is_leaf
    z = (x * x).sum()
    assert z.requires_grad and not z.is_leaf


def test_detach_cuts_the_graph():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    (y.detach() * x).sum().backward()  # d/dx of (const 3x) * x = 3x, not 6x
    np.testing.assert_array_equal(x.grad, [3.0, 6.0])
    assert y.detach().data is y.data


class _WrongShape(Function):
    name = "wrong_shape"

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g.sum(keepdims=True)


def test_engine_rejects_a_gradient_of_the_wrong_shape():
    y = _WrongShape.apply(leaf([1.0, 2.0]))
    with pytest.raises(RuntimeError, match=r"wrong_shape.*shape \(1,\) for input 0 of shape \(2,\)"):
        y.sum().backward()


class _WrongCount(Function):
    name = "wrong_count"

    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, g):
        return (g,)


def test_engine_rejects_a_wrong_number_of_gradients():
    y = _WrongCount.apply(leaf([1.0]), leaf([2.0]))
    with pytest.raises(RuntimeError, match="wrong_count.*1 gradients for 2 inputs"):
        y.sum().backward()


class _SplitSquare(Function):
    """Two outputs: (x^2, 3x). Tests the engine's multi-output path."""

    name = "split_square"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x, 3 * x

    @staticmethod
    def backward(ctx, grads):
        (x,) = ctx.saved_tensors
        g_square, g_triple = grads
        return 2 * x * g_square + 3 * g_triple


def test_multi_output_function_gets_zero_for_unused_outputs():
    x = leaf([1.0, -2.0])
    square, _ = _SplitSquare.apply(x)
    square.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, -4.0])
    x.zero_grad()
    square, triple = _SplitSquare.apply(x)
    (square + triple).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, -1.0])
    assert gradcheck(lambda t: _SplitSquare.apply(t), [leaf([0.3, -0.7])])


class _Recorder(Function):
    """Two outputs (x, 2x); keeps the gradients its backward received."""

    name = "recorder"
    received: list = []

    @staticmethod
    def forward(ctx, x):
        return x.copy(), 2 * x

    @staticmethod
    def backward(ctx, grads):
        _Recorder.received.append(grads)
        return grads[0] + 2 * grads[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_unused_output_gets_a_read_only_zero_view_not_a_new_array(dtype):
    _Recorder.received = []
    x = Tensor(np.arange(6, dtype=dtype).reshape(2, 3), requires_grad=True)
    first, _ = _Recorder.apply(x)
    first.sum().backward()
    (g_first, g_second), = _Recorder.received
    assert g_second.shape == (2, 3) and g_second.dtype == dtype
    assert g_second.strides == (0, 0) and not g_second.flags.writeable  # one zero, broadcast: nothing allocated
    np.testing.assert_array_equal(g_second, np.zeros((2, 3)))
    assert not np.signbit(g_second).any()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))
    with pytest.raises(ValueError, match="read-only"):
        g_second[0, 0] = 1.0


def test_is_zero_grad_reads_one_value_of_a_broadcast_and_every_value_otherwise():
    from hdlif_ref.autograd.function import is_zero_grad, zero_grad
    assert is_zero_grad(zero_grad((4, 5), np.float32))
    assert is_zero_grad(np.broadcast_to(np.float64(-0.0), (3,)))  # -0 is zero, as for ndarray.any
    assert not is_zero_grad(np.broadcast_to(np.float32(1e-45), (2, 2)))  # the smallest subnormal
    assert not is_zero_grad(np.broadcast_to(np.float64(np.nan), (2,)))
    assert not is_zero_grad(np.broadcast_to(np.float64(-np.inf), (2,)))
    dense = np.zeros((3, 4))
    assert is_zero_grad(dense)
    dense[2, 3] = -1e-300
    assert not is_zero_grad(dense)
    # a row broadcast along one axis only (one stride 0): every value is looked at
    row = np.array([0.0, 0.0, 5.0])
    assert not is_zero_grad(np.broadcast_to(row, (4, 3)))
    assert is_zero_grad(np.zeros((0, 3)))  # no values: none is non-zero


class _BadBackward(Function):
    """sin with a deliberately wrong derivative (sin instead of cos): gradcheck must catch it."""

    name = "bad_sin"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * np.sin(x)


def test_gradcheck_names_input_element_and_values_when_wrong():
    with pytest.raises(GradcheckError, match=r"input 1 .*element \(0, 1\): analytic .* vs numeric"):
        gradcheck(lambda a, b: a * _BadBackward.apply(b), [leaf([[1.0, 1.0]]), leaf([[np.pi / 4, 0.0]])])


def test_gradcheck_requires_float64_and_something_to_check():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(ops.exp, [Tensor(np.ones(2, np.float32), requires_grad=True)])
    with pytest.raises(ValueError, match="no input has requires_grad"):
        gradcheck(ops.exp, [Tensor(np.ones(2))])


def test_mlp_with_cross_entropy_gradcheck():
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((5, 4)))
    labels = np.array([0, 2, 1, 2, 0])
    w1, b1 = leaf(rng.standard_normal((4, 6)) * 0.5), leaf(rng.standard_normal(6) * 0.1)
    w2, b2 = leaf(rng.standard_normal((6, 3)) * 0.5), leaf(rng.standard_normal(3) * 0.1)

    def mlp(w1, b1, w2, b2):
        hidden = ops.tanh(x @ w1 + b1)
        return ops.cross_entropy(hidden @ w2 + b2, labels, label_smoothing=0.1)

    assert gradcheck(mlp, [w1, b1, w2, b2])


def test_unbroadcast_sums_added_and_stretched_axes():
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), g.sum(axis=0).sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(unbroadcast(g, ()), g.sum())
    assert unbroadcast(g, (2, 3, 4)) is g
    with pytest.raises(ValueError, match="cannot reduce"):
        unbroadcast(g, (5,))


def test_walk_order_is_deterministic():
    def run():
        rng = np.random.default_rng(7)
        x = leaf(rng.standard_normal(50).astype(np.float32).astype(np.float64))
        parts = [(x * float(k)).exp() for k in range(1, 20)]
        total = parts[0]
        for p in parts[1:]:
            total = total + p * total.mean()
        total.sum().backward()
        return x.grad
    assert run().tobytes() == run().tobytes()


class _NoGradForFirst(Function):
    """x * y whose backward returns None for x even when x needs a gradient."""

    name = "no_grad_for_first"

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x)
        return x * y

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return None, g * x


def test_a_backward_returning_none_gives_the_subgraph_zero_gradient():
    a = leaf([1.0, 2.0])
    hidden = a * 3.0  # a non-leaf that receives no gradient at all
    y = _NoGradForFirst.apply(hidden, leaf([5.0, 7.0]))
    y.sum().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 0.0])
