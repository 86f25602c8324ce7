"""``SpikingNeuron``: what every neuron module shares (state, step counter, step modes, firing counts).

A neuron module wraps a pure step function and a fused sequence op
(:mod:`.steps`, :mod:`.functional`):

* ``forward(I_t)``: one step on ``[N, ...]``; the state ``u_t`` and the step
  counter ``t`` are kept; one graph node per step (two with ``spike_bits``);
* ``forward_seq(I)``: all ``T`` steps on ``[T, N, ...]`` through one fused node,
  exact STBP backward (SPEC E4); it starts from ``u_0 = 0`` and neither reads
  nor changes the step state;
* ``__call__(x)``: ``forward`` when ``step_mode == "s"``, ``forward_seq`` when ``"m"``;
* ``reset()`` / ``reset_state()``: forget the state (next call is step 0);
  ``detach_state()``: cut it from the graph (online training, SPEC E5, E16).

State is data, not magic: ``neuron.state`` is the :class:`~.records.NeuronState`
record, ``neuron.t`` the index of the next step.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Tensor
from ..kernels.finite import count_nonzero
from ..module import Module, Parameter
from ._checks import FLOATS, check_spike_bits, check_T
from .fused import bn_then_neuron
from .quantizer import SpikeQuantizer
from .records import NeuronState

#: Neuron classes :mod:`.fused` can run with their batch norm, and their kernel kind (filled by ``modules``).
_FUSABLE: dict = {}


#: The threshold's domain is ``theta >= THETA_FLOOR`` (> 0): a neuron must not fire at rest.
#: The optimizers keep it there (``Parameter.lower``); the leak ``lam`` has no bound (SPEC E1 DC).
THETA_FLOOR = 1e-3


class SpikingNeuron(Module):
    """Base class of :class:`HDLIF`, :class:`LIF`, :class:`ParallelHDLIF`, :class:`MemBNHDLIF`."""

    def __init__(self, T: int, channels: int | None, per_channel: bool, spike_bits: int | None,
                 theta_init: Any, spike_step_init: float | None, dtype: Any):
        super().__init__()
        name = type(self).__name__
        self.T = check_T(name, T)
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, (int, np.integer))
                                     or channels < 1):
            raise ValueError(f"{name}: channels={channels!r} must be a positive integer or None")
        if per_channel and channels is None:
            raise ValueError(f"{name}: per_channel=True needs channels= (the size of dim 1 of each step)")
        self.channels = None if channels is None else int(channels)
        self.per_channel = bool(per_channel)
        dtype = np.dtype(dtype)
        if dtype not in FLOATS:
            raise TypeError(f"{name}: dtype={dtype} is not allowed; use float32 or float64")
        self.dtype = dtype
        self.spike_bits = check_spike_bits(name, spike_bits)
        self.quantizer = None
        theta = np.asarray(theta_init.data if isinstance(theta_init, Tensor) else theta_init, dtype=np.float64)
        if theta.size == 0 or not np.all(np.isfinite(theta)) or theta.min() < THETA_FLOOR:
            raise ValueError(f"{name}: theta_init={theta_init!r}; allowed: finite numbers >= {THETA_FLOOR} "
                             f"(the threshold's domain, docs/neurons.md)")
        if self.spike_bits is not None:
            self.quantizer = SpikeQuantizer(self.spike_bits, step_init=spike_step_init,
                                            theta_init=float(theta.max()), dtype=dtype)
        self.track_firing = False
        self.firing_counts = (0, 0)
        self._state = NeuronState()

    # ------------------------------------------------------------ parameters
    @property
    def param_shape(self) -> tuple[int, ...]:
        """``(T,)`` per layer, ``(T, C)`` per channel."""
        return (self.T, self.channels) if self.per_channel else (self.T,)

    def _parameter(self, name: str, value: Any, shape: tuple[int, ...] | None = None,
                   lower: float | None = None) -> Parameter:
        """A Parameter of ``shape`` (default :attr:`param_shape`) filled from a scalar or a broadcastable array;
        ``lower`` is its domain floor (``Parameter.lower``)."""
        shape = self.param_shape if shape is None else shape
        value = np.asarray(value.data if isinstance(value, Tensor) else value, dtype=np.float64)
        try:
            data = np.broadcast_to(value, shape)
        except ValueError:
            raise ValueError(f"{type(self).__name__}: {name} has shape {value.shape}, which does not fit the "
                             f"parameter shape {shape}") from None
        return Parameter(np.array(data, dtype=self.dtype), lower=lower)

    # ------------------------------------------------------------ state
    @property
    def state(self) -> NeuronState:
        """The state carried to the next step (``u_{t-1}``, ``t``)."""
        return self._state

    @property
    def t(self) -> int:
        """Index of the next step (0 after a reset)."""
        return self._state.t

    def reset(self) -> "SpikingNeuron":
        """Forget the state: the next ``forward`` is step 0 with ``u_0 = 0``."""
        self._reset_own_state()
        return self

    def _reset_own_state(self) -> None:
        self._state = NeuronState()

    def _detach_own_state(self) -> None:
        self._state = self._state.detach()

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        u = self._state.u
        if u is not None:
            self._state = NeuronState(Tensor(u.data.astype(dtype)), self._state.t)

    def reset_firing(self) -> None:
        """Zero ``firing_counts``."""
        self.firing_counts = (0, 0)

    # ------------------------------------------------------------ calling
    def __call__(self, x):
        if self.step_mode == "s":
            out = self.forward(x)
        elif self.step_mode == "m":
            out = self.forward_seq(x)
        else:
            raise ValueError(f"{type(self).__name__}: step_mode={self.step_mode!r}; allowed: 's', 'm'")
        for hook in self._forward_hooks:
            hook(self, (x,), out)
        return out

    def forward_after(self, previous: Module, x):
        """``self(previous(x))`` in one kernel when ``previous`` is a ``BatchNorm2d`` (:mod:`.fused`): with no
        graph recorded, or, for an HD-LIF or LIF step in training, as one graph node; ``None`` otherwise (the plain
        path)."""
        if type(self) not in _FUSABLE:
            return None
        return bn_then_neuron(previous, self, x, _FUSABLE)

    def forward(self, I_t) -> Tensor:
        """One time step on ``I_t: [N, ...]`` (state kept, counter advanced)."""
        if self._state.t >= self.T:
            raise RuntimeError(f"{type(self).__name__}: forward() called for step {self._state.t + 1} but the "
                               f"neuron has T={self.T} steps; call reset_state() before a new sequence")
        s, self._state = self._step(I_t, self._state)
        return self._emit(s)

    def forward_seq(self, I, gradient: str = "stbp") -> Tensor:
        """All ``T`` steps on ``I: [T, N, ...]`` through one fused op; ``gradient`` "stbp" (E4) or "online" (E5)."""
        return self._emit(self._seq(I, gradient))

    def _emit(self, s: Tensor) -> Tensor:
        if self.quantizer is not None:
            s = self.quantizer(s)  # SPEC E13: the emitted spike; u kept the unquantized s* (E2)
        if self.track_firing:
            nonzero, total = self.firing_counts
            self.firing_counts = (nonzero + count_nonzero(s.data), total + int(s.size))
        return s

    def _step(self, I_t, state: NeuronState):  # pragma: no cover - abstract
        raise NotImplementedError

    def _seq(self, I, gradient: str):  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        text = f"T={self.T}"
        if self.per_channel:
            text += f", channels={self.channels}, per_channel=True"
        if self.spike_bits is not None:
            text += f", spike_bits={self.spike_bits}"
        return text
