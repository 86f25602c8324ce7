"""The paper's local derivatives and gradient identities, computed from a recorded forward (SPEC E3-E6).

From a :class:`~.records.HDLIFRecord` (or a :class:`~.records.LIFRecord`, whose
derivatives use the record's surrogate, E7; the paper's is the triangle):

* :func:`chi_diag`: ``chi[t,t] = d s*_t / d m_t``; HD-LIF: ``H(m_t - theta_t)`` with ``H(0) = 1``;
* :func:`chi_sub`: ``chi[t,t-1] = d m_t / d m_{t-1}``; HD-LIF: ``lam_t (1 - H(m_{t-1} - theta_{t-1}))``;
* :func:`eps`: ``eps[i,t] = chi[i,i] prod_{j=t+1..i} chi[j,j-1]`` (E4), so that
  ``dL/dm_t = sum_{i >= t} dL/ds*_i eps[i,t]`` (:func:`stbp_from_eps`);
* :func:`online_from_stbp`: E6', the online gradient ``chi[t,t] dL/dm_t`` from the STBP one;
* :func:`e6_ratio`: E6's factor ``chi[t,t] / (chi[t,t] + sum_{i>t} eps[i,t])`` (``0/0 -> 0``).

Everything is an element-wise NumPy array ``[T, N, ...]`` (``eps``: ``[T, T, N, ...]``,
first index ``i``, second ``t``); ``chi_sub[0]`` is 0 because ``u_0 = 0`` is a constant.
These are what the ``verify`` command prints.
"""
from __future__ import annotations

import numpy as np

from ..kernels.reference.neurons import lif_surrogate
from ..kernels.surrogates import kernel_constants, surrogate_code
from .records import HDLIFRecord, LIFRecord


def _like(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A parameter ``[T]`` or ``[T, C]`` shaped to broadcast against ``x: [T, N, C, ...]``."""
    p = np.asarray(p)
    if p.ndim == 1:
        return p.reshape((p.shape[0],) + (1,) * (x.ndim - 1))
    return p.reshape((p.shape[0], 1, p.shape[1]) + (1,) * (x.ndim - 3))


def _check(record, allowed=(HDLIFRecord, LIFRecord)) -> None:
    if not isinstance(record, allowed):
        names = " or ".join(a.__name__ for a in allowed)
        raise TypeError(f"expected a {names} (from hdlif_record / lif_record), got {type(record).__name__}")


def _surrogate(record: LIFRecord) -> np.ndarray:
    code = surrogate_code("theory", record.surrogate)
    a, b = kernel_constants(code, record.gamma, record.m.dtype)
    return lif_surrogate(code, record.m - _like(record.theta, record.m), a, b)


def chi_diag(record) -> np.ndarray:
    """``chi[t,t] = d s_t / d m_t``, ``[T, N, ...]`` (SPEC E3; LIF: the E7 surrogate)."""
    _check(record)
    theta = _like(record.theta, record.m)
    if isinstance(record, HDLIFRecord):
        return (record.m >= theta).astype(record.m.dtype)  # H(0) = 1
    return _surrogate(record).astype(record.m.dtype)


def chi_sub(record) -> np.ndarray:
    """``chi[t,t-1] = d m_t / d m_{t-1}``, ``[T, N, ...]`` with ``chi_sub[0] = 0`` (SPEC E3; LIF: E7).

    HD-LIF: ``lam_t (1 - H_{t-1})`` in ``{0, lam_t}``. LIF: ``lam_t du_{t-1}/dm_{t-1}``
    with ``du/dm = (1 - s) - m sg`` (hard reset) or ``1 - theta sg`` (soft).
    """
    _check(record)
    m = record.m
    lam, theta = _like(record.lam, m), _like(record.theta, m)
    if isinstance(record, HDLIFRecord):
        du_dm = 1.0 - (m >= theta)
    else:
        sg = _surrogate(record)
        du_dm = (1.0 - record.s) - m * sg if record.reset == "hard" else 1.0 - theta * sg
    out = np.zeros_like(m)
    out[1:] = lam[1:] * du_dm[:-1]
    return out


def eps(record) -> np.ndarray:
    """``eps[i,t] = chi[i,i] prod_{j=t+1..i} chi[j,j-1]`` for ``i >= t``, else 0: ``[T, T, N, ...]`` (SPEC E4)."""
    diag, sub = chi_diag(record), chi_sub(record)
    T = diag.shape[0]
    out = np.zeros((T,) + diag.shape, dtype=diag.dtype)
    for t in range(T):
        chain = np.ones_like(diag[0])
        for i in range(t, T):
            if i > t:
                chain = chain * sub[i]
            out[i, t] = diag[i] * chain
    return out


def stbp_from_eps(grad_s: np.ndarray, record) -> np.ndarray:
    """``dL/dm_t = sum_{i >= t} dL/ds_i eps[i,t]`` (SPEC E4) for an upstream gradient ``grad_s: [T, N, ...]``."""
    e = eps(record)
    return np.einsum("it...,i...->t...", e, np.asarray(grad_s, dtype=e.dtype))


def online_from_stbp(grad_m_stbp: np.ndarray, record: HDLIFRecord) -> np.ndarray:
    """SPEC E6': the online gradient ``chi[t,t] * (dL/dm_t)_STBP``, element by element (HD-LIF only).

    Holds for any upstream gradients: where the neuron fired ``u_t = theta_t`` is a
    constant, so every ``eps[i,t]`` with ``i > t`` vanishes; elsewhere both are 0.
    """
    _check(record, (HDLIFRecord,))
    return chi_diag(record) * np.asarray(grad_m_stbp)


def e6_ratio(record) -> np.ndarray:
    """SPEC E6: ``chi[t,t] / (chi[t,t] + sum_{i>t} eps[i,t])``, ``[T, N, ...]`` (``0/0 -> 0``).

    With the same upstream gradient at every step, online = ratio * STBP.
    """
    e = eps(record)
    diag = np.einsum("tt...->t...", e)
    total = e.sum(axis=0)  # sum_{i >= t} eps[i, t]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total != 0, diag / np.where(total != 0, total, 1), 0).astype(diag.dtype)
