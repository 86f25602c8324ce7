"""Losses of the training loops: per-step cross-entropy averaged over steps (SPEC E16, E17), and mixup.

``per_step_cross_entropy`` is ``L = (1/T) sum_t CE(o_t, y)`` of SPEC E17; the online
loop (E16) calls it on one step's logits (``T = 1``) and scales by ``1/|S|`` itself.
Mixup (Zhang et al., 2018) mixes each input with another one of the batch and
trains on the same mixture of their two labels' losses.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from ..autograd import Tensor, ops


def per_step_cross_entropy(logits: Tensor | Sequence[Tensor], labels: Any, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of every step's logits against the labels, averaged over steps (SPEC E17).

    ``L = (1/T) sum_t mean_n CE(o_t[n], y[n])``, each ``CE`` with the target
    ``(1 - label_smoothing) onehot(y) + label_smoothing / C``.

    Parameters
    ----------
    logits : Tensor ``[T, N, C]``, a sequence of ``T`` Tensors ``[N, C]``, or one Tensor ``[N, C]`` (``T = 1``)
    labels : integer array ``[N]`` with values in ``[0, C)``
    label_smoothing : float in ``[0, 1]``

    Returns
    -------
    Tensor, a scalar of the logits' dtype.
    """
    if isinstance(logits, Tensor):
        if logits.ndim == 2:
            return ops.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        if logits.ndim != 3:
            raise ValueError(f"per_step_cross_entropy: logits must be [T, N, C], [N, C] or a list of [N, C] "
                             f"Tensors, got shape {logits.shape}")
        T, N, C = logits.shape
        if T == 0:
            raise ValueError("per_step_cross_entropy: logits have T = 0 time steps")
        labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
        if labels.shape != (N,):
            raise ValueError(f"per_step_cross_entropy: labels have shape {labels.shape}, logits {logits.shape}: "
                             f"expected labels of shape ({N},)")
        # every step has the same N, so the mean over T*N rows is the mean over t of the per-step means
        return ops.cross_entropy(ops.reshape(logits, (T * N, C)), np.tile(labels, T),
                                 label_smoothing=label_smoothing)
    steps = list(logits)
    if not steps:
        raise ValueError("per_step_cross_entropy: got an empty list of per-step logits")
    for t, o in enumerate(steps):
        if not isinstance(o, Tensor) or o.ndim != 2:
            what = f"shape {o.shape}" if isinstance(o, Tensor) else type(o).__name__
            raise ValueError(f"per_step_cross_entropy: step {t} must be a Tensor [N, C], got {what}")
    total = ops.cross_entropy(steps[0], labels, label_smoothing=label_smoothing)
    for o in steps[1:]:
        total = total + ops.cross_entropy(o, labels, label_smoothing=label_smoothing)
    return total / len(steps) if len(steps) > 1 else total


def mixup(x: np.ndarray, y: Any, alpha: float, rng: np.random.Generator,
          batch_axis: int = 0) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], float]:
    """Mix a batch with a permutation of itself (mixup, Zhang et al. 2018).

    Draws ``lam ~ Beta(alpha, alpha)`` and a permutation ``pi`` of the batch from
    ``rng``, and returns ``x_mixed = lam * x + (1 - lam) * x[pi]`` (along
    ``batch_axis``: 0 for static images ``[N, ...]``, 1 for event frames
    ``[T, N, ...]``), the targets ``(y, y[pi])`` and ``lam``. Train with
    :func:`mixup_cross_entropy`. The dtype of ``x`` is kept.
    """
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not alpha > 0:
        raise ValueError(f"mixup: alpha={alpha!r} must be a real number > 0 (do not call mixup to disable it)")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"mixup: rng must be a numpy Generator, got {type(rng).__name__}")
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"mixup: x has dtype {x.dtype}; inputs to mix must be float32 or float64")
    if not -x.ndim <= batch_axis < x.ndim:
        raise ValueError(f"mixup: batch_axis={batch_axis} is out of range for x of shape {x.shape}")
    y = np.asarray(y)
    n = x.shape[batch_axis]
    if y.shape != (n,):
        raise ValueError(f"mixup: y has shape {y.shape}; expected ({n},), one label per batch item of x {x.shape}")
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(n)
    x_mixed = lam * x + (1 - lam) * np.take(x, perm, axis=batch_axis)
    return x_mixed.astype(x.dtype, copy=False), (y, y[perm]), lam


def mixup_cross_entropy(logits: Tensor | Sequence[Tensor], targets: tuple[Any, Any], lam: float,
                        label_smoothing: float = 0.0) -> Tensor:
    """``lam * L(logits, y_a) + (1 - lam) * L(logits, y_b)``, ``L`` = :func:`per_step_cross_entropy`.

    ``targets = (y_a, y_b)`` and ``lam`` are what :func:`mixup` returned.
    """
    if not isinstance(lam, numbers.Real) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"mixup_cross_entropy: lam={lam!r} must be in [0, 1]")
    y_a, y_b = targets
    if not isinstance(logits, Tensor):
        logits = list(logits)  # used twice
    return (lam * per_step_cross_entropy(logits, y_a, label_smoothing)
            + (1 - lam) * per_step_cross_entropy(logits, y_b, label_smoothing))
