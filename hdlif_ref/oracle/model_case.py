"""Whole-network golden cases (SPEC section 7, kind ``model``) and :func:`training_step`.

A model case holds a network (its architecture document, :mod:`.arch`, and its
``state_dict``), a batch ``x, y``, and what one training step computes from them:
per-step logits, the STBP loss and gradients (E17), the online loss and gradients
with a recorded set of backward steps ``S`` (E16), and the parameters (and running
statistics) after two SGD steps. The numbers come from the library's own trainers
(:class:`~hdlif_ref.training.trainer.STBPTrainer`, :class:`~.OnlineTrainer`) and
:class:`~hdlif_ref.training.optim.SGD`, on the network rebuilt from the document.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Iterable

import numpy as np

from ..autograd import Tensor, no_grad
from ..module import Module

METHODS = ("stbp", "online")


class _Keep:
    """An optimizer that keeps the parameters: the trainers' step does nothing, the gradients stay."""

    param_groups: list = []

    def __init__(self, model: Module):
        self.model = model

    def zero_grad(self) -> None:
        self.model.zero_grad()

    def step(self) -> None:
        pass


def _steps(steps: Any, T: int) -> list[int]:
    """``"all"`` or 1-based step numbers -> sorted 0-based indices (validated)."""
    if isinstance(steps, str):
        if steps != "all":
            raise ValueError(f"training_step: steps={steps!r}; allowed: 'all' or 1-based step numbers in 1..{T}")
        return list(range(T))
    try:
        items = [int(s) for s in np.atleast_1d(np.asarray(steps)).tolist()]
    except (TypeError, ValueError):
        raise ValueError(f"training_step: steps={steps!r}; allowed: 'all' or 1-based step numbers in 1..{T}") from None
    if not items or any(not 1 <= s <= T for s in items) or len(set(items)) != len(items):
        raise ValueError(f"training_step: steps={steps!r}; allowed: 'all' or distinct 1-based step numbers "
                         f"in 1..{T}")
    return sorted(s - 1 for s in items)


def _trainer(model: Module, optimizer, method: str, steps: Any, T: int):
    from ..training.trainer import OnlineTrainer, STBPTrainer

    if method not in METHODS:
        raise ValueError(f"training_step: method={method!r}; allowed: {', '.join(METHODS)}")
    if method == "stbp":
        if steps != "all":
            raise ValueError("training_step: steps= applies to method='online' (STBP backpropagates every step)")
        return STBPTrainer(model, optimizer, T=T)
    chosen = np.array(_steps(steps, T))
    trainer = OnlineTrainer(model, optimizer, steps="all", T=T)
    trainer.draw_steps = lambda: chosen  # the recorded set S (SPEC E16), not a random draw
    return trainer


def run_step(model: Module, x, y, method: str = "stbp", steps: Any = "all", optimizer=None):
    """One training step as the library's trainers take it: ``(loss, logits [T, N, classes])``, the gradients
    left in ``p.grad``; ``optimizer`` (default: none) is stepped once."""
    T = int(getattr(model, "T"))
    trainer = _trainer(model, optimizer if optimizer is not None else _Keep(model), method, steps, T)
    return trainer.train_batch(np.asarray(x), np.asarray(y))


def training_step(model: Module, x, y, method: str = "stbp", steps: Any = "all",
                  update_buffers: bool = False) -> tuple[float, dict[str, np.ndarray]]:
    """The loss and parameter gradients of one training step of ``model`` on ``(x, y)``; nothing is updated.

    Parameters
    ----------
    model : Module with ``T`` (a builder's ``SpikingNet``, or :func:`.arch.build`'s network)
    x : ndarray ``[N, C, H, W]`` (direct encoding: repeated at every step) or ``[T, N, C, H, W]``
    y : int ndarray ``[N]``
    method : ``"stbp"`` (SPEC E17: ``L = mean_t CE(o_t, y)``, one backward through time) or
        ``"online"`` (E16: every neuron's ``u_{t-1}`` detached, ``CE(o_t, y) / |S|`` backpropagated
        at each step ``t`` in ``S``; the loss returned is the mean of those ``CE``)
    steps : ``"all"`` or the 1-based step numbers ``S`` (online only)
    update_buffers : keep the running statistics the training-mode forward updated (default: restored)

    Returns
    -------
    (loss, grads): ``grads`` maps every parameter's ``state_dict`` key to its gradient (zeros where
    the step gives none). The parameters and their ``.grad`` are left as they were.
    """
    saved_grads = {name: p.grad for name, p in model.named_parameters()}
    saved_buffers = {name: b.copy() for name, b in model.named_buffers() if b is not None}
    was_training, mode = model.training, model.step_mode
    try:
        model.zero_grad()
        loss, _ = run_step(model, x, y, method, steps)
        grads = {name: (np.zeros_like(p.data) if p.grad is None else np.array(p.grad, copy=True))
                 for name, p in model.named_parameters()}
    finally:
        for name, p in model.named_parameters():
            p.grad = saved_grads[name]
        if not update_buffers:
            for name, b in model.named_buffers():
                if b is not None and name in saved_buffers:
                    b[...] = saved_buffers[name]
        model.reset_state().train(was_training).set_step_mode(mode)
    return float(loss), grads


