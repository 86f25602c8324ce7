"""Graph-free steps (docs/performance.md, "Graph-free steps"): batch norm + neuron (+ quantizer) in one
kernel under ``no_grad`` gives the plain path's results bit for bit, and no-grad steps keep no graph."""
from __future__ import annotations

import contextlib
import gc
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlif_ref import backend
from hdlif_ref.autograd import Context, Tensor, no_grad
from hdlif_ref.autograd.ops._args import NonFiniteInputError, finite_bound
from hdlif_ref.kernels import hdlif as hdlif_kernels
from hdlif_ref.kernels import lif as lif_kernels
from hdlif_ref.kernels import norm as norm_kernels
from hdlif_ref.kernels import parallel as parallel_kernels
from hdlif_ref.kernels import spike_quantize as quantize_kernels
from hdlif_ref.kernels.bn_neuron import bn_neuron_step
from hdlif_ref.layers import Monitor
from hdlif_ref.layers.norm import BatchNorm2d
from hdlif_ref.models import digits_net, spiking_resnet
from hdlif_ref.module import Sequential
from hdlif_ref.neurons import HDLIF, LIF, ParallelHDLIF, fused
from hdlif_ref.training.optim import SGD
from hdlif_ref.training.trainer import OnlineTrainer


# ------------------------------------------------------------------ the kernel against the plain kernels
def plain_kernels(x, training, weight, bias, eps, mean_in, var_in, u_prev, lam, theta, kind, step, qmax, soft):
    """What ops.batch_norm, the neuron step op and the quantizer op run, in a row."""
    if training:
        y, mean, var = norm_kernels.batch_norm_train_forward(x, weight, bias, eps)
    else:
        y = norm_kernels.batch_norm_eval_forward(x, mean_in.astype(np.float64),
                                                 1.0 / np.sqrt(var_in.astype(np.float64) + eps), weight, bias)
        mean = var = None
    N, C, L = x.shape
    if kind == 0:
        s, u, _ = hdlif_kernels.hdlif_forward(y.reshape(1, 1, -1), u_prev.reshape(1, -1),
                                              lam[:1].reshape(1, 1), theta[:1].reshape(1, 1))
        u = u.reshape(x.shape)
    elif kind == 2:
        s, u, _ = lif_kernels.lif_forward(y.reshape(1, 1, -1), u_prev.reshape(1, -1), lam[:1].reshape(1, 1),
                                          theta[:1].reshape(1, 1), soft)
        u = u.reshape(x.shape)
    else:
        s, _ = parallel_kernels.parallel_hdlif_forward(y.reshape(1, 1, -1), theta[:1].reshape(1, 1))
        u = None
    if qmax is not None:
        s = quantize_kernels.spike_quantize_forward(s, x.dtype.type(step), x.dtype.type(qmax))
    return s.reshape(x.shape), u, mean, var


@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 9), st.sampled_from([0, 1, 2]), st.booleans(),
       st.sampled_from([None, 1, 3, 15]), st.sampled_from([np.float32, np.float64]), st.booleans(), st.booleans(),
       st.integers(0, 2 ** 16))
def test_fused_kernel_equals_the_plain_kernels_bit_for_bit(N, C, L, kind, training, qmax, dtype, affine, soft, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C, L)) * 2).astype(dtype)
    x.flat[::3] = np.round(x.flat[::3])  # values that normalize exactly onto thresholds happen too
    if training and N * L < 2:
        return
    weight = rng.uniform(0.5, 2, C).astype(dtype) if affine else None
    bias = rng.uniform(-1, 1, C).astype(dtype) if affine else None
    mean_in, var_in = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    u_prev = rng.uniform(-1, 1, (N, C, L)).astype(dtype)
    lam = np.full(C, 0.5, dtype)
    theta = np.full(C, 0.75, dtype)
    step = 1.0 / 7
    for name in ("numba", "numpy"):
        with backend(name):
            args = (x, training, weight, bias, 1e-5, mean_in, var_in, u_prev, lam, theta, kind, step, qmax, soft)
            out, u, mean, var, bad = bn_neuron_step(*args)
            ref_out, ref_u, ref_mean, ref_var = plain_kernels(*args)
        assert bad == 0
        np.testing.assert_array_equal(out, ref_out, err_msg=name)
        if kind != 1:
            np.testing.assert_array_equal(u, ref_u, err_msg=name)
        if training:
            np.testing.assert_array_equal(mean, ref_mean)
            np.testing.assert_array_equal(var, ref_var)


@pytest.mark.parametrize("per_item", [1, 2, 3, 5])
@pytest.mark.parametrize("kind", [0, 1, 2])
@pytest.mark.parametrize("L", [1, 16, 33])
def test_fused_kernel_gives_the_same_bits_for_any_channels_per_item(monkeypatch, per_item, kind, L):
    """A work item is a sample and a group of channels (``_rows_per_item``, about BLOCK elements): groups of 1, 2,
    3 or 5 of 7 channels (a partial last group) give the one-group results, spikes, state and non-finite counts,
    and so do the graph kernels' kept s* and mask (HD-LIF) and charges (LIF)."""
    from hdlif_ref.kernels import bn_neuron as kernel_module

    rng = np.random.default_rng(per_item * 10 + kind)
    x = (rng.standard_normal((5, 7, L)) * 2).astype(np.float32)
    x[2, 3, 0] = np.inf  # a non-finite current: counted in its row
    u_prev = rng.uniform(-1, 1, x.shape).astype(np.float32)
    lam, theta = np.full(7, 0.5, np.float32), rng.uniform(0.5, 1, 7).astype(np.float32)
    args = (x, True, None, None, 1e-5, None, None, u_prev, lam, theta, kind, 0.25, 15)

    def run():
        return (kernel_module.bn_neuron_step.numba_impl(*args, soft=kind == 2),
                kernel_module.bn_hdlif_graph_step.numba_impl(x, None, None, 1e-5, u_prev, lam, theta, 0.25, 15),
                kernel_module.bn_lif_graph_step.numba_impl(x, None, None, 1e-5, u_prev, lam, theta, kind == 2))

    want = run()
    monkeypatch.setattr(kernel_module, "_rows_per_item", lambda length: per_item)
    got = run()
    for a, b in zip(got[0] + got[1] + got[2], want[0] + want[1] + want[2]):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b
    assert want[0][4] > 0  # the non-finite current was counted


def test_fused_kernel_counts_non_finite_currents():
    x = np.ones((2, 2, 3), dtype=np.float32)
    x[1, 1, 2] = 3e38  # normalizes to +inf in float32 (eval: scale 4)
    for name in ("numba", "numpy"):
        with backend(name), np.errstate(over="ignore"):
            *_, bad = bn_neuron_step(x, False, np.full(2, 4, np.float32), None, 1e-5, np.zeros(2),
                                     np.ones(2), np.zeros_like(x), np.full(2, 0.5, np.float32),
                                     np.ones(2, np.float32), 0, 0.1, 15)
        assert bad == 1, name


