"""Graph nodes: ``Function`` (paired forward/backward), its ``Context``, and the backward walk.

DESIGN.md "Autograd: explicit pairs". One op is one :class:`Function` subclass:

* ``forward(ctx, *arrays, **params)`` computes on plain ndarrays and keeps what the
  backward needs with ``ctx.save_for_backward`` (or as attributes of ``ctx``);
* ``backward(ctx, grad)`` returns one gradient per array input, in order, or ``None``
  for inputs that need none (``ctx.needs_input_grad`` says which).

``Function.apply`` converts the inputs, runs ``forward`` and, when gradients are
recorded, links the output to a :class:`Context` node. :func:`run_backward` walks
the nodes in reverse topological order (iteratively: no recursion limit on a graph
unrolled over ``T``), checks every returned gradient's shape, accumulates ``.grad``
on leaves and, unless ``retain_graph``, frees each node's saved arrays as soon as
its backward has run.

dtype policy (``docs/autograd.md``): tensors are float32 or float64. Python
scalars take the dtype of the op's array inputs. float32 mixed with float64
promotes to float64, as in NumPy; the gradient that reaches each input is cast
back to that input's dtype. Integer, boolean and complex arrays are refused by
differentiable ops with a ``TypeError`` naming the op.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from .tensor import Tensor, is_grad_enabled

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach its shape.

    The one shared reduction used by every broadcasting op's backward:
    leading axes that ``shape`` lacks are summed away, and axes where ``shape``
    has size 1 are summed with ``keepdims``.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"unbroadcast: gradient of shape {grad.shape} cannot reduce to {shape}")
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    if grad.shape != shape:
        raise ValueError(f"unbroadcast: gradient of shape {grad.shape} cannot reduce to {shape}")
    return grad


class Edge:
    """A node's link to an input that an op computed: which node, which of its outputs, and
    that output's shape and dtype (what the backward walk needs), but not its data.

    A node refers to a leaf (a parameter, an input with ``requires_grad``) through the
    tensor itself (its ``.grad`` accumulates there) and to any other input through an
    ``Edge``, as PyTorch does: an intermediate array then stays alive only while a tensor
    of the user's or an op's ``save_for_backward`` holds it, not merely because the graph
    passes through it (a 100-op chain on [256, 256] kept all 100 outputs otherwise).
    """

    __slots__ = ("_ctx", "_out_index", "shape", "dtype")

    def __init__(self, tensor: Tensor):
        self._ctx, self._out_index = tensor._ctx, tensor._out_index
        self.shape, self.dtype = tensor.data.shape, tensor.data.dtype


class Context:
    """A node of the graph: what one ``Function`` call saved for its backward.

    Bookkeeping lives in slots; anything a ``forward`` stores as an attribute
    (``ctx.axis = ...``) lives in ``__dict__`` and is cleared with the saved arrays.
    """

    __slots__ = ("fn", "parents", "needs_input_grad", "saved_tensors", "out_meta", "multi_output",
                 "released", "__dict__", "__weakref__")

    def __init__(self, fn: type, needs_input_grad: tuple[bool, ...]):
        self.fn = fn
        self.parents: tuple[Tensor | Edge | None, ...] | None = None  # leaf tensor, edge, or None
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple[np.ndarray, ...] = ()
        self.out_meta: tuple[tuple[tuple[int, ...], np.dtype], ...] = ()
        self.multi_output = False  # forward returned a tuple: backward gets a tuple of gradients
        self.released = False

    def save_for_backward(self, *arrays: np.ndarray) -> None:
        """Keep ``arrays`` until this node's backward has run."""
        self.saved_tensors = arrays

    def release(self) -> None:
        """Drop saved arrays, attributes and links to parents (after backward)."""
        self.saved_tensors = ()
        self.parents = None
        self.__dict__.clear()
        self.released = True


