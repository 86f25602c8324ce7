"""Spiking efficient channel attention: SECA_I (SPEC E14) and SECA_II (SPEC E15).

Both scale a synaptic current ``I_t`` (``[N, C, H, W]`` or ``[N, C]``) channel by
channel with ``a = sigmoid(...)`` computed from global average pooling and a
1-D convolution across channels (``ops.conv1d_channels``: odd ``K``, no bias,
zero padding ``K // 2``). The same weights serve every time step.

SECA_II also looks at ``I_pre``, the input current of the previous neuron layer at
the same step (SPEC E15 DC). The model builders place a :class:`CurrentTap` in
front of every neuron layer; a ``SECA2`` is attached to the tap of the previous
neuron layer and reads what it saw at this step.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Tensor, ops
from ._steps import check_input, fold, unfold
from ..module import Module, Parameter


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA-Net's rule (SPEC E14): ``t = int(|log2(C) / gamma + b / gamma|)``, then ``t + 1`` if ``t`` is even.

    This is ECA-Net's reference code: the value is truncated first and an even result
    is rounded up to the next odd number (so C = 64 gives 3, C = 128 gives 5). SPEC's
    wording "round up to the next odd number" leaves the truncation implicit; see
    docs/models.md.
    """
    if channels < 1:
        raise ValueError(f"eca_kernel_size: channels={channels} must be positive")
    t = int(abs(math.log2(channels) / gamma + b / gamma))
    return t if t % 2 else t + 1


def _check_kernel(layer: str, name: str, k: int | None, channels: int) -> int:
    k = eca_kernel_size(channels) if k is None else k
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0:
        raise ValueError(f"{layer}: {name}={k!r} must be a positive odd integer")
    return int(k)


def _init_kernel(rng: np.random.Generator | None, k: int, dtype) -> np.ndarray:
    rng = np.random.default_rng() if rng is None else rng
    bound = 1.0 / math.sqrt(k)  # PyTorch's Conv1d default, as ECA-Net uses
    return rng.uniform(-bound, bound, size=k).astype(dtype)


def global_average(x: Tensor) -> Tensor:
    """``GAP_{H,W}``: ``[N, C, H, W] -> [N, C]``; ``[N, C]`` is returned as is."""
    return ops.mean(x, axis=(2, 3)) if x.ndim == 4 else x


def scale_channels(x: Tensor, a: Tensor) -> Tensor:
    """``x * a`` with ``a: [N, C]`` broadcast over the spatial axes of ``x``."""
    return x * (ops.reshape(a, a.shape + (1, 1)) if x.ndim == 4 else a)


def map_channels(z: Tensor, c_post: int) -> Tensor:
    """SPEC E15's ``R``: ``[N, C_pre] -> [N, C_post]`` by averaging groups or repeating channels."""
    n, c_pre = z.shape
    if c_pre == c_post:
        return z
    if c_pre % c_post == 0:
        return ops.mean(ops.reshape(z, (n, c_post, c_pre // c_post)), axis=2)
    if c_post % c_pre == 0:
        r = c_post // c_pre
        return ops.reshape(ops.broadcast_to(ops.reshape(z, (n, c_pre, 1)), (n, c_pre, r)), (n, c_post))
    raise ValueError(f"SECA2: cannot map C_pre={c_pre} channels to C_post={c_post}: one must be a "
                     f"multiple of the other (SPEC E15)")


class SECA1(Module):
    """SPEC E14: ``I <- I * sigmoid(conv1d_K(GAP(I)))``."""

    def __init__(self, channels: int, kernel_size: int | None = None, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        self.channels = int(channels)
        self.kernel_size = _check_kernel("SECA1", "kernel_size", kernel_size, self.channels)
        self.weight = Parameter(_init_kernel(rng, self.kernel_size, dtype))

    def forward(self, x: Tensor) -> Tensor:
        check_input("SECA1", x, self.step_mode, (2, 4), "N, C, (H, W)")
        x, T = fold(x, self.step_mode)
        if x.shape[1] != self.channels:
            raise ValueError(f"SECA1: input has {x.shape[1]} channels, the layer expects {self.channels}")
        a = ops.sigmoid(ops.conv1d_channels(global_average(x), self.weight))
        return unfold(scale_channels(x, a), T)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}"


class CurrentTap(Module):
    """Identity that remembers the current it passed on (the ``I_pre`` of SPEC E15)."""

    def __init__(self):
        super().__init__()
        self.current: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        self.current = x
        return x

    def _reset_own_state(self) -> None:
        self.current = None


class SECA2(Module):
    """SPEC E15: ``I_post <- I_post * sigmoid(conv1d_K(GAP(I_post)) + conv1d_K'(R(GAP(I_pre))))``.

    ``K`` defaults to the ECA rule on ``C_post``, ``K'`` on ``C_pre`` (DC). Call
    :meth:`attach` with the :class:`CurrentTap` in front of the previous neuron layer.
    """

    def __init__(self, c_pre: int, c_post: int, kernel_size: int | None = None,
                 kernel_size_pre: int | None = None, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.c_pre, self.c_post = int(c_pre), int(c_post)
        if not (self.c_pre % self.c_post == 0 or self.c_post % self.c_pre == 0):
            raise ValueError(f"SECA2: cannot map C_pre={c_pre} channels to C_post={c_post}: one must be a "
                             f"multiple of the other (SPEC E15)")
        self.kernel_size = _check_kernel("SECA2", "kernel_size", kernel_size, self.c_post)
        self.kernel_size_pre = _check_kernel("SECA2", "kernel_size_pre", kernel_size_pre, self.c_pre)
        self.weight = Parameter(_init_kernel(rng, self.kernel_size, dtype))
        self.weight_pre = Parameter(_init_kernel(rng, self.kernel_size_pre, dtype))
        object.__setattr__(self, "_tap", None)  # a reference, not a child: not in state_dict twice

    def attach(self, tap: CurrentTap) -> "SECA2":
        if not isinstance(tap, CurrentTap):
            raise TypeError(f"SECA2.attach: expected a CurrentTap, got {type(tap).__name__}")
        object.__setattr__(self, "_tap", tap)
        return self

    def forward(self, x: Tensor) -> Tensor:
        check_input("SECA2", x, self.step_mode, (2, 4), "N, C, (H, W)")
        if self._tap is None or self._tap.current is None:
            raise ValueError("SECA2: no input current of the previous neuron layer at this step (attach() a "
                             "CurrentTap placed before that layer, and run it first)")
        pre = self._tap.current
        x, T = fold(x, self.step_mode)
        pre, _ = fold(pre, self.step_mode)
        if x.shape[1] != self.c_post or pre.shape[1] != self.c_pre:
            raise ValueError(f"SECA2: got C_post={x.shape[1]} and C_pre={pre.shape[1]}, the layer expects "
                             f"{self.c_post} and {self.c_pre}")
        logits = ops.conv1d_channels(global_average(x), self.weight) + ops.conv1d_channels(
            map_channels(global_average(pre), self.c_post), self.weight_pre)
        return unfold(scale_channels(x, ops.sigmoid(logits)), T)

    def extra_repr(self) -> str:
        return (f"c_pre={self.c_pre}, c_post={self.c_post}, kernel_size={self.kernel_size}, "
                f"kernel_size_pre={self.kernel_size_pre}")
