"""``hdlif-ref verify``, the neuron equations E1-E10: each checked by a route other than the code it checks.

Finite differences use ``h = 2^-12`` (E3, E4) on inputs built threshold-side first: every
``m_t`` is either exactly on ``theta_t`` (dyadic values, exact in float64) or at least
``1e-3`` away, and a perturbation only moves ``m`` up (``eps >= 0``), so the difference
quotient is exactly the right derivative (``H(0) = 1``) up to rounding. The central
differences of E4 (parameters), E5 and E9 use inputs kept clear of every kink.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .. import neurons
from ..autograd import Tensor, no_grad
from ..neurons import theory


class Evidence:
    """One row of evidence: ``worst`` is compared with ``tolerance`` (NaN: failed)."""

    __slots__ = ("equation", "statement", "worst", "tolerance", "note")

    def __init__(self, equation: str, statement: str, worst: float, tolerance: float, note: str = ""):
        self.equation, self.statement, self.worst, self.tolerance, self.note = (equation, statement, float(worst),
                                                                                tolerance, note)


H = 2.0 ** -12
_LAMS = np.array([0.25, 0.375, 0.5, 0.625, 0.75, 0.875])
_THETAS = np.array([0.5, 0.75, 1.0, 1.25, 1.5])


# ----------------------------------------------------------------------------- HD-LIF data
def _gaps(rng: np.random.Generator, signs: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """``m_t - theta_t`` for each element: 0 (exact), dyadic ``k/16``, random ``>= 1e-3``, or far (100..1000)."""
    T, E = signs.shape
    dyadic = rng.integers(1, 25, (T, E)) / 16.0
    random = rng.uniform(1e-3, 2.0, (T, E))
    far = rng.uniform(100.0, 1000.0, (T, E))
    size = np.where(kind == 0, dyadic, np.where(kind == 2, far, random))
    return signs * size


def hdlif_inputs(rng: np.random.Generator, T: int = 6, elements: int = 256, lam=None, theta=None, signs=None):
    """``(I, lam, theta, signs)``: inputs built from the sides of the threshold, ``I: [T, elements]``.

    ``signs`` (``[T, elements]``): -1 below, +1 above, 0 exactly on ``theta_t``; drawn when not
    given, as are ``lam``, ``theta`` (dyadic ``[T]``). The magnitudes ``|m_t - theta_t|`` are new
    draws on every call, so the same ``signs`` give different inputs with the same sides.
    """
    lam = rng.choice(_LAMS, T) if lam is None else lam
    theta = rng.choice(_THETAS, T) if theta is None else theta
    kind = np.arange(elements) % 4 * np.ones((T, 1), dtype=int)  # 0 exact/dyadic, 1 and 3 random, 2 far
    if signs is None:
        signs = rng.choice([-1.0, 1.0], (T, elements))
        signs[(kind == 0) & (rng.random((T, elements)) < 0.4)] = 0.0
    m = theta[:, None] + _gaps(rng, signs, kind)
    I, u = np.empty((T, elements)), np.zeros(elements)
    for t in range(T):
        I[t] = m[t] - lam[t] * u  # so that m_t = lam_t u_{t-1} + I_t (exact for the dyadic elements)
        u = np.minimum(m[t], theta[t])  # SPEC E2
    return I, lam, theta, signs


def eps_by_differences(I, lam, theta) -> np.ndarray:
    """``eps[i,t] = d s*_i / d I_t`` (``= d s*_i / d m_t``, since ``dm_t/dI_t = 1``) by forward differences."""
    T = I.shape[0]
    s = neurons.hdlif_record(I, lam, theta).s
    out = np.zeros((T,) + I.shape)
    for t in range(T):
        Ip = I.copy()
        Ip[t] += H
        step = Ip[t] - I[t]  # the perturbation really applied (exact)
        out[:, t] = (neurons.hdlif_record(Ip, lam, theta).s - s) / step
    return out


def _grads(fn: Callable, I, lam, theta, g, gradient: str) -> np.ndarray:
    leaf = Tensor(I.copy(), requires_grad=True)
    fn(leaf, lam, theta, gradient=gradient).backward(g)
    return leaf.grad


def _rel(a, b) -> float:
    """``max |a - b| / (1 + |b|)``: absolute near 0, relative for large values."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / (1.0 + np.abs(b)), initial=0.0)) if a.shape == b.shape else math.inf


