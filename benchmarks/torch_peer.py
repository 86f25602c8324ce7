"""The PyTorch timing peer of the end-to-end benchmark (issue 9): same networks, same algorithms.

Imported only when torch is installed, and only by ``benchmarks/``. Everything is
ordinary PyTorch eager code, with a custom ``autograd.Function`` where our op has
a backward that autodiff of the forward would not give:

* :class:`HDLIFStep`: one HD-LIF step (SPEC E1, E2), ``m = lam_t u + I``,
  ``s* = relu(m - theta_t)``, ``u = theta_t`` where fired else ``m``; backward with
  ``H(0) = 1`` (E3): ``dL/dm = g_s H + g_u (1 - H)``;
* :class:`TernarizeWeight`: SPEC E12 forward, straight-through backward;
* :class:`SpikeQuantize`: SPEC E13 forward (``torch.round`` rounds half to even, as
  ``numpy.rint``), LSQ-style backward (DC).

:func:`mirror` builds the peer of one of our networks module by module (same
names, so ``load_state_dict`` copies our weights and checks the structure), and
:func:`online_step` / :func:`stbp_step` are SPEC E16 / E17 as in
``hdlif_ref.training.trainer``: per-step forward with the state detached, backward
of ``CE(o_t, y) / |S|`` on the drawn steps only (the others under ``no_grad``),
one optimizer step per batch; or the whole sequence, ``mean_t CE``, one backward.
After each optimizer step the parameters with a domain floor (our ``Parameter.lower``:
the thresholds and the spike steps) are projected onto it, ``w <- max(w, lower)``, as
our optimizers do (:func:`project`); with SGD(lr=0.1, momentum=0.9) on the benchmark's
random batches the spike steps reach their floor within two steps.
Multi-step mode (STBP, inference) folds ``T`` into the batch for the stateless
layers and normalizes each step with its own batch statistics, as ours does.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hdlif_ref.layers import basic as _basic
from hdlif_ref import module as _module
from hdlif_ref.layers import norm as _norm
from hdlif_ref.layers import pool as _pool
from hdlif_ref.layers import synapses as _synapses
from hdlif_ref.models import BasicBlock, SpikingNet
from hdlif_ref.neurons import HDLIF as _OurHDLIF


# ----------------------------------------------------------------------------- autograd functions
class HDLIFStep(torch.autograd.Function):
    """``(s*_t, u_t)`` from ``(I_t, u_{t-1}, lam_t, theta_t)`` (SPEC E1, E2); exact backward (E3)."""

    @staticmethod
    def forward(ctx, I, u_prev, lam_t, theta_t):
        m = torch.addcmul(I, u_prev, lam_t)  # I + lam_t * u_prev, SPEC E1
        fired = m >= theta_t  # H(m - theta) with H(0) = 1
        s = torch.where(fired, m - theta_t, 0.0)
        u = torch.where(fired, theta_t, m)
        ctx.save_for_backward(fired, u_prev, lam_t)
        ctx.set_materialize_grads(False)  # u_t is detached in online training: its gradient is None
        return s, u

    @staticmethod
    def backward(ctx, g_s, g_u):
        fired, u_prev, lam_t = ctx.saved_tensors
        if g_s is None:
            g_s = torch.zeros_like(u_prev)
        g_m = torch.where(fired, g_s, 0.0 if g_u is None else g_u)  # dL/dm = g_s H + g_u (1 - H)
        g_I = g_m if ctx.needs_input_grad[0] else None
        g_u_prev = g_m * lam_t if ctx.needs_input_grad[1] else None
        g_lam = (g_m * u_prev).sum().reshape(lam_t.shape) if ctx.needs_input_grad[2] else None
        g_theta = None
        if ctx.needs_input_grad[3]:
            # ds*/dtheta = -H, du/dtheta = H
            through = -g_s if g_u is None else g_u - g_s
            g_theta = torch.where(fired, through, 0.0).sum().reshape(lam_t.shape)
        return g_I, g_u_prev, g_lam, g_theta


class TernarizeWeight(torch.autograd.Function):
    """SPEC E12: ``a_c sign(w) 1[|w| > 0.7 mean|w_c|]``, ``a_c`` the mean kept ``|w|``; straight-through."""

    @staticmethod
    def forward(ctx, w):
        flat = w.detach().reshape(w.shape[0], -1)
        magnitude = flat.abs()
        keep = magnitude > 0.7 * magnitude.mean(dim=1, keepdim=True)
        kept = keep.sum(dim=1, keepdim=True)
        a = torch.where(kept > 0, (magnitude * keep).sum(dim=1, keepdim=True) / kept.clamp(min=1), 0.0)
        return (torch.sign(flat) * keep * a).reshape(w.shape)

    @staticmethod
    def backward(ctx, g):
        return g


class SpikeQuantize(torch.autograd.Function):
    """SPEC E13: ``s clip(round(x / s), 0, qmax)``; LSQ-style backward as ``hdlif_ref``'s (DC)."""

    @staticmethod
    def forward(ctx, x, step, qmax):
        v = x / step
        r = torch.round(v)  # half to even
        ctx.save_for_backward(v, r)
        ctx.qmax = qmax
        return step * r.clamp(0, qmax)

    @staticmethod
    def backward(ctx, g):
        v, r = ctx.saved_tensors
        qmax = ctx.qmax
        inside = (v >= 0) & (v <= qmax)
        g_x = torch.where(inside, g, 0.0)
        d_step = torch.where(inside, r - v, torch.where(v > qmax, qmax, 0.0))  # dQ/ds: round(v) - v, qmax, 0
        return g_x, (g * d_step).sum().reshape(()), None


