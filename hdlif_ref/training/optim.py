"""Optimizers (SGD, Adam, AdamW), gradient-norm clipping and the default parameter groups.

The update equations are those of ``torch.optim`` (single-tensor form, ``maximize=False``,
``amsgrad=False``), written out in each class docstring; ``docs/training.md`` lists them
together. Every update writes ``param.data`` **in place**, so any other reference to a
parameter's array (a module, a frozen copy's view) sees the new values. Parameters
whose ``.grad is None`` are skipped, as in PyTorch. A parameter with a domain floor
(``Parameter.lower``: the spike step and the threshold) is projected onto it after
its update, ``w <- max(w, lower)``; torch.optim has no such step (it never fires at
the values the cross-check tests use).

State is kept per parameter, keyed by the parameter's index in the order of
``param_groups`` (as PyTorch's ``state_dict``), and ``state_dict()`` holds only
plain dicts and lists of numpy arrays and numbers, so a checkpoint can store it.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable

import numpy as np

from ..autograd import Tensor, enable_grad

# Neuron-family module classes (hdlif_ref.neurons: the neurons, their base class and the
# spike quantizer of E13) whose every parameter is exempt from weight decay; named rather
# than imported so this file does not depend on the neuron package.
NEURON_CLASS_NAMES = ("HDLIF", "LIF", "ParallelHDLIF", "MemBNHDLIF", "SpikingNeuron", "SpikeQuantizer")
# Parameter names exempt from weight decay wherever they live: biases and the neuron
# parameters (SPEC E1 lam/theta, E9 Mem-BN alpha/beta and its BN affine).
NO_DECAY_NAMES = ("bias", "lam", "theta", "alpha", "beta", "bn_weight", "bn_bias")


# --------------------------------------------------------------------------- base class
class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad``, ``state_dict``.

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict
        The parameters, or parameter groups: dicts with a ``"params"`` list and any
        per-group options (``lr``, ``weight_decay``, ...) overriding ``defaults``.
    defaults : dict
        Option values for groups that do not set them.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, "
                            f"got a single Tensor")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------ groups
    def add_param_group(self, group: dict[str, Any]) -> None:
        """Append a group (a dict with ``"params"``); missing options take the defaults."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' entry, got {group!r}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameters must be Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: cannot optimize a non-leaf tensor (the result of an op)")
        present = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in present for p in params):
            raise ValueError(f"{name}: a parameter appears more than once across the parameter groups")
        unknown = set(group) - set(self.defaults) - {"params", "param_names", "initial_lr"}
        if unknown:
            raise ValueError(f"{name}: unknown parameter-group option(s) {sorted(unknown)}; "
                             f"allowed: {sorted(self.defaults)}")
        full = {k: v for k, v in group.items() if k != "params"}
        for key, value in self.defaults.items():
            full.setdefault(key, value)
        if "param_names" in full:
            full["param_names"] = list(full["param_names"])
            if len(full["param_names"]) != len(params):
                raise ValueError(f"{name}: param_names has {len(full['param_names'])} entries for "
                                 f"{len(params)} parameters")
        self._check_options(full)
        full["params"] = params
        self.param_groups.append(full)

    def _check_options(self, group: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming the option for an invalid value (subclasses extend)."""
        name = type(self).__name__
        for key in ("lr", "weight_decay"):
            value = group[key]
            if not _is_real(value) or not value >= 0.0:
                raise ValueError(f"{name}: {key}={value!r} must be a real number >= 0")

    def _indexed_params(self) -> Iterable[tuple[int, dict[str, Any], Tensor]]:
        """(index, group, parameter) in ``state_dict`` order."""
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield index, group, p
                index += 1

    # ------------------------------------------------------------ stepping
    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``.grad = None``)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for index, group, p in self._indexed_params():
            if p.grad is None:
                continue
            grad = np.asarray(p.grad)
            if grad.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}: parameter {index} has shape {p.data.shape} but its "
                                 f".grad has shape {grad.shape}")
            if grad.dtype != p.data.dtype:
                grad = grad.astype(p.data.dtype)
            self._update(p.data, grad, self.state.setdefault(index, {}), group)
            lower = getattr(p, "lower", None)
            if lower is not None:  # projection onto the parameter's domain (Parameter.lower)
                np.maximum(p.data, lower, out=p.data)
        return loss

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError  # pragma: no cover - every optimizer overrides it

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: array | number}}, "param_groups": [options + "params": [indices]]}``.

        Copies: later steps do not change a returned state dict.
        """
        groups, index = [], 0
        for group in self.param_groups:
            packed = {k: _copy_value(v) for k, v in group.items() if k != "params"}
            packed["params"] = list(range(index, index + len(group["params"])))
            index += len(group["params"])
            groups.append(packed)
        state = {i: {k: _copy_value(v) for k, v in s.items()} for i, s in sorted(self.state.items())}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and per-parameter state saved by ``state_dict()`` (arrays copied in).

        The groups must match this optimizer's in number and size (and in
        ``param_names`` when both have them); every saved array must have its
        parameter's shape. Arrays are cast to the parameter's dtype.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state has {len(saved_groups)} parameter group(s), "
                             f"this optimizer {len(self.param_groups)}")
        params: list[Tensor] = []
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: group {g} holds {len(saved['params'])} parameters "
                                 f"in the state, {len(group['params'])} in this optimizer")
            if "param_names" in saved and "param_names" in group and list(saved["param_names"]) != group["param_names"]:
                raise ValueError(f"{name}.load_state_dict: group {g} parameter names differ: state "
                                 f"{list(saved['param_names'])}, optimizer {group['param_names']}")
            params.extend(group["params"])
        new_state: dict[int, dict[str, Any]] = {}
        for key, entries in state_dict["state"].items():
            index = int(key)
            if not 0 <= index < len(params):
                raise ValueError(f"{name}.load_state_dict: state for parameter {index}, but there are only "
                                 f"{len(params)} parameters")
            p = params[index]
            restored = {}
            for k, v in entries.items():
                if isinstance(v, np.ndarray):
                    if v.shape != p.data.shape:
                        raise ValueError(f"{name}.load_state_dict: state {k!r} of parameter {index} has shape "
                                         f"{v.shape}, the parameter {p.data.shape}")
                    v = np.array(v, dtype=p.data.dtype, copy=True)
                restored[k] = _copy_value(v)
            new_state[index] = restored
        merged_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            merged = {**group, **{k: _copy_value(v) for k, v in saved.items() if k != "params"}}
            self._check_options(merged)  # also normalizes (betas back to a tuple)
            merged_groups.append(merged)
        for group, merged in zip(self.param_groups, merged_groups):  # nothing changes before all checks pass
            group.update(merged)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            opts = ", ".join(f"{k}={v!r}" for k, v in group.items() if k not in ("params", "param_names"))
            lines.append(f"  group {i}: {len(group['params'])} parameters, {opts}")
        return "\n".join(lines + [")"])


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _copy_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return list(value)
    return value