# ----------------------------------------------------------------------------- checks
def check_e3(rng):
    I, lam, theta, _ = hdlif_inputs(rng)
    rec = neurons.hdlif_record(I, lam, theta)
    diag, sub = np.zeros_like(I), np.zeros_like(I)
    for t in range(I.shape[0]):
        Ip = I.copy()
        Ip[t] += H
        step = Ip[t] - I[t]
        recp = neurons.hdlif_record(Ip, lam, theta)
        diag[t] = (recp.s[t] - rec.s[t]) / step
        if t + 1 < I.shape[0]:
            sub[t + 1] = (recp.m[t + 1] - rec.m[t + 1]) / step
    worst = max(_rel(theory.chi_diag(rec), diag), _rel(theory.chi_sub(rec), sub))
    on = int((rec.m == theta[:, None]).sum())
    return [Evidence("E3", "chi[t,t] = H(m-theta), chi[t,t-1] = lam (1-H), H(0) = 1: finite differences",
                        worst, 1e-6, note=f"{on} points with m = theta exactly")]


def check_e4(rng):
    I, lam, theta, signs = hdlif_inputs(rng)
    rec = neurons.hdlif_record(I, lam, theta)
    numeric = eps_by_differences(I, lam, theta)
    product = theory.eps(rec)
    g = rng.normal(size=I.shape)
    stbp = _grads(neurons.hdlif_seq, I, lam, theta, g, "stbp")
    rows = [Evidence("E4", "eps[i,t] = chi[i,i] prod chi[j,j-1] = d s*_i/d m_t by finite differences",
                        _rel(product, numeric), 1e-6),
            Evidence("E4", "fused STBP backward: dL/dm_t = sum_i dL/ds*_i eps[i,t]",
                        _rel(stbp, np.einsum("it...,i...->t...", product, g)), 1e-10)]
    # separability (Theorem 4.2): new magnitudes, same threshold sides -> the same eps, made of lam products
    I2, _, _, _ = hdlif_inputs(rng, I.shape[0], I.shape[1], lam, theta, signs)
    numeric2 = eps_by_differences(I2, lam, theta)
    T = I.shape[0]
    chain = np.ones((T, T))
    for t in range(T):
        for i in range(t + 1, T):
            chain[i, t] = chain[i - 1, t] * lam[i]
    chain = np.tril(chain)[:, :, None]
    membership = np.minimum(np.abs(numeric), np.abs(numeric - chain))  # each entry 0 or prod_{j=t+1..i} lam_j
    moved = float(np.max(np.abs(I2 - I)))
    rows.append(Evidence("E4 sep.", "same threshold sides, other values: same eps, entries 0 or prod lam_j",
                            max(_rel(numeric2, numeric), float(membership.max())), 1e-6,
                            note=f"inputs moved by up to {moved:.3g}"))
    return rows


def check_e6(rng):
    I, lam, theta, _ = hdlif_inputs(rng, T=8)
    rec = neurons.hdlif_record(I, lam, theta)
    same = np.broadcast_to(rng.normal(size=I.shape[1:]), I.shape).copy()  # dL/ds*_i = g for every i
    stbp = _grads(neurons.hdlif_seq, I, lam, theta, same, "stbp")
    online = _grads(neurons.hdlif_seq, I, lam, theta, same, "online")
    ratio = theory.e6_ratio(rec)
    outside = float(np.max(np.maximum(-ratio, ratio - 1.0), initial=0.0))  # 0 <= ratio <= 1: same sign
    rows = [Evidence("E6", "dL/ds*_i = g for all i: online = r STBP, 0 <= r <= 1 (E6 factor)",
                        max(_rel(online, ratio * stbp), outside), 1e-10)]
    g = rng.normal(size=I.shape)
    stbp = _grads(neurons.hdlif_seq, I, lam, theta, g, "stbp")
    online = _grads(neurons.hdlif_seq, I, lam, theta, g, "online")
    rows.append(Evidence("E6'", "any dL/ds*: online dL/dm_t = chi[t,t] * STBP dL/dm_t, elementwise",
                            _rel(online, theory.chi_diag(rec) * stbp), 1e-10))
    return rows


