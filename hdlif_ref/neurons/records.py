"""Small frozen records: neuron state and parameters for the step functions, and traces of a forward.

* :class:`NeuronState` is what a stateful neuron carries from step ``t - 1`` to
  step ``t``: the membrane ``u_{t-1}`` (``None`` before the first step, meaning
  ``u_0 = 0``, SPEC E1) and the index ``t`` of the next step.
* ``*Params`` hold the learnable parameters (autograd tensors, or arrays) of a
  neuron for all ``T`` steps; the step function picks row ``t`` itself, so the
  graph of a step has one node.
* ``*Record`` hold every intermediate of a whole forward (``m``, ``u``, ``s``,
  and ``mhat`` for Mem-BN) as NumPy arrays ``[T, N, ...]``: what the theory
  helpers (:mod:`.theory`) and the golden-vector writer read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..autograd import Tensor


@dataclass(frozen=True)
class NeuronState:
    """State between steps: ``u`` is ``u_{t-1}`` (``None``: ``u_0 = 0``), ``t`` the next step's index."""

    u: Tensor | None = None
    t: int = 0

    def detach(self) -> "NeuronState":
        """The same state cut from the graph (online training, SPEC E5/E16)."""
        return NeuronState(None if self.u is None else self.u.detach(), self.t)


@dataclass(frozen=True)
class HDLIFParams:
    """HD-LIF (SPEC E1, E2): ``lam``, ``theta`` of shape ``[T]`` or ``[T, C]``."""

    lam: Any
    theta: Any


@dataclass(frozen=True)
class LIFParams:
    """LIF (SPEC E7): ``lam``, ``theta`` ``[T]`` or ``[T, C]``; ``reset`` "hard" or "soft"; the surrogate's
    width/slope ``gamma`` (None: the surrogate's default) and its name ``surrogate``
    (:data:`hdlif_ref.kernels.surrogates.SURROGATES`, default the paper's ``"triangle"``)."""

    lam: Any
    theta: Any
    reset: str = "hard"
    gamma: float | None = None
    surrogate: str = "triangle"


@dataclass(frozen=True)
class ParallelHDLIFParams:
    """Parallel HD-LIF (SPEC E8): ``theta`` ``[T]`` or ``[T, C]``."""

    theta: Any


@dataclass(frozen=True)
class MemBNParams:
    """Mem-BN HD-LIF (SPEC E9).

    ``lam, theta, alpha, beta``: ``[T]`` or ``[T, C]``; ``bn_weight, bn_bias``
    (the BN affine ``gamma_t, b_t``): ``[T, C]``. ``running_mean, running_var``:
    ``[T, C]`` arrays updated in place in training mode (or ``None``: no update);
    used instead of the batch statistics when ``training`` is False.
    """

    lam: Any
    theta: Any
    alpha: Any
    beta: Any
    bn_weight: Any
    bn_bias: Any
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    training: bool = True
    momentum: float = 0.1
    bn_eps: float = 1e-5


@dataclass(frozen=True, eq=False)
class HDLIFRecord:
    """Every intermediate of an HD-LIF forward (SPEC E1-E2), NumPy arrays ``[T, N, ...]``.

    ``lam``, ``theta`` are kept in their own shape (``[T]`` or ``[T, C]``).
    """

    I: np.ndarray
    lam: np.ndarray
    theta: np.ndarray
    m: np.ndarray
    u: np.ndarray
    s: np.ndarray


@dataclass(frozen=True, eq=False)
class LIFRecord:
    """Every intermediate of a LIF forward (SPEC E7), plus its reset, surrogate width/slope and surrogate name."""

    I: np.ndarray
    lam: np.ndarray
    theta: np.ndarray
    m: np.ndarray
    u: np.ndarray
    s: np.ndarray
    reset: str
    gamma: float
    surrogate: str = "triangle"


@dataclass(frozen=True, eq=False)
class MemBNRecord:
    """Every intermediate of a Mem-BN HD-LIF forward (SPEC E9): ``m``, ``mhat``, ``u``, ``s`` and
    the statistics used, ``mean``, ``var`` ``[T, C]`` (batch statistics in training mode)."""

    I: np.ndarray
    m: np.ndarray
    mhat: np.ndarray
    u: np.ndarray
    s: np.ndarray
    mean: np.ndarray
    var: np.ndarray
