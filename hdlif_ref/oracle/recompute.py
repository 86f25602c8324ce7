"""Every output and gradient field of a golden case, recomputed from its inputs with this library (float64).

:func:`recompute` is what the writer stores and what ``--check`` compares a file
against. It refuses any attr value it does not implement (``ValueError`` naming
the attr, the value and what is implemented) instead of computing something
else. The numbers come from the library's public pieces: the fused neuron
functions (``hdlif_seq``, ...), the autograd ops of the layers (``ops.conv2d``,
``ops.batch_norm``, ...), the weight-code kernels, ``MemBNHDLIF.reparameterize``
and, for whole networks, :mod:`.model_case`.

``L = sum(grad_y * y)`` for layer kinds (``grad_s`` for v1 neuron kinds): the
gradient of an input ``x`` is ``backward(grad_y)`` accumulated on ``x``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .schema import KIND_TABLE, KINDS, AttrError, resolve_attrs

_DEFAULT_THETA = 1.0


def recompute(kind: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Every output and gradient field of a case of ``kind``, from its ``inputs`` (float64).

    Parameters
    ----------
    kind : str
        One of :data:`hdlif_ref.oracle.schema.KINDS` (SPEC sections 6 and 7).
    inputs : dict
        Input name -> array (``"I"``, ``"grad_s"``, ``"x"``, ``"w"``, ...; model cases also
        ``"params/<state_dict key>"`` and ``"buffers/<key>"``). Synonyms of SPEC section 7
        (``bn_weight`` for ``bn_gamma``, ...) are accepted.
    attrs : dict, optional
        The case's settings (``reset``, ``gamma``, ``bn_eps``, ``stride``, ``mode``, ...);
        synonyms accepted (``bn_mode``/``mode``, ``train``/``training``, ``tri``/``triangle``).
        For ``model``: ``arch``, ``T``, ``online_steps``, and ``params_after`` (a dict of the
        SGD steps' ``lr``, ``momentum``, ``weight_decay``, ``mode``) when ``params_after/``
        is wanted.

    Returns
    -------
    dict mapping field paths (``"outputs/s"``, ``"grads_stbp/I"``, ``"grads/w"``, ...) to arrays.

    Raises
    ------
    ValueError
        Unknown kind, missing input, or an attr value this library does not implement
        (e.g. ``bn_mode="eval"`` for the v1 ``membn`` kind).
    """
    fields, _ = recompute_with_margins(kind, inputs, attrs)
    return fields


def recompute_with_margins(kind: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any] | None = None):
    """:func:`recompute` and, for spike-like fields, how far each element was from its decision point
    (``"outputs/s"``: ``m - theta``; ``spike_quant``: ``x/s`` minus the nearest rounding boundary)."""
    if kind not in KIND_TABLE:
        raise ValueError(f"recompute: kind={kind!r}; allowed: {', '.join(KINDS)}")
    spec = KIND_TABLE[kind]
    attrs = dict(attrs or {})
    sgd = attrs.pop("params_after", None)
    settings = resolve_attrs(spec, attrs, ignore=("kind",) + (("T",) if spec.needs_T else ()))
    if settings.problems:
        raise ValueError(f"recompute({kind!r}): " + "; ".join(settings.problems))
    synonyms = spec.field_synonyms
    x = {}
    for key, value in inputs.items():
        name = synonyms.get(key, key)
        if name in x:
            raise ValueError(f"recompute({kind!r}): input {name!r} given twice (as {name!r} and a synonym)")
        x[name] = value if key.startswith(("params/", "buffers/")) or name == "y" else \
            np.ascontiguousarray(value, dtype=np.float64)
    missing = [n for n in spec.inputs if n not in x]
    if missing:
        raise ValueError(f"recompute({kind!r}): input {', '.join(missing)} missing; kind {kind!r} needs "
                         f"{', '.join(spec.inputs)}" + (f" (optional: {', '.join(spec.optional_inputs)})"
                                                        if spec.optional_inputs else ""))
    values = settings.values
    if kind == "model":
        from .model_case import recompute_model

        return recompute_model(x, values, sgd), {}
    return _LAYER_FUNCS[kind](x, values)


