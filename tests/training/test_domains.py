"""Parameters stay in their domains (docs/neurons.md, "Domains"), whatever the learning rate.

The v0.1 failure: ``hdlif-ref train --lr 0.03`` stopped mid-epoch 1 with
``spike_quantize: the step s = -0.0055 must be a finite number > 0``: Adam moves every
parameter by about ``lr`` per step, so a step of 1/15 went negative in a few steps.
Now ``Parameter.lower`` declares the floor and every optimizer projects onto it.
"""
import numpy as np
import pytest

from hdlif_ref.autograd import Tensor
from hdlif_ref.datasets import DataLoader, get_dataset
from hdlif_ref.models import digits_net
from hdlif_ref.module import Parameter
from hdlif_ref.neurons import HDLIF, LIF, MemBNHDLIF, ParallelHDLIF, SpikeQuantizer
from hdlif_ref.neurons.base import THETA_FLOOR
from hdlif_ref.neurons.quantizer import STEP_FLOOR_FRACTION
from hdlif_ref.training.optim import SGD, Adam, AdamW
from hdlif_ref.training.trainer import OnlineTrainer, STBPTrainer


@pytest.mark.parametrize("make", [lambda p: SGD([p], lr=1.0, momentum=0.9), lambda p: Adam([p], lr=0.5),
                                  lambda p: AdamW([p], lr=0.5, weight_decay=0.1)], ids=["sgd", "adam", "adamw"])
def test_every_optimizer_projects_onto_the_lower_bound(make):
    p = Parameter(np.array([0.3, 2.0, 0.25]), lower=0.25)
    free = Parameter(np.array([0.3, 2.0, 0.25]))
    opt, opt_free = make(p), make(free)
    for _ in range(5):
        p.grad = np.array([10.0, -1.0, 3.0])  # pushes entries 0 and 2 below the floor
        free.grad = p.grad.copy()
        opt.step()
        opt_free.step()
    assert np.all(p.data >= 0.25)
    assert p.data[0] == 0.25 and p.data[2] == 0.25  # exactly on the floor, not near it
    assert free.data[0] < 0.25  # without the floor the same updates leave the domain
    assert p.data[1] == free.data[1]  # entries inside the domain move exactly as without it


def test_lower_bound_is_checked_at_construction():
    with pytest.raises(ValueError, match="below lower"):
        Parameter(np.array([0.1]), lower=0.5)
    with pytest.raises(ValueError, match="lower=nan must be a finite number"):
        Parameter(np.array([0.1]), lower=float("nan"))


def test_spike_step_and_thresholds_declare_their_floors():
    q = SpikeQuantizer(4)
    assert q.step.lower == pytest.approx(float(q.step.data) * STEP_FLOOR_FRACTION) and q.step.lower > 0
    for neuron in (HDLIF(3), LIF(3), ParallelHDLIF(3), MemBNHDLIF(3, 2)):
        assert neuron.theta.lower == THETA_FLOOR
        assert neuron.lam.lower is None if hasattr(neuron, "lam") else True  # SPEC E1 DC: lam is never clamped
    for bad in (0.0, -1.0, float("nan"), THETA_FLOOR / 2):
        with pytest.raises(ValueError, match="theta_init"):
            HDLIF(3, theta_init=bad)


def _quantizer_steps(model):
    return {name: float(p.data) for name, p in model.named_parameters() if name.endswith("quantizer.step")}


@pytest.mark.slow
@pytest.mark.parametrize("optimizer, lr, trainer", [(Adam, 0.1, OnlineTrainer), (SGD, 1.0, OnlineTrainer),
                                                    (Adam, 0.1, STBPTrainer)])
def test_high_learning_rates_keep_every_spike_step_positive(optimizer, lr, trainer):
    """A few hundred high-lr steps on the default network (Mem-BN, ternary, 4-bit spikes)."""
    data = get_dataset("digits", "train")
    model = digits_net(T=4, width=0.5, neuron="membn", weight_mode="ternary", spike_bits=4,
                       rng=np.random.default_rng(0))
    floors = {name: p.lower for name, p in model.named_parameters() if name.endswith("quantizer.step")}
    assert len(floors) == 3
    kwargs = dict(steps=1, rng=np.random.default_rng(1)) if trainer is OnlineTrainer else {}
    t = trainer(model, optimizer(list(model.parameters()), lr=lr), **kwargs)
    loader = DataLoader(data, 16, shuffle=True, seed=0)
    for _ in range(3):  # 3 x 90 batches
        for x, y in loader:
            with np.errstate(all="ignore"):
                t.train_epoch([(x, y)])
            for name, value in _quantizer_steps(model).items():
                assert np.isfinite(value) and value >= floors[name] > 0, (name, value)
    for name, p in model.named_parameters():
        if name.endswith("theta"):
            assert np.all(p.data >= THETA_FLOOR)
    x = Tensor(data.data[:8].astype(np.float32))
    model.eval().set_step_mode("s").reset_state()
    model(x)  # the trained network still runs: no step left its domain
