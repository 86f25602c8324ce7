"""LIF surrogate gradients (SPEC E7): names, integer codes, default parameters, kernel constants.

The spike ``s = H(x)``, ``x = m - theta``, has derivative 0 almost everywhere; a
surrogate ``sg(x)`` replaces it in the backward. Each surrogate is the derivative
of a smooth (or piecewise smooth) primitive ``sigma(x)`` that goes from 0 to its
full height as ``x`` crosses 0. One parameter ``gamma`` sets its width or slope:

* ``triangle`` (code 0, default ``gamma = 1``; SPEC E7, the paper's):
  ``sg = max(gamma - |x|, 0) / gamma^2``; ``sigma`` piecewise quadratic, 0 below
  ``-gamma``, 1 above ``gamma``;
* ``sigmoid`` (code 1, default 4): ``sg = gamma S(gamma x) (1 - S(gamma x))``,
  ``sigma = S(gamma x)`` with ``S`` the logistic function;
* ``atan`` (code 2, default 2): ``sg = (gamma / 2) / (1 + (pi gamma x / 2)^2)``,
  ``sigma = arctan(pi gamma x / 2) / pi + 1/2``;
* ``fast-sigmoid`` (code 3, default 25): ``sg = 1 / (gamma |x| + 1)^2``,
  ``sigma = x / (1 + gamma |x|)`` (from ``-1/gamma`` to ``1/gamma``).

``sigmoid`` and ``atan`` are SpikingJelly's ``surrogate.Sigmoid(alpha)`` and
``surrogate.ATan(alpha)`` with ``gamma = alpha`` (same defaults; snnTorch's
``surrogate.sigmoid(slope)`` and ``atan(alpha)`` are the same functions with
defaults 25 and 2). ``fast-sigmoid`` is snnTorch's ``surrogate.fast_sigmoid(slope)``
with ``gamma = slope`` (SuperSpike; Norse's ``superspike`` with ``alpha = gamma``):
not normalized, its peak is 1 and its area ``2 / gamma``.

The kernels get the code (an int, never a name) and two constants ``a, b`` of the
data's dtype from :func:`kernel_constants`, and evaluate::

    0 triangle:      max(a - |x|, 0) * b            a = gamma, b = 1 / gamma^2
    1 sigmoid:       a e / (1 + e)^2, e = exp(-a|x|) a = gamma   (the same as a S (1 - S), without overflow)
    2 atan:          a / (1 + (b x)^2)              a = gamma / 2, b = pi gamma / 2
    3 fast-sigmoid:  1 / (a |x| + 1)^2              a = gamma
"""
from __future__ import annotations

import math
import numbers

import numpy as np

#: Surrogate names; a name's index is the code the kernels take.
SURROGATES = ("triangle", "sigmoid", "atan", "fast-sigmoid")
#: Default width/slope ``gamma`` per surrogate (triangle: SPEC E7 DC; others: SpikingJelly / snnTorch).
DEFAULT_GAMMA = {"triangle": 1.0, "sigmoid": 4.0, "atan": 2.0, "fast-sigmoid": 25.0}


def surrogate_code(op: str, name) -> int:
    """The kernel code of surrogate ``name``; a clear ``ValueError`` for an unknown name."""
    if not isinstance(name, str) or name not in SURROGATES:
        raise ValueError(f"{op}: surrogate={name!r}; allowed: {', '.join(repr(s) for s in SURROGATES)}")
    return SURROGATES.index(name)


def resolve_gamma(op: str, name: str, gamma) -> float:
    """``gamma`` checked (a finite number > 0), or the surrogate's default when None."""
    if gamma is None:
        return DEFAULT_GAMMA[name]
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not np.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"{op}: gamma={gamma!r} (the width/slope of the {name} surrogate) must be a finite "
                         f"number > 0")
    return float(gamma)


def kernel_constants(code: int, gamma: float, dtype) -> tuple:
    """``(a, b)`` of the table above as scalars of ``dtype`` (no float64 constant promotes float32 math)."""
    dt = np.dtype(dtype).type
    g = dt(gamma)
    if code == 0:
        return g, dt(1) / (g * g)
    if code == 2:
        return g / dt(2), dt(math.pi / 2) * g
    return g, dt(0)
