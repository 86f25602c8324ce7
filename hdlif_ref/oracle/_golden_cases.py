"""The cases of the golden file (SPEC section 6): deterministic inputs from a seed.

What each case covers is listed in ``docs/golden.md``. Values are float64; the
"on threshold" elements use dyadic numbers (few mantissa bits) so that
``m_t = theta_t`` holds exactly in any IEEE arithmetic, not only in ours.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .golden import INPUTS


def make_cases(rng: np.random.Generator) -> list[tuple[str, str, dict[str, Any], dict[str, np.ndarray]]]:
    """The cases of the file, ``(name, kind, attrs, inputs)``; ``docs/golden.md`` says what each covers.

    HD-LIF, LIF and Parallel cases mix four kinds of elements along the last axis:
    ``on`` (dyadic values chosen so that ``m_t = theta_t`` exactly at most steps: exact
    in any float arithmetic), ``below`` / ``above`` (``|I| ~ 100..1000``) and ``random``
    (kept ``>= 1e-3`` away from the threshold, so that rounding in another
    implementation cannot flip a spike or a derivative).
    """
    lif = {"reset": "hard", "surrogate": "triangle", "gamma": 1.0}
    return [
        ("hdlif_T1", "hdlif", {}, _neuron_inputs(rng, "hdlif", (1, 3, 8))),
        ("hdlif_T2", "hdlif", {}, _neuron_inputs(rng, "hdlif", (2, 3, 8))),
        ("hdlif_T4_conv", "hdlif", {}, _neuron_inputs(rng, "hdlif", (4, 2, 3, 2, 4))),
        ("hdlif_T8", "hdlif", {}, _neuron_inputs(rng, "hdlif", (8, 3, 8))),
        ("lif_T4_hard_triangle", "lif", lif, _neuron_inputs(rng, "lif", (4, 3, 8))),
        ("parallel_T4", "parallel", {}, _neuron_inputs(rng, "parallel", (4, 2, 3, 4))),
        ("membn_T4", "membn", {"bn_eps": 1e-5, "bn_mode": "training"}, _membn_inputs(rng, (4, 4, 3, 2, 2))),
    ]


_LAMS = np.array([0.25, 0.5, 0.625, 0.75, 0.875])  # dyadic: products stay exact
_THETAS = np.array([0.5, 0.75, 1.0, 1.25, 1.5])
_KINDS = ("on", "on", "below", "above", "random", "random", "random", "random")
_MARGIN = 1e-3


def _next_u(kind: str, m: np.ndarray, theta: float) -> np.ndarray:
    if kind == "hdlif":
        return np.minimum(m, theta)  # SPEC E2
    if kind == "lif":
        return np.where(m >= theta, 0.0, m)  # SPEC E7, hard reset
    return np.zeros_like(m)  # parallel: no state


def _too_close(m: np.ndarray, theta: float) -> np.ndarray:
    return np.abs(m - theta) < _MARGIN


def _neuron_inputs(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """``I``, ``lam``, ``theta`` (``[T]``), ``grad_s`` for an HD-LIF, LIF or Parallel case."""
    T = shape[0]
    lam, theta = rng.choice(_LAMS, T), rng.choice(_THETAS, T)
    sort = np.array([_KINDS[j % len(_KINDS)] for j in range(shape[-1])])
    flat = math.prod(shape[1:])
    col = np.broadcast_to(sort, shape[1:]).reshape(flat)
    I, u = np.zeros((T, flat)), np.zeros(flat)
    for t in range(T):
        lam_t = lam[t] if kind != "parallel" else 0.0
        on = (col == "on") & (rng.random(flat) < 0.7)
        I[t] = np.where(col == "on", rng.integers(-16, 41, flat) / 16, 0.0)  # multiples of 1/16
        I[t] = np.where(on, theta[t] - lam_t * u, I[t])  # m_t = theta_t exactly
        far = rng.uniform(100.0, 1000.0, flat)
        I[t] = np.where(col == "below", -far, np.where(col == "above", far, I[t]))
        rand = col == "random"
        I[t, rand] = rng.normal(0.7, 1.0, rand.sum())
        while True:  # redraw random elements whose m_t lands too close to a kink (only m_t moves)
            close = rand & _too_close(lam_t * u + I[t], theta[t])
            if not close.any():
                break
            I[t, close] = rng.normal(0.7, 1.0, close.sum())
        u = _next_u(kind, lam_t * u + I[t], theta[t])
    inputs = {"I": I.reshape(shape), "lam": lam, "theta": theta, "grad_s": rng.normal(size=shape)}
    if kind == "parallel":
        del inputs["lam"]
    return inputs


def _membn_inputs(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Mem-BN HD-LIF (SPEC E9) inputs, redrawn until every ``|mhat_t - theta_t| >= 1e-4``."""
    from .. import neurons

    T, C = shape[0], shape[2]
    while True:
        x = {"I": rng.normal(0.5, 1.0, shape), "lam": rng.choice(_LAMS, T), "theta": rng.choice(_THETAS, T),
             "alpha": 1.0 + 0.25 * rng.normal(size=T), "beta": 0.5 + 0.25 * rng.normal(size=T),
             "bn_gamma": 1.0 + 0.2 * rng.normal(size=(T, C)), "bn_beta": 0.2 * rng.normal(size=(T, C)),
             "grad_s": rng.normal(size=shape)}
        rec = neurons.membn_hdlif_record(*(x[k] for k in INPUTS["membn"][:-1]), training=True, bn_eps=1e-5)
        if np.abs(rec.mhat - x["theta"].reshape((T,) + (1,) * (len(shape) - 1))).min() >= 1e-4:
            return x
