"""``MemBNHDLIF``: HD-LIF with batch norm on the membrane (SPEC E9) and its re-parameterization (E10)."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..autograd import Tensor
from ._checks import check_positive
from .base import THETA_FLOOR, SpikingNeuron
from .functional import membn_hdlif_record, membn_hdlif_seq
from .modules import HDLIF
from .records import MemBNParams, MemBNRecord, NeuronState
from .steps import membn_hdlif_step


class Reparameterized(NamedTuple):
    """What :meth:`MemBNHDLIF.reparameterize` returns (SPEC E10).

    ``neuron`` is a vanilla :class:`HDLIF` with per-channel ``lam = lamhat`` and
    ``theta`` ``[T, C]``; it must be fed ``Ihat_t = scale_t * I_t + bias_t`` with
    ``scale = alpha*`` and ``bias = -beta*`` (``[T, C]``, channel = dim 1 of a
    step), which deployment folds into the synapse's per-channel weight scale and
    per-step bias.
    """

    neuron: HDLIF
    scale: np.ndarray
    bias: np.ndarray

    def input(self, I) -> np.ndarray:
        """``Ihat = scale * I + bias`` for a sequence ``I: [T, N, C, ...]`` (E10)."""
        data = I.data if isinstance(I, Tensor) else np.asarray(I)
        extra = (1,) * (data.ndim - 3)
        T, C = self.scale.shape
        return (self.scale.reshape((T, 1, C) + extra) * data + self.bias.reshape((T, 1, C) + extra))


class MemBNHDLIF(SpikingNeuron):
    """Mem-BN HD-LIF (SPEC E9): ``mhat_t = alpha_t m_t + beta_t BN_t(m_t)`` fires like HD-LIF.

    ``BN_t`` is a per-channel batch norm with its own affine (``bn_weight``,
    ``bn_bias``: ``[T, C]``, init 1 and 0) and running statistics (buffers
    ``running_mean``, ``running_var``: ``[T, C]``) for every step ``t``. Training mode
    normalizes with the batch statistics of that step (biased variance) and updates
    row ``t`` of the running statistics (momentum ``momentum``, unbiased variance, as
    PyTorch); eval mode uses the running statistics. ``alpha``, ``beta`` are learnable
    per step (``[T]``, or ``[T, C]`` with ``per_channel``), init 1 and 0, which is
    exactly vanilla HD-LIF (DC). Other parameters as :class:`HDLIF`; ``channels`` is required.
    """

    def __init__(self, T: int, channels: int, per_channel: bool = False, lam_init: Any = 0.5,
                 theta_init: Any = 1.0, spike_bits: int | None = None, momentum: float = 0.1, eps: float = 1e-5,
                 spike_step_init: float | None = None, dtype: Any = np.float32):
        if channels is None:
            raise ValueError("MemBNHDLIF: channels= is required (the batch norm is per channel)")
        super().__init__(T, channels, per_channel, spike_bits, theta_init, spike_step_init, dtype)
        if isinstance(momentum, bool) or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"MemBNHDLIF: momentum={momentum!r} must be in [0, 1]")
        self.momentum = float(momentum)
        self.eps = check_positive("MemBNHDLIF", "eps", eps)
        tc = (self.T, self.channels)
        self.lam = self._parameter("lam_init", lam_init)
        self.theta = self._parameter("theta_init", theta_init, lower=THETA_FLOOR)
        self.alpha = self._parameter("alpha", 1.0)
        self.beta = self._parameter("beta", 0.0)
        self.bn_weight = self._parameter("bn_weight", 1.0, tc)
        self.bn_bias = self._parameter("bn_bias", 0.0, tc)
        self.register_buffer("running_mean", np.zeros(tc, dtype=self.dtype))
        self.register_buffer("running_var", np.ones(tc, dtype=self.dtype))

    def params(self) -> MemBNParams:
        """Parameters, running statistics and mode, as :func:`~.steps.membn_hdlif_step` takes them."""
        return MemBNParams(self.lam, self.theta, self.alpha, self.beta, self.bn_weight, self.bn_bias,
                           self.running_mean, self.running_var, self.training, self.momentum, self.eps)

    def _step(self, I_t, state: NeuronState):
        return membn_hdlif_step(I_t, state, self.params())

    def _seq(self, I, gradient: str):
        return membn_hdlif_seq(I, self.lam, self.theta, self.alpha, self.beta, self.bn_weight, self.bn_bias,
                               running_mean=self.running_mean, running_var=self.running_var,
                               training=self.training, momentum=self.momentum, bn_eps=self.eps,
                               gradient=gradient)

    def record(self, I) -> MemBNRecord:
        """Every intermediate of ``forward_seq(I)`` in the current mode (running statistics not updated)."""
        return membn_hdlif_record(I, self.lam.data, self.theta.data, self.alpha.data, self.beta.data,
                                  self.bn_weight.data, self.bn_bias.data, self.running_mean, self.running_var,
                                  training=self.training, bn_eps=self.eps)

    def reparameterize(self) -> Reparameterized:
        """Fold the membrane BN into a vanilla HD-LIF (SPEC E10), with the running statistics.

            k = gamma / sqrt(var + eps),  c = b - k mean
            alpha* = alpha + beta k,      beta* = -beta c
            lamhat = alpha* lam,          Ihat = alpha* I - beta*

        Returns ``(neuron, scale, bias)``: an :class:`HDLIF` with per-channel
        ``lam = lamhat``, ``theta`` ``[T, C]`` (and the same spike quantizer), and the
        input affine ``scale = alpha*``, ``bias = -beta*`` (``[T, C]``). In eval mode
        the pair gives the same ``s*`` and ``u`` as this module, to float rounding.
        Computed in float64, stored in the module's dtype.
        """
        tc = (self.T, self.channels)
        f64 = lambda p: np.broadcast_to(  # noqa: E731 - [T] or [T, C] -> [T, C] float64
            (p.data if p.data.ndim == 2 else p.data[:, None]).astype(np.float64), tc)
        k = f64(self.bn_weight) / np.sqrt(self.running_var.astype(np.float64) + self.eps)
        c = f64(self.bn_bias) - k * self.running_mean.astype(np.float64)
        alpha_star = f64(self.alpha) + f64(self.beta) * k
        beta_star = -f64(self.beta) * c
        neuron = HDLIF(self.T, channels=self.channels, per_channel=True, lam_init=alpha_star * f64(self.lam),
                       theta_init=f64(self.theta), spike_bits=self.spike_bits, dtype=self.dtype)
        if self.quantizer is not None:
            neuron.quantizer.step.data[...] = self.quantizer.step.data
        neuron.eval()
        return Reparameterized(neuron, alpha_star.astype(self.dtype), (-beta_star).astype(self.dtype))

    def extra_repr(self) -> str:
        channels = "" if self.per_channel else f", channels={self.channels}"
        return super().extra_repr() + f"{channels}, momentum={self.momentum}, eps={self.eps}"
