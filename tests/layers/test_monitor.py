"""Monitor: spikes, membranes, inputs and firing rates of named layers, by forward hooks."""
from __future__ import annotations

import numpy as np
import pytest

from hdlif_ref.autograd import Tensor, no_grad
from hdlif_ref.models import digits_net
from hdlif_ref.layers.monitor import Monitor, neuron_names
from hdlif_ref.neurons import HDLIF, LIF, ParallelHDLIF


def _net(neuron="hdlif", **kw):
    net = digits_net(width=0.25, T=3, neuron=neuron, rng=np.random.default_rng(0), **kw).eval()
    for m in net.neurons():
        m.theta.data[...] = 0.1  # untrained: a low threshold so that every layer fires
    return net


def _x(n=2):
    return np.random.default_rng(1).standard_normal((n, 1, 8, 8)).astype(np.float32) * 2


def _run_steps(model, x):
    model.set_step_mode("s").reset_state()
    with no_grad():
        return [model(Tensor(x)).data for _ in range(model.T)]


def _run_seq(model, x):
    model.set_step_mode("m").reset_state()
    with no_grad():
        return model(Tensor(np.ascontiguousarray(np.broadcast_to(x, (model.T,) + x.shape)))).data


@pytest.mark.parametrize("neuron", ["hdlif", "lif", "membn"])
def test_single_step_and_multi_step_record_the_same(neuron):
    model, x = _net(neuron), _x()
    names = neuron_names(model)
    assert names == ["features.2", "features.5", "features.9"]
    with Monitor(model, record=("spikes", "membranes", "inputs")) as steps:
        _run_steps(model, x)
    with Monitor(model, record=("spikes", "membranes", "inputs")) as seq:
        _run_seq(model, x)
    for name in names:
        neuron_module = dict(model.named_modules())[name]
        assert steps.spikes[name].shape == (3, 2) + seq.spikes[name].shape[2:]
        np.testing.assert_array_equal(steps.spikes[name], seq.spikes[name])
        np.testing.assert_array_equal(steps.inputs[name], seq.inputs[name])
        np.testing.assert_allclose(steps.membranes[name], seq.membranes[name], rtol=1e-6, atol=1e-6)
        # membranes are the neuron's own u_t: below theta after any reset (HD-LIF: u = min(m, theta))
        if isinstance(neuron_module, (HDLIF, LIF)):
            assert (steps.membranes[name] <= neuron_module.theta.data.max() + 1e-6).all()
        spikes = steps.spikes[name]
        assert steps.firing_rates()[name] == pytest.approx(np.count_nonzero(spikes) / spikes.size)
        assert 0 < steps.firing_rates()[name] < 1


def test_named_layers_other_modules_parallel_and_clear():
    model, x = _net("hdlif", parallel_fraction=1.0), _x()
    assert all(isinstance(dict(model.named_modules())[n], ParallelHDLIF) for n in neuron_names(model))
    with Monitor(model, ["features.2", "classifier"], record=("spikes", "membranes")) as mon:
        out = _run_steps(model, x)
    np.testing.assert_array_equal(mon.spikes["classifier"], np.stack(out))  # any module: its output
    assert "features.2" in mon.spikes and "features.2" not in mon.membranes  # Parallel: no membrane
    with pytest.raises(KeyError, match="no membranes recorded for 'features.2'"):
        mon.membranes["features.2"]
    rate = mon.firing_rates()["features.2"]
    mon.clear()
    assert mon.firing_rates()["features.2"] == 0.0 and "features.2" not in mon.spikes
    assert rate > 0
    _run_steps(model, x)  # the hooks are gone after the with block
    assert mon.firing_rates()["features.2"] == 0.0


def test_keep_false_counts_only_and_rates_accumulate_over_batches():
    model = _net()
    mon = Monitor(model, keep=False)
    _run_steps(model, _x(2))
    _run_steps(model, _x(3))
    mon.remove()
    assert not mon.spikes
    with Monitor(model) as full:
        _run_steps(model, _x(2))
        _run_steps(model, _x(3))
        with pytest.raises(ValueError, match="call clear"):
            full.spikes  # two batch sizes cannot be stacked into one [steps, N, ...]
    assert mon.firing_rates() == full.firing_rates()


def test_bad_arguments():
    model = _net()
    with pytest.raises(ValueError, match=r"no layer named 'features.99'; neuron layers: features.2, features.5"):
        Monitor(model, ["features.99"])
    with pytest.raises(ValueError, match="record=.*allowed: spikes, membranes, inputs"):
        Monitor(model, record=("voltages",))
    with pytest.raises(TypeError, match="Module"):
        Monitor(object())
