"""The cases of the golden file (SPEC sections 6-7): deterministic inputs from a seed.

What each case covers is listed in ``docs/golden.md``. Values are float64. Points
that must sit exactly on a decision boundary (``m_t = theta_t``, ``|w| = delta_c``,
``x / s = k + 1/2``, ``|w| = 1``) use dyadic numbers (few mantissa bits), so the
equality holds in any IEEE arithmetic and any summation order, not only in ours;
every other value is kept clear of its boundary, so that rounding in another
implementation cannot flip a spike, a code or a derivative.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np


class CaseSpec(NamedTuple):
    """One case before its outputs are computed."""

    name: str
    kind: str
    attrs: dict[str, Any]
    inputs: dict[str, np.ndarray]
    group_attrs: dict[str, dict[str, Any]] = {}


def make_cases(rng: np.random.Generator, kinds: tuple[str, ...] | None = None) -> list[CaseSpec]:
    """The cases of the default file, in file order; ``kinds``: only those kinds (the others are not
    generated, and the random stream of each case does not depend on the others)."""
    makers = [(name, kind, make) for name, kind, make in _CASES if kinds is None or kind in kinds]
    seeds = {name: int(s) for (name, _, _), s in zip(_CASES, rng.integers(0, 2**63 - 1, len(_CASES)))}
    out = []
    for name, kind, make in makers:
        attrs, inputs, *group = make(np.random.default_rng(seeds[name]))
        out.append(CaseSpec(name, kind, attrs, inputs, group[0] if group else {}))
    return out


# ----------------------------------------------------------------------------- v1 neuron kinds
_LAMS = np.array([0.25, 0.5, 0.625, 0.75, 0.875])  # dyadic: products stay exact
_THETAS = np.array([0.5, 0.75, 1.0, 1.25, 1.5])
_SORTS = ("on", "on", "below", "above", "random", "random", "random", "random")
_MARGIN = 1e-3


def _next_u(kind: str, m: np.ndarray, theta: np.ndarray, reset: str) -> np.ndarray:
    if kind == "hdlif":
        return np.minimum(m, theta)  # SPEC E2
    if kind == "lif":
        fired = m >= theta
        return np.where(fired, 0.0, m) if reset == "hard" else m - theta * fired  # SPEC E7
    return np.zeros_like(m)  # parallel: no state


def neuron_inputs(rng: np.random.Generator, kind: str, shape: tuple[int, ...], per_channel: bool = False,
                  reset: str = "hard", gamma: float = 1.0) -> dict[str, np.ndarray]:
    """``I``, ``lam``, ``theta`` (``[T]``, or ``[T, C]`` with ``per_channel``; C = dim 2), ``grad_s``.

    The last axis cycles through four sorts of elements: ``on`` (dyadic values chosen so that
    ``m_t = theta_t`` exactly at about 70% of the steps), ``below`` / ``above`` (``|I| ~ 100..1000``)
    and ``random`` (kept ``>= 1e-3`` from the threshold, and for LIF from the surrogate's kinks
    ``|m - theta| = gamma``).
    """
    T = shape[0]
    pshape = (T, shape[2]) if per_channel else (T,)
    lam, theta = rng.choice(_LAMS, pshape), rng.choice(_THETAS, pshape)

    def full(p: np.ndarray) -> np.ndarray:  # [T] or [T, C] -> [T, elements]
        lead = (T, 1, shape[2]) if per_channel else (T,)
        return np.broadcast_to(p.reshape(lead + (1,) * (len(shape) - len(lead))), shape).reshape(T, -1)

    lam_f, theta_f = full(lam), full(theta)
    sort = np.array([_SORTS[j % len(_SORTS)] for j in range(shape[-1])])
    flat = math.prod(shape[1:])
    col = np.broadcast_to(sort, shape[1:]).reshape(flat)
    I, u = np.zeros((T, flat)), np.zeros(flat)
    for t in range(T):
        lam_t = lam_f[t] if kind != "parallel" else np.zeros(flat)
        on = (col == "on") & (rng.random(flat) < 0.7)
        I[t] = np.where(col == "on", rng.integers(-16, 41, flat) / 16, 0.0)  # multiples of 1/16
        I[t] = np.where(on, theta_f[t] - lam_t * u, I[t])  # m_t = theta_t exactly
        far = rng.uniform(100.0, 1000.0, flat)
        I[t] = np.where(col == "below", -far, np.where(col == "above", far, I[t]))
        rand = col == "random"
        I[t, rand] = rng.normal(0.7, 1.0, rand.sum())
        while True:  # redraw random elements whose m_t lands too close to a kink (only m_t moves)
            gap = lam_t * u + I[t] - theta_f[t]
            close = rand & ((np.abs(gap) < _MARGIN) | ((kind == "lif") & (np.abs(np.abs(gap) - gamma) < _MARGIN)))
            if not close.any():
                break
            I[t, close] = rng.normal(0.7, 1.0, close.sum())
        u = _next_u(kind, lam_t * u + I[t], theta_f[t], reset)
    inputs = {"I": I.reshape(shape), "lam": lam, "theta": theta, "grad_s": rng.normal(size=shape)}
    if kind == "parallel":
        del inputs["lam"]
    return inputs


def membn_inputs(rng: np.random.Generator, shape: tuple[int, ...], per_channel: bool = False) -> dict[str, np.ndarray]:
    """Mem-BN HD-LIF (SPEC E9) inputs, redrawn until every ``|mhat_t - theta_t| >= 1e-4``."""
    from .. import neurons

    T, C = shape[0], shape[2]
    pshape = (T, C) if per_channel else (T,)
    while True:
        x = {"I": rng.normal(0.5, 1.0, shape), "lam": rng.choice(_LAMS, pshape), "theta": rng.choice(_THETAS, pshape),
             "alpha": 1.0 + 0.25 * rng.normal(size=T), "beta": 0.5 + 0.25 * rng.normal(size=T),
             "bn_gamma": 1.0 + 0.2 * rng.normal(size=(T, C)), "bn_beta": 0.2 * rng.normal(size=(T, C)),
             "grad_s": rng.normal(size=shape)}
        names = ("I", "lam", "theta", "alpha", "beta", "bn_gamma", "bn_beta")
        rec = neurons.membn_hdlif_record(*(x[k] for k in names), training=True, bn_eps=1e-5)
        theta = x["theta"].reshape((T,) + (1,) * (len(shape) - 1)) if not per_channel else \
            x["theta"].reshape((T, 1, C) + (1,) * (len(shape) - 3))
        if np.abs(rec.mhat - theta).min() >= 1e-4:
            return x


_LIF = {"reset": "hard", "surrogate": "triangle", "gamma": 1.0}


def _v1(kind, shape, per_channel=False, **lif):
    def make(rng):
        attrs = {} if kind != "lif" else {**_LIF, **lif}
        inputs = neuron_inputs(rng, kind, shape, per_channel, attrs.get("reset", "hard"), attrs.get("gamma", 1.0))
        return attrs, inputs
    return make


def _membn(shape, per_channel=False):
    return lambda rng: ({"bn_eps": 1e-5, "bn_mode": "training"}, membn_inputs(rng, shape, per_channel))


# ----------------------------------------------------------------------------- v2 layer kinds
def _away(rng, shape, low=-1.0, high=1.0):
    return rng.uniform(low, high, shape)


def _conv(x_shape, w_shape, stride, padding, weight, bias):
    def make(rng):
        w = rng.normal(0.0, 0.5, w_shape)
        if weight == "ternary":  # keep every |w| clear of its channel's delta (the on-delta case is weight_quant's)
            w = _clear_of_delta(rng, w)
        if weight == "binary":  # some |w| > 1 (no gradient) and exactly 1 (gradient: the mask includes 1)
            flat = w.reshape(-1)
            flat[0], flat[1], flat[2] = 1.0, -1.0, 1.5
            flat[3] = -2.0
        x = rng.normal(0.0, 1.0, x_shape)
        inputs = {"x": x, "w": w}
        if bias:
            inputs["b"] = rng.normal(0.0, 0.5, w_shape[0])
        inputs["grad_y"] = rng.normal(size=_conv_out(x_shape, w_shape, stride, padding))
        return {"stride": stride, "padding": padding, "weight": weight}, inputs
    return make


def _conv_out(x_shape, w_shape, stride, padding):
    s = (stride, stride) if isinstance(stride, int) else stride
    p = (padding, padding) if isinstance(padding, int) else padding
    return (x_shape[0], w_shape[0], (x_shape[2] + 2 * p[0] - w_shape[2]) // s[0] + 1,
            (x_shape[3] + 2 * p[1] - w_shape[3]) // s[1] + 1)


def _clear_of_delta(rng, w, margin=1e-3):
    """Redraw weights within ``margin`` of their channel's ternary threshold ``0.7 mean |w|``."""
    w = w.copy()
    for _ in range(100):
        flat = np.abs(w.reshape(w.shape[0], -1))
        close = np.abs(flat - 0.7 * flat.mean(axis=1, keepdims=True)) < margin
        if not close.any():
            return w
        view = w.reshape(w.shape[0], -1)
        view[close] = rng.normal(0.0, 0.5, close.sum())
    raise RuntimeError("could not draw ternary weights clear of delta")  # pragma: no cover


