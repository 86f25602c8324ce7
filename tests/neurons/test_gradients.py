"""Exact gradients of HD-LIF and Parallel HD-LIF (SPEC E3, E4, E5, E8).

* STBP (E4) against float64 central differences (``gradcheck``) for ``I``, ``lam``,
  ``theta``, fused and stepped, inputs moved off the thresholds (the derivative has
  a kink there);
* points exactly on the threshold against E3 worked by hand (``H(0) = 1``);
* online (E5) against its definition computed from a plain loop;
* module paths: stepping with the graph kept equals the fused STBP gradients,
  stepping with ``detach_state()`` equals the fused online gradients.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.neurons import (HDLIF, LIF, HDLIFParams, MemBNHDLIF, NeuronState, ParallelHDLIF,
                               ParallelHDLIFParams, hdlif_seq, hdlif_step, parallel_hdlif_seq, parallel_hdlif_step)

from ._loops import hdlif_loop, nudge_off_threshold
from ._strategies import neuron_case

SMALL = dict(dtype=np.float64, max_T=4, max_side=3, max_dims=3)  # gradcheck: 2 forwards per element


def leaf(x):
    return Tensor(np.array(x, dtype=np.float64), requires_grad=True)


def stepped(step_fn, make_params):
    """A function of ``(I, *params)`` that runs the step function ``T`` times with the graph kept."""
    def run(I, *params):
        state, outs = NeuronState(), []
        for I_t in ops.unstack(I, 0):
            s, state = step_fn(I_t, state, make_params(*params))
            outs.append(s)
        return ops.stack(outs, 0)
    return run


def small_case(draw_case):
    I, lam, theta = draw_case
    return nudge_off_threshold(I, lam, theta), lam, theta


@given(case=neuron_case(**SMALL))
@settings(max_examples=25)
def test_e4_hdlif_stbp_matches_finite_differences(case):
    I, lam, theta = small_case(case)
    assert gradcheck(lambda x, l, t: hdlif_seq(x, l, t), [leaf(I), leaf(lam), leaf(theta)])


@given(case=neuron_case(**SMALL))
@settings(max_examples=15)
def test_e4_hdlif_stepped_stbp_matches_finite_differences(case):
    I, lam, theta = small_case(case)
    fn = stepped(hdlif_step, HDLIFParams)
    assert gradcheck(fn, [leaf(I), leaf(lam), leaf(theta)])


@given(case=neuron_case(**SMALL))
@settings(max_examples=20)
def test_e8_parallel_matches_finite_differences(case):
    I, _, theta = case
    # Parallel HD-LIF fires on I_t itself: move I off theta_t
    th = np.broadcast_to(theta.reshape(theta.shape + (1,) * (I.ndim - theta.ndim)) if theta.ndim == 1
                         else theta.reshape((theta.shape[0], 1, theta.shape[1]) + (1,) * (I.ndim - 3)), I.shape)
    I = np.where(np.abs(I - th) < 1e-3, I + 3e-3, I)
    assert gradcheck(lambda x, t: parallel_hdlif_seq(x, t), [leaf(I), leaf(theta)])
    assert gradcheck(stepped(parallel_hdlif_step, ParallelHDLIFParams), [leaf(I), leaf(theta)])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("path", ["fused", "stepped"])
def test_e3_gradients_exactly_on_the_threshold(path, backend):
    """m_0 = theta_0 exactly: chi[0,0] = H(0) = 1 and chi[1,0] = 0 (SPEC E3), worked by hand.

    T = 2, one neuron, lam = 0.5, theta = 1, I = (1, 0.75): m_0 = 1 (on the threshold,
    s*_0 = 0, u_0 = 1), m_1 = 0.5 + 0.75 = 1.25 (fires, s*_1 = 0.25). With upstream
    gradients g0, g1:
      dL/dI_1 = g1;  dL/dI_0 = g0 (u_0 = theta_0 does not depend on m_0);
      dL/dtheta_1 = -g1;  dL/dtheta_0 = -g0 + lam_1 g1 (theta_0 enters through u_0 = theta_0);
      dL/dlam_1 = g1 u_0 = g1;  dL/dlam_0 = dL/dm_0 u_{-1} = 0.
    A relu derivative of 0 at 0 would give dL/dI_0 = lam_1 g1 instead.
    """
    import hdlif_ref

    g0, g1 = 0.3, -0.7
    I, lam, theta = leaf([[1.0], [0.75]]), leaf([0.5, 0.5]), leaf([1.0, 1.0])
    with hdlif_ref.backend(backend):
        if path == "fused":
            s = hdlif_seq(I, lam, theta)
        else:
            s = stepped(hdlif_step, HDLIFParams)(I, lam, theta)
        np.testing.assert_array_equal(s.data, [[0.0], [0.25]])
        s.backward(np.array([[g0], [g1]]))
    np.testing.assert_allclose(I.grad, [[g0], [g1]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(theta.grad, [-g0 + 0.5 * g1, -g1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(lam.grad, [0.0, g1], rtol=0, atol=1e-15)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_e8_gradient_exactly_on_the_threshold(backend):
    import hdlif_ref

    I, theta = leaf([[1.0, 0.5]]), leaf([1.0])
    with hdlif_ref.backend(backend):
        s = parallel_hdlif_seq(I, theta)
        s.backward(np.array([[2.0, 3.0]]))
    np.testing.assert_array_equal(s.data, [[0.0, 0.0]])
    np.testing.assert_array_equal(I.grad, [[2.0, 0.0]])  # H(0) = 1 at I = theta
    np.testing.assert_array_equal(theta.grad, [-2.0])


def _sum_like(x, p):
    """Sum ``x: [N, ...]`` to a per-step parameter value: a scalar, or ``[C]`` (channel = dim 1)."""
    return x.sum() if p.ndim == 1 else x.sum(axis=(0,) + tuple(range(2, x.ndim)))


@given(case=neuron_case(**SMALL), data=st.data())
@settings(max_examples=30)
def test_e5_online_gradients_match_their_definition(case, data):
    """dL/dI_t = H_t g_t,  dL/dlam_t = sum H_t g_t u_{t-1},  dL/dtheta_t = -sum H_t g_t (u_{t-1} detached)."""
    I, lam, theta = case
    g = data.draw(st.sampled_from([1.0, -0.5])) * np.sin(1.0 + np.arange(I.size)).reshape(I.shape)
    m, _, u = hdlif_loop(I, lam, theta)
    th = np.stack([np.broadcast_to(theta[t].reshape((1, -1) + (1,) * (I.ndim - 3)) if theta.ndim == 2
                                   else theta[t], I.shape[1:]) for t in range(I.shape[0])])
    H = m >= th
    u_prev = np.concatenate([np.zeros((1,) + I.shape[1:]), u[:-1]])
    want_I = np.where(H, g, 0.0)
    want_lam = np.stack([_sum_like(want_I[t] * u_prev[t], lam) for t in range(I.shape[0])])
    want_theta = np.stack([_sum_like(-want_I[t], theta) for t in range(I.shape[0])])
    x, l, t = leaf(I), leaf(lam), leaf(theta)
    hdlif_seq(x, l, t, gradient="online").backward(g)
    np.testing.assert_array_equal(x.grad, want_I)
    np.testing.assert_allclose(l.grad, want_lam, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t.grad, want_theta, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------- module paths
def _neurons(T, C):
    return [HDLIF(T, dtype=np.float64), HDLIF(T, channels=C, per_channel=True, lam_init=0.75, dtype=np.float64),
            LIF(T, dtype=np.float64), LIF(T, reset="soft", dtype=np.float64), ParallelHDLIF(T, dtype=np.float64),
            MemBNHDLIF(T, C, per_channel=True, dtype=np.float64), HDLIF(T, spike_bits=4, dtype=np.float64)]


def _randomize(neuron, rng):
    for name, p in neuron.named_parameters():
        if name in ("lam", "theta", "alpha", "bn_weight"):
            p.data[...] = rng.uniform(0.3, 1.2, p.shape)
        elif name in ("beta", "bn_bias"):
            p.data[...] = rng.uniform(-0.5, 0.5, p.shape)


def _grads(neuron, x):
    return [x.grad] + [p.grad if p.grad is not None else np.zeros(p.shape) for p in neuron.parameters()]


@pytest.mark.parametrize("gradient", ["stbp", "online"])
def test_stepped_module_gradients_equal_fused(gradient):
    """Graph kept through time = fused STBP (E4); detach_state() between steps = fused online (E5).

    The online case follows SPEC E16: a backward after every step, accumulating.
    """
    rng = np.random.default_rng(5)
    T, N, C = 4, 3, 2
    I = rng.standard_normal((T, N, C, 3)) * 1.5
    g = rng.standard_normal(I.shape)
    for neuron in _neurons(T, C):
        _randomize(neuron, rng)
        x = leaf(I)
        neuron.forward_seq(x, gradient=gradient).backward(g)
        fused = _grads(neuron, x)
        neuron.zero_grad()
        if isinstance(neuron, MemBNHDLIF):
            neuron.running_mean[...], neuron.running_var[...] = 0, 1
        neuron.reset_state()
        x = leaf(I)
        steps = ops.unstack(x, 0)
        if gradient == "stbp":
            ops.stack([neuron(steps[t]) for t in range(T)], 0).backward(g)
        else:
            for t in range(T):
                neuron(steps[t]).backward(g[t], retain_graph=True)  # steps[t] shares the unstack node
                neuron.detach_state()
        for a, b in zip(_grads(neuron, x), fused):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=repr(neuron))


# ---------------------------------------------------------------------------- one step, state frozen or trained
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("kind", ["hdlif", "lif", "lif_soft_sigmoid", "bn_hdlif"])
@pytest.mark.parametrize("loss_on_u", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_step_gives_the_same_gradients_whether_its_state_is_trained_or_not(backend, kind, loss_on_u, per_channel,
                                                                             dtype):
    """The one-step ops take the online kernels (E5's step-alone form of E4) where ``u_{t-1}`` needs no gradient
    and none reaches ``u_t``, the STBP kernels otherwise. The gradients of the current and of ``lam`` and
    ``theta`` must not depend on which ran: ``u_{t-1}`` trained or frozen, with a loss on ``s_t`` alone or on
    ``u_t`` too (then the state carries a gradient even with ``u_{t-1}`` frozen)."""
    import hdlif_ref
    from hdlif_ref.autograd.ops.neuron import BNHDLIFStep, HDLIFStep, LIFStep

    rng = np.random.default_rng(7)
    N, C, L, T, t = 3, 2, 40, 3, 1
    x = rng.standard_normal((N, C, L)) * 2
    x.flat[::4] = 1.0  # on a threshold: the current equals theta where u_prev is 0
    u_prev = rng.uniform(-1, 1, (N, C, L))
    u_prev.flat[::4] = 0.0
    lam = rng.uniform(0.2, 0.9, (T, C) if per_channel else T)
    theta = np.ones((T, C) if per_channel else T)
    g_s, g_u = rng.standard_normal((2, N, C, L)).astype(dtype)
    grads = []
    for train_state in (True, False):
        leaves = [Tensor(a.astype(dtype), requires_grad=True) for a in (x, lam, theta)]
        state = Tensor(u_prev.astype(dtype), requires_grad=train_state)
        xl, ll, tl = leaves
        with hdlif_ref.backend(backend):
            if kind == "hdlif":
                s, u = HDLIFStep.apply(xl, state, ll, tl, t=t)
            elif kind == "lif":
                s, u = LIFStep.apply(xl, state, ll, tl, t=t, soft=False, gamma=1.0, surrogate=0)
            elif kind == "lif_soft_sigmoid":  # a surrogate other than the default (its code not a constant)
                s, u = LIFStep.apply(xl, state, ll, tl, t=t, soft=True, gamma=4.0, surrogate=1)
            else:
                s, u = BNHDLIFStep.apply(xl, state, ll, tl, has_weight=False, has_bias=False, has_step=False, t=t,
                                         bits=None, running_mean=None, running_var=None, momentum=0.1, eps=1e-5)
            loss = ops.sum(s * Tensor(g_s)) + (ops.sum(u * Tensor(g_u)) if loss_on_u else 0.0)
            loss.backward()
        assert (state.grad is not None) == train_state
        grads.append([leaf.grad for leaf in leaves])
    for trained, frozen, name in zip(*grads, ("current", "lam", "theta")):
        np.testing.assert_array_equal(trained, frozen, err_msg=name)
