"""Batch norm layers on a sequence: with per-step statistics in training, one op (ops.batch_norm_steps)
gives what the step-by-step loop gives, bit for bit, and is used only where it applies."""
from __future__ import annotations

import numpy as np
import pytest

from hdlif_ref.autograd import Tensor
from hdlif_ref.layers import norm as norm_layers
from hdlif_ref.layers.norm import BatchNorm1d, BatchNorm2d
from hdlif_ref.models import digits_net
from hdlif_ref.training.optim import SGD
from hdlif_ref.training.trainer import STBPTrainer


def run_layer(monkeypatch, one_op, layer, x, g, weight, bias):
    monkeypatch.setattr(norm_layers, "ONE_OP_PER_SEQUENCE", one_op)
    calls = []
    original = norm_layers.ops.batch_norm_steps
    monkeypatch.setattr(norm_layers.ops, "batch_norm_steps", lambda *a, **k: calls.append(1) or original(*a, **k))
    layer.set_step_mode("m")
    layer.weight.data[...] = weight
    layer.bias.data[...] = bias
    xt = Tensor(x, requires_grad=True)
    y = layer(xt)
    y.backward(g)
    return bool(calls), (y.data, xt.grad, layer.weight.grad, layer.bias.grad, layer.running_mean.copy(),
                         layer.running_var.copy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, shape", [
    (lambda dt: BatchNorm2d(3, per_step=True, T=4, dtype=dt), (4, 6, 3, 5, 5)),
    (lambda dt: BatchNorm2d(3, per_step=True, T=4, dtype=dt), (2, 6, 3, 2, 2)),   # fewer steps than T
    (lambda dt: BatchNorm1d(5, per_step=True, T=3, dtype=dt), (3, 7, 5)),
])
def test_one_op_equals_the_step_loop(monkeypatch, dtype, make, shape):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + 0.3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    c = shape[2]
    weight, bias = rng.uniform(0.5, 2, c).astype(dtype), rng.uniform(-1, 1, c).astype(dtype)
    used, fused = run_layer(monkeypatch, True, make(dtype), x, g, weight, bias)
    unused, loop = run_layer(monkeypatch, False, make(dtype), x, g, weight, bias)
    assert used and not unused
    for a, b in zip(fused, loop):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("make", [
    lambda: BatchNorm2d(3, dtype=np.float64).set_step_mode("m"),                            # shared statistics
    lambda: BatchNorm2d(3, per_step=True, T=4, dtype=np.float64).set_step_mode("m").eval(),  # evaluation
])
def test_the_loop_runs_where_the_one_op_does_not_apply(monkeypatch, make):
    calls = []
    original = norm_layers.ops.batch_norm_steps
    monkeypatch.setattr(norm_layers.ops, "batch_norm_steps", lambda *a, **k: calls.append(1) or original(*a, **k))
    make()(Tensor(np.random.default_rng(0).standard_normal((4, 5, 3, 2, 2))))
    assert calls == []


def test_more_steps_than_T_is_refused_as_before():
    layer = BatchNorm2d(3, per_step=True, T=2, dtype=np.float64).set_step_mode("m")
    with pytest.raises(ValueError, match="T=2 steps"):
        layer(Tensor(np.random.default_rng(0).standard_normal((3, 5, 3, 2, 2))))


@pytest.mark.parametrize("neuron", ["lif", "hdlif"])
def test_stbp_training_gives_the_same_bits(monkeypatch, neuron):
    """Two STBP steps of the digits network: losses, logits and every parameter and running statistic."""
    def train(one_op):
        monkeypatch.setattr(norm_layers, "ONE_OP_PER_SEQUENCE", one_op)
        model = digits_net(T=4, neuron=neuron, weight_mode="ternary", spike_bits=4 if neuron == "hdlif" else None,
                           rng=np.random.default_rng(0))
        rng = np.random.default_rng(1)
        x, y = rng.standard_normal((16, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 16)
        trainer = STBPTrainer(model, SGD(list(model.parameters()), lr=0.1, momentum=0.9))
        return [trainer.train_batch(x, y) for _ in range(2)], model.state_dict()

    (steps_a, state_a), (steps_b, state_b) = train(True), train(False)
    for (loss_a, logits_a), (loss_b, logits_b) in zip(steps_a, steps_b):
        assert loss_a == loss_b
        assert logits_a.tobytes() == logits_b.tobytes()
    for key in state_b:
        assert state_a[key].tobytes() == state_b[key].tobytes(), key


@pytest.mark.parametrize("case", ["two backward passes", "weight used elsewhere too", "float64 input"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parameter_gradients_add_up_as_in_the_loop(monkeypatch, case, dtype):
    """The shared weight's and bias's gradients are added into .grad step by step, as the loop's T ops add
    them: with a .grad already there, with another use of the weight reached first, and with a float32 layer
    given float64 input (review: a pre-summed total in the input's dtype differed in all three)."""
    def grads(one_op):
        monkeypatch.setattr(norm_layers, "ONE_OP_PER_SEQUENCE", one_op)
        rng = np.random.default_rng(0)
        layer = BatchNorm2d(3, per_step=True, T=4, dtype=dtype).set_step_mode("m")
        layer.weight.data[...] = rng.uniform(0.5, 2, 3).astype(dtype)
        x_dtype = np.float64 if case == "float64 input" else dtype
        for _ in range(2 if case == "two backward passes" else 1):
            x = (rng.standard_normal((4, 6, 3, 5, 5)) * 2 + 0.3).astype(x_dtype)
            loss = (layer(Tensor(x)) * Tensor(rng.standard_normal(x.shape).astype(x_dtype))).sum()
            if case == "weight used elsewhere too":
                loss = loss + (layer.weight * Tensor(rng.standard_normal(3).astype(dtype))).sum()
            loss.backward()
        return layer.weight.grad, layer.bias.grad

    for a, b in zip(grads(True), grads(False)):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