# ----------------------------------------------------------------------------- v1 neuron kinds
def _per_step(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A ``[T]`` or ``[T, C]`` parameter broadcast against ``[T, N, C, ...]``."""
    if p.ndim == 1:
        return p.reshape((-1,) + (1,) * (len(shape) - 1))
    return p.reshape((p.shape[0], 1, p.shape[1]) + (1,) * (len(shape) - 3))


def _check_neuron_shapes(kind: str, x: dict[str, np.ndarray], names: tuple[str, ...], tc_only=()) -> None:
    I = x["I"]
    min_ndim = 3 if kind == "membn" else 2
    if I.ndim < min_ndim or I.size == 0:
        raise ValueError(f"input I has shape {I.shape}; expected a non-empty [T, N, {'C, ' if kind == 'membn' else ''}"
                         f"...]")
    T, C = I.shape[0], (I.shape[2] if I.ndim >= 3 else None)
    if x["grad_s"].shape != I.shape:
        raise ValueError(f"input grad_s has shape {x['grad_s'].shape}; expected that of I, {I.shape}")
    for name in names:
        shape = x[name].shape
        allowed = [(T,)] + ([(T, C)] if C is not None else [])
        if shape not in allowed:
            raise ValueError(f"input {name} has shape {shape}; allowed: {' or '.join(map(str, allowed))} "
                             f"([T] or [T, C], C = dim 2 of I)")


def _neuron(kind: str, x: dict[str, np.ndarray], a: dict[str, Any]):
    from .. import neurons
    from ..autograd import Tensor

    spec = KIND_TABLE[kind]
    names = tuple(n for n in spec.inputs if n != "grad_s")
    _check_neuron_shapes(kind, x, names[1:])
    x = dict(x)
    if kind == "membn":  # bn_gamma / bn_beta [T]: one value for every channel
        C = x["I"].shape[2]
        for name in ("bn_gamma", "bn_beta"):
            if x[name].ndim == 1:
                x[name] = np.ascontiguousarray(np.repeat(x[name][:, None], C, axis=1))
    reset, gamma, bn_eps = a.get("reset", "hard"), a.get("gamma", 1.0), a.get("bn_eps", 1e-5)

    def run(mode: str):
        leaves = {k: Tensor(x[k].copy(), requires_grad=True) for k in names}
        if kind == "hdlif":
            s = neurons.hdlif_seq(leaves["I"], leaves["lam"], leaves["theta"], gradient=mode)
        elif kind == "lif":
            s = neurons.lif_seq(leaves["I"], leaves["lam"], leaves["theta"], reset=reset, gamma=gamma, gradient=mode)
        elif kind == "parallel":  # stateless: STBP and online gradients are the same thing
            s = neurons.parallel_hdlif_seq(leaves["I"], leaves["theta"])
        else:
            s = neurons.membn_hdlif_seq(*(leaves[k] for k in names), training=True, bn_eps=bn_eps, gradient=mode)
        s.backward(x["grad_s"])
        grads = {}
        for k in names:
            g = leaves[k].grad if leaves[k].grad is not None else np.zeros_like(x[k])
            grads[k] = np.asarray(g, dtype=np.float64)
        return np.asarray(s.data, dtype=np.float64), grads

    s, stbp = run("stbp")
    _, online = run("online")
    out = {"outputs/s": s}
    if kind == "hdlif":
        rec = neurons.hdlif_record(x["I"], x["lam"], x["theta"])
    elif kind == "lif":
        rec = neurons.lif_record(x["I"], x["lam"], x["theta"], reset=reset, gamma=gamma)
    elif kind == "membn":
        rec = neurons.membn_hdlif_record(*(x[k] for k in names), training=True, bn_eps=bn_eps)
    if kind != "parallel":
        out["outputs/u"], out["outputs/m"] = rec.u, rec.m
    if kind == "membn":
        out["outputs/mhat"] = rec.mhat
    out.update({f"grads_stbp/{k}": v for k, v in stbp.items()})
    out.update({f"grads_online/{k}": v for k, v in online.items()})
    theta = _per_step(x["theta"], x["I"].shape)
    before = rec.mhat if kind == "membn" else (x["I"] if kind == "parallel" else rec.m)
    return out, {"outputs/s": before - theta}


def _neuron_entry(kind):
    def run(x, a):
        per_layer = {k: v.ndim == 1 for k, v in x.items() if k in ("bn_gamma", "bn_beta")}
        out, margins = _neuron(kind, x, a)
        for group in ("grads_stbp", "grads_online"):  # a [T] BN affine was repeated over channels: sum back
            for name, was_per_layer in per_layer.items():
                key = f"{group}/{name}"
                if was_per_layer and out[key].ndim == 2:
                    out[key] = out[key].sum(axis=1)
        return out, margins
    return run


# ----------------------------------------------------------------------------- v2 layer kinds
def _leaf(value: np.ndarray):
    from ..autograd import Tensor

    return Tensor(np.array(value, dtype=np.float64), requires_grad=True)


def _grad(leaf, like: np.ndarray) -> np.ndarray:
    g = leaf.grad
    return np.zeros(np.shape(like)) if g is None else np.asarray(g, dtype=np.float64).reshape(np.shape(like))


def _check_grad_y(x: dict, shape: tuple[int, ...]) -> None:
    if x["grad_y"].shape != tuple(shape):
        raise ValueError(f"input grad_y has shape {x['grad_y'].shape}; expected that of y, {tuple(shape)}")


def _ndim(name: str, value: np.ndarray, allowed: tuple[int, ...], layout: str) -> None:
    if value.ndim not in allowed or value.size == 0:
        raise ValueError(f"input {name} has shape {value.shape}; expected a non-empty {layout}")


_WEIGHT_MODE = {"float": "fp32", "binary": "binary", "ternary": "ternary"}


def _synapse(kind: str, x: dict, a: dict):
    from ..autograd import ops
    from ..autograd.ops import quantize_weight

    if kind == "conv2d":
        _ndim("x", x["x"], (4,), "[N, Cin, H, W]")
        _ndim("w", x["w"], (4,), "[Cout, Cin, kh, kw]")
    else:
        _ndim("x", x["x"], (2,), "[N, F]")
        _ndim("w", x["w"], (2,), "[O, F]")
    has_b = "b" in x
    if has_b and x["b"].shape != (x["w"].shape[0],):
        raise ValueError(f"input b has shape {x['b'].shape}; expected ({x['w'].shape[0]},) (one per output)")
    leaves = {k: _leaf(x[k]) for k in ("x", "w", "b") if k in x}
    wq = quantize_weight(leaves["w"], _WEIGHT_MODE[a["weight"]])
    if kind == "conv2d":
        y = ops.conv2d(leaves["x"], wq, leaves.get("b"), stride=a["stride"], padding=a["padding"])
    else:
        y = ops.linear(leaves["x"], wq, leaves.get("b"))
    _check_grad_y(x, y.shape)
    y.backward(x["grad_y"])
    out = {"outputs/y": np.asarray(y.data, dtype=np.float64)}
    out.update({f"grads/{k}": _grad(v, x[k]) for k, v in leaves.items()})
    return out, {}


def _batchnorm(x: dict, a: dict):
    from ..autograd import ops

    data = x["x"]
    if data.ndim < 2 or data.size == 0:
        raise ValueError(f"input x has shape {data.shape}; expected a non-empty [N, C, ...]")
    C = data.shape[1]
    for name in ("gamma", "beta", "running_mean", "running_var"):
        if x[name].shape != (C,):
            raise ValueError(f"input {name} has shape {x[name].shape}; expected ({C},) (C = dim 1 of x)")
    if (x["running_var"] < 0).any():
        raise ValueError("input running_var holds negative values")
    _check_grad_y(x, data.shape)
    shaped = data if data.ndim in (2, 4) else data.reshape(data.shape[0], C, -1, 1)
    leaves = {"x": _leaf(shaped), "gamma": _leaf(x["gamma"]), "beta": _leaf(x["beta"])}
    rm, rv = x["running_mean"].copy(), x["running_var"].copy()
    train = a["mode"] == "train"
    y = ops.batch_norm(leaves["x"], leaves["gamma"], leaves["beta"], rm, rv, training=train,
                       momentum=a["momentum"], eps=a["eps"])
    y.backward(x["grad_y"].reshape(shaped.shape))
    out = {"outputs/y": np.asarray(y.data, dtype=np.float64).reshape(data.shape)}
    if train:
        out["outputs/running_mean_new"], out["outputs/running_var_new"] = rm, rv
    out.update({f"grads/{k}": _grad(v, x[k]) for k, v in leaves.items()})
    axes = (0,) + tuple(range(2, data.ndim))
    if train:  # the running statistics do not enter y
        out["grads/running_mean"] = np.zeros(C)
        out["grads/running_var"] = np.zeros(C)
    else:  # y = gamma (x - mean) / sqrt(var + eps) + beta, by hand
        shape = (1, C) + (1,) * (data.ndim - 2)
        inv = 1.0 / np.sqrt(x["running_var"] + a["eps"])
        g = x["grad_y"] * x["gamma"].reshape(shape)
        out["grads/running_mean"] = -(g * inv.reshape(shape)).sum(axis=axes)
        out["grads/running_var"] = (g * (data - x["running_mean"].reshape(shape))).sum(axis=axes) * (-0.5 * inv ** 3)
    return out, {}


def _pool(kind: str, x: dict, a: dict):
    from ..autograd import ops

    _ndim("x", x["x"], (4,), "[N, C, H, W]")
    leaf = _leaf(x["x"])
    stride = a["stride"] if a["stride"] is not None else a["kernel"]
    fn = ops.avg_pool2d if kind == "avgpool" else ops.max_pool2d
    y = fn(leaf, a["kernel"], stride, a["padding"])
    _check_grad_y(x, y.shape)
    y.backward(x["grad_y"])
    return {"outputs/y": np.asarray(y.data, dtype=np.float64), "grads/x": _grad(leaf, x["x"])}, {}


def _weight_quant(x: dict, a: dict):
    from ..autograd.ops import quantize_weight
    from ..kernels.weight_codes import binary_codes, ternary_codes

    w = x["w"]
    if w.ndim < 1 or w.size == 0:
        raise ValueError(f"input w has shape {w.shape}; expected a non-empty [Cout, ...]")
    _check_grad_y(x, w.shape)
    leaf = _leaf(w)
    y = quantize_weight(leaf, a["mode"])
    y.backward(x["grad_y"])
    codes, scale = (binary_codes if a["mode"] == "binary" else ternary_codes)(w)
    flat = np.abs(w.reshape(w.shape[0], -1))
    margins = {}
    if a["mode"] == "ternary":  # how far each |w| was from its channel's delta (E12's strict '>')
        delta = 0.7 * flat.mean(axis=1)
        margins["outputs/codes"] = (flat - delta[:, None]).reshape(w.shape)
    return {"outputs/y": np.asarray(y.data, dtype=np.float64), "outputs/codes": codes.astype(np.int8),
            "outputs/scale": np.asarray(scale, dtype=np.float64), "grads/w": _grad(leaf, w)}, margins


def _spike_quant(x: dict, a: dict):
    from .. import neurons

    s = x["s"]
    if s.shape not in ((), (1,)):
        raise ValueError(f"input s has shape {s.shape}; expected a scalar (shape () or (1,))")
    if not float(s.reshape(())) > 0:
        raise ValueError(f"input s = {float(s.reshape(()))!r} must be > 0 (SPEC E13 divides by it)")
    _check_grad_y(x, x["x"].shape)
    leaves = {"x": _leaf(x["x"]), "s": _leaf(s)}
    y = neurons.spike_quantize(leaves["x"], leaves["s"], a["bits"])
    y.backward(x["grad_y"])
    v = x["x"] / float(s.reshape(()))
    levels = np.clip(np.round(v), 0, 2 ** a["bits"] - 1).astype(np.int64)
    boundary = v - (np.floor(v) + 0.5)  # distance from the nearest rounding boundary k + 1/2
    return ({"outputs/y": np.asarray(y.data, dtype=np.float64), "outputs/levels": levels,
             "grads/x": _grad(leaves["x"], x["x"]), "grads/s": _grad(leaves["s"], s)},
            {"outputs/y": boundary, "outputs/levels": boundary})


def _check_kernel(name: str, k: np.ndarray) -> None:
    if k.ndim != 1 or k.size % 2 == 0:
        raise ValueError(f"input {name} has shape {k.shape}; expected [K] with K odd")


def _seca(kind: str, x: dict, a: dict):
    from ..autograd import ops
    from ..layers.seca import global_average, map_channels, scale_channels

    post = "I" if kind == "seca1" else "I_post"
    _ndim(post, x[post], (2, 4), "[N, C, H, W] or [N, C]")
    _check_kernel("k", x["k"])
    leaves = {post: _leaf(x[post]), "k": _leaf(x["k"])}
    logits = ops.conv1d_channels(global_average(leaves[post]), leaves["k"])
    if kind == "seca2":
        _ndim("I_pre", x["I_pre"], (2, 4), "[N, C', H', W'] or [N, C']")
        _check_kernel("k_pre", x["k_pre"])
        if x["I_pre"].shape[0] != x[post].shape[0]:
            raise ValueError(f"inputs I_pre {x['I_pre'].shape} and I_post {x[post].shape} differ in N")
        leaves["I_pre"], leaves["k_pre"] = _leaf(x["I_pre"]), _leaf(x["k_pre"])
        pre = map_channels(global_average(leaves["I_pre"]), x[post].shape[1])
        logits = logits + ops.conv1d_channels(pre, leaves["k_pre"])
    y = scale_channels(leaves[post], ops.sigmoid(logits))
    _check_grad_y(x, y.shape)
    y.backward(x["grad_y"])
    out = {"outputs/y": np.asarray(y.data, dtype=np.float64)}
    out.update({f"grads/{k}": _grad(v, x[k]) for k, v in leaves.items()})
    return out, {}


def _membn_fold(x: dict, a: dict):
    from .. import neurons
    from ..autograd import no_grad

    I = x["I"]
    if I.ndim < 3 or I.size == 0:
        raise ValueError(f"input I has shape {I.shape}; expected a non-empty [T, N, C, ...]")
    T, C = I.shape[0], I.shape[2]
    theta = x.get("theta", np.full(T, _DEFAULT_THETA))
    for name, value in dict(x, theta=theta).items():
        if name != "I" and value.shape not in ((T,), (T, C)):
            raise ValueError(f"input {name} has shape {value.shape}; allowed: ({T},) or ({T}, {C})")
    if (x["running_var"] < 0).any():
        raise ValueError("input running_var holds negative values")
    neuron = neurons.MemBNHDLIF(T, C, per_channel=True, eps=a["bn_eps"], dtype=np.float64)
    tc = lambda v: np.broadcast_to(v if v.ndim == 2 else v[:, None], (T, C))  # noqa: E731
    for name, value in (("lam", x["lam"]), ("theta", theta), ("alpha", x["alpha"]), ("beta", x["beta"]),
                        ("bn_weight", x["bn_gamma"]), ("bn_bias", x["bn_beta"])):
        getattr(neuron, name).data[...] = tc(value)
    neuron.running_mean[...] = tc(x["running_mean"])
    neuron.running_var[...] = tc(x["running_var"])
    neuron.eval()
    with no_grad():
        s_unfolded = np.asarray(neuron.forward_seq(I).data, dtype=np.float64)
        rep = neuron.reparameterize()
        s_folded = np.asarray(rep.neuron.forward_seq(rep.input(I)).data, dtype=np.float64)
    mhat = neuron.record(I).mhat
    margin = mhat - _per_step(tc(theta).copy(), I.shape)
    return ({"outputs/lamhat": np.asarray(rep.neuron.lam.data, dtype=np.float64),
             "outputs/alpha_star": np.asarray(rep.scale, dtype=np.float64),
             "outputs/beta_star": -np.asarray(rep.bias, dtype=np.float64),
             "outputs/s_unfolded": s_unfolded, "outputs/s_folded": s_folded},
            {"outputs/s_unfolded": margin, "outputs/s_folded": margin})


_LAYER_FUNCS = {
    "hdlif": _neuron_entry("hdlif"), "lif": _neuron_entry("lif"), "parallel": _neuron_entry("parallel"),
    "membn": _neuron_entry("membn"),
    "conv2d": lambda x, a: _synapse("conv2d", x, a), "linear": lambda x, a: _synapse("linear", x, a),
    "batchnorm": _batchnorm,
    "avgpool": lambda x, a: _pool("avgpool", x, a), "maxpool": lambda x, a: _pool("maxpool", x, a),
    "weight_quant": _weight_quant, "spike_quant": _spike_quant,
    "seca1": lambda x, a: _seca("seca1", x, a), "seca2": lambda x, a: _seca("seca2", x, a),
    "membn_fold": _membn_fold,
}

__all__ = ["recompute", "recompute_with_margins", "AttrError"]