def test_the_parallel_neurons_overflowing_surplus_is_counted():
    """E8's ``z - theta`` can overflow to ``+inf`` with finite operands (a huge current, a hugely negative
    threshold): the twin counts it, so the kernel must, and the caller then takes the plain path (whose
    quantizer refuses it) instead of quantizing ``+inf`` to the top level."""
    x = np.array([[[1.0, 2.0]]], np.float32)
    args = (x, False, None, np.array([3e38], np.float32), 0.0, np.zeros(1, np.float32), np.ones(1, np.float32),
            None, np.ones(1, np.float32), np.array([-3e38], np.float32), 1, 0.25, 15)
    for name in ("numba", "numpy"):
        with backend(name), np.errstate(over="ignore"):
            assert bn_neuron_step(*args)[4] == 2, name


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 40), st.sampled_from([0, 1, 2]), st.booleans(),
       st.sampled_from([None, 15]), st.integers(0, 12), st.integers(0, 2 ** 16))
def test_fused_kernel_counts_every_non_finite_value_as_the_twin(N, C, L, kind, training, qmax, poisoned, seed):
    """The kernel's loop records only whether a row has a non-finite normalized current or an overflowing
    surplus, and counts that row's values again from its inputs: the count is the twin's, however many a row
    has and of whatever kind (NaN, +-inf, a current that overflows when normalized, a surplus ``m - theta``
    that overflows with finite operands), in rows of any length."""
    if training and N * L < 2:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, L)).astype(np.float32)
    u_prev = rng.uniform(-1, 1, x.shape).astype(np.float32)
    for _ in range(poisoned):
        k, c, t = rng.integers(N), rng.integers(C), rng.integers(L)
        which = rng.integers(5)
        if which < 4:
            x[k, c, t] = (np.nan, np.inf, -np.inf, 3e38)[which]
        else:  # lam u overflows: a +inf surplus from finite operands (HD-LIF counts it)
            x[k, c, t], u_prev[k, c, t] = 1.0, -3e38
    lam, theta = np.full(C, -2.0, np.float32), np.ones(C, np.float32)
    args = (x, training, np.full(C, 4.0, np.float32), None, 1e-5, np.zeros(C, np.float32), np.ones(C, np.float32),
            u_prev, lam, theta, kind, 0.25, qmax)
    with np.errstate(all="ignore"):
        got = bn_neuron_step.numba_impl(*args)[4]
        want = bn_neuron_step.numpy_impl(*args)[4]
    assert got == want


# ------------------------------------------------------------------ networks: fused and plain agree
def run(monkeypatch, enabled, make, shape, dtype, steps=1):
    monkeypatch.setattr(fused, "ENABLED", enabled)
    model = make().to(dtype)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(shape).astype(dtype), rng.integers(0, 10, shape[0])
    trainer = OnlineTrainer(model, SGD(list(model.parameters()), lr=0.1, momentum=0.9), steps=steps,
                            rng=np.random.default_rng(2))
    batches = [trainer.train_batch(x, y) for _ in range(2)]
    evaluated = trainer.evaluate([(x, y)])
    return batches, evaluated, model.state_dict()


NETWORKS = {
    "digits 4-bit": (lambda: digits_net(T=4, weight_mode="ternary", spike_bits=4, rng=np.random.default_rng(0)),
                     (12, 1, 8, 8)),
    "digits parallel per-channel 1-bit": (lambda: digits_net(T=3, weight_mode="binary", spike_bits=1,
                                                             parallel_fraction=0.5, per_channel=True,
                                                             rng=np.random.default_rng(0)), (12, 1, 8, 8)),
    "digits shared stats, real spikes": (lambda: digits_net(T=3, bn_stats="shared", rng=np.random.default_rng(0)),
                                         (12, 1, 8, 8)),
    "resnet parallel 2-bit": (lambda: spiking_resnet(18, width=0.125, T=3, weight_mode="ternary", spike_bits=2,
                                                     parallel_fraction=0.5, rng=np.random.default_rng(0)),
                              (4, 3, 8, 8)),
    "digits LIF (the peers' network)": (lambda: digits_net(T=4, neuron="lif", rng=np.random.default_rng(0)),
                                        (12, 1, 8, 8)),
    # SECA sits between every batch norm and its neuron: nothing to fuse, the plain path throughout
    "resnet SECA_II": (lambda: spiking_resnet(18, width=0.125, T=3, weight_mode="ternary", spike_bits=4,
                                              seca="II", rng=np.random.default_rng(0)), (4, 3, 8, 8)),
}


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_networks_give_the_plain_results_bit_for_bit(monkeypatch, name, dtype):
    """Online K=1 (three no-grad steps per batch) and evaluation: losses, logits, every parameter and
    running statistic after two optimizer steps, firing rates."""
    make, shape = NETWORKS[name]
    calls = []
    original = fused.bn_neuron_step
    monkeypatch.setattr(fused, "bn_neuron_step", lambda *a: calls.append(1) or original(*a))
    new = run(monkeypatch, True, make, shape, dtype)
    assert bool(calls) == ("SECA" not in name), calls
    ref = run(monkeypatch, False, make, shape, dtype)
    for (loss_a, logits_a), (loss_b, logits_b) in zip(new[0], ref[0]):
        assert loss_a == loss_b
        np.testing.assert_array_equal(logits_a, logits_b)
    assert new[1].loss == ref[1].loss and new[1].accuracy_by_steps == ref[1].accuracy_by_steps
    assert new[1].firing_rates == ref[1].firing_rates
    for key in ref[2]:
        np.testing.assert_array_equal(new[2][key], ref[2][key], err_msg=key)


def test_numpy_backend_network_matches(monkeypatch):
    with backend("numpy"):
        make, shape = NETWORKS["digits 4-bit"]
        new, ref = run(monkeypatch, True, make, shape, np.float64), run(monkeypatch, False, make, shape, np.float64)
    np.testing.assert_array_equal(new[0][1][1], ref[0][1][1])
    for key in ref[2]:
        np.testing.assert_array_equal(new[2][key], ref[2][key], err_msg=key)


# ------------------------------------------------------------------ when the plain path runs instead
def pair(neuron_cls=HDLIF, **kw):
    return Sequential(BatchNorm2d(3, per_step=True, T=2), neuron_cls(2, spike_bits=4, **kw))


def spy(monkeypatch):
    calls = []
    original = fused.bn_neuron_step
    monkeypatch.setattr(fused, "bn_neuron_step", lambda *a: calls.append(1) or original(*a))
    return calls


def test_with_a_graph_the_plain_path_runs(monkeypatch):
    calls = spy(monkeypatch)
    net = pair()
    net(Tensor(np.ones((2, 3, 2, 2), np.float32)))
    assert calls == []


def test_hooks_see_every_layer(monkeypatch):
    """A Monitor (forward hooks) needs the batch norm's output: the plain path runs, and records it."""
    calls = spy(monkeypatch)
    net = pair()
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    with Monitor(net, ["0", "1"]) as mon, no_grad():
        net(Tensor(x))
    assert calls == [] and mon.spikes["0"].shape == (1, 2, 3, 2, 2)


