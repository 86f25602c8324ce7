"""Online (SPEC E16) and STBP (SPEC E17) training loops, and evaluation.

Inputs: a static batch ``[N, C, H, W]`` is repeated at every step (direct
encoding); event frames come as ``[T, N, C, H, W]``. Labels are int ``[N]``.
Outputs per batch: per-step logits ``o_t`` ``[T, N, classes]``; the prediction is
``argmax_c mean_t o_t`` (SPEC E16).

* :class:`OnlineTrainer` (E16): for each step ``t`` every neuron's state is detached
  (``model.detach_state()``), so only one step's graph is alive at a time. Steps in
  the drawn set ``S`` (all steps, or ``K`` drawn without replacement per batch: SLTT-K)
  run with the graph and backpropagate ``CE(o_t, y) / |S|``; the others run under
  ``no_grad`` and only advance the state. ``update="batch"`` takes one optimizer
  step per batch (SLTT, OTTT_A), ``update="step"`` one after every backpropagated
  step (OTTT_O).
* :class:`STBPTrainer` (E17): the whole sequence in multi-step mode with the graph
  kept (fused neuron kernels), ``L = mean_t CE(o_t, y)``, one backward.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..autograd import Tensor, no_grad, ops
from ..layers.module import Module
from .optim import clip_grad_norm

UPDATES = ("batch", "step")


@dataclass
class EpochResult:
    """What one pass over a loader measured."""

    loss: float
    accuracy: float
    accuracy_by_steps: list[float]  # accuracy predicting from the first t steps, t = 1..T
    samples: int
    seconds: float
    firing_rates: dict[str, float] = field(default_factory=dict)

    def as_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}loss": self.loss, f"{prefix}accuracy": self.accuracy,
                f"{prefix}accuracy_by_steps": self.accuracy_by_steps, f"{prefix}seconds": self.seconds,
                **({f"{prefix}firing_rates": self.firing_rates} if self.firing_rates else {})}


def step_input(x: np.ndarray, t: int, T: int) -> np.ndarray:
    """Input of step ``t``: the image itself (direct encoding) or frame ``t`` of ``[T, N, ...]``."""
    if x.ndim == 5:
        if x.shape[0] != T:
            raise ValueError(f"event input has {x.shape[0]} frames (shape {x.shape}), the model runs T={T} steps")
        return x[t]
    return x


def sequence_input(x: np.ndarray, T: int) -> np.ndarray:
    """``[T, N, ...]`` for the multi-step path: images repeated ``T`` times (a broadcast view), frames as they are."""
    if x.ndim == 5:
        step_input(x, 0, T)
        return x
    return np.broadcast_to(x, (T,) + x.shape)


class _Counter:
    """Accumulates loss, predictions from the first t steps, and sample counts."""

    def __init__(self, T: int):
        self.loss_sum, self.samples = 0.0, 0
        self.correct_by_steps = np.zeros(T, dtype=np.int64)

    def add(self, logits: np.ndarray, labels: np.ndarray, loss: float) -> None:
        n = labels.shape[0]
        cumulative = np.cumsum(logits, axis=0)  # sum of o_1..o_t; argmax of the sum = argmax of the mean
        self.correct_by_steps += (cumulative.argmax(axis=2) == labels[None, :]).sum(axis=1)
        self.loss_sum += loss * n
        self.samples += n

    def result(self, seconds: float, firing: dict[str, float] | None = None) -> EpochResult:
        n = max(self.samples, 1)
        by_steps = (self.correct_by_steps / n).tolist()
        return EpochResult(self.loss_sum / n, by_steps[-1], by_steps, self.samples, seconds, firing or {})


class Trainer:
    """Shared parts: the per-step loss, evaluation, firing rates. Subclasses implement ``train_batch``."""

    def __init__(self, model: Module, optimizer, T: int | None = None, label_smoothing: float = 0.0,
                 clip_norm: float | None = None):
        self.model, self.optimizer = model, optimizer
        self.T = int(T if T is not None else getattr(model, "T"))
        if self.T < 1:
            raise ValueError(f"T={self.T} must be a positive integer")
        self.label_smoothing, self.clip_norm = float(label_smoothing), clip_norm

    def step_loss(self, logits: Tensor, labels: np.ndarray) -> Tensor:
        return ops.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def _optimizer_step(self) -> None:
        if self.clip_norm is not None:
            clip_grad_norm(list(self.model.parameters()), self.clip_norm)
        self.optimizer.step()

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def train_epoch(self, batches: Iterable, progress=None) -> EpochResult:
        """One pass over ``(x, y)`` batches; ``progress(batch_index, loss)`` is called per batch if given."""
        self.model.train()
        counter, start = _Counter(self.T), time.perf_counter()
        for i, (x, y) in enumerate(batches):
            loss, logits = self.train_batch(x, y)
            counter.add(logits, np.asarray(y), loss)
            if progress is not None:
                progress(i, loss)
        return counter.result(time.perf_counter() - start)

    def evaluate(self, batches: Iterable) -> EpochResult:
        """Eval mode, multi-step, no graph: loss, accuracy from the first t steps, firing rate per neuron layer."""
        model = self.model
        neurons = [(name, m) for name, m in model.named_modules() if hasattr(m, "track_firing")]
        for _, m in neurons:
            m.track_firing = True
            m.reset_firing()
        counter, start = _Counter(self.T), time.perf_counter()
        was_training, mode = model.training, model.step_mode
        model.eval().set_step_mode("m")
        try:
            with no_grad():
                for x, y in batches:
                    y = np.asarray(y)
                    model.reset_state()
                    x_seq = np.ascontiguousarray(sequence_input(np.asarray(x), self.T))
                    logits = model(Tensor(x_seq)).data  # [T, N, classes]
                    loss = float(np.mean([self.step_loss(Tensor(logits[t]), y).item() for t in range(self.T)]))
                    counter.add(logits, y, loss)
        finally:
            model.reset_state().train(was_training).set_step_mode(mode)
            firing = {}
            for name, m in neurons:
                nonzero, total = m.firing_counts
                firing[name] = float(nonzero / total) if total else 0.0
                m.track_firing = False
        return counter.result(time.perf_counter() - start, firing)


class OnlineTrainer(Trainer):
    """SPEC E16: per-step forward with detached state, per-step backward (SLTT-K / OTTT)."""

    def __init__(self, model: Module, optimizer, steps: int | str = "all", update: str = "batch",
                 rng: np.random.Generator | None = None, **kwargs):
        super().__init__(model, optimizer, **kwargs)
        if steps != "all" and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
                               or not 1 <= steps <= self.T):
            raise ValueError(f"steps={steps!r}; allowed: 'all' or an integer K in [1, T={self.T}]")
        if update not in UPDATES:
            raise ValueError(f"update={update!r}; allowed: {', '.join(UPDATES)}")
        self.steps, self.update = steps, update
        self.rng = np.random.default_rng() if rng is None else rng

    def draw_steps(self) -> np.ndarray:
        """The set ``S`` of SPEC E16 for one batch: all steps, or ``K`` drawn without replacement."""
        if self.steps == "all":
            return np.arange(self.T)
        return np.sort(self.rng.choice(self.T, size=int(self.steps), replace=False))

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """One batch; returns (mean over backpropagated steps of CE, per-step logits ``[T, N, classes]``)."""
        model, T = self.model, self.T
        x, y = np.asarray(x), np.asarray(y)
        model.train().set_step_mode("s")
        model.reset_state()
        chosen = set(self.draw_steps().tolist())
        self.optimizer.zero_grad()
        logits, losses = [], []
        for t in range(T):
            model.detach_state()
            x_t = Tensor(np.ascontiguousarray(step_input(x, t, T)))
            if t in chosen:
                o_t = model(x_t)
                loss = self.step_loss(o_t, y)
                (loss / len(chosen)).backward()
                losses.append(loss.item())
                if self.update == "step":
                    self._optimizer_step()
                    self.optimizer.zero_grad()
            else:
                with no_grad():
                    o_t = model(x_t)
            logits.append(o_t.data)
        if self.update == "batch":
            self._optimizer_step()
        model.reset_state()  # drop the last step's graph-free state and references
        return float(np.mean(losses)), np.stack(logits)


class STBPTrainer(Trainer):
    """SPEC E17: the whole sequence with the graph kept, ``L = mean_t CE(o_t, y)``, one backward."""

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        model, T = self.model, self.T
        x, y = np.asarray(x), np.asarray(y)
        model.train().set_step_mode("m")
        model.reset_state()
        self.optimizer.zero_grad()
        out = model(Tensor(np.ascontiguousarray(sequence_input(x, T))))  # [T, N, classes]
        n, classes = out.shape[1], out.shape[2]
        # mean over T*N rows = mean over t of the per-step mean CE (every step has N rows)
        loss = ops.cross_entropy(ops.reshape(out, (T * n, classes)), np.tile(y, T),
                                 label_smoothing=self.label_smoothing)
        loss.backward()
        self._optimizer_step()
        model.reset_state()
        return loss.item(), out.data