# ----------------------------------------------------------------------------- recompute a model case
def load_network(x: dict[str, Any], arch_text: str, T: int):
    """The network of a case: rebuilt from ``arch``, its state from ``params/<key>`` and ``buffers/<key>``."""
    from .arch import build

    net = build(arch_text)
    if net.T != T:
        raise ValueError(f"attr T={T} differs from the architecture's T={net.T}")
    state = {k.split("/", 1)[1]: v for k, v in x.items() if k.startswith(("params/", "buffers/"))}
    params = {name for name, _ in net.named_parameters()}
    buffers = {name for name, _ in net.named_buffers()}
    expected = {f"params/{k}" for k in params} | {f"buffers/{k}" for k in buffers}
    given = {k for k in x if k.startswith(("params/", "buffers/"))}
    if expected != given:
        missing, extra = sorted(expected - given), sorted(given - expected)
        raise ValueError("the inputs do not match the architecture's state_dict"
                         + (f"; missing: {', '.join('inputs/' + k for k in missing)}" if missing else "")
                         + (f"; not in the architecture: {', '.join('inputs/' + k for k in extra)}" if extra else ""))
    own = net.state_dict()
    for key, value in state.items():
        value = np.asarray(value)
        if value.shape != own[key].shape or value.dtype.kind != "f" or not np.isfinite(value).all():
            raise ValueError(f"inputs/{'params' if key in params else 'buffers'}/{key}: shape {value.shape}, "
                             f"dtype {value.dtype}; expected finite float64 of shape {own[key].shape}")
    net.load_state_dict({k: np.asarray(v, dtype=np.float64) for k, v in state.items()})
    return net


def recompute_model(x: dict[str, Any], a: dict[str, Any], sgd: dict[str, Any] | None) -> dict[str, np.ndarray]:
    """Every field of a model case (SPEC section 7) from its inputs and attrs (resolved by the schema)."""
    from ..training.optim import SGD

    T = int(a["T"])
    data, labels = np.asarray(x["x"], dtype=np.float64), np.asarray(x["y"])
    if labels.ndim != 1 or labels.dtype.kind not in "iuf" or not np.all(np.mod(labels, 1) == 0):
        raise ValueError(f"input y has shape {labels.shape} and dtype {labels.dtype}; expected integer labels [N]")
    labels = labels.astype(np.int64)
    if data.ndim not in (4, 5) or data.shape[-4 if data.ndim == 5 else 0] != labels.shape[0]:
        raise ValueError(f"input x has shape {data.shape}; expected [N, C, H, W] or [T, N, C, H, W] with N = "
                         f"{labels.shape[0]} (the labels)")
    steps = [s for s in a["online_steps"]]
    if any(s > T for s in steps):
        raise ValueError(f"attr online_steps={steps} names steps beyond T={T}")
    out: dict[str, np.ndarray] = {}
    net = load_network(x, a["arch"], T)
    classes = net.arch["num_classes"]
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"input y holds labels outside 0..{classes - 1}")
    names = [name for name, _ in net.named_parameters()]
    loss, logits = run_step(net, data, labels, "stbp")
    out["outputs/logits"] = np.asarray(logits, dtype=np.float64)
    out["outputs/loss_stbp"] = np.asarray(loss, dtype=np.float64)
    grads = dict(net.named_parameters())
    out.update({f"grads_stbp/{n}": _grad(grads[n]) for n in names})
    net = load_network(x, a["arch"], T)
    loss, _ = run_step(net, data, labels, "online", steps)
    out["outputs/loss_online"] = np.asarray(loss, dtype=np.float64)
    grads = dict(net.named_parameters())
    out.update({f"grads_online/{n}": _grad(grads[n]) for n in names})
    if sgd is not None:
        net = load_network(x, a["arch"], T)
        optimizer = SGD(list(net.parameters()), lr=sgd["lr"], momentum=sgd["momentum"],
                        weight_decay=sgd["weight_decay"])
        for _ in range(int(sgd["steps"])):
            run_step(net, data, labels, sgd["mode"], steps if sgd["mode"] == "online" else "all", optimizer)
        out.update({f"params_after/{n}": np.array(p.data, dtype=np.float64) for n, p in net.named_parameters()})
        out.update({f"buffers_after/{n}": np.array(b, dtype=np.float64) for n, b in net.named_buffers()})
    return out


