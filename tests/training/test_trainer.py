"""Online (SPEC E16) and STBP (SPEC E17) trainers: exactness against hand loops, E6', memory, learning."""
from __future__ import annotations

import copy
import tracemalloc

import numpy as np
import pytest

from hdlif_ref.autograd import Function, Tensor, no_grad, ops
from hdlif_ref.layers import Flatten, Linear, Module, Sequential
from hdlif_ref.models import digits_net
from hdlif_ref.neurons import HDLIF
from hdlif_ref.training import SGD
from hdlif_ref.training.trainer import OnlineTrainer, STBPTrainer


def small_net(T=4, neuron="hdlif", seed=0, dtype=np.float32):
    model = digits_net(T=T, neuron=neuron, width=0.5, rng=np.random.default_rng(seed))
    return model.to(dtype)


def batch(seed=1, n=6, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)).astype(dtype), rng.integers(0, 10, n)


def grads(model):
    return {name: p.grad.copy() for name, p in model.named_parameters() if p.grad is not None}


class _NoStep:
    """An optimizer that keeps the gradients for inspection and changes nothing."""

    def __init__(self, params):
        self.params = list(params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        pass


@pytest.mark.parametrize("options, steps", [
    (dict(), "all"),
    (dict(neuron="membn", spike_bits=3), "all"),
    (dict(seca="II", weight_mode="ternary"), 2),
])
def test_online_equals_a_hand_written_loop_of_per_step_backwards(options, steps):
    x, y = batch(dtype=np.float64)
    make = lambda: digits_net(T=4, width=0.5, rng=np.random.default_rng(0), **options).to(np.float64)  # noqa
    a, b = make(), make()
    OnlineTrainer(a, _NoStep(a.parameters()), steps=steps, rng=np.random.default_rng(3)).train_batch(x, y)
    chosen = (range(4) if steps == "all"
              else np.sort(np.random.default_rng(3).choice(4, size=steps, replace=False)).tolist())

    b.train().reset_state()  # SPEC E16 written out
    for t in range(4):
        b.detach_state()
        if t in chosen:
            (ops.cross_entropy(b(Tensor(x)), y) / len(chosen)).backward()
        else:
            with no_grad():
                b(Tensor(x))
    ga, gb = grads(a), grads(b)
    assert ga.keys() == gb.keys() and len(ga) == len(list(a.parameters()))
    for name in ga:
        np.testing.assert_allclose(ga[name], gb[name], rtol=1e-12, atol=1e-15, err_msg=name)


def test_stbp_equals_a_hand_written_unrolled_graph():
    x, y = batch(dtype=np.float64)
    a, b = small_net(dtype=np.float64), small_net(dtype=np.float64)
    STBPTrainer(a, _NoStep(a.parameters())).train_batch(x, y)

    b.train().reset_state()  # SPEC E17 written out: stepped, graph kept through time
    losses = [ops.cross_entropy(b(Tensor(x)), y) for _ in range(4)]
    (sum(losses[1:], losses[0]) / 4).backward()
    ga, gb = grads(a), grads(b)
    for name in ga:
        np.testing.assert_allclose(ga[name], gb[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_k_step_selection_is_reproducible_and_uniform():
    model = small_net(T=8)
    trainer = OnlineTrainer(model, None, steps=3, rng=np.random.default_rng(42))
    first = [trainer.draw_steps() for _ in range(2000)]
    again = OnlineTrainer(model, None, steps=3, rng=np.random.default_rng(42))
    assert all(np.array_equal(s, again.draw_steps()) for s in first)
    assert all(len(set(s.tolist())) == 3 for s in first)  # without replacement
    counts = np.bincount(np.concatenate(first), minlength=8)
    expected = 2000 * 3 / 8  # 750 per step; binomial sd ~ 21.6, so 5 sd is 108
    assert np.all(np.abs(counts - expected) < 108), counts
    other = OnlineTrainer(model, None, steps=3, rng=np.random.default_rng(7))
    assert any(not np.array_equal(s, other.draw_steps()) for s in first[:20])  # the seed matters


class GradProbe(Function):
    """Identity whose backward records the gradient reaching it (here: dL/dI_t = dL/dm_t)."""

    name = "grad_probe"
    seen: list = []

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        GradProbe.seen.append(np.array(g))
        return g


class Probe(Module):
    def forward(self, x):
        return GradProbe.apply(x)


def one_layer_net(T):
    rng = np.random.default_rng(3)
    net = Sequential(Flatten(), Linear(64, 12, rng=rng, dtype=np.float64), Probe(), HDLIF(T),
                     Linear(12, 10, rng=rng, dtype=np.float64))
    net.T = T
    return net


def test_e6_prime_online_equals_chi_times_stbp_through_the_trainers():
    T = 5
    x, y = batch(seed=4, n=8, dtype=np.float64)
    x *= 3.0  # a mix of firing and silent neurons
    online_net, stbp_net = one_layer_net(T), one_layer_net(T)
    GradProbe.seen = []
    OnlineTrainer(online_net, _NoStep(online_net.parameters()), steps="all").train_batch(x, y)
    online = np.stack(GradProbe.seen)  # one [N, 12] per step, in step order
    GradProbe.seen = []
    STBPTrainer(stbp_net, _NoStep(stbp_net.parameters())).train_batch(x, y)
    (stbp,) = GradProbe.seen  # [T, N, 12]

    # chi[t,t] = H(m_t - theta) from a plain loop of SPEC E1-E2 on the recorded currents
    current = x.reshape(8, 64) @ online_net[1].weight.data.T + online_net[1].bias.data
    lam, theta = online_net[3].lam.data, online_net[3].theta.data
    u, chi = np.zeros_like(current), []
    for t in range(T):
        m = lam[t] * u + current
        chi.append((m - theta[t] >= 0).astype(float))
        u = np.minimum(m, theta[t])
    chi = np.stack(chi)
    assert 0.1 < chi.mean() < 0.9
    np.testing.assert_allclose(online, chi * stbp, rtol=1e-10, atol=1e-14)
    assert np.abs(stbp * (1 - chi)).max() > 1e-6  # STBP is non-zero where the neuron was silent


def peak_traced_bytes(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["online", "stbp"])
def test_memory_of_one_training_step_versus_T(kind):
    """Online (E16) keeps one step's graph: peak memory flat in T; STBP keeps all T."""
    x, y = batch(n=32)
    peaks = {}
    for T in (2, 16):
        model = small_net(T=T)
        opt = SGD(model.parameters(), lr=0.01)
        trainer = (OnlineTrainer(model, opt, steps=1, rng=np.random.default_rng(0)) if kind == "online"
                   else STBPTrainer(model, opt))
        trainer.train_batch(x, y)  # warm-up: kernels compiled, optimizer state allocated
        peaks[T] = peak_traced_bytes(lambda: trainer.train_batch(x, y))
    growth = peaks[16] / peaks[2]
    print(f"{kind}: peak traced memory T=2 {peaks[2] / 1e6:.2f} MB, T=16 {peaks[16] / 1e6:.2f} MB, x{growth:.2f}")
    if kind == "online":
        assert growth <= 1.25
    else:
        assert growth >= 3.0


def test_update_per_step_changes_the_weights_after_every_backpropagated_step():
    x, y = batch()
    model = small_net(T=3)
    steps = []

    class Counting(SGD):
        def step(self):
            steps.append(1)
            super().step()
    OnlineTrainer(model, Counting(model.parameters(), lr=0.1), steps="all", update="step").train_batch(x, y)
    assert len(steps) == 3
    steps.clear()
    OnlineTrainer(model, Counting(model.parameters(), lr=0.1), steps=2, update="batch",
                  rng=np.random.default_rng(0)).train_batch(x, y)
    assert len(steps) == 1


def test_evaluation_reports_accuracy_from_the_first_t_steps_and_firing_rates():
    model = small_net(T=3)
    x, y = batch(n=10)
    result = OnlineTrainer(model, None).evaluate([(x, y)])
    assert len(result.accuracy_by_steps) == 3 and result.accuracy == result.accuracy_by_steps[-1]
    with no_grad():  # accuracy from the first t steps, recomputed by hand
        model.eval().reset_state()
        logits = np.stack([model(Tensor(x)).data for _ in range(3)])
        model.train()
    for t in range(3):
        expected = np.mean(logits[: t + 1].mean(axis=0).argmax(axis=1) == y)
        assert result.accuracy_by_steps[t] == pytest.approx(expected)
    assert set(result.firing_rates) == {name for name, m in model.named_modules() if isinstance(m, HDLIF)}
    assert all(0.0 <= r <= 1.0 for r in result.firing_rates.values())


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=0), r"steps=0; allowed: 'all' or an integer K in \[1, T=4\]"),
    (dict(steps=5), r"steps=5; allowed"),
    (dict(update="epoch"), r"update='epoch'; allowed: batch, step"),
])
def test_trainer_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OnlineTrainer(small_net(), None, **kwargs)


def test_event_input_must_have_T_frames():
    model = small_net(T=4)
    with pytest.raises(ValueError, match=r"event input has 3 frames .* the model runs T=4 steps"):
        OnlineTrainer(model, _NoStep(model.parameters())).train_batch(np.zeros((3, 2, 1, 8, 8), np.float32),
                                                                     np.zeros(2, int))
