"""Arrays finite by construction (``_args.mark_finite``): quantized spikes, their average pooling and reshapes
skip the next layer's non-finite pass (issue 21: the checks' cost), and a non-finite value is still refused."""
from __future__ import annotations

import gc
import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hdlif_ref.autograd import Tensor, no_grad, ops
from hdlif_ref.autograd.ops import _args
from hdlif_ref.autograd.ops._args import NonFiniteInputError, check_finite, finite_bound, mark_finite
from hdlif_ref.layers import AvgPool2d, Conv2d
from hdlif_ref.layers.norm import BatchNorm2d
from hdlif_ref.models import digits_net
from hdlif_ref.module import Sequential
from hdlif_ref.neurons import HDLIF, LIF, ParallelHDLIF, fused, spike_quantize
from hdlif_ref.training.optim import SGD
from hdlif_ref.training.trainer import OnlineTrainer


@pytest.fixture
def passes(monkeypatch):
    """The shapes of the arrays check_finite scanned."""
    seen = []
    real = _args.count_nonfinite

    def spy(data):
        seen.append(data.shape)
        return real(data)
    monkeypatch.setattr(_args, "count_nonfinite", spy)
    return seen


# ------------------------------------------------------------------ the record itself
def test_a_mark_holds_for_that_array_only_read_only_and_ends_with_it():
    a = np.zeros((3, 4), dtype=np.float32)
    assert finite_bound(a) is None
    mark_finite(a, 2.5)
    assert finite_bound(a) == 2.5 and not a.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a[0, 0] = np.nan
    assert finite_bound(a.reshape(12)) is None and finite_bound(a.copy()) is None  # views and copies: unknown
    b = a.copy()
    mark_finite(b, 1.0)
    b.flags.writeable = True  # writeable again: the record is gone, also once read-only again
    assert finite_bound(b) is None
    b.flags.writeable = False
    assert finite_bound(b) is None
    c = np.zeros(6, dtype=np.float32)
    view = c.reshape(2, 3)
    mark_finite(view, 1.0)
    assert not c.flags.writeable  # the array it views cannot change it either
    key = id(a)
    del a
    gc.collect()
    assert key not in _args._FINITE  # the record ends with the array
    with pytest.raises(ValueError, match="bound=inf must be finite"):
        mark_finite(np.zeros(2), math.inf)


def test_check_finite_skips_only_marked_arrays(passes):
    a, b = np.ones((2, 3)), np.ones((2, 3))
    mark_finite(a, 1.0)
    check_finite("op", "x", a)
    check_finite("op", "x", Tensor(a))
    assert passes == []
    check_finite("op", "x", b)
    assert passes == [(2, 3)]
    c = np.ones((2, 3))
    mark_finite(c, 1.0)
    c.flags.writeable = True
    c[1, 2] = np.nan  # a marked array changed after making it writeable: scanned, and refused
    with pytest.raises(NonFiniteInputError, match="op: x holds 1 non-finite"):
        check_finite("op", "x", c)


# ------------------------------------------------------------------ who marks, and that the bound holds
finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(st.lists(finite32, min_size=1, max_size=20), st.floats(2.0 ** -100, 2.0 ** 127, width=32), st.integers(1, 16),
       st.sampled_from([np.float32, np.float64]))
@example([float(np.finfo(np.float32).max)], 2.0 ** 127, 2, np.float32)  # s (2^n - 1) overflows float32 only
def test_quantized_spikes_are_marked_exactly_when_the_top_level_is_finite(values, step, bits, dtype):
    x = np.array(values, dtype=dtype)
    y = spike_quantize(Tensor(x), Tensor(np.array(step, dtype=dtype)), bits)
    top = float(np.float64(dtype(step)) * (2 ** bits - 1))  # float64 arithmetic: the independent reference
    bound = finite_bound(y.data)
    if top <= float(np.finfo(dtype).max) * (1 - 1e-6):
        assert bound is not None
    if bound is not None:
        assert np.isfinite(y.data).all() and np.abs(y.data).max() <= bound
    else:
        assert top >= float(np.finfo(dtype).max) * (1 - 1e-6)  # only an overflowing top level is left unmarked


@pytest.mark.parametrize("kernel_size, stride, padding", [(2, 2, 0), (3, 1, 1), (2, 1, 1)])
def test_average_pooling_and_reshape_carry_the_mark(kernel_size, stride, padding):
    rng = np.random.default_rng(0)
    x = Tensor(rng.integers(0, 16, (2, 3, 5, 5)).astype(np.float32) * np.float32(0.25))
    mark_finite(x.data, 15 * 0.25)
    y = ops.avg_pool2d(x, kernel_size, stride, padding)
    bound = finite_bound(y.data)
    assert bound == kernel_size ** 2 * 15 * 0.25 and np.abs(y.data).max() <= bound
    assert finite_bound(ops.reshape(y, (2, -1)).data) == bound
    assert finite_bound(ops.avg_pool2d(Tensor(x.data.copy()), 2).data) is None  # unmarked in, unmarked out
    huge = Tensor(np.full((1, 1, 2, 2), 1e38, dtype=np.float32))
    mark_finite(huge.data, 1e38)
    assert finite_bound(ops.avg_pool2d(huge, 2).data) is None  # 4 x 1e38 would not be finite: no mark


