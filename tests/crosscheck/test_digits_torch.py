"""An independent PyTorch implementation of the digits network agrees with ours (float64).

The PyTorch side is written from SPEC E1-E2 directly (conv, BN with per-step batch
statistics and per-step running statistics, HD-LIF with ``H(0) = 1``, classifier) and loaded with our weights.
One online step (E16, every step backpropagated) and one STBP step (E17) must give
the same logits and every parameter gradient to 1e-6 relative. Skipped without torch.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from hdlif_ref.autograd import Tensor, ops  # noqa: E402
from hdlif_ref.models import digits_net  # noqa: E402
from hdlif_ref.training.trainer import OnlineTrainer, STBPTrainer  # noqa: E402

T = 4


def hdlif_fire(m, theta):
    """SPEC E2 with H(0) = 1: s* = relu(m - theta) whose derivative is 1 also at m = theta."""
    s = torch.where(m >= theta, m - theta, torch.zeros_like(m))
    return s, m - s


class TorchDigitsNet:
    """conv-BN-HDLIF x3 with two 2x2 average poolings, then a linear classifier; from our state_dict."""

    def __init__(self, state):
        self.p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=not k.endswith(("running_mean", "running_var")))
                  for k, v in state.items()}
        self.layers = [("features.0", "features.1", "features.2", False),
                       ("features.3", "features.4", "features.5", True),
                       ("features.7", "features.8", "features.9", True)]

    def reset(self, batch_shape):
        self.u = [None, None, None]

    def step(self, x, t, detach):
        p, h = self.p, x
        for i, (conv, bn, neuron, pool) in enumerate(self.layers):
            h = F.conv2d(h, p[f"{conv}.weight"], padding=1)
            # running statistics per step (SPEC E16 DC): row t; training mode normalizes with the batch's
            h = F.batch_norm(h, p[f"{bn}.running_mean"][t].detach().clone(), p[f"{bn}.running_var"][t].detach().clone(),
                             p[f"{bn}.weight"], p[f"{bn}.bias"], training=True, momentum=0.1, eps=1e-5)
            u_prev = torch.zeros_like(h) if self.u[i] is None else self.u[i]
            if detach:
                u_prev = u_prev.detach()
            m = p[f"{neuron}.lam"][t] * u_prev + h  # SPEC E1
            s, self.u[i] = hdlif_fire(m, p[f"{neuron}.theta"][t])
            h = F.avg_pool2d(s, 2) if pool else s
        return F.linear(h.flatten(1), p["classifier.weight"], p["classifier.bias"])

    def grads(self):
        return {k: v.grad.numpy() for k, v in self.p.items() if v.grad is not None}


def make_pair():
    ours = digits_net(T=T, neuron="hdlif", rng=np.random.default_rng(0)).to(np.float64)
    for name, p in ours.named_parameters():  # spread lam and theta so steps differ
        if name.endswith(("lam", "theta")):
            p.data[...] = np.linspace(0.3, 0.9, T) if name.endswith("lam") else np.linspace(0.2, 0.6, T)
    return ours, TorchDigitsNet(ours.state_dict())


class _Keep:
    def __init__(self, params):
        self.params = list(params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        pass


def data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((8, 1, 8, 8)), rng.integers(0, 10, 8)


def compare(ours, theirs, our_logits, their_logits):
    np.testing.assert_allclose(our_logits, their_logits, rtol=1e-6, atol=1e-12)
    ours_grads = {k: p.grad for k, p in ours.named_parameters()}
    theirs_grads = theirs.grads()
    assert set(ours_grads) == set(theirs_grads)
    worst = 0.0
    for name, g in ours_grads.items():
        np.testing.assert_allclose(g, theirs_grads[name], rtol=1e-6, atol=1e-10, err_msg=name)
        worst = max(worst, float(np.max(np.abs(g - theirs_grads[name]) / (np.abs(theirs_grads[name]) + 1e-10))))
    print(f"worst relative gradient difference: {worst:.2e}")


def test_online_step_matches_pytorch():
    x, y = data()
    ours, theirs = make_pair()
    _, our_logits = OnlineTrainer(ours, _Keep(ours.parameters()), steps="all").train_batch(x, y)
    theirs.reset(x.shape)
    logits = []
    for t in range(T):
        o = theirs.step(torch.tensor(x), t, detach=True)
        (F.cross_entropy(o, torch.tensor(y)) / T).backward()
        logits.append(o.detach().numpy())
    compare(ours, theirs, our_logits, np.stack(logits))


def test_stbp_step_matches_pytorch():
    x, y = data()
    ours, theirs = make_pair()
    _, our_logits = STBPTrainer(ours, _Keep(ours.parameters())).train_batch(x, y)
    theirs.reset(x.shape)
    outs = [theirs.step(torch.tensor(x), t, detach=False) for t in range(T)]
    loss = sum(F.cross_entropy(o, torch.tensor(y)) for o in outs) / T
    loss.backward()
    compare(ours, theirs, our_logits, np.stack([o.detach().numpy() for o in outs]))