def test_a_non_finite_current_raises_the_plain_error_and_updates_statistics_once(monkeypatch):
    net = pair()
    bn = net[0]
    bn.weight.data[...] = 3e38  # x * weight overflows float32: the normalized current is +-inf
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32))
    with no_grad(), pytest.raises(NonFiniteInputError, match="hdlif_step: I_t"):
        net(x)
    expected = BatchNorm2d(3, per_step=True, T=2)
    with no_grad(), pytest.raises(NonFiniteInputError):
        expected.weight.data[...] = 3e38
        HDLIF(2, spike_bits=4)(expected(x))
    np.testing.assert_array_equal(bn.running_mean, expected.running_mean)  # once, by the plain path
    assert bn.t == expected.t == 1


@pytest.mark.parametrize("neuron_cls, kw", [(HDLIF, {}), (ParallelHDLIF, {}), (LIF, {}), (LIF, {"reset": "soft"})])
def test_step_counters_and_state_follow_the_plain_path(monkeypatch, neuron_cls, kw):
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32))
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(fused, "ENABLED", enabled)
        calls = spy(monkeypatch)
        net = pair(neuron_cls, **kw)
        with no_grad():
            outs = [net(x).data for _ in range(2)]
        assert len(calls) == (2 if enabled else 0)
        with pytest.raises((RuntimeError, ValueError)):  # T = 2 steps: the third is refused either way
            with no_grad():
                net(x)
        state = net[1].state
        results.append((outs, None if state.u is None else state.u.data, state.t, net[0].t,
                        net[0].running_mean.copy()))
    (a, ua, ta, bta, ma), (b, ub, tb, btb, mb) = results
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
    assert (ua is None) == (ub is None) and (ua is None or np.array_equal(ua, ub))
    assert (ta, bta) == (tb, btb)
    np.testing.assert_array_equal(ma, mb)


# ------------------------------------------------------------------ no graph, no saved arrays
def test_no_grad_steps_leave_no_graph_nodes():
    model = digits_net(T=4, weight_mode="ternary", spike_bits=4, rng=np.random.default_rng(0))
    x = Tensor(np.random.default_rng(1).standard_normal((8, 1, 8, 8)).astype(np.float32))
    model.train().set_step_mode("s").reset_state()
    with no_grad():
        for _ in range(4):
            model.detach_state()
            out = model(x)
    gc.collect()
    assert not out.requires_grad and out._ctx is None
    assert [o for o in gc.get_objects() if isinstance(o, Context)] == []


def test_fused_no_grad_step_peaks_lower(monkeypatch):
    """tracemalloc peak of a no-grad step (after warm-up), fused <= plain: no intermediate arrays."""
    model = digits_net(T=4, weight_mode="ternary", spike_bits=4, rng=np.random.default_rng(0))
    x = Tensor(np.random.default_rng(1).standard_normal((32, 1, 8, 8)).astype(np.float32))
    model.train().set_step_mode("s")

    def peak(enabled):
        monkeypatch.setattr(fused, "ENABLED", enabled)
        model.reset_state()
        with no_grad():
            model(x)
            tracemalloc.start()
            start = tracemalloc.get_traced_memory()[0]
            model(x)
            top = tracemalloc.get_traced_memory()[1] - start
            tracemalloc.stop()
        return top
    peak(True), peak(False)
    assert peak(True) < peak(False)


# ------------------------------------------------------------------ recorded steps: batch norm + HD-LIF as one node
from hdlif_ref.autograd import gradcheck, ops  # noqa: E402
from hdlif_ref.autograd.ops.neuron import BNHDLIFStep, HDLIFStep, NonFiniteStep  # noqa: E402
from hdlif_ref.autograd.ops.spike_quantize import SpikeQuantize  # noqa: E402
from hdlif_ref.kernels.bn_neuron import bn_hdlif_graph_step  # noqa: E402


