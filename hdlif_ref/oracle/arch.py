"""The architecture document of a ``model`` golden case (SPEC section 7): a network as JSON, and back.

:func:`describe` turns a network of this library (a builder's ``SpikingNet``, or any
tree of the layers and neurons below) into a JSON-able dict complete enough to rebuild
the network elsewhere without this code; :func:`build` rebuilds it here from that
dict alone (what the checker does: it never trusts a builder name). The format is
documented in ``docs/golden.md`` ("The architecture document"); in short::

    {"format": "hdlif-arch", "version": 1, "T": 4, "input_shape": [C, H, W], "num_classes": K,
     "encoding": "direct", "nodes": [node, ...]}

Every step ``t = 0..T-1`` runs the nodes in order on that step's input. A node has a
``type``, a ``name`` (its ``state_dict`` prefix: parameter ``p`` of the node is
``name + "." + p``), its settings, and ``params`` / ``buffers`` (name -> state_dict key).
Types: ``conv2d``, ``linear``, ``batchnorm`` (``stats`` ``per_step``: row ``t`` of
``[T, C]`` running statistics, or ``shared``), ``seca1``, ``seca2`` (``pre`` names the
``tap`` whose current it reads), ``tap``, ``hdlif``, ``lif``, ``parallel``, ``membn``
(each with ``spike_bits``), ``avgpool``, ``maxpool``, ``global_avgpool``, ``flatten``,
and ``residual`` (``after(main(x) + shortcut(x))``, ``shortcut`` empty: identity).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..autograd import Tensor
from ..layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, CurrentTap, Flatten, Identity,
                      Linear, MaxPool2d, SECA1, SECA2)
from ..models import BasicBlock
from ..module import Module, Sequential
from ..neurons import HDLIF, LIF, MemBNHDLIF, ParallelHDLIF

FORMAT, VERSION = "hdlif-arch", 1
_WEIGHT = {"fp32": "float", "binary": "binary", "ternary": "ternary"}
NODE_TYPES = ("conv2d", "linear", "batchnorm", "seca1", "seca2", "tap", "hdlif", "lif", "parallel", "membn",
              "avgpool", "maxpool", "global_avgpool", "flatten", "residual")


class ArchError(ValueError):
    """An architecture document this code cannot rebuild; the message names the node."""


# ----------------------------------------------------------------------------- describe
def describe(model: Module, input_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """The architecture document of ``model`` (a ``SpikingNet``: ``features`` then ``classifier``)."""
    names = {id(m): name for name, m in model.named_modules()}
    nodes = _nodes(model.features, "features", names) + _nodes(model.classifier, "classifier", names)
    return {"format": FORMAT, "version": VERSION, "T": int(model.T), "input_shape": [int(d) for d in input_shape],
            "num_classes": int(num_classes), "encoding": "direct", "nodes": nodes}


def _keys(name: str, module: Module, kind: str) -> dict[str, str]:
    table = module._parameters if kind == "params" else module._buffers
    return {k: f"{name}.{k}" for k, v in table.items() if v is not None}


def _nodes(module: Module, name: str, names: dict[int, str]) -> list[dict[str, Any]]:
    if isinstance(module, Sequential):
        return [n for i, child in enumerate(module) for n in _nodes(child, f"{name}.{i}", names)]
    if isinstance(module, BasicBlock):
        return [{"type": "residual", "name": name,
                 "main": _nodes(module.branch1, f"{name}.branch1", names) + _nodes(module.branch2, f"{name}.branch2",
                                                                                names),
                 "shortcut": [] if module.shortcut is None else _nodes(module.shortcut, f"{name}.shortcut", names),
                 "after": _nodes(module.neuron, f"{name}.neuron", names)}]
    return [_leaf(module, name, names)]


def _leaf(m: Module, name: str, names: dict[int, str]) -> dict[str, Any]:
    node: dict[str, Any] = {"name": name}
    if isinstance(m, Conv2d):
        if m.groups != 1:
            raise ArchError(f"{name}: Conv2d groups={m.groups}; the architecture format has groups=1 only")
        node.update(type="conv2d", in_channels=m.in_channels, out_channels=m.out_channels,
                    kernel=list(m.kernel_size), stride=list(m.stride), padding=list(m.padding),
                    bias=m.bias is not None, weight=_WEIGHT[m.weight_mode])
    elif isinstance(m, Linear):
        node.update(type="linear", in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None,
                    weight=_WEIGHT[m.weight_mode])
    elif isinstance(m, (BatchNorm2d, BatchNorm1d)):
        node.update(type="batchnorm", channels=m.num_features, eps=m.eps, momentum=m.momentum,
                    stats="per_step" if m.per_step else "shared", affine=m.weight is not None,
                    input_ndim=4 if isinstance(m, BatchNorm2d) else 2)
    elif isinstance(m, SECA1):
        node.update(type="seca1", channels=m.channels, kernel=m.kernel_size)
    elif isinstance(m, SECA2):
        if m._tap is None or id(m._tap) not in names:
            raise ArchError(f"{name}: SECA2 without an attached CurrentTap in this network")
        node.update(type="seca2", c_pre=m.c_pre, c_post=m.c_post, kernel=m.kernel_size,
                    kernel_pre=m.kernel_size_pre, pre=names[id(m._tap)])
    elif isinstance(m, CurrentTap):
        node.update(type="tap")
    elif isinstance(m, (HDLIF, LIF, ParallelHDLIF, MemBNHDLIF)):
        kind = {HDLIF: "hdlif", LIF: "lif", ParallelHDLIF: "parallel", MemBNHDLIF: "membn"}[type(m)]
        node.update(type=kind, T=m.T, channels=m.channels, per_channel=m.per_channel, spike_bits=m.spike_bits)
        if kind == "lif":
            node.update(reset=m.reset_mode, gamma=m.gamma)
        if kind == "membn":
            node.update(eps=m.eps, momentum=m.momentum)
    elif isinstance(m, (AvgPool2d, MaxPool2d)):
        pair = lambda v: [int(v), int(v)] if np.ndim(v) == 0 else [int(i) for i in v]  # noqa: E731
        kernel = pair(m.kernel_size)
        node.update(type="avgpool" if isinstance(m, AvgPool2d) else "maxpool", kernel=kernel,
                    stride=kernel if m.stride is None else pair(m.stride), padding=pair(m.padding))
    elif isinstance(m, AdaptiveAvgPool2d):
        if m.output_size not in (1, (1, 1), [1, 1]):
            raise ArchError(f"{name}: AdaptiveAvgPool2d output_size={m.output_size!r}; only 1 (global) is described")
        node.update(type="global_avgpool")
    elif isinstance(m, Flatten):
        node.update(type="flatten")
    elif isinstance(m, Identity):
        return {"type": "residual", "name": name, "main": [], "shortcut": [], "after": []}  # pragma: no cover
    else:
        raise ArchError(f"{name}: {type(m).__name__} has no description in the architecture format")
    params = {k: v for k, v in _all_keys(m, name, "params").items()}
    buffers = {k: v for k, v in _all_keys(m, name, "buffers").items()}
    if params:
        node["params"] = params
    if buffers:
        node["buffers"] = buffers
    return node


def _all_keys(m: Module, name: str, kind: str) -> dict[str, str]:
    """Own parameters (or buffers) and those of child modules (a neuron's ``quantizer.step``)."""
    out = _keys(name, m, kind)
    for child_name, child in m.named_modules():
        if child_name:
            out.update({f"{child_name}.{k}": v for k, v in _keys(f"{name}.{child_name}", child, kind).items()})
    return out


# ----------------------------------------------------------------------------- build
class _Container(Module):
    """A node of the name tree (``features``, ``features.4``, ...): holds children, runs nothing."""

    def forward(self, x):  # pragma: no cover - never called
        raise RuntimeError("an architecture container is run by ArchNet")


class ArchNet(Module):
    """A network rebuilt from its architecture document; ``state_dict`` keys are the document's names."""

    def __init__(self, arch: dict[str, Any], dtype=np.float64):
        super().__init__()
        self.arch = arch
        self.T = _int(arch, "T", "the document", 1)
        self._dtype = dtype
        object.__setattr__(self, "_runs", [self._make(node, "nodes") for node in _list(arch, "nodes", "the document")])

    def forward(self, x: Tensor) -> Tensor:
        return _run(self._runs, x)

    # ---------------------------------------------------------------- construction
    def _place(self, name: str, module: Module) -> Module:
        if not isinstance(name, str) or not name or any(not part for part in name.split(".")):
            raise ArchError(f"node name {name!r} must be a dotted state_dict prefix")
        parent: Module = self
        parts = name.split(".")
        for part in parts[:-1]:
            child = parent._modules.get(part)
            if child is None:
                child = _Container()
                setattr(parent, part, child)
            parent = child
        if parts[-1] in parent._modules:
            raise ArchError(f"node name {name!r} is used twice")
        setattr(parent, parts[-1], module)
        return module

    def _make(self, node: Any, where: str):
        if not isinstance(node, dict) or "type" not in node:
            raise ArchError(f"{where}: a node must be an object with a 'type'")
        kind, name = node["type"], node.get("name", "?")
        at = f"node {name!r} ({kind})"
        dt = self._dtype
        if kind == "residual":
            parts = {k: [self._make(n, f"{at}.{k}") for n in _list(node, k, at)] for k in ("main", "shortcut", "after")}
            return ("residual", parts)
        if kind in ("flatten", "global_avgpool", "avgpool", "maxpool"):
            if kind == "flatten":
                m: Module = Flatten()
            elif kind == "global_avgpool":
                m = AdaptiveAvgPool2d(1)
            else:
                cls = AvgPool2d if kind == "avgpool" else MaxPool2d
                m = cls(_pair(node, "kernel", at), _pair(node, "stride", at), _pair(node, "padding", at, 0))
            self._place(name, m) if "name" in node else None
            return ("module", m)
        if kind == "conv2d":
            m = Conv2d(_int(node, "in_channels", at), _int(node, "out_channels", at), _pair(node, "kernel", at),
                       stride=_pair(node, "stride", at), padding=_pair(node, "padding", at, 0),
                       bias=_bool(node, "bias", at), weight_mode=_weight(node, at), dtype=dt)
        elif kind == "linear":
            m = Linear(_int(node, "in_features", at), _int(node, "out_features", at), bias=_bool(node, "bias", at),
                       weight_mode=_weight(node, at), dtype=dt)
        elif kind == "batchnorm":
            stats = node.get("stats")
            if stats not in ("per_step", "shared"):
                raise ArchError(f"{at}: stats={stats!r}; allowed: 'per_step', 'shared'")
            cls = BatchNorm2d if node.get("input_ndim", 4) == 4 else BatchNorm1d
            m = cls(_int(node, "channels", at), momentum=_float(node, "momentum", at), eps=_float(node, "eps", at),
                    affine=bool(node.get("affine", True)), per_step=stats == "per_step",
                    T=self.T if stats == "per_step" else None, dtype=dt)
        elif kind == "seca1":
            m = SECA1(_int(node, "channels", at), kernel_size=_int(node, "kernel", at), dtype=dt)
        elif kind == "seca2":
            m = SECA2(_int(node, "c_pre", at), _int(node, "c_post", at), kernel_size=_int(node, "kernel", at),
                      kernel_size_pre=_int(node, "kernel_pre", at), dtype=dt)
            tap = dict(self.named_modules()).get(node.get("pre"))
            if not isinstance(tap, CurrentTap):
                raise ArchError(f"{at}: pre={node.get('pre')!r} names no tap placed before this node")
            m.attach(tap)
        elif kind == "tap":
            m = CurrentTap()
        elif kind in ("hdlif", "lif", "parallel", "membn"):
            m = self._neuron(kind, node, at)
        else:
            raise ArchError(f"{at}: unknown node type {kind!r}; known: {', '.join(NODE_TYPES)}")
        self._place(name, m)
        return ("module", m)

    def _neuron(self, kind: str, node: dict, at: str) -> Module:
        T = _int(node, "T", at)
        if T != self.T:
            raise ArchError(f"{at}: T={T} differs from the document's T={self.T}")
        channels = node.get("channels")
        common = dict(channels=channels, per_channel=bool(node.get("per_channel", False)),
                      spike_bits=node.get("spike_bits"), dtype=self._dtype)
        if kind == "hdlif":
            return HDLIF(T, **common)
        if kind == "parallel":
            return ParallelHDLIF(T, **common)
        if kind == "lif":
            return LIF(T, reset=node.get("reset", "hard"), gamma=_float(node, "gamma", at), **common)
        return MemBNHDLIF(T, eps=_float(node, "eps", at), momentum=_float(node, "momentum", at), **common)


def _run(runs, x):
    for kind, item in runs:
        if kind == "module":
            x = item(x)
        else:
            residual = _run(item["shortcut"], x)  # the shortcut first, as BasicBlock
            x = _run(item["after"], _run(item["main"], x) + residual)
    return x


def build(arch: dict[str, Any] | str, dtype=np.float64) -> ArchNet:
    """Rebuild a network from its architecture document (a dict or JSON text); parameters are left at
    their initial values (load them with ``load_state_dict``). Raises :class:`ArchError` naming the node."""
    if isinstance(arch, str):
        try:
            arch = json.loads(arch)
        except json.JSONDecodeError as exc:
            raise ArchError(f"the architecture document is not valid JSON: {exc}") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT or arch.get("version") != VERSION:
        raise ArchError(f"the architecture document must have format={FORMAT!r}, version={VERSION}; got "
                        f"format={arch.get('format') if isinstance(arch, dict) else None!r}")
    if arch.get("encoding", "direct") != "direct":
        raise ArchError(f"encoding={arch.get('encoding')!r}; implemented: 'direct'")
    return ArchNet(arch, dtype)


# ----------------------------------------------------------------------------- field readers
def _list(node: dict, key: str, at: str) -> list:
    value = node.get(key)
    if not isinstance(value, list):
        raise ArchError(f"{at}: {key!r} must be a list")
    return value


def _int(node: dict, key: str, at: str, minimum: int = 0) -> int:
    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArchError(f"{at}: {key}={value!r} must be an integer >= {minimum}")
    return value


def _float(node: dict, key: str, at: str) -> float:
    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArchError(f"{at}: {key}={value!r} must be a number")
    return float(value)


def _bool(node: dict, key: str, at: str) -> bool:
    value = node.get(key)
    if not isinstance(value, bool):
        raise ArchError(f"{at}: {key}={value!r} must be true or false")
    return value


def _pair(node: dict, key: str, at: str, default: Any = None) -> tuple[int, int]:
    value = node.get(key, default)
    items = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, list) or len(items) != 2 or not all(isinstance(v, int) and v >= 0 for v in items):
        raise ArchError(f"{at}: {key}={value!r} must be an integer or a pair [h, w]")
    return (items[0], items[1])


def _weight(node: dict, at: str) -> str:
    value = node.get("weight")
    mode = {"float": "fp32", "binary": "binary", "ternary": "ternary"}.get(value)
    if mode is None:
        raise ArchError(f"{at}: weight={value!r}; allowed: 'float', 'binary', 'ternary'")
    return mode
