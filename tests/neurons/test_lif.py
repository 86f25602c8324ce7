"""LIF baseline (SPEC E7): the triangle surrogate equals autodiff of its smooth primitive.

The primitive of the triangle ``sg(x) = max(gamma - |x|, 0) / gamma^2`` is the
piecewise quadratic

    sigma(x) = (relu(x + gamma)^2 - 2 relu(x)^2 + relu(x - gamma)^2) / (2 gamma^2)

(0 below ``-gamma``, 1 above ``gamma``; its derivative is the triangle because
``relu(x)^2`` has derivative ``2 relu(x)`` and the three ramps add up to the
triangle). The fused LIF backward is compared with the autograd engine
differentiating a LIF written in the test with the straight-through form
``s = H(x) + sigma(x) - detach(sigma(x))`` (value ``H(x)``, gradient ``sigma'(x)``),
reset included, through time (STBP) or with the state detached (online).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hdlif_ref.autograd import Tensor, gradcheck, ops
from hdlif_ref.neurons import LIFParams, NeuronState, lif_seq, lif_step

from ._strategies import neuron_case


def sigma(x: Tensor, gamma: float) -> Tensor:
    """The smooth primitive of the triangle surrogate, from generic autograd ops."""
    ramp = lambda z: ops.pow(ops.relu(z), 2)  # noqa: E731
    return (ramp(x + gamma) - 2.0 * ramp(x) + ramp(x - gamma)) / (2.0 * gamma * gamma)


@given(x=hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-3, 3, allow_subnormal=False)),
       gamma=st.sampled_from([0.25, 0.5, 1.0, 2.0]))
def test_e7_triangle_is_the_derivative_of_its_primitive(x, gamma):
    t = Tensor(x.copy(), requires_grad=True)
    sigma(t, gamma).backward(np.ones_like(x))
    np.testing.assert_allclose(t.grad, np.maximum(gamma - np.abs(x), 0) / gamma**2, rtol=1e-12, atol=1e-12)
    # and the primitive is what its autodiff says (finite differences, away from the kinks of sigma')
    far = x[np.min(np.abs(x[:, None] - np.array([-gamma, 0.0, gamma])[None, :]), axis=1) > 1e-3]
    if far.size:
        assert gradcheck(lambda z: sigma(z, gamma), [Tensor(far.copy(), requires_grad=True)])


def _param_t(p: Tensor, t: int, ndim: int) -> Tensor:
    """Row ``t`` of ``[T]`` / ``[T, C]`` shaped to broadcast against a step ``[N, C, ...]``."""
    row = p[t]
    if p.ndim == 1:
        return row
    return ops.reshape(row, (1, p.shape[1]) + (1,) * (ndim - 2))


def lif_by_autodiff(I: Tensor, lam: Tensor, theta: Tensor, reset: str, gamma: float, online: bool) -> Tensor:
    """SPEC E7 from generic autograd ops, with the straight-through surrogate spike."""
    u = Tensor(np.zeros(I.shape[1:]))
    outs = []
    for t, I_t in enumerate(ops.unstack(I, 0)):
        if online:
            u = u.detach()
        lam_t, theta_t = _param_t(lam, t, I_t.ndim), _param_t(theta, t, I_t.ndim)
        m = lam_t * u + I_t
        x = m - theta_t
        H = (m.data >= np.broadcast_to(theta_t.data, m.shape)).astype(np.float64)  # the forward: H(0) = 1
        sig = sigma(x, gamma)
        s = sig - sig.detach() + H
        u = m * (1.0 - s) if reset == "hard" else m - theta_t * s
        outs.append(s)
    return ops.stack(outs, 0)


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("online", [False, True])
@given(case=neuron_case(dtype=np.float64, max_T=4, max_side=3, max_dims=3), gamma=st.sampled_from([0.5, 1.0, 1.5]),
       data=st.data())
@settings(max_examples=20)
def test_e7_lif_surrogate_backward_equals_autodiff_of_primitive(reset, online, case, gamma, data):
    I, lam, theta = case
    g = data.draw(st.sampled_from([1.0, -0.5])) * np.cos(2.0 + np.arange(I.size)).reshape(I.shape)
    results = []
    for build in ("fused", "stepped", "autodiff"):
        x, l, t = (Tensor(a.copy(), requires_grad=True) for a in (I, lam, theta))
        if build == "fused":
            s = lif_seq(x, l, t, reset=reset, gamma=gamma, gradient="online" if online else "stbp")
        elif build == "stepped":
            state, outs = NeuronState(), []
            for I_t in ops.unstack(x, 0):
                s_t, state = lif_step(I_t, state.detach() if online else state, LIFParams(l, t, reset, gamma))
                outs.append(s_t)
            s = ops.stack(outs, 0)
        else:
            s = lif_by_autodiff(x, l, t, reset, gamma, online)
        s.backward(g)
        results.append((s.data, x.grad, l.grad, t.grad))
    fused, stepped_, autodiff = results
    for got in (fused, stepped_):
        np.testing.assert_array_equal(got[0], autodiff[0])
        for a, b in zip(got[1:], autodiff[1:]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