def check_e10(rng):
    T, C = 4, 3
    neuron = neurons.MemBNHDLIF(T, channels=C, per_channel=True, dtype=np.float64)
    for p, value in ((neuron.lam, rng.uniform(0.2, 0.9, (T, C))), (neuron.theta, rng.uniform(0.5, 1.5, (T, C))),
                     (neuron.alpha, rng.uniform(0.5, 1.5, (T, C))), (neuron.beta, rng.normal(0.5, 0.3, (T, C))),
                     (neuron.bn_weight, rng.uniform(0.5, 1.5, (T, C))), (neuron.bn_bias, rng.normal(0, 0.3, (T, C)))):
        p.data[...] = value
    neuron.running_mean[...] = rng.normal(0.3, 0.3, (T, C))
    neuron.running_var[...] = rng.uniform(0.2, 2.0, (T, C))
    neuron.eval()
    I = rng.normal(0.5, 1.0, (T, 16, C, 4, 4))
    with no_grad():
        s = neuron.forward_seq(I).data
        rep = neuron.reparameterize()
        s_rep = rep.neuron.forward_seq(rep.input(I)).data
    u, u_rep = neuron.record(I).u, rep.neuron.record(rep.input(I)).u
    fired = float(np.mean(s > 0))
    return [Evidence("E10", "Mem-BN eval = re-parameterized HD-LIF (lamhat, Ihat): same s*, u",
                        max(_rel(s_rep, s), _rel(u_rep, u)), 1e-9, note=f"{fired:.0%} of s* > 0")]


# ----------------------------------------------------------------------------- loops written from the spec
def _at(p: np.ndarray, t: int, idx: tuple[int, ...]) -> float:
    """``p[t]`` (``[T]``) or ``p[t, c]`` (``[T, C]``, ``c = idx[1]``, the channel of a step ``[N, C, ...]``)."""
    return float(p[t] if p.ndim == 1 else p[t, idx[1]])


def hdlif_loop(I, lam, theta):
    """E1-E2 in Python floats, element by element: ``(m, s, u)``."""
    m_out, s_out, u_out = (np.zeros(I.shape) for _ in range(3))
    for idx in np.ndindex(I.shape[1:]):
        u = 0.0
        for t in range(I.shape[0]):
            m = _at(lam, t, idx) * u + float(I[(t,) + idx])  # E1
            th = _at(theta, t, idx)
            s, u = (m - th, th) if m >= th else (0.0, m)  # E2, H(0) = 1
            m_out[(t,) + idx], s_out[(t,) + idx], u_out[(t,) + idx] = m, s, u
    return m_out, s_out, u_out


def lif_loops(I, lam, theta, g, reset, gamma, online):
    """E7 forward and reverse mode in Python floats: ``(s, u, dI, dlam, dtheta)`` for ``L = sum g s``; the reset
    is differentiated through the surrogate ``sg = max(gamma - |m - theta|, 0) / gamma^2``."""
    T = I.shape[0]
    s_out, u_out, dI = np.zeros(I.shape), np.zeros(I.shape), np.zeros(I.shape)
    dlam, dtheta = np.zeros(lam.shape), np.zeros(theta.shape)
    add = lambda acc, p, t, idx, v: acc.__setitem__((t,) if p.ndim == 1 else (t, idx[1]),  # noqa: E731
                                                    acc[(t,) if p.ndim == 1 else (t, idx[1])] + v)
    for idx in np.ndindex(I.shape[1:]):
        m, s, u_prev, u = [0.0] * T, [0.0] * T, [0.0] * T, 0.0
        for t in range(T):
            th = _at(theta, t, idx)
            u_prev[t] = u
            m[t] = _at(lam, t, idx) * u + float(I[(t,) + idx])
            s[t] = 1.0 if m[t] >= th else 0.0
            u = m[t] * (1.0 - s[t]) if reset == "hard" else m[t] - th * s[t]
            s_out[(t,) + idx], u_out[(t,) + idx] = s[t], u
        du = 0.0
        for t in reversed(range(T)):
            th = _at(theta, t, idx)
            sg = max(gamma - abs(m[t] - th), 0.0) / gamma ** 2
            gs = float(g[(t,) + idx])
            if reset == "hard":
                dm = gs * sg + du * ((1.0 - s[t]) - m[t] * sg)
                add(dtheta, theta, t, idx, -gs * sg + du * m[t] * sg)
            else:
                dm = gs * sg + du * (1.0 - th * sg)
                add(dtheta, theta, t, idx, -gs * sg + du * (-s[t] + th * sg))
            add(dlam, lam, t, idx, dm * u_prev[t])
            dI[(t,) + idx] = dm
            du = 0.0 if online else dm * _at(lam, t, idx)
    return s_out, u_out, dI, dlam, dtheta