def graph_kernel_inputs(N, C, L, dtype, affine, per_channel, seed):
    """A batch norm's input, affine parameters, a state and this step's ``lam``, ``theta`` (``[C]``, for the fused
    kernels), with the plain neuron kernels' layout: ``rows, F`` and the ``[1, C']`` parameter rows."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C, L)) * 2).astype(dtype)
    x.flat[::3] = np.round(x.flat[::3])  # currents exactly on a threshold happen too
    weight = rng.uniform(0.5, 2, C).astype(dtype) if affine else None
    bias = rng.uniform(-1, 1, C).astype(dtype) if affine else None
    u_prev = rng.uniform(-1, 1, (N, C, L)).astype(dtype)
    lam = (rng.uniform(0.2, 0.9, C) if per_channel else np.full(C, 0.5)).astype(dtype)
    theta = (rng.uniform(0.5, 1.0, C) if per_channel else np.full(C, 0.75)).astype(dtype)
    rows, F = (N, C * L) if per_channel else (1, N * C * L)
    T_lam = np.ascontiguousarray(np.broadcast_to(lam, (1, C)) if per_channel else lam[:1].reshape(1, 1))
    T_theta = np.ascontiguousarray(np.broadcast_to(theta, (1, C)) if per_channel else theta[:1].reshape(1, 1))
    return x, weight, bias, u_prev, lam, theta, rows, F, T_lam, T_theta


@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 9), st.sampled_from([None, 1, 3, 15]),
       st.sampled_from([np.float32, np.float64]), st.booleans(), st.booleans(), st.integers(0, 2 ** 16))
def test_graph_kernel_equals_the_plain_kernels_bit_for_bit(N, C, L, qmax, dtype, affine, per_channel, seed):
    """The spikes, state and statistics of the plain kernels, and what their backward needs: the unquantized
    spikes s* and the firing mask, which the one-step HD-LIF kernel returns."""
    if N * L < 2:
        return
    x, weight, bias, u_prev, lam, theta, rows, F, T_lam, T_theta = graph_kernel_inputs(N, C, L, dtype, affine,
                                                                                       per_channel, seed)
    for name in ("numba", "numpy"):
        with backend(name):  # each backend's plain kernels (the twins agree with the kernels to rounding)
            y, mean, var = norm_kernels.batch_norm_train_forward(x, weight, bias, 1e-5)
            s_ref, u_ref, mask_ref = hdlif_kernels.hdlif_forward(y.reshape(1, rows, F), u_prev.reshape(rows, F),
                                                                 T_lam, T_theta)
            q_ref = s_ref if qmax is None else quantize_kernels.spike_quantize_forward(s_ref, dtype(1 / 7),
                                                                                       dtype(qmax))
            out, u, m, v, bad, s_star, mask = bn_hdlif_graph_step(x, weight, bias, 1e-5, u_prev, lam, theta, 1 / 7,
                                                                  qmax)
        assert bad == 0 and mask.dtype == np.bool_, name
        for got, want in ((out, q_ref), (u, u_ref), (s_star, s_ref), (mask, mask_ref), (m, mean), (v, var)):
            np.testing.assert_array_equal(got.reshape(-1), np.asarray(want).reshape(-1), err_msg=name)


def test_kernels_count_an_overflowing_surplus():
    """m = lam u + I can overflow to +inf with finite operands (lam < 0, u << 0): the quantizer's input check
    refuses that surplus, so both fused kernels count it and their callers leave it to the plain path."""
    x = np.array([[[0.0, 1.0]]], np.float32)  # normalizes to -1, +1
    u_prev = np.array([[[0.0, -3e38]]], np.float32)
    lam, theta = np.full(1, -2.0, np.float32), np.ones(1, np.float32)
    for name in ("numba", "numpy"):
        with backend(name), np.errstate(over="ignore"):
            *_, bad = bn_neuron_step(x, True, None, None, 1e-5, None, None, u_prev, lam, theta, 0, 0.1, 15)
            _, _, _, _, bad_graph, s_star, _ = bn_hdlif_graph_step(x, None, None, 1e-5, u_prev, lam, theta, 0.1, 15)
        assert bad == bad_graph == 1 and np.isinf(s_star[0, 0, 1]), name


def _three_nodes(x, weight, bias, u_prev, lam, theta, step, t, bits, mean_run, var_run):
    """What the plain path records: BatchNorm -> HDLIFStep -> SpikeQuantize."""
    y = ops.batch_norm(x, weight, bias, mean_run, var_run, training=True, momentum=0.1, eps=1e-5)
    s, u = HDLIFStep.apply(y, u_prev, lam, theta, t=t)
    return (SpikeQuantize.apply(s, step, bits=bits) if step is not None else s), u


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.booleans(), st.booleans(),
       st.booleans(), st.booleans(), st.sampled_from([np.float32, np.float64]), st.integers(0, 2 ** 16),
       st.sets(st.sampled_from(["x", "weight", "bias", "u_prev", "lam", "theta", "step"])))
def test_one_node_gives_the_three_nodes_results_and_gradients_bit_for_bit(N, C, H, W, has_weight, has_bias,
                                                                          per_channel, quantize, dtype, seed, frozen):
    """Spikes, state, running statistics, and the gradient of every input (the state's too, for a chain of
    steps kept in the graph), from a loss on both outputs, with any subset of the inputs frozen, through two
    backward passes of a retained graph."""
    compare_one_node_with_three(N, C, H, W, has_weight, has_bias, per_channel, quantize, dtype, seed, frozen)


INPUTS = ("x", "weight", "bias", "u_prev", "lam", "theta", "step")


@pytest.mark.parametrize("frozen", [{name} for name in INPUTS] + [set(INPUTS) - {name} for name in INPUTS])
@pytest.mark.parametrize("per_channel", [False, True])
def test_one_node_gradients_with_each_input_frozen_or_alone_trained(frozen, per_channel):
    """Every input frozen in turn, then trained alone: a gradient sent to the wrong input shows here."""
    compare_one_node_with_three(3, 2, 2, 2, True, True, per_channel, True, np.float32, 5, frozen)


def one_node_inputs(rng, N, C, H, W, has_weight, has_bias, per_channel):
    """``(t, arrays)``: a step index of ``T = 3`` and float64 values of a one-node step's inputs by name."""
    T, t = 3, int(rng.integers(0, 3))
    x0 = rng.standard_normal((N, C, H, W)) * 2
    x0.flat[::3] = np.round(x0.flat[::3])
    arrays = {"x": x0, "u_prev": rng.uniform(-1, 1, (N, C, H, W)),
              "lam": rng.uniform(0.2, 0.9, (T, C) if per_channel else T),
              "theta": rng.uniform(0.5, 1.0, (T, C) if per_channel else T)}
    if has_weight:
        arrays["weight"] = rng.uniform(0.5, 2, C)
    if has_bias:
        arrays["bias"] = rng.uniform(-1, 1, C)
    return t, arrays


def assert_same_node_results(one, other):
    """Two ``(spikes, u, running_mean, running_var, {leaf: grad})`` records, equal bit for bit (a missing gradient on
    both sides)."""
    for a, b in zip(one[:4], other[:4]):
        np.testing.assert_array_equal(a, b)
    g1, g2 = one[4], other[4]
    for k in g2:
        assert (g1[k] is None) == (g2[k] is None), k
        if g2[k] is not None:
            np.testing.assert_array_equal(g1[k], g2[k], err_msg=k)


def compare_one_node_with_three(N, C, H, W, has_weight, has_bias, per_channel, quantize, dtype, seed, frozen):
    if N * H * W < 2:
        return
    rng = np.random.default_rng(seed)
    t, arrays = one_node_inputs(rng, N, C, H, W, has_weight, has_bias, per_channel)
    if quantize:
        arrays["step"] = np.array(1 / 7)
    if not set(arrays) - frozen:
        return  # nothing to differentiate
    r_q, r_u = rng.standard_normal((2, N, C, H, W))
    results = []
    for fused_op in (True, False):
        leaves = {k: Tensor(v.astype(dtype), requires_grad=k not in frozen) for k, v in arrays.items()}
        mean_run, var_run = np.zeros(C, dtype), np.ones(C, dtype)
        args = [leaves["x"], leaves.get("weight"), leaves.get("bias"), leaves["u_prev"], leaves["lam"],
                leaves["theta"], leaves.get("step")]
        if fused_op:
            q, u = BNHDLIFStep.apply(*[a for a in args if a is not None], has_weight=has_weight, has_bias=has_bias,
                                     has_step=quantize, t=t, bits=4, running_mean=mean_run, running_var=var_run,
                                     momentum=0.1, eps=1e-5)
            assert q._ctx.fn is BNHDLIFStep and u._ctx is q._ctx  # one node
        else:
            q, u = _three_nodes(*args, t, 4, mean_run, var_run)
        loss = ops.sum(q * Tensor(r_q.astype(dtype))) + ops.sum(u * Tensor(r_u.astype(dtype)))
        loss.backward(retain_graph=True)
        loss.backward()
        results.append((q.data, u.data, mean_run, var_run, {k: v.grad for k, v in leaves.items()}))
    assert_same_node_results(*results)


@given(st.integers(2, 3), st.integers(1, 2), st.booleans(), st.integers(0, 2 ** 16))
def test_one_node_matches_finite_differences(N, C, per_channel, seed):
    """float64 central differences of the batch norm + HD-LIF step (E1-E4) through every input, away from the
    thresholds (the spike is not differentiable there); the quantizer's backward is a definition (E13 DC),
    which the bit-for-bit test above holds to the plain op's."""
    from hypothesis import assume
    rng = np.random.default_rng(seed)
    T, t, shape = 2, 1, (N, C, 2, 2)
    x = rng.standard_normal(shape)
    weight, bias = rng.uniform(0.5, 2, C), rng.uniform(-1, 1, C)
    u_prev = rng.uniform(-1, 1, shape)
    lam = rng.uniform(0.2, 0.9, (T, C) if per_channel else T)
    theta = rng.uniform(0.3, 1.0, (T, C) if per_channel else T)
    y, _, _ = norm_kernels.batch_norm_train_forward(x.reshape(N, C, 4), weight, bias, 1e-5)
    lam_t = lam[t][None, :, None, None] if per_channel else lam[t]
    theta_t = theta[t][None, :, None, None] if per_channel else theta[t]
    assume(np.abs(lam_t * u_prev + y.reshape(shape) - theta_t).min() > 1e-3)

    def fn(x, weight, bias, u_prev, lam, theta):
        return BNHDLIFStep.apply(x, weight, bias, u_prev, lam, theta, has_weight=True, has_bias=True,
                                 has_step=False, t=t, bits=None, running_mean=None, running_var=None,
                                 momentum=0.1, eps=1e-5)
    assert gradcheck(fn, [Tensor(a, requires_grad=True) for a in (x, weight, bias, u_prev, lam, theta)])


