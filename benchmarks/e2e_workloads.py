"""The end-to-end workloads of issues 9 and 21, ours and PyTorch's, and the equality check.

Each workload is a pair of zero-argument callables (ours, PyTorch's or ``None``)
that run one unit of work on fixed data: one training step (W1-W3) or one
inference of a batch (W4). Both sides start from the same weights (the peer is
loaded from our state dict) and train with the same optimizer,
``SGD(lr=0.1, momentum=0.9)`` (issue 21: timings come from real training; before
it the benchmark used ``lr=0``), each side projecting the thresholds and spike steps
onto their floors (``Parameter.lower``) after every update. Every call is one more
step of real training on the same batch, so the two sides follow the same
trajectory (up to float32 rounding).

:func:`self_check` runs a few steps of each training workload in float64 on both
sides from the same weights, with the real optimizer, and compares losses,
gradients and the parameters after each update: the comparison is only
meaningful if they compute the same thing. It reports how many parameter values
sit on their floor after the steps (the projection is exercised, not only mirrored).
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

LR, MOMENTUM = 0.1, 0.9


@dataclass(frozen=True)
class Sizes:
    """Batch sizes, input sizes and the ResNet width; :data:`FULL` is issue 9's, :data:`QUICK` a smoke run."""

    digits_batch: int
    resnet_batch: int
    resnet_input: int
    resnet_width: float
    T: int
    memory_T: tuple[int, ...]
    scaling_T: tuple[int, ...] = (1, 2, 4, 8, 16)  # issue 21: T scaling of W1 and W3 (batch as above)
    scaling_batch: tuple[int, ...] = (8, 16, 32, 64, 128)  # batch scaling of W1 and W3 (T as above)
    peer_batch: int = 64  # P1-P3: the digits LIF network in SpikingJelly, snnTorch, Norse
    peer_T: int = 4


FULL = Sizes(digits_batch=64, resnet_batch=32, resnet_input=32, resnet_width=0.25, T=4,
             memory_T=(1, 2, 4, 8, 16, 32))
QUICK = Sizes(digits_batch=8, resnet_batch=2, resnet_input=16, resnet_width=0.125, T=2, memory_T=(1, 2),
              scaling_T=(1, 2), scaling_batch=(2, 4), peer_batch=8, peer_T=2)


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


def training_pair(net: str, algorithm: str, sizes: Sizes, with_torch: bool, T: int | None = None,
                  n: int | None = None):
    """``(ours, theirs)``: one training step each on fixed data (``algorithm``: online_k1, online_all, stbp);
    ``T`` and the batch size ``n`` default to the workload's (``sizes``)."""
    model = build(net, sizes, T)
    x, y = batch(net, sizes, n=n)
    trainer = _trainer(model, algorithm, SGD(list(model.parameters()), lr=LR, momentum=MOMENTUM), seed=2)

    def ours():
        return trainer.train_batch(x, y)[0]
    ours.model = model  # for the hooks that read the layer shapes (e2e_roofline)

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
CHECKS = (("W1", "digits", "online_k1"), ("W2_online_all", "digits", "online_all"),
          ("W2_stbp", "digits", "stbp"), ("W3", "resnet", "online_k1"))
CHECK_TOLERANCE = 1e-9  # relative; float64 rounding gives ~1e-14


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def self_check(sizes: Sizes, batch_size: int = 4, steps: int = 3) -> dict:
    """``steps`` float64 training steps of each training workload on both sides from the same weights.

    The real optimizer (``SGD(LR, MOMENTUM)``, the floors projected) on one fixed batch.
    Returns ``{workload: {"loss_ours", "loss_torch", "loss_rel_diff", "grad_rel_diff",
    "param_rel_diff", "steps", "at_floor_ours", "at_floor_torch"}}`` where the differences
    are the largest over the steps and parameters of ``max|ours - torch| / max|torch|``
    (gradients of each step, parameters after each update), the losses those of the
    first step, and ``at_floor_*`` count the parameter values on their floor after the
    last step. Raises ``RuntimeError`` if a difference exceeds :data:`CHECK_TOLERANCE`.
    """
    results = {}
    for name, net, algorithm in CHECKS:
        model = build(net, sizes).to(np.float64)
        peer = torch_peer.mirror(model, dtype=torch.float64)
        x, y = batch(net, sizes, dtype=np.float64, seed=3, n=batch_size)
        trainer = _trainer(model, algorithm, SGD(list(model.parameters()), lr=LR, momentum=MOMENTUM), seed=4)
        step = _peer_step(peer, torch.optim.SGD(peer.parameters(), lr=LR, momentum=MOMENTUM), algorithm,
                          model, seed=4)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        theirs = dict(peer.named_parameters())
        losses, worst = [], {"loss": 0.0, "grad": 0.0, "param": 0.0}
        for _ in range(steps):
            loss = trainer.train_batch(x, y)[0]
            loss_torch = step(xt, yt)
            losses.append((loss, loss_torch))
            worst["loss"] = max(worst["loss"], abs(loss - loss_torch) / abs(loss_torch))
            for pname, p in model.named_parameters():
                g, h = p.grad, theirs[pname].grad
                if g is None or h is None:
                    if (g is None) != (h is None or not bool(h.any())):
                        raise RuntimeError(f"self-check {name}: {pname} has a gradient on one side only")
                else:
                    worst["grad"] = max(worst["grad"], _rel(g, h.numpy()))
                worst["param"] = max(worst["param"], _rel(p.data, theirs[pname].detach().numpy()))
        floor_ours = sum(int((p.data <= p.lower).sum()) for p in model.parameters()
                         if getattr(p, "lower", None) is not None)
        results[name] = {"loss_ours": losses[0][0], "loss_torch": losses[0][1], "loss_rel_diff": worst["loss"],
                         "grad_rel_diff": worst["grad"], "param_rel_diff": worst["param"], "steps": steps,
                         "lr": LR, "momentum": MOMENTUM, "at_floor_ours": floor_ours,
                         "at_floor_torch": torch_peer.at_floor(peer)}
        if max(worst.values()) > CHECK_TOLERANCE:
            raise RuntimeError(f"self-check {name}: ours and the PyTorch peer differ (relative differences: "
                               f"loss {worst['loss']:.3g}, gradient {worst['grad']:.3g}, parameters after an "
                               f"update {worst['param']:.3g}; losses {losses}); the timing comparison would not "
                               f"be apples to apples")
    return results