# --------------------------------------------------------------------------- SGD
class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay.

    As ``torch.optim.SGD``, for each parameter ``w`` with gradient ``g`` at step ``k``::

        d = g + weight_decay * w
        b = d                                   (k = 1)
        b = momentum * b + (1 - dampening) * d  (k > 1)      only when momentum != 0
        d = d + momentum * b   (nesterov)   or   d = b   (otherwise)
        w = w - lr * d

    The momentum buffer ``b`` is the state ``"momentum_buffer"``. Nesterov needs
    ``momentum > 0`` and ``dampening == 0``.
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov,
                                      weight_decay=weight_decay, dampening=dampening))

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        for key in ("momentum", "dampening"):
            if not _is_real(group[key]) or not group[key] >= 0.0:
                raise ValueError(f"SGD: {key}={group[key]!r} must be a real number >= 0")
        if not isinstance(group["nesterov"], (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov={group['nesterov']!r} must be a bool")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening == 0 "
                             f"(got momentum={group['momentum']!r}, dampening={group['dampening']!r})")

    def _update(self, w, g, state, group):
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        d = g + wd * w if wd != 0 else g
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(d, copy=True)
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * d
            d = d + momentum * buf if group["nesterov"] else buf
        w -= lr * d


# --------------------------------------------------------------------------- Adam / AdamW
class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with L2 weight decay added to the gradient, as ``torch.optim.Adam``.

    For each parameter ``w`` with gradient ``g``, at its ``k``-th update (state ``"step"``)::

        d = g + weight_decay * w
        m = beta1 * m + (1 - beta1) * d                (state "exp_avg", starts at 0)
        v = beta2 * v + (1 - beta2) * d * d            (state "exp_avg_sq", starts at 0)
        w = w - (lr / (1 - beta1**k)) * m / (sqrt(v) / sqrt(1 - beta2**k) + eps)
    """

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        name = type(self).__name__
        betas = group["betas"]
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or not all(_is_real(b) and 0.0 <= b < 1.0 for b in betas)):
            raise ValueError(f"{name}: betas={betas!r} must be two real numbers in [0, 1)")
        group["betas"] = tuple(betas)
        if not _is_real(group["eps"]) or not group["eps"] >= 0.0:
            raise ValueError(f"{name}: eps={group['eps']!r} must be a real number >= 0")

    def _update(self, w, g, state, group):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(w)
            state["exp_avg_sq"] = np.zeros_like(w)
        state["step"] += 1
        k = state["step"]
        if wd != 0:
            if self._decoupled:
                w *= 1 - lr * wd  # AdamW: decay the weight itself, outside the adaptive scaling
            else:
                g = g + wd * w
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        bias_correction1 = 1 - beta1 ** k
        bias_correction2 = 1 - beta2 ** k
        denom = np.sqrt(v) / math.sqrt(bias_correction2) + eps
        w -= (lr / bias_correction1) * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as ``torch.optim.AdamW``.

    The same moments as ``Adam`` on the raw gradient ``g`` (no L2 term), and the
    weight shrinks first: ``w = w * (1 - lr * weight_decay)``, then the Adam step.
    Default ``weight_decay=0.01`` (PyTorch's).
    """

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# --------------------------------------------------------------------------- helpers
def no_weight_decay(module: Any, name: str, param: Tensor) -> bool:
    """The default rule: True when parameter ``name`` of ``module`` must get no weight decay.

    A parameter is exempt when any of these holds:

    1. its module's class, or a base class, is of the neuron family
       (``NEURON_CLASS_NAMES``: ``HDLIF``, ``LIF``, ``ParallelHDLIF``, ``MemBNHDLIF``,
       their base ``SpikingNeuron``, the spike quantizer ``SpikeQuantizer``) or has
       ``BatchNorm`` in its name: every parameter of neurons (``lam``, ``theta``,
       Mem-BN ``alpha``, ``beta``, ``bn_weight``, ``bn_bias``, the quantizer's
       ``step``), whatever its shape (``[T, C]`` with ``per_channel=True``), and BN
       affine parameters;
    2. its name is in ``NO_DECAY_NAMES`` (``bias`` and the neuron parameter names);
    3. it has ``ndim <= 1``: biases, BN and Mem-BN vectors, per-step ``lam``/``theta``,
       the spike quantizer's step (SPEC E13), per-channel weight scales, and also the
       short 1-D channel kernels of SECA (E14, E15).

    Weights of convolutions and linear layers (``ndim >= 2``) get weight decay.
    """
    classes = [c.__name__ for c in type(module).__mro__]
    if any(c in NEURON_CLASS_NAMES or "BatchNorm" in c for c in classes):
        return True
    return name in NO_DECAY_NAMES or param.ndim <= 1


def param_groups(model: Any, weight_decay: float,
                 no_decay: Callable[[Any, str, Tensor], bool] = no_weight_decay) -> list[dict[str, Any]]:
    """Two parameter groups for an optimizer: ``[decayed, exempt]``.

    Walks ``model.named_modules()`` and each module's own parameters (a shared
    parameter belongs to its first owner). Group 0 gets ``weight_decay``, group 1
    ``0.0``; both always exist (possibly empty) so optimizer states have a fixed
    layout, and both carry ``param_names`` (dotted names) for clear load errors.
    ``no_decay(module, name, param)`` decides; the default is :func:`no_weight_decay`.
    """
    if not _is_real(weight_decay) or weight_decay < 0:
        raise ValueError(f"param_groups: weight_decay={weight_decay!r} must be a real number >= 0")
    decay: list[tuple[str, Tensor]] = []
    exempt: list[tuple[str, Tensor]] = []
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        for name, p in module._parameters.items():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{mod_name}.{name}" if mod_name else name
            (exempt if no_decay(module, name, p) else decay).append((full, p))
    return [
        {"params": [p for _, p in decay], "param_names": [n for n, _ in decay], "weight_decay": float(weight_decay)},
        {"params": [p for _, p in exempt], "param_names": [n for n, _ in exempt], "weight_decay": 0.0},
    ]


def clip_grad_norm(params: Iterable[Tensor], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale the gradients so their joint norm is at most ``max_norm``; return the norm before clipping.

    ``total = (sum_p sum_i |g_pi|^q)^(1/q)`` over every parameter with a gradient
    (``q = norm_type``, ``inf`` for the largest absolute value), computed in float64.
    When ``total > max_norm`` every gradient is multiplied (in place) by
    ``max_norm / (total + 1e-6)`` (PyTorch's ``clip_grad_norm_``). A non-finite
    ``total`` is returned with the gradients unchanged, so the caller can skip the step.
    """
    if not _is_real(max_norm) or max_norm < 0:
        raise ValueError(f"clip_grad_norm: max_norm={max_norm!r} must be a real number >= 0")
    if not isinstance(norm_type, numbers.Real) or not (norm_type == math.inf or norm_type >= 1):
        raise ValueError(f"clip_grad_norm: norm_type={norm_type!r} must be >= 1 or inf")
    if isinstance(params, Tensor):
        params = [params]
    with_grad = [p for p in params if p.grad is not None]
    grads = [np.asarray(p.grad, dtype=np.float64) for p in with_grad]
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max((float(np.max(np.abs(g))) if g.size else 0.0) for g in grads)
    else:
        total = float(sum(np.sum(np.abs(g) ** norm_type) for g in grads) ** (1.0 / norm_type))
    if math.isfinite(total) and total > max_norm:
        coef = max_norm / (total + 1e-6)
        for p in with_grad:
            if p.grad.flags.writeable:
                p.grad *= coef
            else:
                p.grad = p.grad * coef
    return total