def test_the_one_node_raises_before_recording_or_updating_statistics():
    x = Tensor(np.array([[[[0.0, 1.0]]]], np.float32), requires_grad=True)
    mean_run, var_run = np.zeros(1, np.float32), np.ones(1, np.float32)
    with np.errstate(over="ignore"), pytest.raises(NonFiniteStep):
        BNHDLIFStep.apply(x, Tensor(np.array([[[[0.0, -3e38]]]], np.float32)), Tensor(np.full(1, -2.0, np.float32)),
                          Tensor(np.ones(1, np.float32)), Tensor(np.array(0.1, np.float32)), has_weight=False,
                          has_bias=False, has_step=True, t=0, bits=4, running_mean=mean_run, running_var=var_run,
                          momentum=0.1, eps=1e-5)
    assert mean_run[0] == 0 and var_run[0] == 1


def node_spy(monkeypatch, node):
    """A list that gets an item for each ``node`` (a :class:`Function` class) recorded or applied."""
    calls = []
    original = node.apply.__func__
    monkeypatch.setattr(node, "apply", classmethod(lambda cls, *a, **k: calls.append(1) or original(cls, *a, **k)))
    return calls


@pytest.mark.parametrize("steps", [1, "all"])
@pytest.mark.parametrize("name", ["digits 4-bit", "digits parallel per-channel 1-bit",
                                  "digits shared stats, real spikes", "resnet parallel 2-bit"])
def test_recorded_steps_give_the_plain_results_bit_for_bit(monkeypatch, name, steps):
    """Online K=1 and K=T training with every recorded HD-LIF step as one node, against the plain path's three
    (the graph-free steps fused in both): losses, logits, parameters, statistics after two optimizer steps."""
    make, shape = NETWORKS[name]
    train_with_and_without_the_node(monkeypatch, make, shape, steps, node_spy(monkeypatch, BNHDLIFStep))


def train_with_and_without_the_node(monkeypatch, make, shape, steps, calls):
    """Two online batches (``K = steps``) of ``make()`` with the one-node path (``calls`` must see it run) and
    without it (``calls`` must not): the same losses, logits, parameters and statistics, bit for bit."""
    runs = []
    for graph in (True, False):
        monkeypatch.setattr(fused, "GRAPH", graph)
        model = make()
        rng = np.random.default_rng(1)
        x, y = rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, shape[0])
        trainer = OnlineTrainer(model, SGD(list(model.parameters()), lr=0.1, momentum=0.9), steps=steps,
                                rng=np.random.default_rng(2))
        runs.append(([trainer.train_batch(x, y) for _ in range(2)], model.state_dict()))
        if graph:
            assert calls, "the one-node path did not run"
            calls.clear()
    assert calls == []
    (batches, state), (ref_batches, ref_state) = runs
    for (loss_a, logits_a), (loss_b, logits_b) in zip(batches, ref_batches):
        assert loss_a == loss_b
        np.testing.assert_array_equal(logits_a, logits_b)
    for key in ref_state:
        np.testing.assert_array_equal(state[key], ref_state[key], err_msg=key)


def test_steps_kept_in_the_graph_give_the_plain_stbp_gradients(monkeypatch):
    """Two steps without detaching the state: the gradient flows from step 2 into step 1's u (SPEC E4)."""
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 2, 2)).astype(np.float32)
    grads = []
    for graph in (True, False):
        monkeypatch.setattr(fused, "GRAPH", graph)
        net = pair()
        xs = Tensor(x, requires_grad=True)
        outs = [net(ops.unstack(xs, 0)[t]) for t in range(2)]
        ops.sum(outs[0] * 0.5 + outs[1] * outs[1]).backward()
        grads.append([xs.grad] + [p.grad for p in net.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_what_the_one_node_path_leaves_to_the_plain_one(monkeypatch):
    """LIF and parallel neurons, evaluation-mode batch norm, sequences (step mode "m") and hooks keep three
    nodes; a non-finite current raises the plain path's error, with the statistics updated once."""
    calls = node_spy(monkeypatch, BNHDLIFStep)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32))
    for net in (pair(LIF), pair(ParallelHDLIF), pair().eval()):
        net(x)
    pair().set_step_mode("m")(Tensor(np.stack([x.data] * 2)))
    watched = pair()
    with Monitor(watched, ["0"]):
        watched(x)
    assert calls == []
    pair()(x)
    assert calls == [1]
    net = pair()
    net[0].weight.data[...] = 3e38
    with pytest.raises(NonFiniteInputError, match="hdlif_step: I_t"):
        net(x)
    assert net[0].t == 1 and calls == [1, 1]  # tried, then the plain path ran once


def test_a_recorded_step_keeps_less_for_its_backward(monkeypatch):
    """Memory held from a recorded digits step's forward to its backward (tracemalloc), one node against three:
    the normalized current is not kept (during the backward itself the one node's peak is about the same)."""
    model = digits_net(T=4, weight_mode="ternary", spike_bits=4, rng=np.random.default_rng(0))
    x = Tensor(np.random.default_rng(1).standard_normal((32, 1, 8, 8)).astype(np.float32))
    labels = np.arange(32) % 10
    model.train().set_step_mode("s")

    def held(graph):
        monkeypatch.setattr(fused, "GRAPH", graph)
        model.reset_state()
        ops.cross_entropy(model(x), labels).backward()
        model.reset_state()
        gc.collect()
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        loss = ops.cross_entropy(model(x), labels)
        kept = tracemalloc.get_traced_memory()[0] - start
        tracemalloc.stop()
        loss.backward()
        return kept
    one, three = held(True), held(False)
    # the three normalized currents of 32 x (16 + 32) x 8 x 8 and 32 x 64 x 4 x 4 float32 values, less the
    # states the one node returns as arrays of their own
    assert one < three - 100_000, (one, three)


