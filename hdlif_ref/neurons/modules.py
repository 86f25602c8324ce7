"""The neuron modules ``HDLIF`` (SPEC E1-E2), ``LIF`` (E7) and ``ParallelHDLIF`` (E8).

``MemBNHDLIF`` (E9, E10) lives in :mod:`.membn`. Shared behaviour (state, step
modes, firing counts, spike quantizer) is in :class:`~.base.SpikingNeuron`.
Parameters ``lam``, ``theta`` have shape ``[T]``, or ``[T, C]`` with
``per_channel=True`` (then ``channels=C`` is required; the channel is dim 1 of
each step ``[N, C, ...]``). DC defaults: ``lam = 0.5``, ``theta = 1.0``; ``lam`` is never
clamped (SPEC E1 DC), ``theta`` is kept >= ``THETA_FLOOR`` by the optimizers (its domain,
docs/neurons.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels.surrogates import resolve_gamma, surrogate_code
from ._checks import RESETS, check_choice
from ..kernels.bn_neuron import HDLIF as _HDLIF_KIND
from ..kernels.bn_neuron import LIF as _LIF_KIND
from ..kernels.bn_neuron import PARALLEL as _PARALLEL_KIND
from .base import _FUSABLE, THETA_FLOOR, SpikingNeuron
from .functional import hdlif_record, hdlif_seq, lif_record, lif_seq, parallel_hdlif_seq
from .records import HDLIFParams, HDLIFRecord, LIFParams, LIFRecord, NeuronState, ParallelHDLIFParams
from .steps import hdlif_step, lif_step, parallel_hdlif_step


class HDLIF(SpikingNeuron):
    """Hybrid-driven LIF with Precise-Positioning Reset (SPEC E1, E2).

    ``m_t = lam_t u_{t-1} + I_t``; ``s*_t = relu(m_t - theta_t)``; ``u_t = min(m_t, theta_t)``.
    The emitted spike is ``s*`` (or ``Q(s*)`` with ``spike_bits``, E13). Exact
    gradients, no surrogate: ``d s*_t / d m_t = H(m_t - theta_t)`` with ``H(0) = 1`` (E3).

    Parameters
    ----------
    T : int
        Time steps.
    channels : int, optional
        ``C`` (dim 1 of a step); required with ``per_channel=True``.
    per_channel : bool
        ``lam``, ``theta`` of shape ``[T, C]`` instead of ``[T]``.
    lam_init, theta_init : float or array broadcastable to the parameter shape
    spike_bits : int, optional
        Quantize the emitted spike to ``n`` bits (E13), learnable step (see ``docs/neurons.md``).
    spike_step_init : float, optional
        Initial quantizer step; default ``theta_init / (2^n - 1)`` (DC).
    dtype : float32 (default) or float64
    """

    def __init__(self, T: int, channels: int | None = None, per_channel: bool = False, lam_init: Any = 0.5,
                 theta_init: Any = 1.0, spike_bits: int | None = None, spike_step_init: float | None = None,
                 dtype: Any = np.float32):
        super().__init__(T, channels, per_channel, spike_bits, theta_init, spike_step_init, dtype)
        self.lam = self._parameter("lam_init", lam_init)
        self.theta = self._parameter("theta_init", theta_init, lower=THETA_FLOOR)

    def params(self) -> HDLIFParams:
        """The parameters as the record :func:`~.steps.hdlif_step` takes."""
        return HDLIFParams(self.lam, self.theta)

    def _step(self, I_t, state: NeuronState):
        return hdlif_step(I_t, state, self.params())

    def _seq(self, I, gradient: str):
        return hdlif_seq(I, self.lam, self.theta, gradient=gradient)

    def record(self, I) -> HDLIFRecord:
        """Every intermediate of ``forward_seq(I)`` (``m``, ``u``, ``s*``, before quantization), as arrays."""
        return hdlif_record(I, self.lam.data, self.theta.data)


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire baseline (SPEC E7): binary spikes, a surrogate gradient of width/slope ``gamma``.

    ``m_t = lam_t u_{t-1} + I_t``; ``s_t = H(m_t - theta_t)``; ``reset="hard"``:
    ``u_t = m_t (1 - s_t)`` (DC default), ``"soft"``: ``u_t = m_t - theta_t s_t``.
    Backward: ``d s_t / d m_t ~ sg(m_t - theta_t)`` wherever ``s_t`` appears, the reset
    included. ``surrogate``: ``"triangle"`` (default, the paper's:
    ``max(gamma - |x|, 0) / gamma^2``), ``"sigmoid"``, ``"atan"`` (SpikingJelly's, ``gamma`` =
    their ``alpha``) or ``"fast-sigmoid"`` (snnTorch's, ``gamma`` = its ``slope``);
    ``gamma=None`` takes the surrogate's default (1, 4, 2, 25). Formulas:
    :mod:`hdlif_ref.kernels.surrogates`, ``docs/neurons.md``. Other parameters as :class:`HDLIF`.
    """

    def __init__(self, T: int, channels: int | None = None, per_channel: bool = False, lam_init: Any = 0.5,
                 theta_init: Any = 1.0, reset: str = "hard", gamma: float | None = None,
                 spike_bits: int | None = None, spike_step_init: float | None = None, dtype: Any = np.float32,
                 surrogate: str = "triangle"):
        super().__init__(T, channels, per_channel, spike_bits, theta_init, spike_step_init, dtype)
        self.reset_mode = check_choice("LIF", "reset", reset, RESETS)
        surrogate_code("LIF", surrogate)
        self.surrogate = surrogate
        self.gamma = resolve_gamma("LIF", surrogate, gamma)
        self.lam = self._parameter("lam_init", lam_init)
        self.theta = self._parameter("theta_init", theta_init, lower=THETA_FLOOR)

    def params(self) -> LIFParams:
        return LIFParams(self.lam, self.theta, self.reset_mode, self.gamma, self.surrogate)

    def _step(self, I_t, state: NeuronState):
        return lif_step(I_t, state, self.params())

    def _seq(self, I, gradient: str):
        return lif_seq(I, self.lam, self.theta, reset=self.reset_mode, gamma=self.gamma, gradient=gradient,
                       surrogate=self.surrogate)

    def record(self, I) -> LIFRecord:
        """Every intermediate of ``forward_seq(I)`` (``m``, ``u``, ``s``), as arrays."""
        return lif_record(I, self.lam.data, self.theta.data, self.reset_mode, self.gamma, self.surrogate)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", reset={self.reset_mode!r}, surrogate={self.surrogate!r}, gamma={self.gamma}"


