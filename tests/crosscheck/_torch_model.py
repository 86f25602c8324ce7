"""A PyTorch network built from a model case's architecture document (docs/golden.md), nothing else.

Written from the document's description and SPEC E1-E17: every node type of the format,
run step by step; STBP keeps the graph through time (E17), online detaches every
neuron's ``u_{t-1}`` and backpropagates ``CE(o_t, y) / |S|`` at each step of ``S`` (E16);
the two SGD steps use ``torch.optim.SGD`` on every parameter. Used by
``test_golden_v2_torch.py``; imports nothing of ``hdlif_ref``.
"""
from __future__ import annotations

import json

import numpy as np
import torch

from tests.crosscheck.test_golden_v2_torch import (SpikeQuant, channel_map, conv1d_channels, gap, p2_fire, pair,
                                                   per_step, scale_channels, weight)

F = torch.nn.functional


class TorchNet:
    """Parameters and buffers as float64 tensors keyed by their state_dict names; ``step(x, t)`` runs step t."""

    def __init__(self, arch: dict, params: dict, buffers: dict):
        self.arch, self.T = arch, arch["T"]
        self.p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
        self.b = {k: torch.tensor(v, dtype=torch.float64) for k, v in buffers.items()}
        self.reset()

    def reset(self):
        self.u, self.taps = {}, {}

    def detach_state(self):
        self.u = {k: v.detach() for k, v in self.u.items()}

    def step(self, x, t):
        return self._run(self.arch["nodes"], x, t)

    def _run(self, nodes, x, t):
        for node in nodes:
            x = self._node(node, x, t)
        return x

    def _node(self, node, x, t):
        kind, p, b = node["type"], self.p, self.b
        key = lambda name: node.get("params", {}).get(name) or node.get("buffers", {}).get(name)  # noqa: E731
        if kind == "residual":
            shortcut = self._run(node["shortcut"], x, t)
            return self._run(node["after"], self._run(node["main"], x, t) + shortcut, t)
        if kind == "conv2d":
            return F.conv2d(x, weight(p[key("weight")], node["weight"]), p[key("bias")] if node["bias"] else None,
                            stride=pair(node["stride"]), padding=pair(node["padding"]))
        if kind == "linear":
            return F.linear(x, weight(p[key("weight")], node["weight"]), p[key("bias")] if node["bias"] else None)
        if kind == "batchnorm":
            rm, rv = b[key("running_mean")], b[key("running_var")]
            if node["stats"] == "per_step":
                rm, rv = rm[t], rv[t]  # views: F.batch_norm updates row t in place
            return F.batch_norm(x, rm, rv, p[key("weight")], p[key("bias")], training=True,
                                momentum=node["momentum"], eps=node["eps"])
        if kind == "seca1":
            return scale_channels(x, torch.sigmoid(conv1d_channels(gap(x), p[key("weight")])))
        if kind == "tap":
            self.taps[node["name"]] = x
            return x
        if kind == "seca2":
            pre = channel_map(gap(self.taps[node["pre"]]), node["c_post"])
            logits = conv1d_channels(gap(x), p[key("weight")]) + conv1d_channels(pre, p[key("weight_pre")])
            return scale_channels(x, torch.sigmoid(logits))
        if kind in ("hdlif", "parallel", "membn"):
            return self._neuron(node, x, t, key)
        if kind == "avgpool":
            return F.avg_pool2d(x, pair(node["kernel"]), pair(node["stride"]), pair(node["padding"]))
        if kind == "maxpool":
            return F.max_pool2d(x, pair(node["kernel"]), pair(node["stride"]), pair(node["padding"]))
        if kind == "global_avgpool":
            return x.mean(dim=(2, 3), keepdim=True)
        if kind == "flatten":
            return x.flatten(1)
        raise AssertionError(f"node type {kind} not rebuilt")

    def _neuron(self, node, I, t, key):
        p, name = self.p, node["name"]
        theta = per_step(p[key("theta")], t, I.ndim)
        if node["type"] == "parallel":  # E8
            s = p2_fire(I, theta)
        else:
            u = self.u.get(name, torch.zeros_like(I))
            m = per_step(p[key("lam")], t, I.ndim) * u + I  # E1
            v = m
            if node["type"] == "membn":  # E9, BN_t in training mode, running statistics row t
                bn = F.batch_norm(m, self.b[key("running_mean")][t], self.b[key("running_var")][t],
                                  p[key("bn_weight")][t], p[key("bn_bias")][t], training=True,
                                  momentum=node["momentum"], eps=node["eps"])
                v = per_step(p[key("alpha")], t, I.ndim) * m + per_step(p[key("beta")], t, I.ndim) * bn
            s = p2_fire(v, theta)  # E2
            self.u[name] = v - s
        if node["spike_bits"]:
            s = SpikeQuant.apply(s, p[key("quantizer.step")], int(node["spike_bits"]))  # E13
        return s


