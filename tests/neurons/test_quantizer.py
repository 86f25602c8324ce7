"""Multi-bit spikes (SPEC E13): levels, clipping, half-to-even rounding, the LSQ-style backward."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hdlif_ref
from hdlif_ref.autograd import Tensor, ops
from hdlif_ref.neurons import HDLIF, LIF, SpikeQuantizer, default_step, hdlif_record, spike_quantize

X = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
               elements=st.floats(-1.0, 6.0, allow_nan=False, allow_subnormal=False))
STEPS = st.sampled_from([0.125, 0.25, 0.3, 0.5, 1.0, 1.7])


def quantize_loop(x, step, bits):
    """E13 element by element: ``s * min(max(round_half_even(x / s), 0), 2^n - 1)``."""
    qmax = 2**bits - 1
    out = np.empty_like(x)
    for i in np.ndindex(x.shape):
        k = round(float(x[i] / step))  # Python's round() is round-half-to-even
        out[i] = step * min(max(k, 0), qmax)
    return out


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@given(x=X, step=STEPS, bits=st.integers(1, 5))
def test_e13_levels_and_clipping(backend, x, step, bits):
    with hdlif_ref.backend(backend):
        q = spike_quantize(x, np.array(step), bits).data
    np.testing.assert_array_equal(q, quantize_loop(x, step, bits))
    k = np.round(q / step)
    np.testing.assert_allclose(q, k * step, rtol=1e-15, atol=0)  # every output is an integer level k s ...
    assert np.all((k >= 0) & (k <= 2**bits - 1))  # ... with 0 <= k <= 2^n - 1


def test_e13_rounds_half_to_even_and_clips():
    # s = 0.5: x / s = 0.5, 1.5, 2.5, 3.5 -> round half to even 0, 2, 2, 4 -> levels 0, 1, 1, 2;
    # with n = 2 (qmax = 3) the 4 clips to 3 (1.5), and x < 0 gives 0
    x = np.array([0.25, 0.75, 1.25, 1.75, -0.3])
    np.testing.assert_array_equal(spike_quantize(x, np.array(0.5), 2).data, [0.0, 1.0, 1.0, 1.5, 0.0])
    np.testing.assert_array_equal(spike_quantize(x, np.array(0.5), 3).data, [0.0, 1.0, 1.0, 2.0, 0.0])


def lsq_grads_loop(g, x, step, bits):
    """The LSQ-style backward of E13, element by element (v = x / s)."""
    qmax = 2**bits - 1
    gx, gs = np.zeros_like(x), 0.0
    for i in np.ndindex(x.shape):
        v = x[i] / step
        if 0 <= v <= qmax:
            gx[i] = g[i]
            gs += g[i] * (round(v) - v)
        elif v > qmax:
            gs += g[i] * qmax
    return gx, gs


def quantize_by_autodiff(x: Tensor, step: Tensor, bits: int) -> Tensor:
    """E13 with a straight-through round from generic ops: s * (clip(v) + detach(clip(round(v)) - clip(v)))."""
    qmax = 2**bits - 1
    v = x / step
    clipped = ops.clip(v, 0.0, qmax)  # gradient passes for 0 <= v <= qmax, bounds included
    rounded = Tensor(np.clip(np.rint(v.data), 0, qmax))
    return step * (clipped + (rounded - clipped.detach()))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@given(x=X, step=STEPS, bits=st.integers(1, 5), data=st.data())
@settings(max_examples=30)
def test_e13_lsq_backward_matches_definition_and_autodiff(backend, x, step, bits, data):
    g = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-2, 2, allow_subnormal=False)))
    want_x, want_s = lsq_grads_loop(g, x, step, bits)
    with hdlif_ref.backend(backend):
        xt, st_ = Tensor(x.copy(), requires_grad=True), Tensor(np.array(step), requires_grad=True)
        spike_quantize(xt, st_, bits).backward(g)
    np.testing.assert_array_equal(xt.grad, want_x)
    np.testing.assert_allclose(st_.grad, want_s, rtol=1e-10, atol=1e-10)
    xa, sa = Tensor(x.copy(), requires_grad=True), Tensor(np.array(step), requires_grad=True)
    quantize_by_autodiff(xa, sa, bits).backward(g)
    np.testing.assert_allclose(xt.grad, xa.grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(st_.grad, sa.grad, rtol=1e-10, atol=1e-10)


def test_neuron_emits_quantized_spikes_but_keeps_unquantized_membrane():
    """E13 with E2: the emitted spike is Q(s*), while u_t = m_t - s*_t uses the unquantized s*."""
    rng = np.random.default_rng(0)
    T = 4
    I = rng.uniform(-0.5, 2.5, (T, 5, 3))
    neuron = HDLIF(T, spike_bits=2, dtype=np.float64)
    assert neuron.quantizer.step.data == default_step(2, 1.0) == 1.0 / 3.0  # DC: theta_init / (2^n - 1)
    rec = hdlif_record(I, neuron.lam.data, neuron.theta.data)
    out = neuron.forward_seq(I).data
    np.testing.assert_array_equal(out, quantize_loop(rec.s, 1.0 / 3.0, 2))
    steps = [neuron(I[t]).data for t in range(T)]
    np.testing.assert_array_equal(np.stack(steps), out)
    np.testing.assert_array_equal(neuron.state.u.data, rec.u[-1])  # the state followed the unquantized s*
    np.testing.assert_array_equal(neuron.quantizer.integer_spikes(out), np.rint(out * 3).astype(np.int64))


def test_quantizer_step_is_learned_through_the_neuron():
    neuron = LIF(2, spike_bits=3, spike_step_init=0.3, dtype=np.float64)
    s = neuron.forward_seq(np.array([[2.0, 0.1], [0.5, 3.0]]))
    s.sum().backward()
    assert neuron.quantizer.step.grad is not None and neuron.quantizer.step.grad.shape == ()
    assert [n for n, _ in neuron.named_parameters()] == ["lam", "theta", "quantizer.step"]


@pytest.mark.parametrize("bits", [0, -1, 17])
def test_bad_bits_are_value_errors(bits):
    with pytest.raises(ValueError, match="spike_bits"):
        HDLIF(2, spike_bits=bits)
    with pytest.raises(ValueError, match="spike_bits"):
        SpikeQuantizer(bits)


@pytest.mark.parametrize("bits", [2.5, True, "4"])
def test_non_integer_bits_are_type_errors(bits):
    with pytest.raises(TypeError, match="spike_bits"):
        HDLIF(2, spike_bits=bits)


@pytest.mark.parametrize("step", [0.0, -0.5, np.nan])
def test_bad_step_is_a_value_error(step):
    with pytest.raises(ValueError, match="step"):
        spike_quantize(np.ones(3), np.array(step), 4)
    with pytest.raises(ValueError, match="step_init"):
        SpikeQuantizer(4, step_init=step)
