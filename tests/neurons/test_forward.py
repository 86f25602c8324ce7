"""Forwards of every neuron against plain loops (SPEC E1, E2, E7, E8, E9); backends; stepped = fused."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hdlif_ref
from hdlif_ref.autograd import Tensor
from hdlif_ref.neurons import (HDLIF, LIF, MemBNHDLIF, ParallelHDLIF, hdlif_record, hdlif_seq, lif_record,
                               lif_seq, membn_hdlif_record, membn_hdlif_seq, parallel_hdlif_seq)

from ._loops import hdlif_loop, lif_loop, membn_loop, parallel_loop
from ._strategies import neuron_case

BACKENDS = ["numba", "numpy"]


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=neuron_case())
def test_hdlif_forward_matches_plain_loop(backend, case):
    I, lam, theta = case
    m, s, u = hdlif_loop(I, lam, theta)
    with hdlif_ref.backend(backend):
        out = hdlif_seq(I, lam, theta)
    assert out.dtype == I.dtype and out.shape == I.shape
    np.testing.assert_array_equal(out.data, s)  # same operations in the same dtype: bit for bit
    rec = hdlif_record(I, lam, theta)
    for got, want in ((rec.m, m), (rec.s, s), (rec.u, u)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_hdlif_forward_exactly_on_threshold(backend):
    """SPEC E3: m_t = theta_t gives s* = 0 and u = theta; the next step then starts from theta.

    The forward alone cannot tell ``>=`` from ``>`` here (both give s* = 0 and u = 1), so the
    gradient is read too: with H(0) = 1, dL/dI_0 = g_0 (u_0 = theta_0 is a constant of m_0) and
    dL/dtheta_0 = -g_0 + lam_1 dL/dm_1 = -g_0; a ``>`` gives dL/dI_0 = lam_1 dL/dm_1 = 0 here and
    dL/dtheta_0 = 0.
    """
    I = np.array([[1.0], [0.25]])  # T = 2, one neuron; theta = 1, lam = 0.5
    with hdlif_ref.backend(backend):
        rec = hdlif_record(I, np.array([0.5, 0.5]), np.array([1.0, 1.0]))
        assert rec.m[0, 0] == 1.0 and rec.s[0, 0] == 0.0 and rec.u[0, 0] == 1.0
        assert rec.m[1, 0] == 0.5 * 1.0 + 0.25 and rec.s[1, 0] == 0.0 and rec.u[1, 0] == 0.75
        leaves = [Tensor(v, requires_grad=True) for v in (I, np.array([0.5, 0.5]), np.array([1.0, 1.0]))]
        hdlif_seq(*leaves).backward(np.array([[2.0], [3.0]]))
    # step 1 does not fire (m_1 = 0.75 < 1): dL/dm_1 = 0; step 0 sits on theta: chi[0,0] = 1
    np.testing.assert_array_equal(leaves[0].grad, [[2.0], [0.0]])
    np.testing.assert_array_equal(leaves[2].grad, [-2.0, 0.0])


@pytest.mark.parametrize("reset", ["hard", "soft"])
@given(case=neuron_case())
def test_lif_forward_matches_plain_loop(reset, case):
    I, lam, theta = case
    m, s, u = lif_loop(I, lam, theta, reset)
    out = lif_seq(I, lam, theta, reset=reset)
    np.testing.assert_array_equal(out.data, s)
    rec = lif_record(I, lam, theta, reset)
    for got, want in ((rec.m, m), (rec.s, s), (rec.u, u)):
        np.testing.assert_array_equal(got, want)


@given(case=neuron_case())
def test_parallel_forward_matches_plain_loop(case):
    I, _, theta = case
    np.testing.assert_array_equal(parallel_hdlif_seq(I, theta).data, parallel_loop(I, theta))


def _membn_params(rng, T, C, per_channel):
    shape = (T, C) if per_channel else (T,)
    return dict(lam=rng.uniform(0, 1, shape), theta=rng.uniform(0.2, 1.5, shape),
                alpha=rng.uniform(0.5, 1.5, shape), beta=rng.uniform(-1, 1, shape),
                bn_weight=rng.uniform(0.5, 1.5, (T, C)), bn_bias=rng.uniform(-0.5, 0.5, (T, C)))


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 4), N=st.integers(1, 3), C=st.integers(1, 3),
       spatial=st.sampled_from([(), (2,), (2, 3)]), per_channel=st.booleans(), training=st.booleans())
@settings(max_examples=25)
def test_membn_forward_matches_plain_loop(seed, T, N, C, spatial, per_channel, training):
    rng = np.random.default_rng(seed)
    I = rng.standard_normal((T, N, C) + spatial) * 1.5
    p = _membn_params(rng, T, C, per_channel)
    stats = {} if training else dict(running_mean=rng.standard_normal((T, C)), running_var=rng.uniform(0.5, 2, (T, C)))
    m, mhat, s, u, mean, var = membn_loop(I, *p.values(), mean=stats.get("running_mean"),
                                          var=stats.get("running_var"))
    rec = membn_hdlif_record(I, *p.values(), training=training, **stats)
    out = membn_hdlif_seq(I, *p.values(), training=training, **stats)
    for got, want in ((rec.m, m), (rec.mhat, mhat), (rec.s, s), (rec.u, u), (rec.mean, mean), (rec.var, var),
                      (out.data, s)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- backends
@given(case=neuron_case(), reset=st.sampled_from(["hard", "soft"]), data=st.data())
@settings(max_examples=30)
def test_numba_equals_numpy_twin(case, reset, data):
    """Forwards bit for bit; gradients: element-wise ones bit for bit, sums to rounding."""
    I, lam, theta = case
    g = data.draw(st.sampled_from([0.5, -1.0, 2.0])) * np.cos(np.arange(I.size)).reshape(I.shape).astype(I.dtype)
    results = {}
    for backend in BACKENDS:
        with hdlif_ref.backend(backend):
            outs = []
            for fn in (lambda x, l, t: hdlif_seq(x, l, t), lambda x, l, t: hdlif_seq(x, l, t, gradient="online"),
                       lambda x, l, t: lif_seq(x, l, t, reset=reset),
                       lambda x, l, t: lif_seq(x, l, t, reset=reset, gradient="online"),
                       lambda x, l, t: parallel_hdlif_seq(x, t)):
                x, l, t = (Tensor(a.copy(), requires_grad=True) for a in (I, lam, theta))
                s = fn(x, l, t)
                s.backward(g)
                outs.append((s.data, x.grad, l.grad, t.grad))
            results[backend] = outs
    tol = 1e-5 if I.dtype == np.float32 else 1e-12
    for a, b in zip(results["numba"], results["numpy"]):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        for ga, gb in zip(a[2:], b[2:]):
            if ga is None:
                assert gb is None
            else:
                np.testing.assert_allclose(ga, gb, rtol=tol, atol=tol * max(1.0, float(np.abs(gb).max())))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("online", [False, True])
def test_membn_numba_equals_numpy_twin(dtype, online):
    rng = np.random.default_rng(7)
    T, N, C = 3, 4, 3
    I = (rng.standard_normal((T, N, C, 5)) * 1.5).astype(dtype)
    p = {k: v.astype(dtype) for k, v in _membn_params(rng, T, C, True).items()}
    g = rng.standard_normal(I.shape).astype(dtype)
    results = {}
    for backend in BACKENDS:
        with hdlif_ref.backend(backend):
            leaves = [Tensor(a.copy(), requires_grad=True) for a in (I, *p.values())]
            s = membn_hdlif_seq(*leaves, gradient="online" if online else "stbp")
            s.backward(g)
            results[backend] = [s.data] + [x.grad for x in leaves]
    tol = 2e-4 if dtype == np.float32 else 1e-10
    for a, b in zip(results["numba"], results["numpy"]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------- stepped = fused
def _modules(T, C, dtype):
    return [HDLIF(T, dtype=dtype), HDLIF(T, channels=C, per_channel=True, lam_init=0.75, dtype=dtype),
            LIF(T, dtype=dtype), LIF(T, reset="soft", gamma=0.5, dtype=dtype), ParallelHDLIF(T, dtype=dtype),
            MemBNHDLIF(T, C, dtype=dtype), HDLIF(T, spike_bits=3, dtype=dtype)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stepped_forward_equals_forward_seq_bit_for_bit(backend, dtype):
    rng = np.random.default_rng(11)
    T, N, C = 4, 3, 2
    I = (rng.standard_normal((T, N, C, 3, 2)) * 1.5).astype(dtype)
    I[1, 0, 0] = 1.0  # exactly on a threshold at t = 0 for the neurons with lam * 0 + I = theta
    I[0, 0, 0] = 1.0
    with hdlif_ref.backend(backend):
        for neuron in _modules(T, C, dtype):
            seq = neuron.forward_seq(I)
            if isinstance(neuron, MemBNHDLIF):  # the running statistics must start equal too
                after_seq = neuron.running_mean.copy(), neuron.running_var.copy()
                neuron.running_mean[...], neuron.running_var[...] = 0, 1
            neuron.reset_state()
            steps = np.stack([neuron.forward(I[t]).data for t in range(T)])
            assert steps.dtype == seq.dtype == dtype
            np.testing.assert_array_equal(steps, seq.data, err_msg=repr(neuron))
            if isinstance(neuron, MemBNHDLIF):
                np.testing.assert_array_equal(neuron.running_mean, after_seq[0])
                np.testing.assert_array_equal(neuron.running_var, after_seq[1])


@pytest.mark.parametrize("shape", [(2, 0, 3), (2, 3, 0), (1, 0), (3, 2, 2, 0, 4)])
def test_zero_size_inputs(shape):
    I = np.zeros(shape)
    for fn in (lambda x: hdlif_seq(x, np.full(shape[0], 0.5), np.ones(shape[0])),
               lambda x: lif_seq(x, np.full(shape[0], 0.5), np.ones(shape[0])),
               lambda x: parallel_hdlif_seq(x, np.ones(shape[0]))):
        x = Tensor(I, requires_grad=True)
        s = fn(x)
        assert s.shape == shape
        s.backward(np.zeros(shape))
        assert x.grad.shape == shape


def test_per_channel_parameters_act_on_dim_1():
    # two channels with different thresholds: channel 1's threshold is above every input
    I = np.full((2, 3, 2, 4), 0.8)
    s = hdlif_seq(I, np.full((2, 2), 0.5), np.array([[0.5, 5.0], [0.5, 5.0]])).data
    assert np.all(s[:, :, 0] > 0) and np.all(s[:, :, 1] == 0)
    np.testing.assert_allclose(s[0, :, 0], 0.3)  # m_0 = 0.8, surplus over 0.5
