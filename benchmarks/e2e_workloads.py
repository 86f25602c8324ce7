"""The end-to-end workloads of issue 9, ours and PyTorch's, and the one-step equality check.

Each workload is a pair of zero-argument callables (ours, PyTorch's or ``None``)
that run one unit of work on fixed data: one training step (W1-W3) or one
inference of a batch (W4). Both sides start from the same weights (the peer is
loaded from our state dict) and use the same optimizer, ``SGD(lr=0, momentum=0.9)``:
the update runs in full on both sides (momentum buffer, ``w -= lr * d``; neither
skips ``lr = 0``) but the network stays where it is, so every sample times the
same network. (With any useful ``lr``, random data pushes the 4-bit spike step
of E13 below zero within a few steps, and the quantizer then refuses it.)

:func:`self_check` runs one step of each training workload in float64 on both
sides from the same weights and returns the loss and the largest gradient
difference: the comparison is only meaningful if they compute the same thing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hdlif_ref.deploy.convert import freeze
from hdlif_ref.models import digits_net, spiking_resnet
from hdlif_ref.training.optim import SGD
from hdlif_ref.training.trainer import OnlineTrainer, STBPTrainer

try:  # the peer exists only where torch does
    import torch

    from benchmarks import torch_peer
except ImportError:  # pragma: no cover - torch is optional
    torch = None
    torch_peer = None

LR, MOMENTUM = 0.0, 0.9


@dataclass(frozen=True)
class Sizes:
    """Batch sizes, input sizes and the ResNet width; :data:`FULL` is issue 9's, :data:`QUICK` a smoke run."""

    digits_batch: int
    resnet_batch: int
    resnet_input: int
    resnet_width: float
    T: int
    memory_T: tuple[int, ...]


FULL = Sizes(digits_batch=64, resnet_batch=32, resnet_input=32, resnet_width=0.25, T=4,
             memory_T=(1, 2, 4, 8, 16, 32))
QUICK = Sizes(digits_batch=8, resnet_batch=2, resnet_input=16, resnet_width=0.125, T=2, memory_T=(1, 2))


def build(net: str, sizes: Sizes, T: int | None = None, seed: int = 0):
    """Our training-form network: ``"digits"`` (W1, W2) or ``"resnet"`` (W3), ternary synapses, 4-bit spikes."""
    T = sizes.T if T is None else T
    rng = np.random.default_rng(seed)
    if net == "digits":
        return digits_net(T=T, weight_mode="ternary", spike_bits=4, rng=rng)
    if net == "resnet":
        return spiking_resnet(18, stem="cifar", width=sizes.resnet_width, T=T, weight_mode="ternary",
                              spike_bits=4, rng=rng)
    raise ValueError(f"net={net!r}; allowed: 'digits', 'resnet'")


def batch(net: str, sizes: Sizes, dtype=np.float32, seed: int = 1, n: int | None = None):
    """Fixed random images and labels for ``net``: ``[N, 1, 8, 8]`` digits or ``[N, 3, S, S]`` ResNet inputs."""
    rng = np.random.default_rng(seed)
    if net == "digits":
        shape = (sizes.digits_batch if n is None else n, 1, 8, 8)
    else:
        shape = (sizes.resnet_batch if n is None else n, 3, sizes.resnet_input, sizes.resnet_input)
    return rng.standard_normal(shape).astype(dtype), rng.integers(0, 10, shape[0])


def _trainer(model, algorithm: str, optimizer, seed: int):
    if algorithm == "stbp":
        return STBPTrainer(model, optimizer)
    steps = 1 if algorithm == "online_k1" else "all"
    return OnlineTrainer(model, optimizer, steps=steps, rng=np.random.default_rng(seed))


def _peer_step(peer, optimizer, algorithm: str, model, seed: int) -> Callable:
    """PyTorch's step for ``algorithm``; the sets S are drawn by our rule from a generator seeded as ours."""
    draws = None if algorithm == "stbp" else _trainer(model, algorithm, None, seed)  # only for draw_steps()

    def step(x, y):
        if algorithm == "stbp":
            return torch_peer.stbp_step(peer, optimizer, x, y)
        return torch_peer.online_step(peer, optimizer, x, y, set(draws.draw_steps().tolist()))
    return step


