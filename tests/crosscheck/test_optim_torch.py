"""Optimizers, clipping and schedules against ``torch.optim`` (skipped when torch is absent).

Same initial weights and the same gradient sequence (the gradient of a quadratic
at the current weights, so differences would compound) for several steps.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hdlif_ref.layers import Parameter  # noqa: E402
from hdlif_ref.training import (SGD, Adam, AdamW, CosineSchedule, StepSchedule,  # noqa: E402
                                clip_grad_norm)

STEPS = 8

CASES = [
    (SGD, torch.optim.SGD, dict(lr=0.05)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.2)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=5e-3)),
    (Adam, torch.optim.Adam, dict(lr=0.02)),
    (Adam, torch.optim.Adam, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.1)),
    (AdamW, torch.optim.AdamW, dict(lr=0.02)),
    (AdamW, torch.optim.AdamW, dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.3)),
]


def run_both(ours_cls, torch_cls, options, dtype):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5))
    A = A @ A.T / 5 + np.eye(5)
    w0 = [rng.normal(size=(5, 3)), rng.normal(size=5)]
    ours = [Parameter(w.astype(dtype)) for w in w0]
    theirs = [torch.tensor(w.astype(dtype), requires_grad=True) for w in w0]
    # two groups; the second overrides lr (and weight decay, where the optimizer has one)
    second = {"lr": options["lr"] / 2, "weight_decay": 0.0}
    opt = ours_cls([{"params": ours[:1]}, {"params": ours[1:], **second}], **options)
    topt = torch_cls([{"params": theirs[:1]}, {"params": theirs[1:], **second}], **options)
    for _ in range(STEPS):
        for p, t in zip(ours, theirs):
            g = (A @ p.data.astype(np.float64).reshape(5, -1)).reshape(p.shape) + 0.1
            p.grad = g.astype(dtype)
            t.grad = torch.tensor(g.astype(dtype))
        opt.step()
        topt.step()
    return ours, theirs


@pytest.mark.parametrize("ours_cls, torch_cls, options", CASES)
def test_float64_matches_torch(ours_cls, torch_cls, options):
    ours, theirs = run_both(ours_cls, torch_cls, options, np.float64)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("ours_cls, torch_cls, options", CASES)
def test_float32_matches_torch(ours_cls, torch_cls, options):
    ours, theirs = run_both(ours_cls, torch_cls, options, np.float32)
    for p, t in zip(ours, theirs):
        assert p.data.dtype == np.float32
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_clip_grad_norm_matches_torch():
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=(4, 3)), rng.normal(size=7)]
    ours = [Parameter(np.zeros_like(g)) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    total = clip_grad_norm(ours, 1.5)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, 1.5)
    assert math.isclose(total, float(ttotal), rel_tol=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("kind", ["cosine", "step"])
def test_schedules_match_torch(kind):
    ours_opt = SGD([Parameter(np.zeros(2))], lr=0.1)
    torch_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    if kind == "cosine":  # equal up to T_max (past it, torch follows the cosine back up; ours holds eta_min)
        ours, theirs, n = CosineSchedule(ours_opt, 10, 1e-3), torch.optim.lr_scheduler.CosineAnnealingLR(
            torch_opt, 10, 1e-3), 10
    else:
        ours, theirs, n = StepSchedule(ours_opt, 3, 0.5), torch.optim.lr_scheduler.StepLR(torch_opt, 3, 0.5), 12
    for _ in range(n):
        assert math.isclose(ours.get_last_lr()[0], theirs.get_last_lr()[0], rel_tol=1e-12)
        torch_opt.step()
        ours.step()
        theirs.step()