def _central(f: Callable[[np.ndarray], float], x: np.ndarray, h: float) -> np.ndarray:
    out = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        a, b = x.copy(), x.copy()
        a[idx] += h
        b[idx] -= h
        out[idx] = (f(a) - f(b)) / (2 * h)
    return out


def _clear_inputs(rng, T=5, elements=48):
    """HD-LIF inputs with every ``1e-2 <= |m_t - theta_t| <= 1.5``: central differences with ``h = 1e-6`` cross
    no kink (a leak moves ``m`` by ``h |u| < 1e-5``), and ``|L|`` stays small enough for their rounding."""
    lam, theta = rng.choice(_LAMS, T), rng.choice(_THETAS, T)
    gaps = rng.choice([-1.0, 1.0], (T, elements)) * rng.uniform(1e-2, 1.5, (T, elements))
    I, u = np.empty((T, elements)), np.zeros(elements)
    for t in range(T):
        m = theta[t] + gaps[t]
        I[t] = m - lam[t] * u
        u = np.minimum(m, theta[t])
    return I, lam, theta


def _leaf_grads(fn, arrays: dict, g, **kwargs) -> dict:
    leaves = {k: Tensor(v.copy(), requires_grad=True) for k, v in arrays.items()}
    fn(*leaves.values(), **kwargs).backward(g)
    return {k: (np.zeros_like(arrays[k]) if v.grad is None else v.grad) for k, v in leaves.items()}


# ----------------------------------------------------------------------------- E1, E2, E4 (parameters), E5
def check_e1_e2(rng):
    I, lam, theta, _ = hdlif_inputs(rng, T=6, elements=48)
    C = 4
    cases = [(I, lam, theta), (I.reshape(6, -1, C), rng.choice(_LAMS, (6, C)), rng.choice(_THETAS, (6, C)))]
    worst_m = worst_su = 0.0
    on = 0
    for x, l, th in cases:
        rec = neurons.hdlif_record(x, l, th)
        m, s, u = hdlif_loop(x, l, th)
        with no_grad():
            fused = neurons.hdlif_seq(x, l, th).data
        worst_m = max(worst_m, _rel(rec.m, m))
        worst_su = max(worst_su, _rel(rec.s, s), _rel(rec.u, u), _rel(fused, s))
        if th.ndim == 1:
            on += int((m == th[:, None]).sum())
    return [Evidence("E1", "m_t = lam_t u_{t-1} + I_t, u_0 = 0 ([T] and [T, C] params): record vs a Python loop",
                     worst_m, 1e-12),
            Evidence("E2", "s* = relu(m - theta), u = m - s* = min(m, theta): hdlif_seq / record vs the loop",
                     worst_su, 1e-12, note=f"{on} points with m = theta exactly")]


def check_e4_params(rng):
    I, lam, theta = _clear_inputs(rng)
    C = 4
    rows = []
    worst = 0.0
    for x, l, th in ((I, lam, theta), (I.reshape(I.shape[0], -1, C), np.repeat(lam[:, None], C, 1),
                                       np.repeat(theta[:, None], C, 1))):
        g = rng.normal(size=x.shape)
        grads = _leaf_grads(lambda a, b, c: neurons.hdlif_seq(a, b, c, gradient="stbp"),
                            {"I": x, "lam": l, "theta": th}, g)
        loss = lambda L_, T_: float(np.sum(g * neurons.hdlif_record(x, L_, T_).s))  # noqa: E731
        worst = max(worst, _rel(grads["lam"], _central(lambda v: loss(v, th), l, 1e-6)),
                    _rel(grads["theta"], _central(lambda v: loss(l, v), th, 1e-6)))
    rows.append(Evidence("E4", "fused STBP backward: dL/dlam, dL/dtheta ([T] and [T, C]) = central differences "
                               "of L", worst, 1e-6))
    return rows