def _grad(p) -> np.ndarray:
    return np.zeros_like(p.data, dtype=np.float64) if p.grad is None else np.asarray(p.grad, dtype=np.float64)


# ----------------------------------------------------------------------------- the cases of the default file
def vgg_small(rng: np.random.Generator):
    """VGG-style: ``digits_net`` at width 1/4 (conv 4-8-16 channels), Mem-BN HD-LIF with every second layer
    Parallel, ternary synapses, 4-bit spikes, SECA_I then SECA_II (both channel ratios: 4 -> 8 -> 16)."""
    from ..models import digits_net

    return digits_net(num_classes=3, in_channels=2, input_size=8, width=0.25, T=4, neuron="membn",
                      parallel_fraction=0.5, weight_mode="ternary", spike_bits=4, seca="II", rng=rng)


def resnet_small(rng: np.random.Generator):
    """ResNet-style: a stem and two basic blocks (the second with stride 2 and a 1x1 shortcut), per-channel
    ``[T, C]`` Mem-BN neurons with the first neuron of each block Parallel, ternary synapses, 4-bit spikes,
    SECA_I, global average pooling, a float classifier."""
    from ..layers import AdaptiveAvgPool2d, Flatten, Linear
    from ..models import BasicBlock, NeuronFactory, SpikingNet
    from ..models.builders import conv_bn
    from ..module import Sequential

    T = 4
    factory = NeuronFactory("membn", T, 0.5, 4, per_channel=True, seca="I", count=5)
    layers = conv_bn(2, 4, 3, 1, 1, "ternary", rng, factory, analog_input=True)
    layers += [factory.attention(layers[-1], rng), factory(4)]
    layers += [BasicBlock(4, 4, 1, factory, "ternary", rng), BasicBlock(4, 8, 2, factory, "ternary", rng),
               AdaptiveAvgPool2d(1), Flatten()]
    classifier = Linear(8, 3, rng=rng)
    return SpikingNet(Sequential(*layers), classifier, T, {"builder": "oracle.resnet_small"})


def _perturb(net: Module, rng: np.random.Generator) -> None:
    """Move every neuron and BN parameter and buffer off its initial value, so each one matters
    (``beta = 0`` at init would hide Mem-BN's batch norm, running statistics at 0/1 their update)."""
    from ..layers import BatchNorm1d, BatchNorm2d
    from ..neurons import SpikeQuantizer

    ranges = {"lam": (0.3, 0.8), "theta": (0.4, 0.9), "alpha": (0.8, 1.2), "beta": (0.2, 0.5),
              "bn_weight": (0.7, 1.3), "bn_bias": (-0.2, 0.2)}
    for m in net.modules():
        if isinstance(m, (BatchNorm1d, BatchNorm2d)):
            m.weight.data[...] *= rng.uniform(0.8, 1.2, m.weight.shape)
            m.bias.data[...] = rng.normal(0.0, 0.2, m.bias.shape)
        elif isinstance(m, SpikeQuantizer):
            m.step.data[...] = rng.uniform(0.05, 0.09)
        for name, p in m._parameters.items():
            if name in ranges and not isinstance(m, (BatchNorm1d, BatchNorm2d)):
                p.data[...] = rng.uniform(*ranges[name], p.shape)
        for name, b in m._buffers.items():
            if name == "running_mean":
                b[...] = rng.normal(0.0, 0.3, b.shape)
            elif name == "running_var":
                b[...] = rng.uniform(0.5, 1.5, b.shape)


