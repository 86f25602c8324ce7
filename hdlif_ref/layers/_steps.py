"""Single-step / multi-step input handling shared by the static layers.

In step mode ``"s"`` a layer gets one time step ``[N, ...]``; in ``"m"`` it gets
``[T, N, ...]`` and, being stateless, folds ``T`` into the batch (SpikingJelly's
``SeqToANNContainer``), so both modes compute exactly the same numbers.
"""
from __future__ import annotations

from ..autograd import Tensor, ops
from ..autograd.ops._args import check_finite


def check_input(layer: str, x: Tensor, step_mode: str, step_ndims: tuple[int, ...], layout: str,
                values: bool = True) -> None:
    """Raise ``ValueError`` unless ``x`` has one of ``step_ndims`` dims (+1 in multi-step mode) and is finite
    (``values=False``: the dims only, for a caller whose kernel finds non-finite values itself)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: input must be a Tensor, got {type(x).__name__}")
    extra = 1 if step_mode == "m" else 0
    if x.ndim - extra not in step_ndims:
        seq = "[T, " if extra else "["
        raise ValueError(f"{layer} (step_mode {step_mode!r}): expected a {seq}{layout}] input, got shape "
                         f"{x.shape}")
    if values:
        check_finite(layer, "input", x)


def fold(x: Tensor, step_mode: str) -> tuple[Tensor, int | None]:
    """``[T, N, ...] -> [T*N, ...]`` in multi-step mode; unchanged in single-step mode."""
    if step_mode != "m":
        return x, None
    T, n = x.shape[0], x.shape[1]
    return ops.reshape(x, (T * n,) + x.shape[2:]), T


def unfold(y: Tensor, T: int | None) -> Tensor:
    """Inverse of :func:`fold`."""
    if T is None:
        return y
    return ops.reshape(y, (T, y.shape[0] // T) + y.shape[1:])
