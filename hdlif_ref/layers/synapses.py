"""Synapse layers: ``Conv2d`` and ``Linear``, with compressed weights (SPEC E11, E12).

``weight_mode`` is ``"fp32"`` (the weight itself), ``"binary"`` (E11) or
``"ternary"`` (E12): the forward uses the quantized weight, the backward is
straight-through. The scale ``a_c`` is per output channel (dim 0).

Two attributes serve the counters of SPEC E18-E19 (``deploy/metrics.py``) and are
set by the model builders: ``input_is_spikes`` (False for the first layer, whose
input is analog: its operations count as MACs) and ``input_bits`` (bit width of
the spikes arriving: 1 for LIF, ``n`` for ``n``-bit quantized spikes, 32 for the
real-valued surplus spikes of HD-LIF).

Initialization follows PyTorch's defaults: weight and bias uniform in
``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, drawn from the ``rng`` passed in.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, ops
from ..autograd import batch_cache
from ..autograd.batch_cache import active_cache
from ..autograd.ops import WEIGHT_MODES, quantize_weight
from ._steps import check_input, fold, unfold
from ..module import Module, Parameter


def _positive_int(layer: str, name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{layer}: {name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _pair(layer: str, name: str, value, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{layer}: {name}={value!r} must be an int or a pair of ints")
    return tuple(_positive_int(layer, name, v, minimum) for v in pair)  # type: ignore[return-value]


def _check_weight_mode(layer: str, mode: str) -> str:
    if mode not in WEIGHT_MODES:
        raise ValueError(f"{layer}: weight_mode={mode!r}; allowed: {', '.join(WEIGHT_MODES)}")
    return mode


def _uniform(rng: np.random.Generator | None, bound: float, shape, dtype) -> np.ndarray:
    rng = np.random.default_rng() if rng is None else rng
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def step_invariant(layer: Module, x: Tensor, synapse) -> Tensor | None:
    """The synapse's output computed once for all steps when every step has the same input, else ``None``.

    Two cases (docs/performance.md, "Once per batch"), both only for an input that needs no gradient
    itself (an image, not a spike tensor):

    * step mode ``"m"`` with a sequence whose steps are one array (a stride-0 time axis: the
      trainers pass a direct-encoded image as ``np.broadcast_to(x, (T,) + x.shape)``): the synapse
      runs on one step and its output is repeated ``T`` times (``ops.stack``, whose backward sums
      the steps' gradients, in step order, before the synapse's backward; a copy rather than a
      stride-0 view, so the next layers' kernels get contiguous arrays);
    * step mode ``"s"`` inside a training batch's :func:`~hdlif_ref.autograd.batch_cache.batch_cache`
      that declared ``x``'s array the input of every step: computed at the first step, the same
      tensor returned at the others (:meth:`~hdlif_ref.autograd.batch_cache.BatchCache.shared_output`).

    ``batch_cache.ENABLED = False`` turns both off (the per-step reference path).
    """
    if x.requires_grad or not batch_cache.ENABLED:
        return None
    data = x.data
    if layer.step_mode == "m":
        if data.ndim >= 2 and data.shape[0] > 1 and data.strides[0] == 0:
            step = data[0] if data[0].flags.writeable else data[0].copy()  # the kernels' writeable versions
            y = synapse(Tensor(step))
            return ops.stack([y] * data.shape[0], axis=0)
        return None
    cache = active_cache()
    if cache is not None and cache.is_constant(data):
        return cache.shared_output(layer, x, synapse)
    return None


class Conv2d(Module):
    """2-D convolution synapse on ``[N, C, H, W]`` (or ``[T, N, C, H, W]`` in step mode ``"m"``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 groups: int = 1, bias: bool = True, weight_mode: str = "fp32",
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        name = "Conv2d"
        self.in_channels = _positive_int(name, "in_channels", in_channels)
        self.out_channels = _positive_int(name, "out_channels", out_channels)
        self.kernel_size = _pair(name, "kernel_size", kernel_size, 1)
        self.stride = _pair(name, "stride", stride, 1)
        self.padding = _pair(name, "padding", padding, 0)
        self.groups = _positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.weight_mode = _check_weight_mode(name, weight_mode)
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / np.sqrt(fan_in)
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(_uniform(rng, bound, shape, dtype))
        self.bias = Parameter(_uniform(rng, bound, (out_channels,), dtype)) if bias else None
        self.input_is_spikes = True
        self.input_bits = 32

    def forward(self, x: Tensor) -> Tensor:
        check_input("Conv2d", x, self.step_mode, (4,), "N, C, H, W")
        shared = step_invariant(self, x, self._synapse)
        if shared is not None:
            return shared
        x, T = fold(x, self.step_mode)
        return unfold(self._synapse(x), T)

    def _synapse(self, x: Tensor) -> Tensor:
        return ops.conv2d(x, quantize_weight(self.weight, self.weight_mode), self.bias,
                          stride=self.stride, padding=self.padding, groups=self.groups)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.weight_mode != "fp32":
            text += f", weight_mode={self.weight_mode!r}"
        return text


class Linear(Module):
    """Fully connected synapse on ``[N, F_in]`` (``[T, N, F_in]`` in step mode ``"m"``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, weight_mode: str = "fp32",
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        name = "Linear"
        self.in_features = _positive_int(name, "in_features", in_features)
        self.out_features = _positive_int(name, "out_features", out_features)
        self.weight_mode = _check_weight_mode(name, weight_mode)
        bound = 1.0 / np.sqrt(in_features)
        self.weight = Parameter(_uniform(rng, bound, (out_features, in_features), dtype))
        self.bias = Parameter(_uniform(rng, bound, (out_features,), dtype)) if bias else None
        self.input_is_spikes = True
        self.input_bits = 32

    def forward(self, x: Tensor) -> Tensor:
        check_input("Linear", x, self.step_mode, (2,), "N, F")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input has {x.shape[-1]} features (shape {x.shape}), "
                             f"the layer expects in_features={self.in_features}")
        shared = step_invariant(self, x, self._synapse)
        return shared if shared is not None else self._synapse(x)

    def _synapse(self, x: Tensor) -> Tensor:
        return ops.linear(x, quantize_weight(self.weight, self.weight_mode), self.bias)

    def extra_repr(self) -> str:
        text = f"{self.in_features}, {self.out_features}"
        if self.bias is None:
            text += ", bias=False"
        if self.weight_mode != "fp32":
            text += f", weight_mode={self.weight_mode!r}"
        return text
