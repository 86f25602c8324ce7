"""NumPy twin of the spike quantizer kernels (SPEC E13); same signatures as
:mod:`hdlif_ref.kernels.spike_quantize`."""
from __future__ import annotations

import numpy as np


def spike_quantize_forward(x, step, qmax):
    """``Q(x; s, n) = s * clip(round(x / s), 0, qmax)``, ``np.rint`` rounds half to even."""
    return step * np.minimum(np.maximum(np.rint(x / step), 0), qmax)


def spike_quantize_backward(g, x, step, qmax):
    """``(dL/dx, dL/ds)``, LSQ-style: with ``v = x / s``, inside ``[0, qmax]``:
    ``dQ/dx = 1``, ``dQ/ds = round(v) - v``; above: ``0`` and ``qmax``; below: ``0`` and ``0``."""
    v = x / step
    inside = (v >= 0) & (v <= qmax)
    gx = np.where(inside, g, 0).astype(x.dtype, copy=False)
    d_step = np.where(inside, g * (np.rint(v) - v), np.where(v > qmax, g * qmax, 0))
    return gx, x.dtype.type(d_step.astype(x.dtype, copy=False).sum())