@pytest.mark.parametrize("graph", [True, False])
def test_running_statistics_the_batch_norm_refuses_raise_its_error_with_nothing_changed(graph):
    """A read-only or non-float running statistic: the plain path's error from both fused paths (graph-free and
    one node), before any statistic, counter or state changes."""
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32), requires_grad=graph)
    for spoil, error in ((lambda bn: setattr(bn.running_var.flags, "writeable", False), "running_var is read-only"),
                         (lambda bn: setattr(bn, "running_mean", bn.running_mean.astype(np.float16)),
                          "running_mean must be a float32/float64")):
        net = pair()
        spoil(net[0])
        before = net[0].running_mean.copy()
        with (contextlib.nullcontext() if graph else no_grad()), pytest.raises((TypeError, ValueError),
                                                                                match=error):
            net(x)
        np.testing.assert_array_equal(net[0].running_mean, before)
        assert net[0].t == 0 and net[1].state.t == 0


def test_with_only_the_quantizer_step_trained_the_state_keeps_no_graph(monkeypatch):
    """The plain path records the quantizer's node alone; so does the module path then (no one-node step, whose
    state would carry a graph the plain path's does not)."""
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32))
    calls = node_spy(monkeypatch, BNHDLIFStep)
    grads = []
    for graph in (True, False):
        monkeypatch.setattr(fused, "GRAPH", graph)
        net = pair()
        for p in net.parameters():
            p.requires_grad = p is net[1].quantizer.step
        out = net(x)
        assert not net[1].state.u.requires_grad
        ops.sum(out * out).backward()
        grads.append(net[1].quantizer.step.grad)
    assert calls == [] and grads[0] == grads[1]


@pytest.mark.parametrize("cls", [HDLIF, LIF, ParallelHDLIF])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("name", ["theta", "lam"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_step_parameter_goes_to_the_plain_path_and_its_error(cls, per_channel, name, bad):
    """The plain path checks every step's threshold and decay at each step: one non-finite value (here the
    second step's) refuses the first step already. The fused step leaves such a step to the plain path, which
    raises its own error, with nothing changed before."""
    if cls is ParallelHDLIF and name == "lam":
        return  # no decay
    errors = []
    for enabled in (True, False):
        rng = np.random.default_rng(0)
        net = Sequential(BatchNorm2d(3, T=2), cls(T=2, channels=3, per_channel=per_channel))
        getattr(net[1], name).data[1] = bad
        x = Tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32))
        fused.ENABLED = enabled
        try:
            with no_grad(), pytest.raises(ValueError) as info:
                net(x)
        finally:
            fused.ENABLED = True
        errors.append((type(info.value), str(info.value), net[0].running_mean.copy(), net[1].t))
    (t1, m1, r1, n1), (t2, m2, r2, n2) = errors
    assert (t1, m1, n1) == (t2, m2, n2) and np.array_equal(r1, r2)


@pytest.mark.parametrize("backend_name", ["numba", "numpy"])
def test_the_one_node_step_refuses_a_per_channel_parameter_of_another_channel_count(backend_name):
    """What hdlif_step refuses (a per-channel decay for 2 channels on a 4-channel input) the node refuses too,
    instead of reading past the parameter's row."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4, 5, 5)), requires_grad=True)
    lam = Tensor(np.full((2, 2), 0.5), requires_grad=True)
    theta = Tensor(np.full((2,), 0.3), requires_grad=True)
    with backend(backend_name), pytest.raises(ValueError):
        BNHDLIFStep.apply(x, np.zeros((3, 4, 5, 5)), lam, theta, has_weight=False, has_bias=False, has_step=False,
                          t=0, bits=None, running_mean=None, running_var=None, momentum=0.1, eps=1e-5)


def test_params_tc_broadcasts_as_before():
    """``[T]`` parameters take the fast path; a ``[1, 1]`` one still broadcasts over ``T`` and ``C``."""
    from hdlif_ref.autograd.ops.neuron import params_tc
    lam, theta = np.arange(3.0), np.full((1, 1), 0.5)
    a, b = params_tc(np.dtype(np.float32), lam, theta)
    assert a.shape == b.shape == (3, 1) and a.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(a[:, 0], lam)
    np.testing.assert_array_equal(b, np.full((3, 1), 0.5))
    c, d = params_tc(np.dtype(np.float64), lam, np.ones((3, 4)))
    assert c.shape == d.shape == (3, 4) and np.array_equal(c, np.repeat(lam[:, None], 4, axis=1))


def test_an_eval_step_with_a_bad_running_variance_warns_only_as_the_plain_path_does():
    """The fused kernel counts the non-finite normalized current and leaves the step to the plain path: the
    warnings a caller sees are the plain path's alone."""
    import warnings
    counts = []
    for enabled in (True, False):
        bn, neuron = BatchNorm2d(2, T=1), HDLIF(T=1)
        bn.eval()
        bn.running_var.reshape(-1)[0] = -1.0  # sqrt of a negative variance
        fused.ENABLED = enabled
        try:
            with warnings.catch_warnings(record=True) as caught, no_grad():
                warnings.simplefilter("always")
                with pytest.raises(NonFiniteInputError):
                    Sequential(bn, neuron)(Tensor(np.ones((2, 2, 2, 2), np.float32)))
        finally:
            fused.ENABLED = True
        counts.append(sorted(str(w.message) for w in caught))
    assert counts[0] == counts[1]


# ------------------------------------------------------------------ recorded steps: batch norm + LIF as one node
from hdlif_ref.autograd.ops.neuron import BNLIFStep, LIFStep  # noqa: E402
from hdlif_ref.kernels.bn_neuron import bn_lif_graph_step  # noqa: E402
from hdlif_ref.kernels.surrogates import SURROGATES, resolve_gamma, surrogate_code  # noqa: E402


@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 9), st.sampled_from([np.float32, np.float64]),
       st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2 ** 16))
def test_lif_graph_kernel_equals_the_plain_kernels_bit_for_bit(N, C, L, dtype, affine, per_channel, soft, seed):
    """The spikes, state and statistics of the plain kernels (training batch norm, then one LIF step), and the
    charges m that the LIF step keeps for its backward."""
    if N * L < 2:
        return
    x, weight, bias, u_prev, lam, theta, rows, F, T_lam, T_theta = graph_kernel_inputs(N, C, L, dtype, affine,
                                                                                       per_channel, seed)
    for name in ("numba", "numpy"):
        with backend(name):
            y, mean, var = norm_kernels.batch_norm_train_forward(x, weight, bias, 1e-5)
            s_ref, u_ref, m_ref = lif_kernels.lif_forward(y.reshape(1, rows, F), u_prev.reshape(rows, F), T_lam,
                                                          T_theta, soft)
            out, u, mu, v, bad, m = bn_lif_graph_step(x, weight, bias, 1e-5, u_prev, lam, theta, soft)
        assert bad == 0, name
        for got, want in ((out, s_ref), (u, u_ref), (m, m_ref), (mu, mean), (v, var)):
            np.testing.assert_array_equal(got.reshape(-1), np.asarray(want).reshape(-1), err_msg=name)


def test_lif_graph_kernel_counts_non_finite_currents():
    x = np.array([[[0.0, 1.0, 2.0]]], np.float32)
    weight = np.array([np.inf], np.float32)  # every normalized current inf or NaN
    u_prev = np.zeros_like(x)
    for name in ("numba", "numpy"):
        with backend(name), np.errstate(all="ignore"):
            *_, bad, _ = bn_lif_graph_step(x, weight, None, 1e-5, u_prev, np.ones(1, np.float32),
                                           np.ones(1, np.float32), False)
        assert bad == 3, name


