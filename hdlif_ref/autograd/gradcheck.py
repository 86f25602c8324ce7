"""``gradcheck``: compare a function's backward with float64 central differences.

Inner-product form: draw a fixed random weight ``v`` for every output, take the
scalar ``L(x) = sum_k <v_k, f_k(x)>``, and compare ``dL/dx`` from ``backward()``
with ``(L(x + eps e_j) - L(x - eps e_j)) / (2 eps)`` for every element ``j`` of
every input that requires grad. This checks the whole vector-Jacobian product
with two forward calls per input element.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree (the message names input and element)."""


def _outputs(result) -> tuple[Tensor, ...]:
    outs = result if isinstance(result, (tuple, list)) else (result,)
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got {type(o).__name__}")
    return tuple(outs)


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
              atol: float = 1e-6, rtol: float = 1e-5, seed: int = 0) -> bool:
    """Check ``fn``'s gradients for every input with ``requires_grad`` (must be float64).

    Parameters
    ----------
    fn : callable
        ``fn(*inputs)`` returning a Tensor or a tuple of Tensors.
    inputs : sequence of Tensor
        The arguments. Tensors with ``requires_grad=True`` are checked and must be
        float64; the others are passed through unchanged.
    eps, atol, rtol : float
        Finite-difference step and tolerance: each element must satisfy
        ``|analytic - numeric| <= atol + rtol * |numeric|``.
    seed : int
        Seed of the random output weights ``v``.

    Returns ``True``, or raises :class:`GradcheckError` naming the input, the element
    and both values.
    """
    inputs = list(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True; nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need float64")

    rng = np.random.default_rng(seed)
    saved_grads = [inputs[i].grad for i in checked]
    for i in checked:
        inputs[i].grad = None
    try:
        outs = _outputs(fn(*inputs))
        weights = [rng.standard_normal(o.shape) for o in outs]
        live = [(o, w) for o, w in zip(outs, weights) if o.requires_grad]
        if not live:
            raise ValueError("gradcheck: fn's output does not depend on any input that requires grad")
        total = None
        for o, w in live:
            term = (o.astype(np.float64) * w).sum()
            total = term if total is None else total + term
        total.backward()
        analytic = {i: (inputs[i].grad if inputs[i].grad is not None else np.zeros(inputs[i].shape))
                    for i in checked}

        def objective() -> float:
            with no_grad():
                return float(sum(np.sum(o.data.astype(np.float64) * w)
                                 for o, w in zip(_outputs(fn(*inputs)), weights)))

        for i in checked:
            x = inputs[i].data
            for j in np.ndindex(x.shape):
                original = x[j]
                x[j] = original + eps
                plus = objective()
                x[j] = original - eps
                minus = objective()
                x[j] = original
                numeric = (plus - minus) / (2 * eps)
                a = analytic[i][j]
                if not abs(a - numeric) <= atol + rtol * abs(numeric):
                    raise GradcheckError(
                        f"gradcheck: input {i} (shape {x.shape}) element {j}: analytic {float(a)!r} vs "
                        f"numeric {numeric!r} (atol={atol}, rtol={rtol}, eps={eps})"
                    )
    finally:
        for i, g in zip(checked, saved_grads):
            inputs[i].grad = g
    return True