def margins(net: Module, x: np.ndarray) -> dict[str, float]:
    """How close the training-mode forward of ``net`` comes to a decision point (on a copy):
    ``|m - theta|`` of every neuron, ``|x/s - (k + 1/2)|`` of every spike quantizer, ``||w| - delta|``
    of every ternary synapse. A case is kept only when all are clear, so that rounding in another
    implementation cannot flip a spike, a level or a code."""
    from ..layers import Conv2d, Linear
    from ..neurons import HDLIF, MemBNHDLIF, ParallelHDLIF
    from ..training.trainer import sequence_input

    net = copy.deepcopy(net)
    found = {"membrane": np.inf, "quantizer": np.inf, "ternary": np.inf}
    for m in net.modules():
        if isinstance(m, (Conv2d, Linear)) and m.weight_mode == "ternary":
            flat = np.abs(m.weight.data.reshape(m.weight.shape[0], -1))
            found["ternary"] = min(found["ternary"], float(np.abs(flat - 0.7 * flat.mean(axis=1, keepdims=True)).min()))

    def hook(module, inputs, out):
        I = inputs[0].data
        if isinstance(module, ParallelHDLIF):
            theta = module.theta.data
            th = theta.reshape((theta.shape[0],) + (1,) * (I.ndim - 1)) if theta.ndim == 1 else \
                theta.reshape((theta.shape[0], 1, theta.shape[1]) + (1,) * (I.ndim - 3))
            before, s = I - th, np.maximum(I - th, 0)
        else:
            rec = module.record(I)
            before = (rec.mhat if isinstance(module, MemBNHDLIF) else rec.m)
            theta = module.theta.data
            th = theta.reshape((theta.shape[0],) + (1,) * (I.ndim - 1)) if theta.ndim == 1 else \
                theta.reshape((theta.shape[0], 1, theta.shape[1]) + (1,) * (I.ndim - 3))
            before, s = before - th, rec.s
        found["membrane"] = min(found["membrane"], float(np.abs(before).min()))
        if module.quantizer is not None:
            v = s / float(module.quantizer.step.data)
            found["quantizer"] = min(found["quantizer"], float(np.abs(v - np.floor(v) - 0.5).min()))

    for m in net.modules():
        if isinstance(m, (HDLIF, MemBNHDLIF, ParallelHDLIF)):
            m.register_forward_hook(hook)
    net.train().set_step_mode("m").reset_state()
    with no_grad():
        net(Tensor(np.ascontiguousarray(sequence_input(x, net.T))))
    return found


MARGIN = 1e-6


def model_case(rng: np.random.Generator, which: str, sgd_mode: str, online_steps: Iterable[int]):
    """``(attrs, inputs, group_attrs)`` of one model case, redrawn until every margin is >= :data:`MARGIN`
    in the forward of each parameter state the case visits (before and after each SGD step)."""
    from ..training.optim import SGD
    from .arch import build, describe

    steps = list(online_steps)
    sgd = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "mode": sgd_mode, "steps": 2}
    for _ in range(50):
        net = (vgg_small if which == "vgg" else resnet_small)(np.random.default_rng(rng.integers(2**63 - 1)))
        net.to(np.float64)
        _perturb(net, rng)
        x = rng.normal(0.3, 1.0, (4, 2, 8, 8))
        y = rng.integers(0, 3, 4)
        if len(set(y.tolist())) < 2:
            continue
        arch = json.dumps(describe(net, (2, 8, 8), 3))
        probe = build(arch)
        probe.load_state_dict(net.state_dict())
        optimizer = SGD(list(probe.parameters()), lr=sgd["lr"], momentum=sgd["momentum"],
                        weight_decay=sgd["weight_decay"])
        worst = []
        for _ in range(sgd["steps"] + 1):
            worst.append(min(margins(probe, x).values()))
            run_step(probe, x, y, sgd_mode, steps if sgd_mode == "online" else "all", optimizer)
            # the domain floors (Parameter.lower) must not act: torch.optim has no such projection
            worst.append(min((float(np.min(p.data - p.lower)) for p in probe.parameters()
                              if getattr(p, "lower", None) is not None), default=np.inf))
        if min(worst) >= MARGIN:
            inputs = {"x": x, "y": y.astype(np.int64)}
            inputs.update({f"params/{k}": v.copy() for k, v in net.state_dict().items()
                           if k in dict(net.named_parameters())})
            inputs.update({f"buffers/{k}": v.copy() for k, v in net.named_buffers()})
            attrs = {"arch": arch, "T": int(net.T), "online_steps": steps, "loss": "ce_mean_t"}
            return attrs, inputs, {"params_after": sgd}
    raise RuntimeError(f"could not draw a {which} model case clear of every decision point")  # pragma: no cover
