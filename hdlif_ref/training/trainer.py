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

Non-finite values never pass silently: a loss or a gradient that is NaN or infinite
is found before the optimizer step, a parameter or a buffer (running statistics) after it. ``on_nonfinite="stop"``
(default) raises :class:`NonFiniteError` naming the batch, the parameter and its
layer; ``"skip-batch"`` drops a batch whose loss or gradients are non-finite (no
update, not counted in the epoch's metrics, counted in ``EpochResult.skipped``). A
parameter or buffer made non-finite (by a step from finite gradients, or by the
forward pass) always stops: that update cannot be taken back (docs/training.md, "Non-finite values").
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..autograd import Tensor, no_grad, ops
from ..autograd.ops._args import NonFiniteInputError
from ..module import Module
from .optim import clip_grad_norm

UPDATES = ("batch", "step")
ON_NONFINITE = ("stop", "skip-batch")


class NonFiniteError(FloatingPointError):
    """Training met a NaN or an infinity: ``what`` (loss, gradient, parameter, buffer), where, and when.

    ``str()`` is one line; :meth:`at` adds the batch, the epoch and the layer's class once
    the callers know them.
    """

    def __init__(self, what: str, name: str | None = None, count: int = 1, size: int = 1,
                 batch: int | None = None, epoch: int | None = None, lr: float | None = None, fatal: bool = False):
        self.what, self.name, self.count, self.size = what, name, count, size
        self.batch, self.epoch, self.lr = batch, epoch, lr
        self.fatal = fatal  # a step already applied: skipping the batch cannot undo it
        self.layer_type = ""
        super().__init__(self._text())

    def _text(self) -> str:
        when = ", ".join(part for part in (f"epoch {self.epoch}" if self.epoch is not None else "",
                                           f"batch {self.batch}" if self.batch is not None else "") if part)
        what = self.what
        if self.name is not None:
            layer, _, own = self.name.rpartition(".")
            kind = {"gradient": "gradient of parameter"}.get(self.what, self.what)
            what = (f"{kind} {own!r} of layer {layer or '(model)'!r}{self.layer_type}, "
                    f"{self.count} of {self.size} values,")
        lr = f"; lr={self.lr:g}" if self.lr is not None else ""
        return f"non-finite {what} at {when or 'this step'}{lr}"

    def at(self, epoch: int | None = None, batch: int | None = None, model: Module | None = None) -> "NonFiniteError":
        """The same error, located (1-based epoch and batch; the layer's class from ``model``)."""
        self.epoch = epoch if epoch is not None else self.epoch
        self.batch = batch if batch is not None else self.batch
        if model is not None and self.name is not None:
            layers = dict(model.named_modules())
            layer = layers.get(self.name.rpartition(".")[0])
            self.layer_type = f" ({type(layer).__name__})" if layer is not None else ""
        self.args = (self._text(),)
        return self


@dataclass
class EpochResult:
    """What one pass over a loader measured."""

    loss: float
    accuracy: float
    accuracy_by_steps: list[float]  # accuracy predicting from the first t steps, t = 1..T
    samples: int
    seconds: float
    firing_rates: dict[str, float] = field(default_factory=dict)
    skipped: int = 0  # batches dropped for a non-finite loss or gradient (on_nonfinite="skip-batch")

    def as_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}loss": self.loss, f"{prefix}accuracy": self.accuracy,
                f"{prefix}accuracy_by_steps": self.accuracy_by_steps, f"{prefix}seconds": self.seconds,
                **({f"{prefix}firing_rates": self.firing_rates} if self.firing_rates else {}),
                **({f"{prefix}skipped_batches": self.skipped} if self.skipped else {})}


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
                 clip_norm: float | None = None, on_nonfinite: str = "stop"):
        self.model, self.optimizer = model, optimizer
        self.T = int(T if T is not None else getattr(model, "T"))
        if self.T < 1:
            raise ValueError(f"T={self.T} must be a positive integer")
        if on_nonfinite not in ON_NONFINITE:
            raise ValueError(f"on_nonfinite={on_nonfinite!r}; allowed: {', '.join(ON_NONFINITE)}")
        self.label_smoothing, self.clip_norm, self.on_nonfinite = float(label_smoothing), clip_norm, on_nonfinite
        self._names = {id(p): name for name, p in model.named_parameters()}

    def step_loss(self, logits: Tensor, labels: np.ndarray) -> Tensor:
        return self._finite(ops.cross_entropy(logits, labels, label_smoothing=self.label_smoothing))

    def _finite(self, loss: Tensor) -> Tensor:
        if not np.isfinite(loss.data).all():
            raise NonFiniteError("loss", lr=self._lr())
        return loss

    def _lr(self) -> float | None:
        groups = getattr(self.optimizer, "param_groups", None)
        return float(groups[0]["lr"]) if groups else None

    def _first_nonfinite(self, arrays) -> tuple[str, int, int] | None:
        for p, a in arrays:
            if a is not None and not np.isfinite(a).all():
                return self._names.get(id(p), "?"), int((~np.isfinite(a)).sum()), int(a.size)
        return None

    def _optimizer_step(self) -> None:
        """Clip, check every gradient, step, check every parameter (:class:`NonFiniteError` names the first)."""
        params = list(self.model.parameters())
        bad = self._first_nonfinite((p, p.grad) for p in params)
        if bad is not None:
            raise NonFiniteError("gradient", *bad, lr=self._lr())
        if self.clip_norm is not None:
            clip_grad_norm(params, self.clip_norm)
        self.optimizer.step()
        bad = self._first_nonfinite((p, p.data) for p in params)
        if bad is not None:
            raise NonFiniteError("parameter", *bad, lr=self._lr(), fatal=True)
        for name, buffer in self.model.named_buffers():  # running statistics, updated by this batch's forward
            if buffer.dtype.kind == "f" and not np.isfinite(buffer).all():
                raise NonFiniteError("buffer", name, int((~np.isfinite(buffer)).sum()), int(buffer.size),
                                     lr=self._lr(), fatal=True)

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def train_epoch(self, batches: Iterable, progress=None) -> EpochResult:
        """One pass over ``(x, y)`` batches; ``progress(batch_index, loss)`` is called per batch if given."""
        self.model.train()
        counter, start, skipped = _Counter(self.T), time.perf_counter(), 0
        for i, (x, y) in enumerate(batches):
            try:
                try:
                    loss, logits = self.train_batch(x, y)
                except NonFiniteInputError as error:  # an activation overflowed: finite parameters, too large
                    raise NonFiniteError(f"{error.name} of a {error.op} layer, {error.count} of {error.size} "
                                         f"values,", lr=self._lr()) from None
            except NonFiniteError as error:
                if self.on_nonfinite == "stop" or error.fatal:
                    raise error.at(batch=i + 1, model=self.model)
                self.optimizer.zero_grad()
                self.model.reset_state()
                skipped += 1
                continue
            counter.add(logits, np.asarray(y), loss)
            if progress is not None:
                progress(i, loss)
        result = counter.result(time.perf_counter() - start)
        result.skipped = skipped
        return result

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
        loss = self._finite(ops.cross_entropy(ops.reshape(out, (T * n, classes)), np.tile(y, T),
                                              label_smoothing=self.label_smoothing))
        loss.backward()
        self._optimizer_step()
        model.reset_state()
        return loss.item(), out.data