def training_pair(net: str, algorithm: str, sizes: Sizes, with_torch: bool, T: int | None = None):
    """``(ours, theirs)``: one training step each on fixed data (``algorithm``: online_k1, online_all, stbp)."""
    model = build(net, sizes, T)
    x, y = batch(net, sizes)
    trainer = _trainer(model, algorithm, SGD(list(model.parameters()), lr=LR, momentum=MOMENTUM), seed=2)

    def ours():
        return trainer.train_batch(x, y)[0]

    theirs = None
    if with_torch and torch is not None:
        peer = torch_peer.mirror(model)
        step = _peer_step(peer, torch.optim.SGD(peer.parameters(), lr=LR, momentum=MOMENTUM), algorithm,
                          model, seed=2)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def theirs():
            return step(xt, yt)
    return ours, theirs


def inference_pair(net: str, sizes: Sizes, with_torch: bool):
    """``(ours, theirs)``: ours runs the frozen model (``freeze``), PyTorch the training-form network in eval mode."""
    model = build(net, sizes)
    x, _ = batch(net, sizes)
    frozen = freeze(model, input_shape=x.shape[1:])

    def ours():
        return frozen.run(x)

    theirs = None
    if with_torch and torch is not None:
        peer = torch_peer.mirror(model)
        xt = torch.from_numpy(x)

        def theirs():
            return torch_peer.infer(peer, xt)
    return ours, theirs, x.shape[0]


# ----------------------------------------------------------------------------- equality check
class _KeepGrads:
    """An optimizer that only clears gradients, so they can be compared after the step."""

    def __init__(self, params):
        self.params = list(params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        pass


CHECKS = (("W1", "digits", "online_k1"), ("W2_online_all", "digits", "online_all"),
          ("W2_stbp", "digits", "stbp"), ("W3", "resnet", "online_k1"))


def self_check(sizes: Sizes, batch_size: int = 4) -> dict:
    """One float64 step of each training workload on both sides from the same weights.

    Returns ``{workload: {"loss_ours", "loss_torch", "loss_rel_diff", "grad_rel_diff"}}`` where
    ``grad_rel_diff`` is the largest ``max|g_ours - g_torch| / max|g_torch|`` over parameters.
    Raises ``RuntimeError`` if a relative difference exceeds 1e-9 (float64 rounding is ~1e-14).
    """
    results = {}
    for name, net, algorithm in CHECKS:
        model = build(net, sizes).to(np.float64)
        peer = torch_peer.mirror(model, dtype=torch.float64)
        x, y = batch(net, sizes, dtype=np.float64, seed=3, n=batch_size)
        loss = _trainer(model, algorithm, _KeepGrads(model.parameters()), seed=4).train_batch(x, y)[0]
        step = _peer_step(peer, torch.optim.SGD(peer.parameters(), lr=0.0), algorithm, model, seed=4)
        loss_torch = step(torch.from_numpy(x), torch.from_numpy(y))
        theirs = dict(peer.named_parameters())
        worst = 0.0
        for pname, p in model.named_parameters():
            g, h = p.grad, theirs[pname].grad
            if g is None or h is None:
                if (g is None) != (h is None or not bool(h.any())):
                    raise RuntimeError(f"self-check {name}: {pname} has a gradient on one side only")
                continue
            h = h.numpy()
            worst = max(worst, float(np.max(np.abs(g - h)) / max(float(np.max(np.abs(h))), 1e-300)))
        rel = abs(loss - loss_torch) / abs(loss_torch)
        results[name] = {"loss_ours": loss, "loss_torch": loss_torch, "loss_rel_diff": rel, "grad_rel_diff": worst}
        if rel > 1e-9 or worst > 1e-9:
            raise RuntimeError(f"self-check {name}: ours and the PyTorch peer differ (loss {loss!r} vs "
                               f"{loss_torch!r}, worst gradient relative difference {worst:.3g}); the timing "
                               f"comparison would not be apples to apples")
    return results