LIF_INPUTS = ("x", "weight", "bias", "u_prev", "lam", "theta")


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.booleans(), st.booleans(),
       st.booleans(), st.booleans(), st.sampled_from(sorted(SURROGATES)), st.booleans(),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2 ** 16), st.sets(st.sampled_from(LIF_INPUTS)))
def test_lif_one_node_gives_the_two_nodes_results_and_gradients_bit_for_bit(N, C, H, W, has_weight, has_bias,
                                                                            per_channel, soft, surrogate, loss_on_u,
                                                                            dtype, seed, frozen):
    """Spikes, state, running statistics and the gradient of every input, from a loss on the spikes (and on the
    state: a chain of steps kept in the graph, E4; without it and with ``u_prev`` frozen, the online kernel),
    with any subset of the inputs frozen, through two backward passes of a retained graph."""
    compare_lif_one_node_with_two(N, C, H, W, has_weight, has_bias, per_channel, soft, surrogate, loss_on_u, dtype,
                                  seed, frozen)


@pytest.mark.parametrize("frozen", [{name} for name in LIF_INPUTS]
                         + [set(LIF_INPUTS) - {name} for name in LIF_INPUTS])
@pytest.mark.parametrize("loss_on_u", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
def test_lif_one_node_gradients_with_each_input_frozen_or_alone_trained(frozen, loss_on_u, per_channel):
    """Every input frozen in turn, then trained alone: a gradient sent to the wrong input shows here."""
    compare_lif_one_node_with_two(3, 2, 2, 2, True, True, per_channel, False, "triangle", loss_on_u, np.float32, 5,
                                  frozen)


def compare_lif_one_node_with_two(N, C, H, W, has_weight, has_bias, per_channel, soft, surrogate, loss_on_u, dtype,
                                  seed, frozen):
    if N * H * W < 2:
        return
    rng = np.random.default_rng(seed)
    t, arrays = one_node_inputs(rng, N, C, H, W, has_weight, has_bias, per_channel)
    if not set(arrays) - frozen:
        return  # nothing to differentiate
    code, gamma = surrogate_code("test", surrogate), resolve_gamma("test", surrogate, None)
    r_s, r_u = rng.standard_normal((2, N, C, H, W))
    results = []
    for fused_op in (True, False):
        leaves = {k: Tensor(v.astype(dtype), requires_grad=k not in frozen) for k, v in arrays.items()}
        mean_run, var_run = np.zeros(C, dtype), np.ones(C, dtype)
        args = [leaves["x"], leaves.get("weight"), leaves.get("bias"), leaves["u_prev"], leaves["lam"],
                leaves["theta"]]
        if fused_op:
            s, u = BNLIFStep.apply(*[a for a in args if a is not None], has_weight=has_weight, has_bias=has_bias,
                                   t=t, soft=soft, surrogate=code, gamma=gamma, running_mean=mean_run,
                                   running_var=var_run, momentum=0.1, eps=1e-5)
            assert s._ctx.fn is BNLIFStep and u._ctx is s._ctx  # one node
        else:  # what the plain path records: BatchNorm -> LIFStep
            y = ops.batch_norm(args[0], args[1], args[2], mean_run, var_run, training=True, momentum=0.1, eps=1e-5)
            s, u = LIFStep.apply(y, *args[3:], t=t, soft=soft, gamma=gamma, surrogate=code)
        loss = ops.sum(s * Tensor(r_s.astype(dtype)))
        if loss_on_u:
            loss = loss + ops.sum(u * Tensor(r_u.astype(dtype)))
        loss.backward(retain_graph=True)
        loss.backward()
        results.append((s.data, u.data, mean_run, var_run, {k: v.grad for k, v in leaves.items()}))
    assert_same_node_results(*results)


def test_the_lif_one_node_raises_before_recording_or_updating_statistics():
    x = Tensor(np.array([[[[0.0, 1.0]]]], np.float32), requires_grad=True)
    mean_run, var_run = np.zeros(1, np.float32), np.ones(1, np.float32)
    with np.errstate(all="ignore"), pytest.raises(NonFiniteStep):
        BNLIFStep.apply(x, Tensor(np.array([np.inf], np.float32)), Tensor(np.zeros((1, 1, 1, 2), np.float32)),
                        Tensor(np.full(1, 0.5, np.float32)), Tensor(np.ones(1, np.float32)), has_weight=True,
                        has_bias=False, t=0, soft=False, surrogate=0, gamma=1.0, running_mean=mean_run,
                        running_var=var_run, momentum=0.1, eps=1e-5)
    assert mean_run[0] == 0 and var_run[0] == 1


@pytest.mark.parametrize("steps", [1, "all"])
@pytest.mark.parametrize("kw, soft", [({}, False), ({"per_channel": True, "surrogate": "atan"}, True)])
def test_recorded_lif_steps_give_the_plain_results_bit_for_bit(monkeypatch, steps, kw, soft):
    """Online K=1 and K=T training of the LIF digits network (the peers' benchmark network) with every recorded
    step's batch norm and LIF as one node, against the plain path's two (the graph-free steps fused in both):
    losses, logits, parameters, statistics after two optimizer steps."""
    def make():
        model = digits_net(T=3, neuron="lif", rng=np.random.default_rng(0), **kw)
        for m in model.modules():
            if isinstance(m, LIF) and soft:
                m.reset_mode = "soft"
        return model
    train_with_and_without_the_node(monkeypatch, make, (12, 1, 8, 8), steps, node_spy(monkeypatch, BNLIFStep))


def test_what_the_lif_one_node_path_leaves_to_the_plain_one(monkeypatch):
    """A quantized LIF, evaluation-mode batch norm, sequences and hooks keep the plain nodes; a non-finite current
    raises the plain path's error, with the statistics updated once."""
    calls = node_spy(monkeypatch, BNLIFStep)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32))

    def lif_pair(**kw):
        return Sequential(BatchNorm2d(3, per_step=True, T=2), LIF(2, **kw))
    for net in (lif_pair(spike_bits=4), lif_pair().eval()):
        net(x)
    lif_pair().set_step_mode("m")(Tensor(np.stack([x.data] * 2)))
    watched = lif_pair()
    with Monitor(watched, ["1"]):
        watched(x)
    assert calls == []
    lif_pair()(x)
    assert calls == [1]
    net = lif_pair()
    net[0].weight.data[...] = np.inf
    with np.errstate(all="ignore"), pytest.raises(NonFiniteInputError, match="lif_step: I_t"):
        net(x)
    assert net[0].t == 1 and calls == [1, 1]  # tried, then the plain path ran once


# ------------------------------------------------------------------ both one-node paths: what they leave to plain
def one_node_spies(monkeypatch):
    """Counts of BNHDLIFStep and BNLIFStep nodes recorded."""
    return {"hdlif": node_spy(monkeypatch, BNHDLIFStep), "lif": node_spy(monkeypatch, BNLIFStep)}


