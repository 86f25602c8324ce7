"""LIF baseline (SPEC E7): every surrogate equals autodiff of its smooth primitive.

The primitive of the triangle ``sg(x) = max(gamma - |x|, 0) / gamma^2`` is the
piecewise quadratic

    sigma(x) = (relu(x + gamma)^2 - 2 relu(x)^2 + relu(x - gamma)^2) / (2 gamma^2)

(0 below ``-gamma``, 1 above ``gamma``; its derivative is the triangle because
``relu(x)^2`` has derivative ``2 relu(x)`` and the three ramps add up to the
triangle). The others (hdlif_ref.kernels.surrogates): sigmoid ``S(gamma x)``, atan
``arctan(pi gamma x / 2) / pi + 1/2``, fast-sigmoid ``x / (1 + gamma |x|)``.

Each surrogate the kernels evaluate (Numba and NumPy twin) is checked against
central differences of its primitive written in NumPy; the primitive built from
autograd ops is gradchecked. The fused LIF backward is compared with the autograd
engine differentiating a LIF written in the test with the straight-through form
``s = H(x) + sigma(x) - detach(sigma(x))`` (value ``H(x)``, gradient ``sigma'(x)``),
reset included, through time (STBP) or with the state detached (online), for
every surrogate; so are the stepped op and the module in both step modes.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hdlif_ref
from hdlif_ref.autograd import Function, Tensor, gradcheck, ops
from hdlif_ref.kernels import BACKENDS
from hdlif_ref.kernels.lif import _surrogate
from hdlif_ref.kernels.reference.neurons import lif_surrogate
from hdlif_ref.kernels.surrogates import DEFAULT_GAMMA, SURROGATES, kernel_constants
from hdlif_ref.neurons import LIF, LIFParams, NeuronState, lif_seq, lif_step

from ._strategies import neuron_case


class ArcTan(Function):
    """``arctan`` for the atan primitive (the op set has none); gradchecked below."""

    name = "test_arctan"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.arctan(x)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g / (1.0 + x * x)


def sigma(x: Tensor, gamma: float, surrogate: str = "triangle") -> Tensor:
    """The smooth primitive of each surrogate, from generic autograd ops."""
    if surrogate == "triangle":
        ramp = lambda z: ops.pow(ops.relu(z), 2)  # noqa: E731
        return (ramp(x + gamma) - 2.0 * ramp(x) + ramp(x - gamma)) / (2.0 * gamma * gamma)
    if surrogate == "sigmoid":
        return ops.sigmoid(x * gamma)
    if surrogate == "atan":
        return ArcTan.apply(x * (np.pi / 2 * gamma)) / np.pi + 0.5
    assert surrogate == "fast-sigmoid"
    return x / (ops.abs(x) * gamma + 1.0)


def sigma_numpy(x: np.ndarray, gamma: float, surrogate: str) -> np.ndarray:
    """The same primitives in float64 NumPy, for finite differences."""
    if surrogate == "triangle":
        ramp = lambda z: np.maximum(z, 0) ** 2  # noqa: E731
        return (ramp(x + gamma) - 2 * ramp(x) + ramp(x - gamma)) / (2 * gamma * gamma)
    if surrogate == "sigmoid":
        return 1 / (1 + np.exp(-gamma * x))
    if surrogate == "atan":
        return np.arctan(np.pi / 2 * gamma * x) / np.pi + 0.5
    return x / (1 + gamma * np.abs(x))


KINKS = {"triangle": lambda g: [-g, 0.0, g], "fast-sigmoid": lambda g: [0.0]}


@pytest.mark.parametrize("surrogate", SURROGATES)
@given(x=hnp.arrays(np.float64, st.integers(1, 30), elements=st.floats(-3, 3, allow_subnormal=False)),
       scale=st.sampled_from([0.25, 0.5, 1.0, 2.0]))
@settings(max_examples=25)
def test_e7_each_surrogate_is_the_derivative_of_its_primitive(surrogate, x, scale):
    gamma = DEFAULT_GAMMA[surrogate] * scale
    code = SURROGATES.index(surrogate)
    kinks = np.array(KINKS.get(surrogate, lambda g: [])(gamma))
    far = x if not kinks.size else x[np.min(np.abs(x[:, None] - kinks[None, :]), axis=1) > 1e-3]
    h = 1e-6
    fd = (sigma_numpy(far + h, gamma, surrogate) - sigma_numpy(far - h, gamma, surrogate)) / (2 * h)
    for dtype, tol in ((np.float64, 1e-6), (np.float32, 2e-5)):
        a, b = kernel_constants(code, gamma, dtype)
        twin = lif_surrogate(code, far.astype(dtype), a, b)
        assert twin.dtype == dtype
        np.testing.assert_allclose(twin, fd, rtol=tol, atol=tol * max(1.0, gamma))
        numba = np.array([_surrogate(code, v, a, b, dtype(0), dtype(1)) for v in far.astype(dtype)], dtype)
        np.testing.assert_allclose(numba, twin, rtol=4e-7 if dtype == np.float32 else 1e-15, atol=0)
    # the primitive written with autograd ops: its gradient is the surrogate, and gradcheck agrees
    t = Tensor(x.copy(), requires_grad=True)
    sigma(t, gamma, surrogate).backward(np.ones_like(x))
    a, b = kernel_constants(code, gamma, np.float64)
    np.testing.assert_allclose(t.grad, lif_surrogate(code, x, a, b), rtol=1e-12, atol=1e-12)
    if far.size:
        assert gradcheck(lambda z: sigma(z, gamma, surrogate), [Tensor(far.copy(), requires_grad=True)])


def test_surrogate_shapes_are_what_the_docs_say():
    x = np.array([0.0, 0.5, -0.5, 3.0])
    peak = {name: lif_surrogate(SURROGATES.index(name), np.zeros(1), *kernel_constants(
        SURROGATES.index(name), DEFAULT_GAMMA[name], np.float64))[0] for name in SURROGATES}
    # triangle 1/gamma = 1, sigmoid gamma/4 = 1, atan gamma/2 = 1, fast-sigmoid 1: all peak at 1 with defaults
    assert peak == pytest.approx({"triangle": 1.0, "sigmoid": 1.0, "atan": 1.0, "fast-sigmoid": 1.0})
    tri = lif_surrogate(0, x, *kernel_constants(0, 1.0, np.float64))
    np.testing.assert_allclose(tri, [1.0, 0.5, 0.5, 0.0])
    for name in SURROGATES:  # symmetric, largest at the threshold
        code = SURROGATES.index(name)
        g = lif_surrogate(code, np.array([-0.3, 0.3, 0.0]), *kernel_constants(code, DEFAULT_GAMMA[name], np.float64))
        assert g[0] == g[1] < g[2]


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


def lif_by_autodiff(I: Tensor, lam: Tensor, theta: Tensor, reset: str, gamma: float, online: bool,
                    surrogate: str = "triangle") -> Tensor:
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
        sig = sigma(x, gamma, surrogate)
        s = sig - sig.detach() + H
        u = m * (1.0 - s) if reset == "hard" else m - theta_t * s
        outs.append(s)
    return ops.stack(outs, 0)


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("online", [False, True])
@given(case=neuron_case(dtype=np.float64, max_T=4, max_side=3, max_dims=3), scale=st.sampled_from([0.5, 1.0, 1.5]),
       data=st.data())
@settings(max_examples=10)
def test_e7_lif_surrogate_backward_equals_autodiff_of_primitive(surrogate, reset, online, case, scale, data):
    I, lam, theta = case
    gamma = DEFAULT_GAMMA[surrogate] * scale
    g = data.draw(st.sampled_from([1.0, -0.5])) * np.cos(2.0 + np.arange(I.size)).reshape(I.shape)
    results = []
    for build in ("fused", "stepped", "autodiff"):
        x, l, t = (Tensor(a.copy(), requires_grad=True) for a in (I, lam, theta))
        if build == "fused":
            s = lif_seq(x, l, t, reset=reset, gamma=gamma, gradient="online" if online else "stbp",
                        surrogate=surrogate)
        elif build == "stepped":
            state, outs = NeuronState(), []
            params = LIFParams(l, t, reset, gamma, surrogate)
            for I_t in ops.unstack(x, 0):
                s_t, state = lif_step(I_t, state.detach() if online else state, params)
                outs.append(s_t)
            s = ops.stack(outs, 0)
        else:
            s = lif_by_autodiff(x, l, t, reset, gamma, online, surrogate)
        s.backward(g)
        results.append((s.data, x.grad, l.grad, t.grad))
    fused, stepped_, autodiff = results
    for got in (fused, stepped_):
        np.testing.assert_array_equal(got[0], autodiff[0])
        for a, b in zip(got[1:], autodiff[1:]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_surrogate_numba_equals_twin_and_single_step_equals_multi_step(surrogate, dtype):
    """The module in step mode "s" (T single steps) and "m" (one fused op), on both backends: same numbers."""
    rng = np.random.default_rng(3)
    T, N, C = 4, 3, 2
    I = (rng.standard_normal((T, N, C, 5)) * 1.2 + 0.6).astype(dtype)
    g = rng.standard_normal(I.shape).astype(dtype)
    results = {}
    for backend in BACKENDS:
        with hdlif_ref.backend(backend):
            for mode in ("s", "m"):
                neuron = LIF(T, channels=C, per_channel=True, lam_init=0.7, surrogate=surrogate, dtype=dtype)
                neuron.set_step_mode(mode)
                x = Tensor(I.copy(), requires_grad=True)
                s = ops.stack([neuron(I_t) for I_t in ops.unstack(x, 0)], 0) if mode == "s" else neuron(x)
                s.backward(g)
                results[backend, mode] = (s.data, x.grad, neuron.lam.grad, neuron.theta.grad)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    want = results["numpy", "m"]
    assert want[1].any() and np.abs(want[3]).max() > 0
    for key, got in results.items():
        np.testing.assert_array_equal(got[0], want[0])
        for a, b in zip(got[1:], want[1:]):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())), err_msg=str(key))


def test_surrogate_arguments_are_checked():
    I, p = np.ones((2, 3)), np.ones(2)
    with pytest.raises(ValueError, match="surrogate='gauss'; allowed: 'triangle', 'sigmoid', 'atan', 'fast-sigmoid'"):
        lif_seq(I, p, p, surrogate="gauss")
    with pytest.raises(ValueError, match="gamma=0.0 .*sigmoid surrogate.* must be a finite number > 0"):
        LIF(2, surrogate="sigmoid", gamma=0.0)
    with pytest.raises(ValueError, match="surrogate='ste'"):
        lif_step(I[0], NeuronState(), LIFParams(p, p, surrogate="ste"))
    assert LIF(2, surrogate="atan").gamma == 2.0 and LIF(2).gamma == 1.0
    assert "surrogate='atan', gamma=2.0" in repr(LIF(2, surrogate="atan"))
