"""``Tensor``: a float32/float64 ndarray with a gradient and a link to the op that made it.

The array is wrapped, not copied (like ``torch.from_numpy``). Operators build the
graph through the ops in :mod:`hdlif_ref.autograd.ops`; comparisons return plain
boolean arrays (they are not differentiable). ``no_grad()`` stops recording.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_state = threading.local()


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()`` (per thread)."""
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Run a block without recording the graph: results do not require grad."""
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


@contextlib.contextmanager
def enable_grad() -> Iterator[None]:
    """Record the graph inside a block even within ``no_grad()``."""
    previous = is_grad_enabled()
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = previous


def _as_float_array(data: Any, dtype: Any) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype not in _FLOATS:
            raise TypeError(f"Tensor: dtype={dtype} is not allowed; use float32 or float64")
        return np.asarray(data, dtype=dtype)
    if isinstance(data, np.ndarray):
        if data.dtype not in _FLOATS:
            raise TypeError(
                f"Tensor: array dtype {data.dtype} is not allowed; tensors hold float32 or float64 "
                f"(pass dtype= to cast)"
            )
        return data
    if isinstance(data, np.generic):
        arr = np.asarray(data)
        if arr.dtype in _FLOATS:
            return arr
    arr = np.asarray(data, dtype=np.float64)  # Python numbers and lists: float64
    return arr


class Tensor:
    """An n-dimensional float32/float64 array that can carry a gradient.

    Parameters
    ----------
    data : array_like
        A float32/float64 ndarray (wrapped without copying), or Python numbers
        (converted to float64). Other array dtypes need an explicit ``dtype``.
    requires_grad : bool
        Whether ``backward()`` should accumulate a gradient in ``.grad``.
    dtype : float32 or float64, optional
        Cast ``data`` to this dtype.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_out_index", "__weakref__")
    __array_ufunc__ = None  # make ``ndarray + Tensor`` call Tensor.__radd__, not NumPy

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        self.data: np.ndarray = _as_float_array(data, dtype)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._out_index = 0

    @classmethod
    def _from_op(cls, data: np.ndarray, ctx, index: int) -> "Tensor":
        t = cls.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = ctx is not None
        t._ctx = ctx
        t._out_index = index
        return t

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (parameters, inputs)."""
        return self._ctx is None

    @property
    def T(self) -> "Tensor":
        return _ops.transpose(self)

    def numpy(self) -> np.ndarray:
        """The wrapped array (shared, not copied)."""
        return self.data

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item(): tensor has {self.data.size} elements (shape {self.shape}), needs 1")
        return self.data.item()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (``requires_grad=False``)."""
        return Tensor(self.data)

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if not self.is_leaf:
            raise RuntimeError("requires_grad_() can only change leaf tensors")
        self.requires_grad = bool(flag)
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``.grad = None``, as PyTorch's default)."""
        self.grad = None

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate ``d self / d leaf`` (weighted by ``grad``) into every leaf's ``.grad``.

        ``grad`` may be omitted only for one-element tensors. Unless
        ``retain_graph=True`` the graph's saved arrays are freed on the way, and a
        second ``backward()`` through it raises ``RuntimeError``.
        """
        from .function import run_backward

        run_backward(self, grad, retain_graph)

    def astype(self, dtype: Any) -> "Tensor":
        return _ops.astype(self, dtype)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, threshold=20, prefix="Tensor(")
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}, dtype={self.dtype}{grad})"

    # ---------------------------------------------------------------- operators
    def __add__(self, other): return _ops.add(self, other)
    def __radd__(self, other): return _ops.add(other, self)
    def __sub__(self, other): return _ops.sub(self, other)
    def __rsub__(self, other): return _ops.sub(other, self)
    def __mul__(self, other): return _ops.mul(self, other)
    def __rmul__(self, other): return _ops.mul(other, self)
    def __truediv__(self, other): return _ops.div(self, other)
    def __rtruediv__(self, other): return _ops.div(other, self)
    def __pow__(self, exponent): return _ops.pow(self, exponent)
    def __matmul__(self, other): return _ops.matmul(self, other)
    def __rmatmul__(self, other): return _ops.matmul(other, self)
    def __neg__(self): return _ops.neg(self)
    def __getitem__(self, index): return _ops.getitem(self, index)

    # comparisons are not differentiable: plain boolean arrays
    def __lt__(self, other): return _ops.lt(self, other)
    def __le__(self, other): return _ops.le(self, other)
    def __gt__(self, other): return _ops.gt(self, other)
    def __ge__(self, other): return _ops.ge(self, other)
    def __eq__(self, other): return _ops.eq(self, other)  # type: ignore[override]
    def __ne__(self, other): return _ops.ne(self, other)  # type: ignore[override]
    __hash__ = object.__hash__  # identity, as for PyTorch tensors

    # ------------------------------------------------------------------ methods
    def exp(self): return _ops.exp(self)
    def log(self): return _ops.log(self)
    def sqrt(self): return _ops.sqrt(self)
    def abs(self): return _ops.abs(self)
    def relu(self): return _ops.relu(self)
    def sigmoid(self): return _ops.sigmoid(self)
    def tanh(self): return _ops.tanh(self)
    def clip(self, lo=None, hi=None): return _ops.clip(self, lo, hi)
    def sum(self, axis=None, keepdims=False): return _ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _ops.max(self, axis, keepdims)
    def var(self, axis=None, keepdims=False, ddof=0): return _ops.var(self, axis, keepdims, ddof)
    def reshape(self, *shape): return _ops.reshape(self, shape[0] if len(shape) == 1 else shape)
    def transpose(self, *axes): return _ops.transpose(self, axes[0] if len(axes) == 1 else (axes or None))
    def permute(self, *axes): return _ops.permute(self, axes[0] if len(axes) == 1 else axes)
    def broadcast_to(self, shape): return _ops.broadcast_to(self, shape)
    def argmax(self, axis=None): return _ops.argmax(self, axis)


from . import ops as _ops  # noqa: E402  (ops need Tensor; Tensor's operators need ops)
