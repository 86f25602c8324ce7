"""Learning-rate schedules against their closed forms, warm-up composition, state round trips."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdlif_ref.layers import Parameter
from hdlif_ref.training import (SGD, ConstantSchedule, CosineSchedule, LinearWarmup, StepSchedule)


def optimizer(lrs=(0.1, 0.03)):
    return SGD([{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs], lr=lrs[0], momentum=0.9)


def rates(schedule, n):
    """The rates of every group before the first step() and after each of n steps."""
    out = [schedule.get_last_lr()]
    for _ in range(n):
        schedule.step()
        out.append(schedule.get_last_lr())
    return np.array(out)


def cosine(k, base, T_max, eta_min):
    # SGDR (Loshchilov and Hutter 2017) eq. 5 without restarts, held at eta_min after T_max
    k = min(k, T_max)
    return eta_min + 0.5 * (base - eta_min) * (1 + math.cos(k / T_max * math.pi))


@given(T_max=st.integers(1, 30), eta_min=st.sampled_from([0.0, 1e-4, 0.01]), extra=st.integers(0, 10))
def test_cosine_matches_its_closed_form_and_holds_eta_min(T_max, eta_min, extra):
    opt = optimizer()
    got = rates(CosineSchedule(opt, T_max, eta_min=eta_min), T_max + extra)
    want = [[cosine(k, base, T_max, eta_min) for base in (0.1, 0.03)] for k in range(T_max + extra + 1)]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(got[0], [0.1, 0.03], rtol=0)  # starts at the base rates
    np.testing.assert_allclose(got[T_max:], eta_min, rtol=1e-12, atol=1e-16)  # ends at eta_min
    assert all(np.all(np.diff(got[:, g]) <= 1e-17) for g in range(2))  # never rises


@given(step_size=st.integers(1, 7), gamma=st.sampled_from([0.1, 0.5, 0.9]), n=st.integers(0, 25))
def test_step_schedule_multiplies_by_gamma_every_step_size_steps(step_size, gamma, n):
    got = rates(StepSchedule(optimizer(), step_size, gamma), n)
    for k in range(n + 1):
        drops = sum(1 for j in range(1, k + 1) if j % step_size == 0)  # count the drops one by one
        np.testing.assert_allclose(got[k], [0.1 * gamma ** drops, 0.03 * gamma ** drops], rtol=1e-12)


@given(W=st.integers(1, 10), start_factor=st.sampled_from([0.0, 0.1, 1 / 3, 1.0]), T_max=st.integers(1, 10))
def test_linear_warmup_then_the_wrapped_schedule_from_its_start(W, start_factor, T_max):
    opt = optimizer()
    sched = LinearWarmup(CosineSchedule(opt, T_max, eta_min=0.001), W, start_factor=start_factor)
    got = rates(sched, W + T_max + 3)
    for k, row in enumerate(got):
        for base, lr in zip((0.1, 0.03), row):
            if k < W:  # straight line from start_factor * base (k = 0) towards base (k = W)
                want = base * start_factor + (base - base * start_factor) * k / W
            else:
                want = cosine(k - W, base, T_max, 0.001)
            assert math.isclose(lr, want, rel_tol=1e-12, abs_tol=1e-16), (k, lr, want)


def test_constant_schedule_keeps_the_rate():
    np.testing.assert_array_equal(rates(ConstantSchedule(optimizer()), 5), [[0.1, 0.03]] * 6)


def test_schedules_set_the_rate_the_optimizer_uses():
    p = Parameter(np.zeros(1))
    opt = SGD([p], lr=1.0)
    sched = StepSchedule(opt, step_size=1, gamma=0.5)
    for k in range(4):
        p.grad = np.ones(1)
        before = p.data.copy()
        opt.step()
        assert p.data[0] == before[0] - 0.5 ** k
        sched.step()


@pytest.mark.parametrize("make", [
    lambda o: CosineSchedule(o, 12, eta_min=1e-3),
    lambda o: StepSchedule(o, 3, 0.5),
    lambda o: LinearWarmup(CosineSchedule(o, 8), 4, start_factor=0.2),
    lambda o: LinearWarmup(StepSchedule(o, 2, 0.3), 3),
])
def test_state_dict_round_trip_continues_identically(make):
    a = make(optimizer())
    for _ in range(5):
        a.step()
    state = a.state_dict()
    fresh = optimizer((7.0, 7.0))  # other rates: the state's base rates win
    b = make(fresh)
    b.load_state_dict(state)
    assert b.last_step == 5 and b.get_last_lr() == a.get_last_lr()
    np.testing.assert_array_equal(rates(a, 10), rates(b, 10))


def test_load_state_dict_refuses_another_schedule():
    state = CosineSchedule(optimizer(), 10).state_dict()
    with pytest.raises(ValueError, match="cosine"):
        StepSchedule(optimizer(), 3).load_state_dict(state)
    with pytest.raises(ValueError, match="T_max"):
        CosineSchedule(optimizer(), 11).load_state_dict(state)
    with pytest.raises(ValueError, match="base rates"):
        CosineSchedule(optimizer((0.1,)), 10).load_state_dict(state)
    warm = LinearWarmup(CosineSchedule(optimizer(), 9), 2).state_dict()
    with pytest.raises(ValueError, match="T_max"):  # the wrapped schedule is checked too
        LinearWarmup(CosineSchedule(optimizer(), 8), 2).load_state_dict(warm)


@pytest.mark.parametrize("make, match", [
    (lambda o: CosineSchedule(o, 0), "T_max"),
    (lambda o: CosineSchedule(o, 5, eta_min=-1.0), "eta_min"),
    (lambda o: StepSchedule(o, 2.5), "step_size"),
    (lambda o: StepSchedule(o, 2, gamma=-0.1), "gamma"),
    (lambda o: LinearWarmup(ConstantSchedule(o), 0), "warmup_steps"),
    (lambda o: LinearWarmup(ConstantSchedule(o), 3, start_factor=1.5), "start_factor"),
])
def test_bad_settings_are_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make(optimizer())
    with pytest.raises(TypeError, match="Optimizer"):
        CosineSchedule(object(), 3)