def check_e5(rng):
    """Online (E5): the gradient of L with every ``u_{t-1}`` frozen at its recorded value."""
    I, lam, theta = _clear_inputs(rng)
    g = rng.normal(size=I.shape)
    u_fixed = neurons.hdlif_record(I, lam, theta).u

    def loss(x, l, th):
        u_prev = np.concatenate([np.zeros((1,) + x.shape[1:]), u_fixed[:-1]])
        m = l[:, None] * u_prev + x  # u_{t-1} a constant: the temporal path is cut
        return float(np.sum(g * np.maximum(m - th[:, None], 0.0)))

    grads = _leaf_grads(lambda a, b, c: neurons.hdlif_seq(a, b, c, gradient="online"),
                        {"I": I, "lam": lam, "theta": theta}, g)
    worst = max(_rel(grads["I"], _central(lambda v: loss(v, lam, theta), I, 1e-6)),
                _rel(grads["lam"], _central(lambda v: loss(I, v, theta), lam, 1e-6)),
                _rel(grads["theta"], _central(lambda v: loss(I, lam, v), theta, 1e-6)))
    return [Evidence("E5", "fused online backward dL/dI, dL/dlam, dL/dtheta = central differences of L with "
                           "every u_{t-1} frozen", worst, 1e-6)]


# ----------------------------------------------------------------------------- E7, E8, E9
def check_e7(rng):
    worst_f = worst_b = 0.0
    for reset, gamma, per_channel in (("hard", 1.0, False), ("soft", 0.5, False), ("hard", 2.0, True)):
        T, N, C = 4, 3, 4
        I = rng.normal(0.7, 1.0, (T, N, C))
        shape = (T, C) if per_channel else (T,)
        lam, theta = rng.choice(_LAMS, shape), rng.choice(_THETAS, shape)
        g = rng.normal(size=I.shape)
        s, u, *_ = lif_loops(I, lam, theta, g, reset, gamma, False)
        rec = neurons.lif_record(I, lam, theta, reset=reset, gamma=gamma)
        with no_grad():
            fused = neurons.lif_seq(I, lam, theta, reset=reset, gamma=gamma).data
        worst_f = max(worst_f, _rel(rec.s, s), _rel(rec.u, u), _rel(fused, s))
        for online in (False, True):
            _, _, dI, dlam, dtheta = lif_loops(I, lam, theta, g, reset, gamma, online)
            grads = _leaf_grads(lambda a, b, c: neurons.lif_seq(a, b, c, reset=reset, gamma=gamma,
                                                                gradient="online" if online else "stbp"),
                                {"I": I, "lam": lam, "theta": theta}, g)
            worst_b = max(worst_b, _rel(grads["I"], dI), _rel(grads["lam"], dlam), _rel(grads["theta"], dtheta))
    return [Evidence("E7", "LIF s = H(m - theta), hard and soft reset: lif_seq / record vs a Python loop", worst_f,
                     1e-12),
            Evidence("E7", "LIF backward, triangle surrogate max(gamma - |m - theta|, 0)/gamma^2 (gamma 0.5, 1, 2), "
                           "STBP and online: vs a reverse loop", worst_b, 1e-10)]


def check_e8(rng):
    T, N, C = 4, 3, 8
    theta = rng.choice(_THETAS, (T, C))
    I = rng.normal(0.8, 1.0, (T, N, C))
    ties = rng.random(I.shape) < 0.3
    I = np.where(ties, np.broadcast_to(theta[:, None, :], I.shape), I)  # I = theta exactly: s* = 0, gradient 1
    g = rng.normal(size=I.shape)
    fired = (I >= theta[:, None, :]).astype(float)
    grads = _leaf_grads(neurons.parallel_hdlif_seq, {"I": I, "theta": theta}, g)
    with no_grad():
        s = neurons.parallel_hdlif_seq(I, theta).data
    loop_s = np.array([max(float(v) - float(th), 0.0) for v, th in zip(I.reshape(-1), np.broadcast_to(
        theta[:, None, :], I.shape).reshape(-1))]).reshape(I.shape)
    worst_b = max(_rel(grads["I"], g * fired), _rel(grads["theta"], -(g * fired).sum(axis=1)))
    return [Evidence("E8", "Parallel s* = relu(I - theta), no state: vs a loop", _rel(s, loop_s), 1e-12),
            Evidence("E8", "Parallel backward dI = g H(I - theta) with H(0) = 1, dtheta = -sum g H",
                     worst_b, 1e-12, note=f"{int(ties.sum())} points with I = theta exactly")]