# ----------------------------------------------------------------------------- modules
class _StepModule(nn.Module):
    """A layer that knows the step mode: ``"s"`` (one step ``[N, ...]``) or ``"m"`` (``[T, N, ...]``)."""

    multi_step = False


class Folded(_StepModule):
    """A stateless layer; in multi-step mode ``[T, N, ...]`` is folded to ``[T*N, ...]`` around it."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        if not self.multi_step:
            return self.layer(x)
        T, n = x.shape[:2]
        y = self.layer(x.reshape((T * n,) + x.shape[2:]))
        return y.reshape((T, n) + y.shape[1:])


class Synapse(_StepModule):
    """Conv2d or Linear with ``weight_mode`` "fp32" or "ternary" (SPEC E12), no other modes needed here."""

    def __init__(self, weight: np.ndarray, bias: bool, conv: dict | None, weight_mode: str):
        super().__init__()
        if weight_mode not in ("fp32", "ternary"):
            raise ValueError(f"torch peer: weight_mode={weight_mode!r} is not mirrored (fp32, ternary only)")
        self.weight = nn.Parameter(torch.empty(weight.shape))
        self.bias = nn.Parameter(torch.empty(weight.shape[0])) if bias else None
        self.conv, self.weight_mode = conv, weight_mode

    def forward(self, x):
        w = TernarizeWeight.apply(self.weight) if self.weight_mode == "ternary" else self.weight
        lead = None
        if self.conv is not None and self.multi_step:
            lead = x.shape[:2]
            x = x.reshape((lead[0] * lead[1],) + x.shape[2:])
        y = F.conv2d(x, w, self.bias, **self.conv) if self.conv is not None else F.linear(x, w, self.bias)
        return y if lead is None else y.reshape(lead + y.shape[1:])


class BatchNorm(_StepModule):
    """BatchNorm2d, each step normalized with its own batch statistics (SPEC E16 DC).

    Running statistics shared by all steps (``T=None``), or one row per step
    (``[T, C]``, the builders' default): then single-step calls count steps and
    :meth:`reset` rewinds, as our ``BatchNorm2d(per_step=True)``.
    """

    def __init__(self, num_features: int, momentum: float, eps: float, T: int | None = None):
        super().__init__()
        rows = () if T is None else (T,)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(rows + (num_features,)))
        self.register_buffer("running_var", torch.ones(rows + (num_features,)))
        self.momentum, self.eps, self.per_step, self.t = momentum, eps, T is not None, 0

    def reset(self):
        self.t = 0

    def _norm(self, x, t):
        mean, var = (self.running_mean[t], self.running_var[t]) if self.per_step else (self.running_mean,
                                                                                        self.running_var)
        return F.batch_norm(x, mean, var, self.weight, self.bias,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def forward(self, x):
        if not self.multi_step:
            y = self._norm(x, self.t)
            self.t += 1
            return y
        if not self.training and not self.per_step:  # shared running statistics: the steps can share one call
            T, n = x.shape[:2]
            return self._norm(x.reshape((T * n,) + x.shape[2:]), 0).reshape(x.shape)
        return torch.stack([self._norm(x_t, t) for t, x_t in enumerate(x.unbind(0))])


class Neuron(_StepModule):
    """HD-LIF (SPEC E1, E2) with per-layer ``lam``, ``theta`` ``[T]`` and optional ``n``-bit spikes (E13)."""

    def __init__(self, T: int, spike_bits: int | None):
        super().__init__()
        self.lam = nn.Parameter(torch.empty(T))
        self.theta = nn.Parameter(torch.empty(T))
        self.quantizer = nn.Module() if spike_bits else None
        if spike_bits:
            self.quantizer.step = nn.Parameter(torch.empty(()))
            self.qmax = float(2 ** spike_bits - 1)
        self.u, self.t = None, 0

    def reset(self):
        self.u, self.t = None, 0

    def detach_state(self):
        if self.u is not None:
            self.u = self.u.detach()

    def _step(self, I_t, t):
        u_prev = torch.zeros_like(I_t) if self.u is None else self.u
        s, self.u = HDLIFStep.apply(I_t, u_prev, self.lam[t], self.theta[t])
        return s

    def _emit(self, s):
        return s if self.quantizer is None else SpikeQuantize.apply(s, self.quantizer.step, self.qmax)

    def forward(self, x):
        if not self.multi_step:
            s = self._step(x, self.t)
            self.t += 1
            return self._emit(s)
        self.reset()  # a sequence starts from u_0 = 0 (SPEC E1)
        s = torch.stack([self._step(x_t, t) for t, x_t in enumerate(x.unbind(0))])
        self.reset()
        return self._emit(s)


class Block(_StepModule):
    """Spiking ResNet basic block: ``neuron(branch2(branch1(x)) + shortcut(x))``."""

    def __init__(self, branch1, branch2, shortcut, neuron):
        super().__init__()
        self.branch1, self.branch2, self.shortcut, self.neuron = branch1, branch2, shortcut, neuron

    def forward(self, x):
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.neuron(self.branch2(self.branch1(x)) + residual)


class PeerNet(nn.Module):
    """``classifier(features(x))`` with the step-mode switch and the neuron-state calls of ours."""

    def __init__(self, features: nn.Module, classifier: nn.Module, T: int):
        super().__init__()
        self.features, self.classifier, self.T = features, classifier, T

    def forward(self, x):
        return self.classifier(self.features(x))

    def set_multi_step(self, flag: bool) -> "PeerNet":
        for m in self.modules():
            if isinstance(m, _StepModule):
                m.multi_step = flag
        return self

    def reset(self):
        for m in self.modules():
            if isinstance(m, (Neuron, BatchNorm)):
                m.reset()

    def detach_state(self):
        for m in self.modules():
            if isinstance(m, Neuron):
                m.detach_state()


# ----------------------------------------------------------------------------- mirroring our networks
def _mirror_module(m: _module.Module) -> nn.Module:
    if isinstance(m, _synapses.Conv2d):
        if m.groups != 1:
            raise ValueError("torch peer: grouped convolutions are not mirrored")
        conv = dict(stride=m.stride, padding=m.padding)
        return Synapse(m.weight.data, m.bias is not None, conv, m.weight_mode)
    if isinstance(m, _synapses.Linear):
        return Synapse(m.weight.data, m.bias is not None, None, m.weight_mode)
    if isinstance(m, _norm.BatchNorm2d):
        return BatchNorm(m.num_features, m.momentum, m.eps, m.T if m.per_step else None)
    if type(m) is _OurHDLIF:
        if m.per_channel:
            raise ValueError("torch peer: per-channel neuron parameters are not mirrored")
        return Neuron(m.T, m.spike_bits)
    if isinstance(m, _pool.AvgPool2d):
        return Folded(nn.AvgPool2d(m.kernel_size, m.stride, m.padding))
    if isinstance(m, _pool.AdaptiveAvgPool2d):
        return Folded(nn.AdaptiveAvgPool2d(m.output_size))
    if isinstance(m, _basic.Flatten):
        return Folded(nn.Flatten(1))
    if isinstance(m, _module.Sequential):
        return nn.Sequential(*[_mirror_module(c) for c in m])
    if isinstance(m, BasicBlock):
        shortcut = None if m.shortcut is None else _mirror_module(m.shortcut)
        return Block(_mirror_module(m.branch1), _mirror_module(m.branch2), shortcut, _mirror_module(m.neuron))
    raise ValueError(f"torch peer: no mirror for {type(m).__name__}")


def mirror(model: SpikingNet, dtype=torch.float32) -> PeerNet:
    """The PyTorch peer of ``model`` with a copy of its parameters and buffers (same names)."""
    peer = PeerNet(_mirror_module(model.features), _mirror_module(model.classifier), model.T).to(dtype)
    load_weights(peer, model)
    theirs = dict(peer.named_parameters())
    peer.floors = [(theirs[name], p.lower) for name, p in model.named_parameters()
                   if getattr(p, "lower", None) is not None]
    return peer


def project(net: PeerNet) -> None:
    """``w <- max(w, lower)`` for every parameter whose ours has a floor (``Parameter.lower``), as our optimizers."""
    with torch.no_grad():
        for p, lower in getattr(net, "floors", ()):
            p.clamp_(min=lower)


def at_floor(net: PeerNet) -> int:
    """How many parameter values sit on their floor (0: the projection never acted)."""
    return sum(int((p <= lower).sum()) for p, lower in getattr(net, "floors", ()))


def load_weights(peer: PeerNet, model: SpikingNet) -> None:
    """Copy ``model``'s state dict into ``peer`` (every name must match: checks the structure too)."""
    ours = model.state_dict()
    theirs = peer.state_dict()
    if set(ours) != set(theirs):
        raise ValueError(f"torch peer: state dicts differ: only ours {sorted(set(ours) - set(theirs))}, "
                         f"only the peer's {sorted(set(theirs) - set(ours))}")
    dtype = next(iter(theirs.values())).dtype
    peer.load_state_dict({k: torch.tensor(np.asarray(v), dtype=dtype) for k, v in ours.items()})


# ----------------------------------------------------------------------------- training steps (E16, E17)
def online_step(net: PeerNet, optimizer, x: torch.Tensor, y: torch.Tensor, chosen: set[int]) -> float:
    """SPEC E16 for one batch; ``chosen`` is the set ``S`` of backpropagated steps. Returns the mean CE over S."""
    net.train().set_multi_step(False)
    net.reset()
    optimizer.zero_grad(set_to_none=True)
    losses = []
    for t in range(net.T):
        net.detach_state()
        if t in chosen:
            loss = F.cross_entropy(net(x), y)
            (loss / len(chosen)).backward()
            losses.append(loss.item())
        else:
            with torch.no_grad():
                net(x)
    optimizer.step()
    project(net)
    net.reset()
    return float(np.mean(losses))


def stbp_step(net: PeerNet, optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """SPEC E17 for one batch: multi-step forward with the graph kept, ``L = mean_t CE(o_t, y)``, one backward."""
    net.train().set_multi_step(True)
    net.reset()
    optimizer.zero_grad(set_to_none=True)
    T = net.T
    out = net(x.unsqueeze(0).expand((T,) + x.shape))
    loss = F.cross_entropy(out.reshape(T * out.shape[1], -1), y.repeat(T))
    loss.backward()
    optimizer.step()
    project(net)
    net.reset()
    return loss.item()


def infer(net: PeerNet, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode multi-step logits ``[T, N, classes]`` under ``no_grad`` (the training-form network)."""
    net.eval().set_multi_step(True)
    with torch.no_grad():
        return net(x.unsqueeze(0).expand((net.T,) + x.shape))
