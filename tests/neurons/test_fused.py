"""Graph-free steps (docs/performance.md, "Graph-free steps"): batch norm + neuron (+ quantizer) in one
kernel under ``no_grad`` gives the plain path's results bit for bit, and no-grad steps keep no graph."""
from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdlif_ref import backend
from hdlif_ref.autograd import Context, Tensor, no_grad
from hdlif_ref.autograd.ops._args import NonFiniteInputError
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


def test_fused_kernel_counts_non_finite_currents():
    x = np.ones((2, 2, 3), dtype=np.float32)
    x[1, 1, 2] = 3e38  # normalizes to +inf in float32 (eval: scale 4)
    for name in ("numba", "numpy"):
        with backend(name), np.errstate(over="ignore"):
            *_, bad = bn_neuron_step(x, False, np.full(2, 4, np.float32), None, 1e-5, np.zeros(2),
                                     np.ones(2), np.zeros_like(x), np.full(2, 0.5, np.float32),
                                     np.ones(2, np.float32), 0, 0.1, 15)
        assert bad == 1, name


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
