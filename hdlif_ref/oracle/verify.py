"""The paper's equations checked on seeded random data: what ``hdlif-ref verify`` prints.

Every check computes its evidence by a route other than the code it checks:

* E3: finite differences of the recorded forward vs ``theory.chi_diag`` / ``chi_sub``;
* E4: ``eps[i,t]`` from finite differences vs the product formula (``theory.eps``), the
  fused STBP backward vs ``sum_i dL/ds*_i eps[i,t]``, and separability (another input with
  the same threshold sides has the same ``eps``, every entry ``0`` or ``prod lam_j``);
* E6 / E6': the fused online backward vs the E6 factor / ``chi[t,t]`` times the fused STBP backward;
* E10: Mem-BN in eval mode vs its re-parameterized vanilla HD-LIF;
* E13: the quantizer and its LSQ gradients vs the definition, in Python scalars;
* E18-E20: the builders' memory and NOPs vs the paper (SPEC section 5), SOPs vs a brute-force
  count, energy vs hand arithmetic.

Finite differences use ``h = 2^-12`` on inputs built threshold-side first: every
``m_t`` is either exactly on ``theta_t`` (dyadic values, exact in float64) or at least
``1e-3`` away, and a perturbation only moves ``m`` up (``eps >= 0``), so the
difference quotient is exactly the right derivative (``H(0) = 1``) up to rounding
(``|m| <= ~2000``: ``ulp / h < 1e-9``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import neurons
from ..autograd import Tensor, no_grad
from ..neurons import theory

H = 2.0 ** -12
_LAMS = np.array([0.25, 0.375, 0.5, 0.625, 0.75, 0.875])
_THETAS = np.array([0.5, 0.75, 1.0, 1.25, 1.5])


@dataclass
class CheckResult:
    """One row of the table: ``passed`` iff ``worst <= tolerance`` (NaN: failed)."""

    equation: str
    statement: str
    worst: float
    tolerance: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.worst <= self.tolerance)


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
    return [CheckResult("E3", "chi[t,t] = H(m-theta), chi[t,t-1] = lam (1-H), H(0) = 1: finite differences",
                        worst, 1e-6, note=f"{on} points with m = theta exactly")]


def check_e4(rng):
    I, lam, theta, signs = hdlif_inputs(rng)
    rec = neurons.hdlif_record(I, lam, theta)
    numeric = eps_by_differences(I, lam, theta)
    product = theory.eps(rec)
    g = rng.normal(size=I.shape)
    stbp = _grads(neurons.hdlif_seq, I, lam, theta, g, "stbp")
    rows = [CheckResult("E4", "eps[i,t] = chi[i,i] prod chi[j,j-1] = d s*_i/d m_t by finite differences",
                        _rel(product, numeric), 1e-6),
            CheckResult("E4", "fused STBP backward: dL/dm_t = sum_i dL/ds*_i eps[i,t]",
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
    rows.append(CheckResult("E4 sep.", "same threshold sides, other values: same eps, entries 0 or prod lam_j",
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
    rows = [CheckResult("E6", "dL/ds*_i = g for all i: online = r STBP, 0 <= r <= 1 (E6 factor)",
                        max(_rel(online, ratio * stbp), outside), 1e-10)]
    g = rng.normal(size=I.shape)
    stbp = _grads(neurons.hdlif_seq, I, lam, theta, g, "stbp")
    online = _grads(neurons.hdlif_seq, I, lam, theta, g, "online")
    rows.append(CheckResult("E6'", "any dL/ds*: online dL/dm_t = chi[t,t] * STBP dL/dm_t, elementwise",
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
    return [CheckResult("E10", "Mem-BN eval = re-parameterized HD-LIF (lamhat, Ihat): same s*, u",
                        max(_rel(s_rep, s), _rel(u_rep, u)), 1e-9, note=f"{fired:.0%} of s* > 0")]


def check_e13(rng):
    """Forward and LSQ backward against the definition, one Python scalar at a time."""
    worst_fwd = worst_bwd = 0.0
    for bits, step in ((3, 0.25), (4, float(rng.uniform(0.05, 0.3))), (1, 0.5)):
        qmax = 2 ** bits - 1
        x = rng.uniform(-0.5, step * qmax + 0.5, 200)
        if step == 0.25 or step == 0.5:  # dyadic: ties (k + 1/2) s, the ends 0 and qmax s are exact
            ends = [0.0, qmax * step, -step, (qmax + 1) * step]
            x = np.concatenate([x, (np.arange(-1, qmax + 1) + 0.5) * step, ends])
        g = rng.normal(size=x.shape)
        xt, st = Tensor(x.copy(), requires_grad=True), Tensor(np.array(step), requires_grad=True)
        q = neurons.spike_quantize(xt, st, bits)
        q.backward(g)
        ref_q, ref_dx, ref_ds = np.empty_like(x), np.empty_like(x), 0.0
        for k, (xi, gi) in enumerate(zip(x.tolist(), g.tolist())):
            level = min(max(round(xi / step), 0), qmax)  # Python's round: half to even, as numpy.round
            ref_q[k] = step * level
            inside = 0.0 <= xi <= step * qmax
            ref_dx[k] = gi if inside else 0.0
            ref_ds += gi * ((round(xi / step) - xi / step) if inside else (qmax if xi > step * qmax else 0.0))
        worst_fwd = max(worst_fwd, _rel(q.data, ref_q))
        worst_bwd = max(worst_bwd, _rel(xt.grad, ref_dx), _rel(st.grad, ref_ds))
    return [CheckResult("E13", "Q = s clip(round_half_even(x/s), 0, 2^n-1), incl. ties and ends",
                        worst_fwd, 1e-12),
            CheckResult("E13", "LSQ backward dQ/dx, dQ/ds = the definition (inside/above/below)", worst_bwd, 1e-10)]


#: SPEC section 5 gives no tolerance; these are ours (docs/metrics.md explains the differences).
MEMORY_TOLERANCE = {"fp32": 0.01, "ternary": 0.03}
NOPS_TOLERANCE = 0.03


def check_e18(rng):
    from ..models import spiking_resnet
    from ..deploy.metrics import parameter_memory

    paper = {("fp32", 10): 44.66, ("fp32", 100): 44.84, ("ternary", 10): 2.82, ("ternary", 100): 3.00}
    rows = []
    for mode, label in (("fp32", "fp32"), ("ternary", "ternary")):
        errors, ours = [], []
        for classes in (10, 100):
            mb = parameter_memory(spiking_resnet(18, num_classes=classes, weight_mode=mode, bn_stats="shared",
                                                 rng=np.random.default_rng(0)))["megabytes"]  # the paper's BN
            ours.append(f"{mb:.2f}")
            errors.append(abs(mb / paper[mode, classes] - 1))
        rows.append(CheckResult("E18", f"ResNet-18 {label} MB, CIFAR-10/100: {'/'.join(ours)} vs paper "
                                       f"{paper[mode, 10]:.2f}/{paper[mode, 100]:.2f}",
                                max(errors), MEMORY_TOLERANCE[mode]))
    return rows


def brute_force_sops(x: np.ndarray, conv) -> int:
    """Every (non-zero input, synapse) pair of a convolution, by walking outputs and kernel taps."""
    n, cin, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out_per_group, in_per_group = conv.out_channels // conv.groups, cin // conv.groups
    count = 0
    for co in range(conv.out_channels):
        group = co // out_per_group
        block = x[:, group * in_per_group:(group + 1) * in_per_group] != 0
        for i in range(oh):
            for j in range(ow):
                for a in range(kh):
                    for b in range(kw):
                        y, z = i * sh - ph + a, j * sw - pw + b
                        if 0 <= y < h and 0 <= z < w:
                            count += int(block[:, :, y, z].sum())
    return count


def check_e19(rng):
    from ..models import spiking_resnet
    from ..layers.synapses import Conv2d
    from ..deploy.metrics import count_nops, synapse_ops

    worst = 0
    for cin, cout, groups, k, stride, pad, size in ((2, 4, 1, 3, 1, 1, 7), (4, 4, 2, 3, 2, 0, 8),
                                                    (3, 6, 3, 2, 1, 1, 5), (2, 3, 1, 5, 2, 2, 9)):
        conv = Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups, rng=np.random.default_rng(0))
        x = (rng.random((2, cin, size, size)) < 0.3) * rng.integers(1, 16, (2, cin, size, size))
        worst = max(worst, abs(synapse_ops(conv, x.astype(np.float32), "s")[0] - brute_force_sops(x, conv)))
    rows = [CheckResult("E19", "conv SOPs (border fan-out) = brute-force count, 4 small convs", float(worst), 0.0)]
    paper = {0.0: 6.59, 0.5: 4.62}
    errors, ours = [], []
    for fraction in (0.0, 0.5):
        model = spiking_resnet(18, num_classes=100, parallel_fraction=fraction, rng=np.random.default_rng(0))
        nops = count_nops(model, (3, 32, 32), T=4).nops / 1e6
        ours.append(f"{nops:.2f}")
        errors.append(abs(nops / paper[fraction] - 1))
    rows.append(CheckResult("E19", f"NOPs ResNet-18 T=4, HD-LIF/50% Parallel: {'/'.join(ours)} M vs "
                                   "6.59/4.62", max(errors), NOPS_TOLERANCE))
    return rows


def check_e20(rng):
    from ..deploy.metrics import OpCounts, energy, energy_45nm

    mj = energy_45nm(sops=273.02e6) * 1e3
    hand = 273.02e6 * 0.9 * 1e-12 * 1e3  # = 0.245718 mJ
    counts = OpCounts(*rng.uniform(1e5, 1e8, 4))
    formula = (counts.sops * 0.9 + counts.macs * 4.6 + counts.nop_mul * 3.7 + counts.nop_add * 0.9) * 1e-12
    paper_rounding = 0.0 if round(mj, 2) == 0.25 else 1.0  # the paper prints 0.25 mJ
    worst = max(abs(mj / hand - 1), abs(energy(counts) / formula - 1), paper_rounding)
    return [CheckResult("E20", f"273.02 M SOPs x 0.9 pJ = {mj:.4f} mJ (paper 0.25); E20 formula", worst, 1e-12)]


CHECKS: tuple[Callable, ...] = (check_e3, check_e4, check_e6, check_e10, check_e13, check_e18, check_e19, check_e20)


def run_checks(seed: int = 0, only: tuple[str, ...] | None = None) -> list[CheckResult]:
    """Every check (or those of the equations in ``only``, e.g. ``("E4", "E13")``), each with its own
    random stream from ``seed``; a check that raises is a failed row."""
    names = {check.__name__.replace("check_", "").upper(): check for check in CHECKS}
    if only is not None:
        unknown = [name for name in only if name.upper() not in names]
        if unknown:
            raise ValueError(f"verify: unknown equation {', '.join(unknown)}; allowed: {', '.join(names)} "
                             f"(E6 includes E6')")
    results = []
    for index, (name, check) in enumerate(names.items()):
        if only is not None and name not in {o.upper() for o in only}:
            continue
        rng = np.random.default_rng([seed, index])
        try:
            results.extend(check(rng))
        except Exception as exc:  # noqa: BLE001 - a broken equation must show as FAIL, not stop the table
            results.append(CheckResult(name, f"the check raised {type(exc).__name__}: {exc}", math.nan, 0.0))
    return results


def format_table(results: list[CheckResult]) -> list[str]:
    """The table ``hdlif-ref verify`` prints, and a summary line."""
    width = max(len(r.statement) for r in results)
    lines = [f"{'equation':<8}  {'statement':<{width}}  {'worst error':>11}  {'tolerance':>9}  result"]
    for r in results:
        note = f"  ({r.note})" if r.note else ""
        lines.append(f"{r.equation:<8}  {r.statement:<{width}}  {r.worst:>11.3g}  {r.tolerance:>9.3g}  "
                     f"{'PASS' if r.passed else 'FAIL'}{note}")
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results)} checks: {len(results) - failed} PASS, {failed} FAIL")
    return lines