@pytest.mark.parametrize("neuron_cls, key", [(HDLIF, "hdlif"), (LIF, "lif")])
@pytest.mark.parametrize("loss_steps", [[2], [2, 1, 0], [1, 2]])
def test_steps_chained_in_the_graph_keep_the_plain_order_of_gradients(monkeypatch, neuron_cls, key, loss_steps):
    """Three steps without detaching the state and a loss on later steps first: the plain path's nodes, so that the
    backward adds the batch norm's (and a shared input's) gradient contributions in the plain order, bit for bit (one
    node per step reached them in another order: different last bits). The first step, whose state is a constant,
    is still one node."""
    calls = one_node_spies(monkeypatch)
    results = []
    for graph in (True, False):
        monkeypatch.setattr(fused, "GRAPH", graph)
        rng = np.random.default_rng(1)
        net = Sequential(BatchNorm2d(2), neuron_cls(3, theta_init=0.3))
        x = Tensor(rng.standard_normal((4, 2, 2, 2)).astype(np.float32), requires_grad=True)  # shared by the steps
        outs = [net(x * float(t + 1)) for t in range(3)]
        loss = None
        for t in loss_steps:
            term = ops.sum(outs[t] * Tensor(rng.standard_normal(outs[t].shape).astype(np.float32)))
            loss = term if loss is None else loss + term
        loss.backward()
        results.append([x.grad] + [p.grad for p in net.parameters()])
        if graph:
            assert calls[key] == [1], calls  # step 0 only
    for a, b in zip(*results):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


BN_SETTINGS = [("momentum", 1.5, "momentum"), ("eps", 0.0, "eps"), ("weight", "short", "weight has shape"),
               ("running_var", None, "give both")]


@pytest.mark.parametrize("neuron_cls", [HDLIF, LIF])
@pytest.mark.parametrize("graph", [True, False])
@pytest.mark.parametrize("name, value, message", BN_SETTINGS)
def test_batch_norm_settings_the_plain_op_refuses_raise_its_error_from_the_fused_paths(neuron_cls, graph, name,
                                                                                       value, message):
    """A batch norm whose momentum, eps, weight or running statistics ``batch_norm`` refuses (set after it was
    built): the fused paths (graph-free and one node) leave the step to the plain path, which raises, before any
    statistic or counter changes (they used to run the kernel and update the statistics)."""
    from hdlif_ref.module import Parameter
    net = Sequential(BatchNorm2d(3, per_step=False), neuron_cls(2))
    bn = net[0]
    if value == "short":
        bn.weight = Parameter(np.ones(1, np.float32))
    else:
        setattr(bn, name, value)
    before = bn.running_mean.copy()
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32), requires_grad=graph)
    with (contextlib.nullcontext() if graph else no_grad()), pytest.raises(ValueError, match=message):
        net(x)
    np.testing.assert_array_equal(bn.running_mean, before)
    assert bn.t == 0 and net[1].state.t == 0


@pytest.mark.parametrize("neuron_cls", [HDLIF, LIF, ParallelHDLIF])
@pytest.mark.parametrize("graph", [True, False])
def test_a_negative_step_counter_gets_the_plain_error(neuron_cls, graph):
    """A state whose step counter is negative (only reachable through the private state): the step functions refuse
    it; the fused paths leave it to them (the graph-free one used to read the last step's parameters)."""
    from hdlif_ref.neurons.records import NeuronState
    errors = []
    for enabled in (True, False):
        net = Sequential(BatchNorm2d(3, per_step=False), neuron_cls(3))
        net[1]._state = NeuronState(None, -1)
        x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32), requires_grad=graph)
        fused.ENABLED = enabled
        try:
            with (contextlib.nullcontext() if graph else no_grad()), pytest.raises(ValueError) as info:
                net(x)
        finally:
            fused.ENABLED = True
        errors.append((str(info.value), net[0].t, net[0].running_mean.copy()))
    assert errors[0][:2] == errors[1][:2] and "state.t=-1" in errors[0][0]
    np.testing.assert_array_equal(errors[0][2], errors[1][2])


def test_a_recorded_lif_step_marks_its_spikes_as_the_plain_step(monkeypatch):
    """The plain LIF step marks its 0/1 spikes finite (bound 1, read-only), and so does the one node."""
    calls = one_node_spies(monkeypatch)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32), requires_grad=True)
    for graph in (True, False):
        monkeypatch.setattr(fused, "GRAPH", graph)
        s = Sequential(BatchNorm2d(3), LIF(2))(x)
        assert not s.data.flags.writeable and finite_bound(s.data) == 1.0, graph
    assert calls["lif"] == [1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_the_functional_lif_step_and_sequence_mark_their_spikes(dtype, reset):
    """``lif_step`` and ``lif_seq`` themselves (no module, no batch norm), either dtype and reset, a surrogate other
    than the default: 0/1 spikes, marked with bound 1."""
    from hdlif_ref.neurons.functional import lif_seq
    from hdlif_ref.neurons.records import LIFParams, NeuronState
    from hdlif_ref.neurons.steps import lif_step
    I = np.random.default_rng(2).standard_normal((3, 4, 5)).astype(dtype) * 2
    lam, theta = np.full(3, 0.5, dtype), np.full(3, 0.7, dtype)
    s = lif_seq(Tensor(I, requires_grad=True), lam, theta, reset=reset, surrogate="atan")
    s_t, _ = lif_step(Tensor(I[0]), NeuronState(), LIFParams(lam, theta, reset, None, "atan"))
    for spikes in (s, s_t):
        assert set(np.unique(spikes.data)) <= {0.0, 1.0} and spikes.dtype == dtype
        assert not spikes.data.flags.writeable and finite_bound(spikes.data) == 1.0


@pytest.mark.parametrize("mode", ["s", "m"])
@pytest.mark.parametrize("graph", [False, True])
def test_lif_spikes_are_marked_alike_on_every_path(mode, graph):
    """Fused or plain, graph-free or recorded, a step or a sequence: LIF's spikes are read-only and recorded finite
    with bound 1 (before, the graph-free fused path marked them and the plain path left them writable)."""
    x = np.random.default_rng(1).standard_normal((4, 3, 5, 5)).astype(np.float32)
    x = np.stack([x, -x]) if mode == "m" else x
    seen = []
    for enabled in (True, False):
        fused.ENABLED = enabled
        try:
            net = Sequential(BatchNorm2d(3, T=2), LIF(2)).train().set_step_mode(mode)
            with (contextlib.nullcontext() if graph else no_grad()):
                s = net(Tensor(x, requires_grad=graph))
        finally:
            fused.ENABLED = True
        assert set(np.unique(s.data)) <= {0.0, 1.0}
        seen.append((s.data.flags.writeable, finite_bound(s.data), s.data.copy()))
    assert seen[0][:2] == seen[1][:2] == (False, 1.0)
    np.testing.assert_array_equal(seen[0][2], seen[1][2])
