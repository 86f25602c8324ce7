"""Batch normalization of synaptic currents: ``BatchNorm2d`` (``[N, C, H, W]``) and ``BatchNorm1d`` (``[N, C]``).

SPEC E16 DC: in training, every time step is normalized with that step's own
batch statistics, in both step modes: a sequence ``[T, N, ...]`` is normalized
slice by slice (not over ``T * N``), so stepping a network and running it on the
whole sequence give the same numbers. Running statistics are shared across
steps by default; ``per_step=True`` keeps one set per time step (then ``T`` is
required and the layer counts steps like a neuron: ``reset_state()`` rewinds it).
Running statistics follow PyTorch: normalize with the biased batch variance,
update ``running_var`` with the unbiased one, ``momentum`` weighting the new value.

A sequence in training with per-step statistics runs as one op (``ops.batch_norm_steps``: one
kernel launch each way, no stack and unstack), which gives the loop's numbers bit for bit;
``ONE_OP_PER_SEQUENCE = False`` runs the loop (tests and A/B measurements).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, ops
from ._steps import check_input
from ..module import Module, Parameter

#: False: a sequence is normalized by the step-by-step loop even where the one-op path applies.
ONE_OP_PER_SEQUENCE = True


class _BatchNorm(Module):
    _layout = ""
    _step_ndim = 0

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5, affine: bool = True,
                 per_step: bool = False, T: int | None = None, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"{name}: num_features={num_features!r} must be a positive integer")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum={momentum!r} must be in [0, 1]")
        if not eps > 0:
            raise ValueError(f"{name}: eps={eps!r} must be positive")
        if per_step and (T is None or T < 1):
            raise ValueError(f"{name}: per_step=True needs the number of time steps T (got T={T!r})")
        self.num_features, self.momentum, self.eps = int(num_features), float(momentum), float(eps)
        self.per_step, self.T = bool(per_step), T
        rows = (T,) if per_step else ()
        self.weight = Parameter(np.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=dtype)) if affine else None
        self.register_buffer("running_mean", np.zeros(rows + (num_features,), dtype=dtype))
        self.register_buffer("running_var", np.ones(rows + (num_features,), dtype=dtype))
        self.t = 0

    def _stats_for_step(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.per_step:
            return self.running_mean, self.running_var
        if t >= self.T:
            raise ValueError(f"{type(self).__name__}: time step {t + 1} but per-step statistics hold "
                             f"T={self.T} steps; call reset_state() before a new sequence")
        return self.running_mean[t], self.running_var[t]

    def _normalize(self, x: Tensor, t: int) -> Tensor:
        mean, var = self._stats_for_step(t)
        return ops.batch_norm(x, self.weight, self.bias, mean, var, training=self.training,
                              momentum=self.momentum, eps=self.eps)

    def check(self, x: Tensor, values: bool = True) -> None:
        """The input checks of :meth:`forward` (dims, finite values unless ``values=False``, channels)."""
        name = type(self).__name__
        check_input(name, x, self.step_mode, (self._step_ndim,), self._layout, values)
        channel_axis = 2 if self.step_mode == "m" else 1
        if x.shape[channel_axis] != self.num_features:
            raise ValueError(f"{name}: input has {x.shape[channel_axis]} channels (shape {x.shape}), "
                             f"the layer expects num_features={self.num_features}")

    def forward(self, x: Tensor) -> Tensor:
        self.check(x)
        if self.step_mode == "s":
            y = self._normalize(x, self.t)
            self.t += 1
            return y
        if ONE_OP_PER_SEQUENCE and self.per_step and self.training and x.shape[0] <= self.T:
            # every step with its own statistics, in one op (the same bits as the loop below)
            steps = x.shape[0]
            return ops.batch_norm_steps(x, self.weight, self.bias, self.running_mean[:steps],
                                        self.running_var[:steps], momentum=self.momentum, eps=self.eps)
        steps = [self._normalize(x_t, t) for t, x_t in enumerate(ops.unstack(x, axis=0))]
        return ops.stack(steps, axis=0)

    def _reset_own_state(self) -> None:
        self.t = 0

    def extra_repr(self) -> str:
        text = f"{self.num_features}, momentum={self.momentum}, eps={self.eps}"
        if self.per_step:
            text += f", per_step=True, T={self.T}"
        return text


class BatchNorm2d(_BatchNorm):
    """Batch norm over ``N, H, W`` per channel of ``[N, C, H, W]`` (``[T, N, C, H, W]`` in step mode ``"m"``)."""

    _layout = "N, C, H, W"
    _step_ndim = 4


class BatchNorm1d(_BatchNorm):
    """Batch norm over ``N`` per feature of ``[N, C]`` (``[T, N, C]`` in step mode ``"m"``)."""

    _layout = "N, C"
    _step_ndim = 2