def _membn_numpy(x: dict, u_fixed=None, eps: float = 1e-5):
    """E9 vectorized from the formulas (biased batch variance): ``(mhat, s, u)``; ``u_fixed``: the ``u_{t-1}``
    to use (online)."""
    I = x["I"]
    T = I.shape[0]
    axes = (0,) + tuple(range(2, I.ndim - 1))
    shape_c = (1, -1) + (1,) * (I.ndim - 3)
    pc = lambda p, t: p[t] if p.ndim == 1 else p[t].reshape(shape_c)  # noqa: E731
    u = np.zeros(I.shape[1:])
    mh, ss, us = [], [], []
    for t in range(T):
        u_prev = u if u_fixed is None else (np.zeros(I.shape[1:]) if t == 0 else u_fixed[t - 1])
        m = pc(x["lam"], t) * u_prev + I[t]
        mean, var = m.mean(axis=axes, keepdims=True), m.var(axis=axes, keepdims=True)
        bn = x["bn_gamma"][t].reshape(shape_c) * (m - mean) / np.sqrt(var + eps) + x["bn_beta"][t].reshape(shape_c)
        mhat = pc(x["alpha"], t) * m + pc(x["beta"], t) * bn
        s = np.where(mhat >= pc(x["theta"], t), mhat - pc(x["theta"], t), 0.0)
        u = mhat - s
        mh.append(mhat), ss.append(s), us.append(u)
    return np.stack(mh), np.stack(ss), np.stack(us)


def check_e9(rng):
    T, N, C, S = 3, 6, 3, 2
    names = ("I", "lam", "theta", "alpha", "beta", "bn_gamma", "bn_beta")
    while True:  # every |mhat - theta| >= 1e-4: central differences cross no kink
        x = {"I": rng.normal(0.5, 1.0, (T, N, C, S)), "lam": rng.choice(_LAMS, (T, C)),
             "theta": rng.choice(_THETAS, T), "alpha": rng.uniform(0.7, 1.3, T), "beta": rng.uniform(0.2, 0.6, (T, C)),
             "bn_gamma": rng.uniform(0.6, 1.4, (T, C)), "bn_beta": rng.normal(0, 0.3, (T, C))}
        mhat, s, u = _membn_numpy(x)
        if np.abs(mhat - x["theta"][:, None, None, None]).min() >= 1e-4:
            break
    rec = neurons.membn_hdlif_record(*(x[k] for k in names), training=True, bn_eps=1e-5)
    with no_grad():
        fused = neurons.membn_hdlif_seq(*(x[k] for k in names), training=True, bn_eps=1e-5).data
    rows = [Evidence("E9", "Mem-BN mhat = alpha m + beta BN_t(m) (batch mean, biased variance), s*, u: "
                           "membn_hdlif_seq / record vs the formulas",
                     max(_rel(rec.mhat, mhat), _rel(rec.s, s), _rel(rec.u, u), _rel(fused, s)), 1e-10)]
    g = rng.normal(size=x["I"].shape)
    for mode in ("stbp", "online"):
        grads = _leaf_grads(lambda *a: neurons.membn_hdlif_seq(*a, training=True, bn_eps=1e-5, gradient=mode),
                            {k: x[k] for k in names}, g)
        u_fixed = u if mode == "online" else None
        worst = 0.0
        for name in names:
            f = lambda v, name=name: float(np.sum(g * _membn_numpy(dict(x, **{name: v}), u_fixed)[1]))  # noqa: E731
            worst = max(worst, _rel(grads[name], _central(f, x[name], 1e-6)))
        rows.append(Evidence("E9", f"Mem-BN {mode} backward, every input and parameter: central differences",
                             worst, 1e-6))
    return rows
