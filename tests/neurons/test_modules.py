"""The neuron modules' API: state, step counter, step modes, graph size, firing counts, errors."""
from __future__ import annotations

import numpy as np
import pytest

from hdlif_ref.autograd import Tensor, ops
from hdlif_ref.autograd.ops.neuron import HDLIFSeq, HDLIFStep
from hdlif_ref.module import Sequential
from hdlif_ref.neurons import (HDLIF, LIF, HDLIFParams, MemBNHDLIF, NeuronState, ParallelHDLIF, hdlif_seq,
                               hdlif_step, lif_seq, membn_hdlif_seq, parallel_hdlif_seq)


def all_neurons(T=3, C=2, **kw):
    return [HDLIF(T, **kw), HDLIF(T, channels=C, per_channel=True, **kw), LIF(T, **kw), ParallelHDLIF(T, **kw),
            MemBNHDLIF(T, C, **kw)]


@pytest.mark.parametrize("neuron", all_neurons(), ids=lambda n: repr(n))
def test_forward_more_than_T_steps_is_an_error_until_reset(neuron):
    x = np.ones((2, 2, 3), dtype=np.float32)
    for _ in range(3):
        neuron(x)
    assert neuron.t == 3
    with pytest.raises(RuntimeError, match="T=3"):
        neuron(x)
    neuron.reset()
    assert neuron.t == 0 and neuron.state.u is None
    neuron(x)


def test_default_parameters_follow_the_spec():
    n = HDLIF(4)
    assert n.lam.shape == (4,) and n.theta.shape == (4,) and n.lam.dtype == np.float32
    np.testing.assert_array_equal(n.lam.data, 0.5)  # SPEC E1 DC
    np.testing.assert_array_equal(n.theta.data, 1.0)
    m = MemBNHDLIF(4, 3, per_channel=True)
    assert m.alpha.shape == (4, 3) and m.bn_weight.shape == (4, 3) and m.running_var.shape == (4, 3)
    np.testing.assert_array_equal(m.alpha.data, 1.0)  # SPEC E9 DC: vanilla HD-LIF at init
    np.testing.assert_array_equal(m.beta.data, 0.0)
    assert [name for name, _ in m.named_buffers()] == ["running_mean", "running_var"]


def test_one_graph_node_per_step_and_per_sequence():
    """The online hot path (SPEC E16): a step is one node whose parents are the input, the state
    and the parameters themselves (no slicing nodes); a sequence is one node."""
    n = HDLIF(3)
    x = Tensor(np.ones((2, 4), np.float32), requires_grad=True)
    s0 = n(x)
    assert s0._ctx.fn is HDLIFStep and s0._ctx.parents[0] is x and s0._ctx.parents[1] is None
    s1 = n(x)
    assert s1._ctx.fn is HDLIFStep and s1._ctx.parents[2] is n.lam and s1._ctx.parents[3] is n.theta
    assert s1._ctx.parents[1]._ctx is s0._ctx  # u_0 comes straight from step 0's node
    seq = n.forward_seq(Tensor(np.ones((3, 2, 4), np.float32), requires_grad=True))
    assert seq._ctx.fn is HDLIFSeq and seq._ctx.parents[1] is n.lam


def test_detach_state_cuts_the_graph():
    n = HDLIF(3)
    x = Tensor(np.ones((2, 4), np.float32), requires_grad=True)
    n(x)
    n.detach_state()
    assert n.state.u.requires_grad is False and n.t == 1
    s = n(x)
    assert s._ctx.parents[1] is None  # the detached state is a constant input


def test_step_modes_route_call_and_hooks_see_it():
    n = LIF(3, dtype=np.float64)
    seen = []
    n.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    I = np.random.default_rng(0).standard_normal((3, 2, 5))
    n.set_step_mode("m")
    out_m = n(I)
    n.set_step_mode("s")
    out_s = np.stack([n(I[t]).data for t in range(3)])
    np.testing.assert_array_equal(out_m.data, out_s)
    assert seen == [(3, 2, 5), (2, 5), (2, 5), (2, 5)]


def test_reset_and_detach_reach_neurons_inside_containers():
    a, b = HDLIF(2), ParallelHDLIF(2)
    net = Sequential(a, b)
    net(np.ones((1, 3), np.float32))
    assert a.t == b.t == 1
    net.detach_state()
    assert a.state.u is not None and not a.state.u.requires_grad
    net.reset_state()
    assert a.t == b.t == 0 and a.state.u is None


def test_firing_counts():
    n = HDLIF(3, dtype=np.float64)
    I = np.array([[[0.5, 2.0, 1.0]], [[0.5, 0.0, 3.0]], [[2.0, 0.0, 0.0]]])
    n(I[0])
    assert n.firing_counts == (0, 0)  # off by default
    n.track_firing = True
    n.reset()
    outs = [n(I[t]).data for t in range(3)]
    n.forward_seq(I)
    # by hand (lam = 0.5, theta = 1): neuron 0 fires at t2 (m = 0.375 + 2); neuron 1 at t0 (m = 2);
    # neuron 2 sits exactly on the threshold at t0 (s* = 0: not a spike) and fires at t1 (m = 3.5)
    assert [int(np.count_nonzero(o)) for o in outs] == [1, 1, 1]
    assert n.firing_counts == (6, 18)  # the stepped pass and the sequence: 3 of 9 outputs each
    n.reset_firing()
    assert n.firing_counts == (0, 0)