class Function:
    """Base class of every differentiable op; subclasses are listed in ``ops.OPS``.

    Subclasses set ``name`` and implement the static methods ``forward`` and
    ``backward``. A ``forward`` may return one array or a tuple of arrays; in the
    second case ``apply`` returns a tuple of tensors and ``backward`` receives a
    tuple of gradients (zeros for outputs that received none).
    """

    name: str = "function"

    @staticmethod
    def forward(ctx: Context, *arrays: np.ndarray, **params: Any):  # pragma: no cover - abstract
        raise NotImplementedError("Function.forward must be implemented by the op")

    @staticmethod
    def backward(ctx: Context, grad):  # pragma: no cover - overridden by every op
        raise NotImplementedError("Function.backward must be implemented by the op")

    @classmethod
    def apply(cls, *inputs: Any, **params: Any):
        """Run the op on tensors, float arrays or Python numbers; record it if needed."""
        grad_enabled = is_grad_enabled()
        arrays, parents, needs, dtype_hint = [], [], [], None
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                if x.requires_grad:
                    # the link to a computed input is only made when the node is recorded
                    parents.append(x if x._ctx is None or not grad_enabled else Edge(x))
                    needs.append(True)
                else:
                    parents.append(None)
                    needs.append(False)
                if dtype_hint is None or x.data.dtype.itemsize > dtype_hint.itemsize:
                    dtype_hint = x.data.dtype
            else:
                arrays.append(x)
                parents.append(None)
                needs.append(False)
                if isinstance(x, np.ndarray):
                    _check_float_array(cls.name, len(arrays) - 1, x)
                    if dtype_hint is None or x.dtype.itemsize > dtype_hint.itemsize:
                        dtype_hint = x.dtype
        for i, x in enumerate(arrays):
            if not isinstance(x, np.ndarray):
                arrays[i] = _scalar_to_array(cls.name, i, x, dtype_hint)

        record = grad_enabled and any(needs)
        ctx = Context(cls, tuple(needs))
        out = cls.forward(ctx, *arrays, **params)
        multi = isinstance(out, tuple)
        if not multi:  # one output (most ops): no tuples to build
            out = out if isinstance(out, np.ndarray) else np.asarray(out)
            if not record:
                return Tensor._from_op(out, None, 0)
            ctx.parents = tuple(parents)
            ctx.out_meta = ((out.shape, out.dtype),)
            ctx.multi_output = False
            return Tensor._from_op(out, ctx, 0)
        outs = tuple(o if isinstance(o, np.ndarray) else np.asarray(o) for o in out)
        if record:
            ctx.parents = tuple(parents)
            ctx.out_meta = tuple((o.shape, o.dtype) for o in outs)
            ctx.multi_output = True
            return tuple(Tensor._from_op(o, ctx, i) for i, o in enumerate(outs))
        return tuple(Tensor._from_op(o, None, 0) for o in outs)


def _check_float_array(op: str, index: int, x: np.ndarray) -> None:
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: input {index} has dtype {x.dtype}; differentiable ops take float32 or "
            f"float64 arrays (cast with .astype(np.float32) or wrap in Tensor(..., dtype=...))"
        )


def _scalar_to_array(op: str, index: int, x: Any, dtype_hint: np.dtype | None) -> np.ndarray:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise TypeError(
            f"{op}: input {index} is {type(x).__name__} {x!r}; expected a Tensor, a float "
            f"ndarray or a real Python number"
        )
    return np.asarray(x, dtype=dtype_hint if dtype_hint is not None else np.float64)


