"""Learning-rate schedules: cosine, step, linear warm-up around another schedule, constant.

A schedule is bound to an optimizer and sets every group's ``lr`` from the
group's base rate (``initial_lr``, recorded the first time a schedule sees the
group) and a step counter ``k``, by a closed form (no recursion, so a resumed run
gets exactly the same rates):

* ``ConstantSchedule``: ``lr_k = base``;
* ``CosineSchedule(T_max, eta_min)``: ``lr_k = eta_min + (base - eta_min) (1 + cos(pi k / T_max)) / 2``
  for ``k <= T_max``, then held at ``eta_min``;
* ``StepSchedule(step_size, gamma)``: ``lr_k = base * gamma ** floor(k / step_size)``;
* ``LinearWarmup(after, warmup_steps, start_factor)``: ``lr_k = base * (f + (1 - f) k / W)`` for
  ``k < W`` (``f = start_factor``, ``W = warmup_steps``), then ``after``'s rate at ``k - W``.

Construction applies ``lr_0``; each ``step()`` advances ``k`` by one and applies
``lr_k``. The unit of ``k`` is the caller's: call ``step()`` once per epoch (then
``T_max``, ``step_size``, ``warmup_steps`` count epochs) or once per iteration (then
they count iterations). ``state_dict()`` / ``load_state_dict()`` save and restore
``k``, the base rates and the settings.
"""
from __future__ import annotations

import math
from typing import Any

from .optim import Optimizer


class Schedule:
    """Base class: binds an optimizer, records base rates, applies ``lr_at(k, base)`` on ``step()``."""

    kind = "schedule"

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: optimizer must be an hdlif_ref Optimizer, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def lr_at(self, k: int, base_lr: float) -> float:
        """The learning rate after ``k`` calls of ``step()`` for a group whose base rate is ``base_lr``."""
        raise NotImplementedError  # pragma: no cover - every schedule overrides it

    def step(self) -> None:
        """Advance the counter by one and set every group's ``lr``."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The rates currently set, one per parameter group."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_step, base)

    def _settings(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        """``{"kind", "last_step", "base_lrs", **settings}``: plain numbers, lists and dicts."""
        return {"kind": self.kind, "last_step": self.last_step, "base_lrs": list(self.base_lrs),
                **self._settings()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``k`` and the base rates, then set every group's ``lr`` to ``lr_k``.

        The schedule's kind and settings must equal this schedule's (a different
        schedule is a ``ValueError``, not a silent change of plan).
        """
        name = type(self).__name__
        if not isinstance(state, dict) or state.get("kind") != self.kind:
            got = state.get("kind") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{name}.load_state_dict: state is for schedule {got!r}, this is {self.kind!r}")
        mine = self.state_dict()
        if set(state) != set(mine):
            raise ValueError(f"{name}.load_state_dict: keys {sorted(state)} differ from {sorted(mine)}")
        for key, value in self._settings().items():
            if key != "after" and state[key] != value:
                raise ValueError(f"{name}.load_state_dict: {key}={state[key]!r} in the state, "
                                 f"{value!r} in this schedule")
        if len(state["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(f"{name}.load_state_dict: {len(state['base_lrs'])} base rates for "
                             f"{len(self.optimizer.param_groups)} parameter groups")
        last_step = int(state["last_step"])
        if last_step < 0:
            raise ValueError(f"{name}.load_state_dict: last_step={last_step} must be >= 0")
        self._load_inner(state)
        self.last_step = last_step
        self.base_lrs = [float(b) for b in state["base_lrs"]]
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self._apply()

    def _load_inner(self, state: dict[str, Any]) -> None:
        """Hook for wrapping schedules."""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({opts}, last_step={self.last_step})"


def _check_positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name}={value!r} must be a positive integer")
    return int(value)


def _check_real(owner: str, name: str, value: Any, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{owner}: {name}={value!r} must be a real number in [{low}, {high}]")
    return float(value)


class ConstantSchedule(Schedule):
    """``lr_k = base`` for every ``k`` (a schedule that only counts)."""

    kind = "constant"

    def lr_at(self, k: int, base_lr: float) -> float:
        return base_lr


class CosineSchedule(Schedule):
    """Cosine decay from the base rate to ``eta_min`` over ``T_max`` steps, then held at ``eta_min``.

    ``lr_k = eta_min + (base - eta_min) * (1 + cos(pi * min(k, T_max) / T_max)) / 2``
    (SGDR without restarts, Loshchilov and Hutter 2017; PyTorch's closed form, except
    that PyTorch keeps following the cosine past ``T_max`` and this one stays at ``eta_min``).
    """

    kind = "cosine"

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max = _check_positive_int("CosineSchedule", "T_max", T_max)
        self.eta_min = _check_real("CosineSchedule", "eta_min", eta_min, 0.0)
        super().__init__(optimizer)

    def lr_at(self, k: int, base_lr: float) -> float:
        k = min(k, self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * k / self.T_max)) / 2

    def _settings(self) -> dict[str, Any]:
        return {"T_max": self.T_max, "eta_min": self.eta_min}


class StepSchedule(Schedule):
    """``lr_k = base * gamma ** floor(k / step_size)`` (PyTorch's ``StepLR``)."""

    kind = "step"

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = _check_positive_int("StepSchedule", "step_size", step_size)
        self.gamma = _check_real("StepSchedule", "gamma", gamma, 0.0)
        super().__init__(optimizer)

    def lr_at(self, k: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (k // self.step_size)

    def _settings(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}


class LinearWarmup(Schedule):
    """Linear warm-up over ``warmup_steps`` steps, then the schedule ``after`` shifted by ``warmup_steps``.

    ``lr_k = base * (start_factor + (1 - start_factor) * k / warmup_steps)`` for
    ``k < warmup_steps``, and ``after.lr_at(k - warmup_steps, base)`` from then on,
    so ``after`` starts from its own step 0 (``after``'s own counter is not used).
    ``after`` must be bound to the same optimizer.
    """

    kind = "linear_warmup"

    def __init__(self, after: Schedule, warmup_steps: int, start_factor: float = 0.1):
        if not isinstance(after, Schedule):
            raise TypeError(f"LinearWarmup: after must be a Schedule, got {type(after).__name__}")
        self.after = after
        self.warmup_steps = _check_positive_int("LinearWarmup", "warmup_steps", warmup_steps)
        self.start_factor = _check_real("LinearWarmup", "start_factor", start_factor, 0.0, 1.0)
        super().__init__(after.optimizer)

    def lr_at(self, k: int, base_lr: float) -> float:
        if k < self.warmup_steps:
            return base_lr * (self.start_factor + (1 - self.start_factor) * k / self.warmup_steps)
        return self.after.lr_at(k - self.warmup_steps, base_lr)

    def _settings(self) -> dict[str, Any]:
        return {"warmup_steps": self.warmup_steps, "start_factor": self.start_factor,
                "after": self.after.state_dict()}

    def _load_inner(self, state: dict[str, Any]) -> None:
        self.after.load_state_dict(state["after"])
