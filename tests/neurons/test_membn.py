"""Mem-BN HD-LIF (SPEC E9) and its re-parameterization (E10)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.neurons import (HDLIF, MemBNHDLIF, MemBNParams, NeuronState, hdlif_seq, membn_hdlif_record,
                               membn_hdlif_seq, membn_hdlif_step)

NAMES = ("lam", "theta", "alpha", "beta", "bn_weight", "bn_bias")


def leaf(x):
    return Tensor(np.array(x, dtype=np.float64), requires_grad=True)


def random_params(rng, T, C, per_channel):
    shape = (T, C) if per_channel else (T,)
    return [rng.uniform(0.1, 0.9, shape), rng.uniform(0.2, 1.2, shape), rng.uniform(0.5, 1.5, shape),
            rng.uniform(-1.0, 1.0, shape), rng.uniform(0.5, 1.5, (T, C)), rng.uniform(-0.5, 0.5, (T, C))]


CASES = dict(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 3), N=st.integers(1, 3), C=st.integers(1, 2),
             spatial=st.sampled_from([(), (2,), (1, 3)]), per_channel=st.booleans(), training=st.booleans())


@given(**CASES)
@settings(max_examples=20)
def test_e9_membn_stbp_matches_finite_differences(seed, T, N, C, spatial, per_channel, training):
    rng = np.random.default_rng(seed)
    I = rng.standard_normal((T, N, C) + spatial) * 1.5
    params = random_params(rng, T, C, per_channel)
    stats = {} if training else dict(running_mean=rng.standard_normal((T, C)),
                                     running_var=rng.uniform(0.5, 2.0, (T, C)))
    rec = membn_hdlif_record(I, *params, training=training, **stats)
    theta = params[1] if per_channel else params[1][:, None]
    gap = rec.mhat - theta.reshape((T, 1, C) + (1,) * len(spatial)) if per_channel else \
        rec.mhat - params[1].reshape((T,) + (1,) * (rec.mhat.ndim - 1))
    assume(np.abs(gap).min() > 1e-4)  # no point on a threshold (kink) for finite differences
    fn = lambda *a: membn_hdlif_seq(*a, training=training, **stats)  # noqa: E731
    assert gradcheck(fn, [leaf(I)] + [leaf(p) for p in params], atol=1e-5, rtol=1e-4)

    def stepped(I, *p):
        state, outs = NeuronState(), []
        for I_t in ops.unstack(I, 0):
            s, state = membn_hdlif_step(I_t, state, MemBNParams(*p, **stats, training=training))
            outs.append(s)
        return ops.stack(outs, 0)
    assert gradcheck(stepped, [leaf(I)] + [leaf(p) for p in params], atol=1e-5, rtol=1e-4)


@given(seed=st.integers(0, 2**32 - 1), per_channel=st.booleans(), training=st.booleans())
@settings(max_examples=15)
def test_e9_alpha_one_beta_zero_is_vanilla_hdlif(seed, per_channel, training):
    """mhat = 1 m + 0 BN(m) = m: spikes and state bit for bit, gradients of I, lam, theta equal."""
    rng = np.random.default_rng(seed)
    T, N, C = 4, 3, 2
    I = rng.standard_normal((T, N, C, 3)) * 1.5
    lam, theta, _, _, w, b = random_params(rng, T, C, per_channel)
    shape = lam.shape
    stats = {} if training else dict(running_mean=rng.standard_normal((T, C)), running_var=rng.uniform(0.5, 2, (T, C)))
    g = rng.standard_normal(I.shape)
    grads = {}
    for kind in ("membn", "hdlif"):
        x, l, t = leaf(I), leaf(lam), leaf(theta)
        if kind == "membn":
            s = membn_hdlif_seq(x, l, t, np.ones(shape), np.zeros(shape), w, b, training=training, **stats)
        else:
            s = hdlif_seq(x, l, t)
        s.backward(g)
        grads[kind] = (s.data, x.grad, l.grad, t.grad)
    np.testing.assert_array_equal(grads["membn"][0], grads["hdlif"][0])
    for a, b_ in zip(grads["membn"][1:], grads["hdlif"][1:]):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), per_channel=st.booleans(), spike_bits=st.sampled_from([None, 4]),
       mean_scale=st.floats(0.0, 3.0), var_low=st.sampled_from([0.05, 0.1, 1.0]), var_span=st.floats(0.0, 4.0))
@settings(max_examples=30)
def test_e10_reparameterized_hdlif_matches_membn_in_eval_mode(seed, per_channel, spike_bits, mean_scale, var_low,
                                                             var_span):
    """The comparison is absolute (atol 1e-10): statistics are drawn with var >= 0.05, so that
    |alpha*| <= 1.5 + 1.5 / sqrt(0.05) and the membrane stays below ~1e4 over T = 4 steps
    (a tiny var makes lamhat = alpha* lam >> 1 and u grow geometrically, where only a relative
    tolerance makes sense)."""
    rng = np.random.default_rng(seed)
    T, N, C = 4, 3, 3
    neuron = MemBNHDLIF(T, C, per_channel=per_channel, spike_bits=spike_bits, dtype=np.float64)
    for name, p in zip(NAMES, random_params(rng, T, C, per_channel)):
        getattr(neuron, name).data[...] = p
    neuron.running_mean[...] = mean_scale * rng.standard_normal((T, C))
    neuron.running_var[...] = var_low + var_span * rng.random((T, C))
    neuron.eval()
    I = rng.standard_normal((T, N, C, 2, 2)) * 2.0
    folded = neuron.reparameterize()
    assert folded.neuron.lam.shape == (T, C) and folded.scale.shape == (T, C) and folded.bias.shape == (T, C)
    a, b = neuron.record(I), folded.neuron.record(folded.input(I))
    np.testing.assert_allclose(b.m, a.mhat, rtol=0, atol=1e-10)  # the folded charge is mhat (E10)
    np.testing.assert_allclose(b.s, a.s, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b.u, a.u, rtol=0, atol=1e-10)
    if spike_bits is None:  # the modules' emitted spikes too
        np.testing.assert_allclose(folded.neuron.forward_seq(folded.input(I)).data, neuron.forward_seq(I).data,
                                   rtol=0, atol=1e-10)


def test_running_statistics_follow_the_hand_computation():
    """Two training-mode sequences: running = (1 - mom) running + mom * stat, unbiased variance (PyTorch)."""
    rng = np.random.default_rng(3)
    T, N, C, mom = 2, 4, 3, 0.25
    neuron = MemBNHDLIF(T, C, momentum=mom, dtype=np.float64)
    neuron.alpha.data[...] = 0.7  # non-trivial membrane so that m differs from I after step 0
    neuron.beta.data[...] = 0.5
    mean, var = np.zeros((T, C)), np.ones((T, C))
    for _ in range(2):
        I = rng.standard_normal((T, N, C, 5))
        m = neuron.record(I).m  # training-mode record: the m the statistics are taken of
        neuron.forward_seq(I)
        mean = (1 - mom) * mean + mom * m.mean(axis=(1, 3))
        var = (1 - mom) * var + mom * m.var(axis=(1, 3), ddof=1)
    np.testing.assert_allclose(neuron.running_mean, mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(neuron.running_var, var, rtol=1e-12, atol=1e-14)
    # stepping updates row t at step t only
    before = neuron.running_mean.copy()
    neuron.reset_state()
    neuron(I[0])
    assert not np.array_equal(neuron.running_mean[0], before[0])
    np.testing.assert_array_equal(neuron.running_mean[1], before[1])


def test_eval_mode_uses_running_statistics_and_leaves_them():
    rng = np.random.default_rng(4)
    neuron = MemBNHDLIF(2, 2, dtype=np.float64).eval()
    neuron.beta.data[...] = 1.0
    neuron.running_mean[...] = [[0.5, -0.5], [0.0, 1.0]]
    neuron.running_var[...] = [[2.0, 1.0], [0.5, 3.0]]
    saved = neuron.running_mean.copy(), neuron.running_var.copy()
    I = rng.standard_normal((2, 3, 2))
    rec = neuron.record(I)
    np.testing.assert_array_equal(rec.mean, saved[0])
    neuron.forward_seq(I)
    np.testing.assert_array_equal(neuron.running_mean, saved[0])
    np.testing.assert_array_equal(neuron.running_var, saved[1])
    # BN_t(m) with the running statistics: mhat = m + (m - mean) / sqrt(var + eps) at alpha = beta = 1
    m = rec.m
    want = m + (m - saved[0][:, None, :]) / np.sqrt(saved[1][:, None, :] + 1e-5)
    np.testing.assert_allclose(rec.mhat, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_reparameterize_returns_vanilla_hdlif(training):
    neuron = MemBNHDLIF(3, 4, dtype=np.float32)
    neuron.train(training)
    folded = neuron.reparameterize()
    assert isinstance(folded.neuron, HDLIF) and folded.neuron.per_channel and folded.neuron.channels == 4
    assert folded.neuron.lam.dtype == np.float32 and not folded.neuron.training
    # defaults (alpha = 1, beta = 0): nothing to fold
    np.testing.assert_array_equal(folded.scale, np.ones((3, 4)))
    np.testing.assert_array_equal(folded.bias, np.zeros((3, 4)))
    np.testing.assert_array_equal(folded.neuron.lam.data, np.full((3, 4), 0.5, np.float32))
