"""``freeze(model)``: a trained :class:`SpikingNet` -> :class:`FrozenModel` (docs/deploy.md).

What the conversion does, in the order the network is walked:

* synapse weights: float32 kept; binary/ternary synapses become integer codes
  ``{-1, 0, +1}`` with the per-channel scale ``a_c`` moved into the op's ``scale``
  (SPEC E11, E12);
* the step ``s`` of ``n``-bit spikes (E13): a neuron emits ``round(s*/s)``; ``s`` joins
  the ``scale`` of the next synapse (through pooling and flattening, which are
  linear), or becomes an explicit ``scale`` op where no synapse follows (an
  identity shortcut);
* batch norm in eval mode, ``y = x k + c`` with ``k = gamma / sqrt(var + eps)``,
  ``c = beta - mean k``: folded into the preceding synapse's ``scale`` and ``bias``;
* Mem-BN (E9): re-parameterized (E10) into a vanilla HD-LIF with per-channel
  ``lamhat`` and the input affine ``alpha*``, ``-beta*`` per step and channel, folded
  into the preceding synapse when one directly precedes (else an ``affine`` op).

Folds are computed in float64 and stored as float32 (or float64 on request).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels.weight_codes import binary_codes, ternary_codes
from ..layers.basic import Dropout, Flatten, Identity
from ..module import Module, Sequential
from ..models import BasicBlock, SpikingNet
from ..layers.norm import BatchNorm1d, BatchNorm2d
from ..layers.pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from ..layers.seca import SECA1, SECA2, CurrentTap
from ..layers.synapses import Conv2d, Linear
from ..neurons import HDLIF, LIF, MemBNHDLIF, ParallelHDLIF
from .frozen import FrozenModel, Op


class _Freezer:
    def __init__(self, T: int):
        self.T = T
        self.pending: float | None = None  # step of integer spikes not yet folded into a synapse
        self.foldable: Op | None = None  # the synapse an affine may still fold into
        self.taps: dict[int, int] = {}

    # ------------------------------------------------------------------ walking
    def sequence(self, modules: list[Module]) -> list[Op]:
        ops: list[Op] = []
        for m in modules:
            ops += self.module(m)
        return ops

    def module(self, m: Module) -> list[Op]:
        if isinstance(m, Sequential):
            return self.sequence(list(m))
        if isinstance(m, (Conv2d, Linear)):
            return [self.synapse(m)]
        if isinstance(m, (BatchNorm1d, BatchNorm2d)):
            return self.affine(*self.batch_norm(m))
        if isinstance(m, MemBNHDLIF):
            rep = m.reparameterize()
            return self.affine(rep.scale.astype(np.float64), rep.bias.astype(np.float64)) + [self.neuron(rep.neuron)]
        if isinstance(m, (HDLIF, LIF, ParallelHDLIF)):
            return [self.neuron(m)]
        if isinstance(m, BasicBlock):
            return [self.block(m)]
        if isinstance(m, (AvgPool2d, MaxPool2d)):
            kind = "avg_pool" if isinstance(m, AvgPool2d) else "max_pool"
            pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
            stride = m.kernel_size if m.stride is None else m.stride
            self.foldable = None
            return [Op(kind, dict(kernel=pair(m.kernel_size), stride=pair(stride), padding=pair(m.padding)))]
        if isinstance(m, AdaptiveAvgPool2d):
            if m.output_size not in (1, (1, 1)):
                raise ValueError(f"freeze: AdaptiveAvgPool2d(output_size={m.output_size!r}) is not supported; "
                                 f"only global average pooling (1)")
            self.foldable = None
            return [Op("global_avg_pool")]
        if isinstance(m, Flatten):
            return [Op("flatten")]
        if isinstance(m, (Dropout, Identity)):
            return []  # identity in eval mode
        if isinstance(m, CurrentTap):
            self.foldable = None  # the tap must see the current as the training form does
            self.taps[id(m)] = len(self.taps)
            return [Op("tap", dict(id=self.taps[id(m)]))]
        if isinstance(m, SECA1):
            self.foldable = None
            return [Op("seca1", arrays=dict(weight=m.weight.data.astype(np.float64)))]
        if isinstance(m, SECA2):
            self.foldable = None
            return [Op("seca2", dict(tap=self.taps[id(m._tap)]),
                       dict(weight=m.weight.data.astype(np.float64), weight_pre=m.weight_pre.data.astype(np.float64)))]
        raise ValueError(f"freeze: cannot convert a {type(m).__name__} module")

    # ------------------------------------------------------------------ ops
    def synapse(self, m: Conv2d | Linear) -> Op:
        w = m.weight.data
        if m.weight_mode == "fp32":
            weight, a = w.astype(np.float64), np.ones(w.shape[0])
        else:  # codes from the weights in their own dtype: exactly the training-time quantization
            weight, a = (ternary_codes if m.weight_mode == "ternary" else binary_codes)(w)
        scale = a.astype(np.float64) * (self.pending if self.pending is not None else 1.0)
        bias = m.bias.data.astype(np.float64) if m.bias is not None else np.zeros(w.shape[0])
        attrs: dict[str, Any] = dict(conv=isinstance(m, Conv2d), weight_mode=m.weight_mode,
                                     input_is_spikes=bool(m.input_is_spikes), input_bits=int(m.input_bits))
        if isinstance(m, Conv2d):
            attrs.update(stride=list(m.stride), padding=list(m.padding), groups=m.groups)
        op = Op("synapse", attrs, dict(weight=weight, scale=scale, bias=bias))
        self.pending, self.foldable = None, op
        return op

    def batch_norm(self, m) -> tuple[np.ndarray, np.ndarray]:
        var, mean = m.running_var.astype(np.float64), m.running_mean.astype(np.float64)
        k = 1.0 / np.sqrt(var + m.eps)
        if m.weight is not None:
            k = k * m.weight.data.astype(np.float64)
        c = -mean * k + (m.bias.data.astype(np.float64) if m.bias is not None else 0.0)
        return k, c

    def affine(self, scale: np.ndarray, bias: np.ndarray) -> list[Op]:
        """``x * scale + bias`` (``[C]`` or ``[T, C]``): folded into the preceding synapse if possible."""
        op = self.foldable
        if op is not None:
            s, b = op.arrays["scale"], op.arrays["bias"]
            if scale.ndim == 2 and s.ndim == 1:
                s, b = np.broadcast_to(s, scale.shape), np.broadcast_to(b, scale.shape)
            op.arrays["scale"], op.arrays["bias"] = s * scale, b * scale + bias
            return []
        return [Op("affine", arrays=dict(scale=scale, bias=bias))]

    def neuron(self, m) -> Op:
        T = m.T
        theta = np.asarray(m.theta.data, dtype=np.float64).reshape(T, -1)
        attrs: dict[str, Any] = dict(neuron={HDLIF: "hdlif", LIF: "lif", ParallelHDLIF: "parallel"}[type(m)],
                                     bits=int(m.spike_bits or 0), step=0.0, reset=getattr(m, "reset_mode", ""))
        arrays = dict(theta=theta)
        if not isinstance(m, ParallelHDLIF):
            arrays["lam"] = np.asarray(m.lam.data, dtype=np.float64).reshape(T, -1)
        if m.quantizer is not None:
            attrs["step"] = float(m.quantizer.step.data)
            self.pending = attrs["step"]
        else:
            self.pending = None
        self.foldable = None
        return Op("neuron", attrs, arrays)

    def block(self, m: BasicBlock) -> Op:
        pending = self.pending
        main = self.module(m.branch1) + self.module(m.branch2)
        self.pending = pending
        if m.shortcut is not None:
            shortcut = self.module(m.shortcut)
        else:
            shortcut = [] if pending is None else [Op("scale", dict(value=pending))]
        self.pending, self.foldable = None, None
        post = self.module(m.neuron)
        return Op("block", children=dict(main=main, shortcut=shortcut, post=post))


def _finish(ops: list[Op], dtype: np.dtype) -> None:
    """Store every float array (the folds were computed in float64) in ``dtype``; codes stay int8."""
    for op in ops:
        for name, a in op.arrays.items():
            if a.dtype.kind == "f":
                op.arrays[name] = np.ascontiguousarray(a, dtype=dtype)
        for children in op.children.values():
            _finish(children, dtype)


def freeze(model: SpikingNet, input_shape: tuple[int, ...] | None = None, dtype=np.float32) -> FrozenModel:
    """The frozen (deployment) form of a trained network; the model itself is not changed.

    ``input_shape`` is one sample ``[C, H, W]``; by default it comes from ``model.config``.
    ``dtype``: float32 (what deployment files store) or float64, to compare with a
    float64 network to ~1e-15 (in float32 a membrane value within rounding of a
    threshold or of a spike level may round the other way after folding).
    """
    if not isinstance(model, SpikingNet):
        raise TypeError(f"freeze: expected a SpikingNet from a model builder, got {type(model).__name__}")
    config = dict(model.config)
    if input_shape is None:
        size = config.get("input_size", 32)
        input_shape = (config.get("in_channels", 3), size, size)
    was_training = model.training
    model.eval()
    try:
        freezer = _Freezer(model.T)
        ops = freezer.sequence(list(model.features) + [model.classifier])
    finally:
        model.train(was_training)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"freeze: dtype={dtype} is not allowed; use float32 or float64")
    _finish(ops, dtype)
    num_classes = model.classifier.out_features
    return FrozenModel(ops, model.T, num_classes, tuple(input_shape), {"model_config": config}, dtype)
