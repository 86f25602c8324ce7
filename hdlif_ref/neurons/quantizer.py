"""Multi-bit spikes (SPEC E13): ``spike_quantize`` and the ``SpikeQuantizer`` module.

    Q(x; s, n) = s * clip(round(x / s), 0, 2^n - 1)       (round half to even, as numpy.round)

with a learnable step ``s`` and the LSQ-style backward of the spec (a DC):
``dQ/dx = 1`` inside ``[0, s (2^n - 1)]``, else 0; ``dQ/ds = round(x/s) - x/s``
inside, ``2^n - 1`` above, 0 below. At deployment a spike is the integer
``round(x / s)`` and ``s`` folds into the next synapse's weight scale.

The neurons apply it to the spike they emit (``spike_bits=n``); their membrane
keeps the unquantized ``s*`` (SPEC E2).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..autograd import Tensor
from ..autograd.ops._args import mark_finite
from ..autograd.ops.spike_quantize import SpikeQuantize
from ..module import Module, Parameter
from ._checks import as_float, check_finite, check_positive, check_spike_bits, shape_of


def spike_quantize(x, step, bits: int) -> Tensor:
    """``Q(x; step, bits)`` of SPEC E13 on any shape; ``step`` is a scalar tensor (shape ``()`` or ``(1,)``) > 0."""
    as_float("spike_quantize", "x", x)
    check_finite("spike_quantize", "x", x)
    as_float("spike_quantize", "step", step)
    if shape_of(step) not in ((), (1,)):
        raise ValueError(f"spike_quantize: step has shape {shape_of(step)}; it must be a scalar (shape () or (1,))")
    value = float((step.data if isinstance(step, Tensor) else step).reshape(()))
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"spike_quantize: the step s = {value!r} must be a finite number > 0")
    bits = check_spike_bits("spike_quantize", bits)
    if bits is None:
        raise ValueError("spike_quantize: bits=None; give the number of bits n (1..16)")
    y = SpikeQuantize.apply(x, step, bits=bits)
    # x is finite (checked above), so every output is s k with an integer 0 <= k <= 2^n - 1: finite when the top
    # level is, which spares the next layer's input check its pass over the spikes (mark_finite)
    top = top_level(value, 2 ** bits - 1, y.data.dtype)
    if top is not None:
        mark_finite(y.data, top)
    return y


@functools.lru_cache(maxsize=64)
def top_level(step: float, qmax: int, dtype) -> float | None:
    """The largest quantized spike, ``step * qmax`` computed in ``dtype`` as the kernels compute it (every
    level ``step k``, ``0 <= k <= qmax``, is at most this), or ``None`` if it overflows ``dtype``. Cached: a pure
    function of its arguments, asked with the same ones at every step of a batch."""
    dtype = np.dtype(dtype)
    with np.errstate(over="ignore"):
        top = float(dtype.type(step) * dtype.type(qmax))
    return top if math.isfinite(top) else None


#: The spike step's domain is ``s > 0`` (E13 divides by it); the optimizers keep it at or above
#: ``STEP_FLOOR_FRACTION`` times its initial value (``Parameter.lower``; docs/neurons.md, "Domains").
STEP_FLOOR_FRACTION = 2.0 ** -10


def default_step(bits: int, theta_init: float = 1.0) -> float:
    """Initial step (DC): ``theta_init / (2^n - 1)``, so the top level is one threshold of surplus."""
    return float(theta_init) / (2 ** bits - 1)


class SpikeQuantizer(Module):
    """``n``-bit spike quantizer (SPEC E13) with a learnable step ``step`` (a scalar Parameter).

    Parameters
    ----------
    bits : int
        ``n`` in 1..16; the levels are ``0, s, 2s, ..., (2^n - 1) s``.
    step_init : float, optional
        Initial step ``s``; default :func:`default_step` ``(bits, theta_init)``. The optimizers
        keep ``s >= step_init * STEP_FLOOR_FRACTION`` (``2^-10``), so it stays > 0 at any
        learning rate.
    theta_init : float
        The threshold the default step is derived from (DC: ``theta_init / (2^n - 1)``).
    dtype : float32 or float64
    """

    def __init__(self, bits: int, step_init: float | None = None, theta_init: float = 1.0,
                 dtype=np.float32):
        super().__init__()
        bits = check_spike_bits("SpikeQuantizer", bits)
        if bits is None:
            raise ValueError("SpikeQuantizer: bits=None; give the number of bits n (1..16)")
        if step_init is None:
            step_init = default_step(bits, check_positive("SpikeQuantizer", "theta_init", theta_init))
        step_init = check_positive("SpikeQuantizer", "step_init", step_init)
        self.bits = bits
        self.step = Parameter(np.array(step_init, dtype=dtype), lower=step_init * STEP_FLOOR_FRACTION)

    @property
    def qmax(self) -> int:
        """The largest integer level, ``2^n - 1``."""
        return 2 ** self.bits - 1

    def forward(self, x) -> Tensor:
        """``Q(x; step, bits)``, any shape."""
        return spike_quantize(x, self.step, self.bits)

    def integer_spikes(self, x) -> np.ndarray:
        """What deployment transmits: ``clip(round(x / s), 0, 2^n - 1)`` as integers (SPEC E13)."""
        data = x.data if isinstance(x, Tensor) else np.asarray(x)
        s = self.step.data.astype(data.dtype)
        return np.clip(np.rint(data / s), 0, self.qmax).astype(np.int64)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, step={float(self.step.data):.6g}"