def pair(neuron_cls, C=3, **kw):
    return Sequential(BatchNorm2d(C, per_step=True, T=2), neuron_cls(2, **kw))


@pytest.mark.parametrize("neuron_cls, kw", [(HDLIF, {"spike_bits": 4}), (ParallelHDLIF, {"spike_bits": 2}),
                                            (LIF, {"spike_bits": 4}), (LIF, {}), (HDLIF, {}), (ParallelHDLIF, {})])
@pytest.mark.parametrize("theta", [1.0, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("lam", [0.5, 0.0, np.nan])
def test_fused_spikes_are_marked_only_when_bounded_and_the_bound_holds(neuron_cls, kw, theta, lam):
    """Finite parameters: a marked output is finite and within its bound, from any membrane (the first
    step's may be infinite). A non-finite threshold or decay: the plain path runs, and refuses it by name."""
    net = pair(neuron_cls, **kw)
    neuron = net[1]
    neuron.theta.data[...] = theta
    uses_lam = neuron_cls is not ParallelHDLIF
    if uses_lam:
        neuron.lam.data[...] = lam
    x = Tensor((np.random.default_rng(1).standard_normal((4, 3, 2, 2)) * 1e3).astype(np.float32))
    kinds = {HDLIF: 0, ParallelHDLIF: 1, LIF: 2}
    if not (math.isfinite(theta) and (math.isfinite(lam) or not uses_lam)):
        with no_grad():
            assert fused.bn_then_neuron(net[0], neuron, x, kinds) is None
            with pytest.raises(NonFiniteInputError, match="(theta|lam) holds"):
                net(x)
        return
    with no_grad(), np.errstate(all="ignore"):
        for _ in range(2):  # the second step starts from the first's membrane
            y = fused.bn_then_neuron(net[0], neuron, x, kinds)
            assert y is not None
            bound = finite_bound(y.data)
            quantized = "spike_bits" in kw
            assert (bound is None) == (not quantized and neuron_cls is not LIF)  # an unquantized surplus: no bound
            if bound is not None:
                assert np.isfinite(y.data).all() and np.abs(y.data).max() <= bound


def test_fused_spikes_stay_bounded_from_an_infinite_or_nan_membrane():
    """The state carried from a previous step may be +-inf or NaN; the quantized spikes stay within their bound,
    but for an HD-LIF surplus of +inf (u = +inf): the quantizer's input check refuses it on the plain path, so
    the fused step leaves it to that path, which raises."""
    for kind_cls, kw in ((HDLIF, {"spike_bits": 4}), (LIF, {"spike_bits": 4}), (LIF, {})):
        for u in (np.inf, -np.inf, np.nan):
            net = pair(kind_cls, **kw)
            x = Tensor(np.random.default_rng(3).standard_normal((4, 3, 2, 2)).astype(np.float32))
            with no_grad(), np.errstate(all="ignore"):
                net(x)
                state = net[1].state
                state.u.data[...] = u
                y = fused.bn_then_neuron(net[0], net[1], x, {HDLIF: 0, ParallelHDLIF: 1, LIF: 2})
                if kind_cls is HDLIF and u == np.inf:
                    assert y is None
                    with pytest.raises(NonFiniteInputError, match="spike_quantize: x holds 48 non-finite"):
                        net(x)
                    continue
            bound = finite_bound(y.data)
            assert bound is not None and np.isfinite(y.data).all() and np.abs(y.data).max() <= bound


def test_a_non_finite_input_to_a_fused_batch_norm_is_refused_by_name_without_side_effects():
    """The fused path no longer scans the batch norm's input: its kernel finds the NaN, the plain path names it."""
    net = pair(HDLIF, spike_bits=4)
    bn = net[0]
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        x_bad = x.copy()
        x_bad[1, 2, 0, 1] = bad
        before = bn.running_mean.copy(), bn.running_var.copy()
        with no_grad(), pytest.raises(NonFiniteInputError, match="BatchNorm2d: input holds 1 non-finite"):
            net(Tensor(x_bad))
        np.testing.assert_array_equal(bn.running_mean, before[0])
        np.testing.assert_array_equal(bn.running_var, before[1])
        assert bn.t == 0 and net[1].state.t == 0


@pytest.mark.parametrize("training", [True, False])
def test_a_nan_in_a_later_step_of_a_fused_sequence_leaves_no_side_effects(training):
    """Multi-step mode: the first step goes through the kernel, the second holds a NaN; the plain path names it,
    and no statistics were committed (the sequence commits only after every step went through)."""
    net = pair(HDLIF, spike_bits=4).set_step_mode("m")
    net.train(training)
    bn = net[0]
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 2, 2)).astype(np.float32)
    x[1, 0, 1, 0, 0] = np.nan
    before = bn.running_mean.copy(), bn.running_var.copy()
    with no_grad(), pytest.raises(NonFiniteInputError, match="BatchNorm2d: input holds 1 non-finite"):
        net(Tensor(x))
    np.testing.assert_array_equal(bn.running_mean, before[0])
    np.testing.assert_array_equal(bn.running_var, before[1])
    assert net[1].state.t == 0