def _topological_nodes(root: Context) -> list[Context]:
    """Nodes reachable from ``root``, every node after all nodes that consume its outputs.

    Iterative depth-first post-order; parents are visited in argument order, so the
    walk (and therefore every float sum of gradients) is the same on every run.
    """
    order: list[Context] = []
    seen = {id(root)}  # membership only; the order comes from the list
    stack: list[tuple[Context, int]] = [(root, 0)]
    while stack:
        node, next_parent = stack[-1]
        if node.released:
            raise RuntimeError(
                f"backward through the graph a second time: the saved arrays of op "
                f"'{node.fn.name}' were freed by an earlier backward(); call "
                f"backward(retain_graph=True) the first time if you need to go through it again"
            )
        parents = node.parents
        pushed = False
        while next_parent < len(parents):
            p = parents[next_parent]
            next_parent += 1
            if p is not None and p._ctx is not None and id(p._ctx) not in seen:
                seen.add(id(p._ctx))
                stack[-1] = (node, next_parent)
                stack.append((p._ctx, 0))
                pushed = True
                break
        if not pushed:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def zero_grad(shape: tuple[int, ...], dtype) -> np.ndarray:
    """The gradient of an output that no gradient reached: zeros, as a read-only view of one zero
    (``np.broadcast_to``, every stride 0), not a new array. An online step's neuron node gets one for
    its new state at every backward; a new ``np.zeros`` of that size cost 10-90 us there (fresh pages), and
    the node's test for it (:func:`is_zero_grad`) another pass. Backward functions read their gradients
    and never write into them; one that needs a C-contiguous array copies it (``ascontiguousarray``)."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def is_zero_grad(g: np.ndarray) -> bool:
    """Whether every value of ``g`` is zero (``+-0``), in O(1) for :func:`zero_grad`'s arrays (one value,
    every stride 0), else by a pass over ``g``."""
    if g.size and not any(g.strides):
        return not g.flat[0]
    return not g.any()


def _accumulate_leaf(leaf: Tensor, grad: np.ndarray) -> None:
    if leaf.grad is None:
        leaf.grad = np.array(grad, dtype=leaf.data.dtype, copy=True)
    else:
        leaf.grad += grad


def run_backward(root: Tensor, grad: np.ndarray | None, retain_graph: bool) -> None:
    """Backpropagate from ``root`` (see ``Tensor.backward``)."""
    if not root.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad (no graph to walk)")
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a tensor with one element; this one has "
                f"shape {root.shape}: pass grad= of that shape"
            )
        grad = np.ones(root.shape, dtype=root.dtype)
    else:
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad)
        if grad.shape != root.shape:
            raise ValueError(f"backward(grad=...): grad has shape {grad.shape}, the tensor has {root.shape}")
        grad = grad.astype(root.dtype, copy=False)

    if root._ctx is None:  # a leaf: nothing to walk
        _accumulate_leaf(root, grad)
        return

    pending: dict[int, list] = {id(root._ctx): [None] * len(root._ctx.out_meta)}
    pending[id(root._ctx)][root._out_index] = grad
    for node in _topological_nodes(root._ctx):
        # a node reached only through inputs whose backward returned None gets zero gradients
        out_grads = pending.pop(id(node), None) or [None] * len(node.out_meta)
        for i, (shape, dtype) in enumerate(node.out_meta):
            if out_grads[i] is None:
                out_grads[i] = zero_grad(shape, dtype)
        fn = node.fn
        in_grads = fn.backward(node, tuple(out_grads) if node.multi_output else out_grads[0])
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        parents = node.parents
        if len(in_grads) != len(parents):
            raise RuntimeError(
                f"op '{fn.name}': backward returned {len(in_grads)} gradients for {len(parents)} inputs"
            )
        for i, (parent, g) in enumerate(zip(parents, in_grads)):
            if parent is None or g is None:
                continue
            if g.shape != parent.shape:
                raise RuntimeError(
                    f"op '{fn.name}': backward returned a gradient of shape {g.shape} for input {i} "
                    f"of shape {parent.shape}"
                )
            if g.dtype != parent.dtype:
                g = g.astype(parent.dtype)
            if parent._ctx is None:
                _accumulate_leaf(parent, g)
            else:
                slot = pending.setdefault(id(parent._ctx), [None] * len(parent._ctx.out_meta))
                k = parent._out_index
                slot[k] = g if slot[k] is None else slot[k] + g
        if not retain_graph:
            node.release()
