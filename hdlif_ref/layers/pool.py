"""Pooling layers on ``[N, C, H, W]`` (``[T, N, C, H, W]`` in step mode ``"m"``, ``T`` folded into the batch)."""
from __future__ import annotations

from ..autograd import Tensor, ops
from ._steps import check_input, fold, unfold
from ..module import Module


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def _pool(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        check_input(type(self).__name__, x, self.step_mode, (4,), "N, C, H, W")
        x, T = fold(x, self.step_mode)
        return unfold(self._pool(x), T)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_Pool2d):
    """Average pooling (zero padding counted in the average, as PyTorch's default)."""

    def _pool(self, x):
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class MaxPool2d(_Pool2d):
    """Max pooling (padding never wins)."""

    def _pool(self, x):
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (1: global average pooling)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        check_input("AdaptiveAvgPool2d", x, self.step_mode, (4,), "N, C, H, W")
        x, T = fold(x, self.step_mode)
        return unfold(ops.adaptive_avg_pool2d(x, self.output_size), T)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