def test_an_input_with_two_faults_gets_the_plain_paths_first_error():
    """Wrong channels and a NaN: the graph-free path raises what the plain path raises first."""
    x = np.full((2, 4, 2, 2), np.nan, dtype=np.float32)  # 4 channels for a 3-channel batch norm
    with pytest.raises(ValueError) as plain:
        pair(HDLIF, spike_bits=4)(Tensor(x))
    with no_grad(), pytest.raises(ValueError) as graph_free:
        pair(HDLIF, spike_bits=4)(Tensor(x))
    assert str(graph_free.value) == str(plain.value)


def test_a_training_step_scans_no_spikes_and_still_refuses_a_nan(passes):
    """W1's step: the inputs of the layers after a neuron (convolution, pooling, linear) are not scanned, nor
    those of the batch norms (their kernels count non-finite currents, on the graph step too): the image
    and the neurons' parameters are."""
    model = digits_net(T=4, weight_mode="ternary", spike_bits=4, rng=np.random.default_rng(0))
    trainer = OnlineTrainer(model, SGD(list(model.parameters()), lr=0.1, momentum=0.9), steps=1,
                            rng=np.random.default_rng(2))
    x = np.random.default_rng(1).standard_normal((8, 1, 8, 8)).astype(np.float32)
    y = np.arange(8) % 10
    trainer.train_batch(x, y)
    passes.clear()
    trainer.train_batch(x, y)
    scanned = set(passes)
    convs = [m for m in model.modules() if isinstance(m, Conv2d)]
    pools = [m for m in model.modules() if isinstance(m, AvgPool2d)]
    assert len(convs) == 3 and len(pools) == 2
    assert scanned == {(8, 1, 8, 8), (4,)}
    x[3, 0, 2, 2] = np.nan
    with pytest.raises(Exception, match="Conv2d: input holds 1 non-finite"):
        trainer.train_batch(x, y)


def test_a_graph_free_batch_norm_and_neuron_scan_nothing(passes, monkeypatch):
    """Under no_grad the fused kernel counts non-finite currents itself: no separate pass over its input; with a
    graph the one-node step's kernel does (HD-LIF in training), the plain path's checks scan."""
    net = pair(HDLIF, spike_bits=4)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32))
    with no_grad():
        net(x)
    net.reset_state()
    net(x)
    assert [p for p in passes if p != (2,)] == []  # the neuron's parameters [T] only
    net.reset_state()
    monkeypatch.setattr(fused, "GRAPH", False)
    net(x)  # the plain path's checks scan the input and the current
    assert (2, 3, 2, 2) in passes


@pytest.mark.parametrize("bits", [4, None])
def test_a_fused_sequence_is_marked_as_its_steps(bits):
    """Multi-step mode: one output for all steps, marked with the quantized spikes' bound (none unquantized)."""
    net = pair(HDLIF, spike_bits=bits).set_step_mode("m")
    x = Tensor((np.random.default_rng(2).standard_normal((2, 4, 3, 2, 2)) * 1e3).astype(np.float32))
    with no_grad():
        y = fused.bn_then_neuron(net[0], net[1], x, {HDLIF: 0, ParallelHDLIF: 1, LIF: 2})
    assert y is not None and y.shape == x.shape
    bound = finite_bound(y.data)
    if bits is None:
        assert bound is None
    else:
        assert bound == float(np.float32(net[1].quantizer.step.data) * np.float32(15))
        assert np.isfinite(y.data).all() and np.abs(y.data).max() <= bound
    net.reset_state()
    net[1].theta.data[-1] = -np.inf  # the last step's threshold: the plain path runs, and refuses it
    with no_grad():
        assert fused.bn_then_neuron(net[0], net[1], x, {HDLIF: 0, ParallelHDLIF: 1, LIF: 2}) is None
        with pytest.raises(NonFiniteInputError, match="theta holds"):
            net(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_the_numpy_backend_refuses_by_name_without_warnings(bad):
    """The NumPy twin of the fused kernel meets the non-finite input too: no RuntimeWarning, the named error."""
    import warnings

    from hdlif_ref import backend

    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2))
    x[0, 1, 1, 1] = bad
    with backend("numpy"), warnings.catch_warnings():
        warnings.simplefilter("error")
        with no_grad(), pytest.raises(NonFiniteInputError, match="BatchNorm2d: input holds 1 non-finite"):
            pair(HDLIF, spike_bits=4).to(np.float64)(Tensor(x))
