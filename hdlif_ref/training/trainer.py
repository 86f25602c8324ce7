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

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..autograd import Tensor, no_grad, ops
from ..autograd.batch_cache import batch_cache
from ..autograd.ops._args import NonFiniteInputError
from ..kernels.finite import count_nonfinite
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


def model_input(x: np.ndarray, T: int) -> np.ndarray:
    """What the multi-step trainers feed the network: :func:`sequence_input`, contiguous, except that
    a direct-encoded image stays the stride-0 view of one array, so that the first synapse sees that
    every step has the same input and computes it once (docs/performance.md, "Once per batch")."""
    seq = sequence_input(np.ascontiguousarray(x), T)
    return seq if x.ndim != 5 and T > 1 else np.ascontiguousarray(seq)


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
            if a is not None:
                bad = count_nonfinite(a)  # one pass, no boolean array (half the time of np.isfinite(a).all())
                if bad:
                    return self._names.get(id(p), "?"), int(bad), int(a.size)
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
            bad = count_nonfinite(buffer) if buffer.dtype.kind == "f" else 0
            if bad:
                raise NonFiniteError("buffer", name, int(bad), int(buffer.size), lr=self._lr(), fatal=True)

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

    def fit(self, train: Iterable, test: Iterable | None = None, epochs: int = 1, *,
            callbacks: Sequence[Callable[["Trainer", dict], Any]] = (), schedule=None, progress=None,
            out: str | os.PathLike | None = None, save: Callable[[str], None] | None = None,
            start_epoch: int = 0, best: float | None = None, stop_after_epochs: int | None = None) -> list[dict]:
        """Train epochs ``start_epoch + 1 .. epochs``; returns one metrics dict per epoch (Keras' ``fit``).

        The loop of ``hdlif-ref train`` (which calls it): per epoch, :meth:`train_epoch` on
        ``train`` (any iterable of ``(x, y)`` batches, e.g. a :class:`~hdlif_ref.datasets.DataLoader`),
        :meth:`evaluate` on ``test`` if given, ``schedule.step()`` if given, then each
        ``callback(trainer, metrics)`` (a callback returning ``True`` stops after this epoch),
        then, with ``out``: ``best.h5`` when the test accuracy (train accuracy without
        ``test``) improves, ``last.h5``, and a line in ``metrics.jsonl``. ``save(path)``
        writes a checkpoint (default: model and optimizer state, epoch, best metric).
        ``progress``: a :class:`~hdlif_ref.training.progress.Progress`, or ``True`` for a
        bar on a terminal (plain lines otherwise). A non-finite value raises
        :class:`NonFiniteError` located by epoch and batch (checkpoints of earlier epochs stay).
        """
        from .checkpoint import save_checkpoint
        from .progress import MetricsLog, Progress

        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"fit: epochs={epochs!r} must be an integer >= 1")
        if isinstance(start_epoch, bool) or not isinstance(start_epoch, (int, np.integer)) or start_epoch < 0:
            raise ValueError(f"fit: start_epoch={start_epoch!r} must be an integer >= 0")
        own_progress = progress is True
        if own_progress:
            progress = Progress(int(epochs))
        history: list[dict] = []
        log = None
        if out is not None:
            os.makedirs(out, exist_ok=True)
            log = MetricsLog(os.path.join(out, "metrics.jsonl"), after_epoch=start_epoch)
        epoch = int(start_epoch)

        def default_save(path: str) -> None:
            save_checkpoint(path, model_state=self.model.state_dict(), epoch=epoch, best_metric=best,
                            optimizer_state=self.optimizer.state_dict() if hasattr(self.optimizer, "state_dict")
                            else None, config=getattr(self.model, "config", None))
        save = save or default_save
        try:
            while epoch < epochs and (stop_after_epochs is None or epoch - start_epoch < stop_after_epochs):
                metrics = self._fit_epoch(train, test, epoch, schedule, progress)
                epoch = metrics["epoch"]
                stop = any(callback(self, metrics) is True for callback in callbacks)
                score = metrics["test_accuracy"] if test is not None else metrics["train_accuracy"]
                improved = best is None or score > best
                best = score if improved else best
                if out is not None:
                    if improved:
                        save(os.path.join(out, "best.h5"))
                    save(os.path.join(out, "last.h5"))
                    log.write(metrics)  # after last.h5: an interruption before it repeats the epoch on resume
                if progress is not None:
                    progress.end_epoch(epoch - 1, {k: metrics[k] for k in ("train_loss", "train_accuracy",
                                                                           "test_accuracy", "train_seconds")
                                                   if k in metrics})
                history.append(metrics)
                if stop:
                    break
        finally:
            if own_progress:
                progress.close()
            if log is not None:
                log.close()
        return history

    def _fit_epoch(self, train, test, epoch: int, schedule, progress) -> dict:
        """One epoch of :meth:`fit` (``epoch`` done so far); its metrics, ``"epoch"`` 1-based."""
        if progress is not None:
            progress.start_epoch(epoch, len(train) if hasattr(train, "__len__") else None)
        update = (lambda i, loss: progress.update(loss=loss)) if progress is not None else None
        groups = getattr(self.optimizer, "param_groups", None)
        lr = groups[0]["lr"] if groups else None
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # the guard reports, by name
                result = self.train_epoch(train, update)
        except NonFiniteError as error:
            raise error.at(epoch=epoch + 1) from None
        metrics = {"epoch": epoch + 1, "lr": lr, "train_loss": result.loss, "train_accuracy": result.accuracy,
                   **({"skipped_batches": result.skipped} if result.skipped else {}),
                   "train_seconds": result.seconds}
        if test is not None:
            evaluated = self.evaluate(test)
            metrics.update({"test_loss": evaluated.loss, "test_accuracy": evaluated.accuracy,
                            "test_accuracy_by_steps": evaluated.accuracy_by_steps,
                            "firing_rates": evaluated.firing_rates, "eval_seconds": evaluated.seconds})
        if schedule is not None:
            schedule.step()
        return metrics

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
                    logits = model(Tensor(model_input(np.asarray(x), self.T))).data  # [T, N, classes]
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
        x, y = np.ascontiguousarray(x), np.asarray(y)
        model.train().set_step_mode("s")
        model.reset_state()
        chosen = set(self.draw_steps().tolist())
        self.optimizer.zero_grad()
        logits, losses = [], []
        # update="batch": the weights are fixed until the optimizer step after the loop, so weight
        # codes and the first synapse's output on a direct-encoded image are computed once
        # (batch_cache; closed, and its gradients flushed, before the step). update="step" moves
        # the weights between steps: nothing is cached.
        with batch_cache() if self.update == "batch" else contextlib.nullcontext() as cache:
            if cache is not None and x.ndim != 5:
                cache.declare_constant(x)  # direct encoding: step_input(x, t, T) is x at every t
            for t in range(T):
                model.detach_state()
                x_t = Tensor(step_input(x, t, T))
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
        out = model(Tensor(model_input(x, T)))  # [T, N, classes]
        n, classes = out.shape[1], out.shape[2]
        # mean over T*N rows = mean over t of the per-step mean CE (every step has N rows)
        loss = self._finite(ops.cross_entropy(ops.reshape(out, (T * n, classes)), np.tile(y, T),
                                              label_smoothing=self.label_smoothing))
        loss.backward()
        self._optimizer_step()
        model.reset_state()
        return loss.item(), out.data