def _linear(n, f, o, weight, bias):
    def make(rng):
        w = rng.normal(0.0, 0.5, (o, f))
        if weight == "ternary":
            w = _clear_of_delta(rng, w)
        if weight == "binary":
            w[0, 0], w[1, 1], w[0, 2] = 1.0, 1.25, -1.0
        inputs = {"x": rng.normal(size=(n, f)), "w": w}
        if bias:
            inputs["b"] = rng.normal(0.0, 0.5, o)
        inputs["grad_y"] = rng.normal(size=(n, o))
        return {"weight": weight}, inputs
    return make


def _bn(shape, mode, momentum):
    def make(rng):
        C = shape[1]
        inputs = {"x": rng.normal(0.3, 1.5, shape), "gamma": rng.uniform(0.5, 1.5, C), "beta": rng.normal(0, 0.5, C),
                  "running_mean": rng.normal(0, 0.5, C), "running_var": rng.uniform(0.5, 2.0, C),
                  "grad_y": rng.normal(size=shape)}
        return {"eps": 1e-5, "momentum": momentum, "mode": mode}, inputs
    return make


def _pool(kind, shape, kernel, stride, padding, ties):
    def make(rng):
        if ties:  # small integers: many windows hold their maximum twice (PyTorch: the first one gets the gradient)
            x = rng.integers(-3, 3, shape).astype(np.float64)
            x[..., 0, :2] = 2.0  # a tie inside the first window of every channel
            if padding:
                x[0, 0] = -rng.integers(1, 4, shape[2:])  # all negative: padding (-inf) must never win
        else:
            x = rng.normal(size=shape)
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        s = k if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
        p = (padding, padding) if isinstance(padding, int) else padding
        out = (shape[0], shape[1], (shape[2] + 2 * p[0] - k[0]) // s[0] + 1, (shape[3] + 2 * p[1] - k[1]) // s[1] + 1)
        attrs = {"kernel": kernel, "padding": padding}
        if stride is not None:
            attrs["stride"] = stride
        return attrs, {"x": x, "grad_y": rng.normal(size=out)}
    return make


def _weight_quant(mode):
    def make(rng):
        w = rng.normal(0.0, 0.5, (4, 2, 2, 2))
        w[0] = 0.0  # an all-zero channel: a_c = 0 (binary codes +1, ternary codes 0)
        # |w| = [0.4375, 0.4375, 1, 0.25, 0.875, 0.5, 1, 0.5]: mean 0.625 exactly (dyadic, any summation
        # order) and 0.7 * 0.625 rounds to exactly 0.4375: two weights sit exactly on delta_c (E12's strict
        # '>' drops them), two sit exactly on |w| = 1 (E11's mask keeps their gradient)
        on_delta = np.array([0.4375, -0.4375, 1.0, -0.25, 0.875, 0.5, -1.0, 0.5])
        w[1] = on_delta.reshape(2, 2, 2)
        w[2] = (-rng.permutation(on_delta)).reshape(2, 2, 2)
        w[3] = _clear_of_delta(rng, w[3:4])[0] if mode == "ternary" else w[3]
        if mode == "binary":
            w[3, 0, 0, 0] = 1.5  # |w| > 1: no gradient
        return {"mode": mode}, {"w": w, "grad_y": rng.normal(size=w.shape)}
    return make


def _spike_quant(bits, step):
    def make(rng):
        qmax = 2 ** bits - 1
        k = np.arange(-1, qmax + 1)
        boundaries = (k + 0.5) * step  # every rounding boundary, exact (dyadic step)
        levels = np.arange(0, qmax + 1) * step  # every level exactly, the top one included
        outside = np.array([-3 * step, -step, -0.25 * step, (qmax + 0.75) * step, (qmax + 3) * step])
        v = rng.uniform(-1.0, qmax + 2.0, 24)
        v = np.where(np.abs(v - np.floor(v) - 0.5) < 1e-3, v + 0.1, v)  # random ones clear of boundaries
        x = np.concatenate([boundaries, levels, outside, v * step, [0.0]])
        x = x.reshape(1, -1) if x.size % 2 else x.reshape(2, -1)
        return {"bits": bits}, {"x": x, "s": np.array(step), "grad_y": rng.normal(size=x.shape)}
    return make


def _seca1(shape, K):
    def make(rng):
        return {}, {"I": rng.normal(0.2, 1.0, shape), "k": rng.uniform(-1, 1, K), "grad_y": rng.normal(size=shape)}
    return make


def _seca2(post, pre, K, K_pre):
    def make(rng):
        return {}, {"I_post": rng.normal(0.2, 1.0, post), "I_pre": rng.normal(0.5, 1.0, pre),
                    "k": rng.uniform(-1, 1, K), "k_pre": rng.uniform(-1, 1, K_pre), "grad_y": rng.normal(size=post)}
    return make


def _membn_fold(shape, per_channel, with_theta):
    def make(rng):
        from .recompute import recompute_with_margins

        T, C = shape[0], shape[2]
        ps = (T, C) if per_channel else (T,)
        for _ in range(100):
            x = {"lam": rng.choice(_LAMS, ps), "alpha": rng.uniform(0.6, 1.4, ps), "beta": rng.normal(0.5, 0.3, ps),
                 "bn_gamma": rng.uniform(0.5, 1.5, (T, C)), "bn_beta": rng.normal(0, 0.3, (T, C)),
                 "running_mean": rng.normal(0.3, 0.3, (T, C)), "running_var": rng.uniform(0.3, 2.0, (T, C)),
                 "I": rng.normal(0.6, 1.0, shape)}
            if with_theta:
                x["theta"] = rng.choice(_THETAS, ps)
            _, margins = recompute_with_margins("membn_fold", x, {"bn_eps": 1e-5})
            if np.abs(margins["outputs/s_unfolded"]).min() >= 1e-6:
                return {"bn_eps": 1e-5}, x
        raise RuntimeError("could not draw a membn_fold case clear of the threshold")  # pragma: no cover
    return make


def _model(which, sgd_mode, online_steps):
    def make(rng):
        from .model_case import model_case

        return model_case(rng, which, sgd_mode, online_steps)
    return make


_CASES = [
    # v1 neuron kinds (SPEC section 6), [T] parameters
    ("hdlif_T1", "hdlif", _v1("hdlif", (1, 3, 8))),
    ("hdlif_T2", "hdlif", _v1("hdlif", (2, 3, 8))),
    ("hdlif_T4_conv", "hdlif", _v1("hdlif", (4, 2, 3, 2, 4))),
    ("hdlif_T8", "hdlif", _v1("hdlif", (8, 3, 8))),
    ("lif_T4_hard_triangle", "lif", _v1("lif", (4, 3, 8))),
    ("parallel_T4", "parallel", _v1("parallel", (4, 2, 3, 4))),
    ("membn_T4", "membn", _membn((4, 4, 3, 2, 2))),
    # v1 kinds with per-channel [T, C] parameters, soft reset, gamma != 1 (SPEC E1, E7)
    ("hdlif_T4_per_channel", "hdlif", _v1("hdlif", (4, 2, 3, 8), per_channel=True)),
    ("lif_T4_soft_gamma05", "lif", _v1("lif", (4, 3, 8), reset="soft", gamma=0.5)),
    ("lif_T3_hard_gamma2_per_channel", "lif", _v1("lif", (3, 2, 3, 8), per_channel=True, gamma=2.0)),
    ("parallel_T4_per_channel", "parallel", _v1("parallel", (4, 2, 3, 8), per_channel=True)),
    ("membn_T3_per_channel", "membn", _membn((3, 5, 2, 3), per_channel=True)),
    # v2 layer kinds (SPEC section 7)
    ("conv2d_k3_s1_p1_float_bias", "conv2d", _conv((2, 3, 5, 5), (4, 3, 3, 3), 1, 1, "float", True)),
    ("conv2d_k3_s2_p0_ternary_odd", "conv2d", _conv((2, 3, 7, 6), (4, 3, 3, 3), 2, 0, "ternary", False)),
    ("conv2d_k3_s2_p10_binary", "conv2d", _conv((2, 2, 6, 7), (3, 2, 3, 3), 2, [1, 0], "binary", True)),
    ("conv2d_k1_s1_p0_float", "conv2d", _conv((2, 4, 5, 3), (2, 4, 1, 1), 1, 0, "float", True)),
    ("conv2d_k1_s2_p1_ternary", "conv2d", _conv((1, 3, 5, 5), (3, 3, 1, 1), 2, 1, "ternary", False)),
    ("conv2d_k3_s1_p01_ternary_bias", "conv2d", _conv((2, 2, 5, 4), (3, 2, 3, 3), 1, [0, 1], "ternary", True)),
    ("linear_float_bias", "linear", _linear(3, 5, 4, "float", True)),
    ("linear_ternary", "linear", _linear(3, 6, 4, "ternary", False)),
    ("linear_binary_bias", "linear", _linear(2, 5, 3, "binary", True)),
    ("batchnorm_train_4d", "batchnorm", _bn((3, 4, 3, 2), "train", 0.1)),
    ("batchnorm_eval_4d", "batchnorm", _bn((3, 4, 3, 2), "eval", 0.1)),
    ("batchnorm_train_2d_momentum", "batchnorm", _bn((5, 3), "train", 1.0 - 0.9 ** 4)),
    ("avgpool_k2_odd", "avgpool", _pool("avgpool", (2, 3, 6, 5), 2, None, 0, False)),
    ("avgpool_k3_s2_p1", "avgpool", _pool("avgpool", (2, 2, 7, 7), 3, 2, 1, False)),
    ("maxpool_k2_ties", "maxpool", _pool("maxpool", (2, 2, 6, 6), 2, None, 0, True)),
    ("maxpool_k3_s2_p1_ties", "maxpool", _pool("maxpool", (2, 2, 7, 5), 3, 2, 1, True)),
    ("weight_quant_ternary", "weight_quant", _weight_quant("ternary")),
    ("weight_quant_binary", "weight_quant", _weight_quant("binary")),
    ("spike_quant_4bit", "spike_quant", _spike_quant(4, 0.25)),
    ("spike_quant_2bit", "spike_quant", _spike_quant(2, 0.375)),
    ("spike_quant_1bit", "spike_quant", _spike_quant(1, 0.5)),
    ("seca1_C8_K3", "seca1", _seca1((2, 8, 3, 3), 3)),
    ("seca1_C5_K5_flat", "seca1", _seca1((3, 5), 5)),
    ("seca2_average_8to4", "seca2", _seca2((2, 4, 3, 3), (2, 8, 4, 4), 3, 3)),
    ("seca2_repeat_4to8", "seca2", _seca2((2, 8, 2, 2), (2, 4, 3, 3), 3, 1)),
    ("membn_fold_T4_per_channel", "membn_fold", _membn_fold((4, 3, 3, 2, 2), True, True)),
    ("membn_fold_T2_default_theta", "membn_fold", _membn_fold((2, 4, 2), False, False)),
    # whole networks (SPEC section 7, kind model): T = 4, batch 4
    ("model_vgg_small", "model", _model("vgg", "stbp", [2, 4])),
    ("model_resnet_small", "model", _model("resnet", "online", [1, 3, 4])),
]