def _forward(net, x, y, method, steps):
    """One step's logits and loss; gradients accumulated on ``net.p``. ``steps``: 0-based S."""
    T, xt, yt = net.T, torch.tensor(x), torch.tensor(y)
    net.reset()
    logits, losses = [], []
    if method == "stbp":  # E17: the graph through time, L = mean_t CE(o_t, y)
        outs = [net.step(xt, t) for t in range(T)]
        loss = sum(F.cross_entropy(o, yt) for o in outs) / T
        loss.backward()
        return torch.stack(outs).detach(), loss.item()
    for t in range(T):  # E16: u_{t-1} detached, CE(o_t, y) / |S| at each t in S
        net.detach_state()
        if t in steps:
            o = net.step(xt, t)
            ce = F.cross_entropy(o, yt)
            (ce / len(steps)).backward()
            losses.append(ce.item())
        else:
            with torch.no_grad():
                o = net.step(xt, t)
        logits.append(o.detach())
    return torch.stack(logits), float(np.mean(losses))


def model_case(inputs: dict, attrs: dict, group_attrs: dict) -> dict:
    arch = json.loads(attrs["arch"])
    params = {k[len("params/"):]: v for k, v in inputs.items() if k.startswith("params/")}
    buffers = {k[len("buffers/"):]: v for k, v in inputs.items() if k.startswith("buffers/")}
    x, y = inputs["x"], inputs["y"].astype(np.int64)
    S = [s - 1 for s in np.atleast_1d(attrs["online_steps"]).tolist()]
    out = {}
    net = TorchNet(arch, params, buffers)
    logits, loss = _forward(net, x, y, "stbp", S)
    out["outputs/logits"], out["outputs/loss_stbp"] = logits, torch.tensor(loss, dtype=torch.float64)
    out.update({f"grads_stbp/{k}": v.grad for k, v in net.p.items()})
    net = TorchNet(arch, params, buffers)
    _, loss = _forward(net, x, y, "online", S)
    out["outputs/loss_online"] = torch.tensor(loss, dtype=torch.float64)
    out.update({f"grads_online/{k}": v.grad for k, v in net.p.items()})
    sgd = group_attrs["params_after"]
    net = TorchNet(arch, params, buffers)
    optimizer = torch.optim.SGD(list(net.p.values()), lr=sgd["lr"], momentum=sgd["momentum"],
                                weight_decay=sgd["weight_decay"])
    for _ in range(int(sgd.get("steps", 2))):
        optimizer.zero_grad()
        _forward(net, x, y, sgd["mode"], S if sgd["mode"] == "online" else list(range(net.T)))
        optimizer.step()
    out.update({f"params_after/{k}": v for k, v in net.p.items()})
    out.update({f"buffers_after/{k}": v for k, v in net.b.items()})
    return out


def per_step_online(inputs: dict, attrs: dict) -> dict:
    """E16 as a per-step sum: ``(1/|S|) sum_{t in S}`` of the gradient of ``CE(o_t, y)`` alone, each from a
    forward with every ``u_{t-1}`` detached (a separate backward per step)."""
    arch = json.loads(attrs["arch"])
    params = {k[len("params/"):]: v for k, v in inputs.items() if k.startswith("params/")}
    buffers = {k[len("buffers/"):]: v for k, v in inputs.items() if k.startswith("buffers/")}
    S = [s - 1 for s in np.atleast_1d(attrs["online_steps"]).tolist()]
    total = None
    for t in S:
        net = TorchNet(arch, params, buffers)
        _forward(net, inputs["x"], inputs["y"].astype(np.int64), "online", [t])
        grads = {k: v.grad / len(S) for k, v in net.p.items()}
        total = grads if total is None else {k: total[k] + grads[k] for k in total}
    return total