def test_state_dict_round_trip_and_dtype_change():
    n = MemBNHDLIF(2, 3, per_channel=True, spike_bits=4)
    n.lam.data[...] = 0.25
    n.running_mean[...] = 1.5
    m = MemBNHDLIF(2, 3, per_channel=True, spike_bits=4)
    m.load_state_dict(n.state_dict())
    assert set(n.state_dict()) == {"lam", "theta", "alpha", "beta", "bn_weight", "bn_bias", "quantizer.step",
                                   "running_mean", "running_var"}
    np.testing.assert_array_equal(m.lam.data, 0.25)
    np.testing.assert_array_equal(m.running_mean, 1.5)
    h = HDLIF(2)
    h(np.ones((1, 2), np.float32))
    h.to(np.float64)
    assert h.lam.dtype == np.float64 and h.state.u.dtype == np.float64
    assert h(np.ones((1, 2))).dtype == np.float64


def test_mixed_dtypes_promote_and_gradients_keep_each_dtype():
    x = Tensor(np.ones((2, 3, 2), np.float32), requires_grad=True)
    lam = Tensor(np.full(2, 0.5), requires_grad=True)  # float64
    theta = Tensor(np.full(2, 0.75, np.float32), requires_grad=True)
    s = hdlif_seq(x, lam, theta)
    assert s.dtype == np.float64
    s.sum().backward()
    assert x.grad.dtype == np.float32 and lam.grad.dtype == np.float64 and theta.grad.dtype == np.float32


# ---------------------------------------------------------------------------- bad input
def test_T_of_input_differs_from_parameters():
    with pytest.raises(ValueError, match="T = 3"):
        hdlif_seq(np.ones((3, 2)), np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match="theta"):
        hdlif_seq(np.ones((4, 2)), np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match="T = 2"):
        HDLIF(4).forward_seq(np.ones((2, 3), np.float32))


def test_wrong_ndim_and_channels():
    with pytest.raises(ValueError, match=r"\[T, N"):
        hdlif_seq(np.ones(3), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="channel"):
        hdlif_seq(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)))  # per-channel needs [T, N, C, ...]
    with pytest.raises(ValueError, match="C = 4"):
        HDLIF(2, channels=3, per_channel=True).forward_seq(np.ones((2, 1, 4), np.float32))
    with pytest.raises(ValueError, match=r"\[T, N, C"):
        membn_hdlif_seq(np.ones((2, 3)), *([np.ones(2)] * 4), np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        hdlif_seq(np.ones((2, 3)), np.ones((2, 3, 1)), np.ones(2))


def test_non_float_inputs_are_type_errors():
    with pytest.raises(TypeError, match="dtype int64"):
        hdlif_seq(np.ones((2, 3), dtype=np.int64), np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match="lam"):
        lif_seq(np.ones((2, 3)), [0.5, 0.5], np.ones(2))
    with pytest.raises(TypeError, match="theta"):
        parallel_hdlif_seq(np.ones((2, 3)), np.ones(2, dtype=bool))


def test_bad_options():
    with pytest.raises(ValueError, match="reset"):
        LIF(2, reset="zero")
    with pytest.raises(ValueError, match="gamma"):
        LIF(2, gamma=0.0)
    with pytest.raises(ValueError, match="gradient"):
        hdlif_seq(np.ones((2, 3)), np.ones(2), np.ones(2), gradient="bptt")
    with pytest.raises(ValueError, match="channels"):
        HDLIF(2, per_channel=True)
    with pytest.raises(ValueError, match="channels"):
        MemBNHDLIF(2, None)
    with pytest.raises(ValueError, match="T=0"):
        HDLIF(0)
    with pytest.raises(ValueError, match="running_mean"):
        membn_hdlif_seq(np.ones((2, 1, 3)), *([np.ones(2)] * 4), np.ones((2, 3)), np.ones((2, 3)), training=False)
    with pytest.raises(ValueError, match="at least one value per channel"):
        membn_hdlif_seq(np.ones((2, 0, 3)), *([np.ones(2)] * 4), np.ones((2, 3)), np.ones((2, 3)))


def test_state_shape_mismatch_is_an_error_not_a_reinitialization():
    n = HDLIF(3)
    n(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="reset the state"):
        n(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="state.t=5"):
        hdlif_step(np.ones((2, 4)), NeuronState(None, 5), HDLIFParams(np.ones(3), np.ones(3)))
    with pytest.raises(TypeError, match="NeuronState"):
        hdlif_step(np.ones((2, 4)), None, HDLIFParams(np.ones(3), np.ones(3)))


def test_stepped_functional_api_runs_a_whole_sequence():
    rng = np.random.default_rng(1)
    I = rng.standard_normal((3, 2, 4))
    params = HDLIFParams(np.full(3, 0.5), np.ones(3))
    state, outs = NeuronState(), []
    for t in range(3):
        s, state = hdlif_step(I[t], state, params)
        outs.append(s.data)
    assert state.t == 3
    np.testing.assert_array_equal(np.stack(outs), hdlif_seq(I, params.lam, params.theta).data)
    np.testing.assert_array_equal(ops.stack([Tensor(o) for o in outs], 0).data, np.stack(outs))