class ParallelHDLIF(SpikingNeuron):
    """Parallel HD-LIF (SPEC E8): ``s*_t = relu(I_t - theta_t)``; no leak, no charge, no state.

    The step counter still runs (``theta_t`` is per step); STBP and online
    gradients coincide. Parameters as :class:`HDLIF` (no ``lam``).
    """

    def __init__(self, T: int, channels: int | None = None, per_channel: bool = False, theta_init: Any = 1.0,
                 spike_bits: int | None = None, spike_step_init: float | None = None, dtype: Any = np.float32):
        super().__init__(T, channels, per_channel, spike_bits, theta_init, spike_step_init, dtype)
        self.theta = self._parameter("theta_init", theta_init, lower=THETA_FLOOR)

    def params(self) -> ParallelHDLIFParams:
        return ParallelHDLIFParams(self.theta)

    def _step(self, I_t, state: NeuronState):
        return parallel_hdlif_step(I_t, state, self.params())

    def _seq(self, I, gradient: str):
        check_choice("ParallelHDLIF", "gradient", gradient, ("stbp", "online"))
        return parallel_hdlif_seq(I, self.theta)


_FUSABLE.update({HDLIF: _HDLIF_KIND, ParallelHDLIF: _PARALLEL_KIND, LIF: _LIF_KIND})
