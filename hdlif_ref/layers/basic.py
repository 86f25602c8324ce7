"""Shape and regularization layers: ``Flatten``, ``Dropout``, ``Identity``."""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, ops
from ..module import Module


class Identity(Module):
    """Returns its input."""

    def forward(self, x):
        return x


class Flatten(Module):
    """Flatten every axis after the batch axis: ``[N, ...] -> [N, F]`` (``[T, N, ...] -> [T, N, F]`` in mode ``"m"``)."""

    def forward(self, x: Tensor) -> Tensor:
        lead = 2 if self.step_mode == "m" else 1
        if x.ndim < lead:
            raise ValueError(f"Flatten (step_mode {self.step_mode!r}): input of shape {x.shape} has no batch axis")
        return ops.reshape(x, x.shape[:lead] + (-1,))


class Dropout(Module):
    """Inverted dropout with one mask per sequence: the same neurons are dropped at every time step.

    Dropping different neurons at each step would inject noise that online and
    stepped training see differently from the sequence form; SpikingJelly keeps one
    mask over time for the same reason. The mask is drawn at the first step after
    ``reset_state()`` from the ``rng`` passed in. Identity in eval mode or with ``p = 0``.
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p={p!r} must be in [0, 1)")
        self.p = float(p)
        self.rng = np.random.default_rng() if rng is None else rng
        self._mask: np.ndarray | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        step_shape = x.shape[1:] if self.step_mode == "m" else x.shape
        if self._mask is None or self._mask.shape != step_shape or self._mask.dtype != x.dtype:
            if self._mask is not None and self._mask.shape != step_shape:
                raise ValueError(f"Dropout: step input shape {step_shape} differs from {self._mask.shape} "
                                 f"earlier in this sequence; call reset_state() between sequences")
            keep = self.rng.random(step_shape) >= self.p
            self._mask = (keep / (1.0 - self.p)).astype(x.dtype)
        return x * self._mask

    def _reset_own_state(self) -> None:
        self._mask = None

    def extra_repr(self) -> str:
        return f"p={self.p}"
