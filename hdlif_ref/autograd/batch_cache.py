"""Values computed once per batch instead of once per time step (docs/performance.md, "Once per batch").

An online training step (SPEC E16) runs the network ``T`` times on one batch while the
parameters stay put (``update="batch"``: one optimizer step after the last time step).
Two things are then the same at every step, and :func:`batch_cache` lets them be computed once:

* the binary / ternary weight of every compressed synapse (SPEC E11, E12): a function of
  the weight alone;
* the output of a stateless layer whose input is the same array at every step: under
  direct encoding the image itself feeds the first (analog) synapse at every step.

Staleness is impossible by construction, not by bookkeeping: the cache exists only inside
the ``with batch_cache():`` block, which the trainer opens after ``zero_grad`` and closes
before the optimizer step (and never opens with ``update="step"``, where the weights move
between steps). Nothing is remembered from one block to the next, so no write to a
parameter (optimizer, ``load_state_dict``, ``to()``, a user's in-place edit between
batches) can ever meet a cached value. Inside the block the parameters must not change;
the trainer guarantees it for its own block. As a second guard a cached value is
keyed by the parameter *and* the identity of its array, so replacing ``p.data`` (what
``Module.to`` does) misses the cache even inside a block.

Gradients: a cached weight code goes through the same straight-through op as before at
every step (only its forward is skipped), so every gradient is bit-identical to the
uncached path. A shared layer output is returned as one leaf tensor per batch: each
step that back-propagates into it adds to its ``.grad``, and when the block is left
the layer's own graph (recorded once) is back-propagated with that sum
(:meth:`BatchCache.flush`). With one step in ``S`` this is the per-step computation,
bit for bit; with several it sums the steps' gradients before the layer instead of
after it (the same sum in another order: exact in real arithmetic, float rounding
apart; docs/performance.md bounds it).

Switch: ``ENABLED`` (module attribute, default True); with False :func:`batch_cache`
yields ``None`` and every layer computes per step (the reference path; tests and A/B
measurements flip it).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

import numpy as np

from .tensor import Tensor, enable_grad

#: False: :func:`batch_cache` caches nothing (the per-step reference path).
ENABLED = True

_local = threading.local()


class BatchCache:
    """What one :func:`batch_cache` block remembers; see the module docstring."""

    def __init__(self, record: bool):
        self.record = bool(record)
        self._codes: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
        self._constants: list[np.ndarray] = []
        self._outputs: dict[int, tuple[np.ndarray, Tensor]] = {}
        self._pending: list[tuple[Tensor, Tensor]] = []
        self.hits = 0  # cache hits (tests and the benchmark read it)

    # ------------------------------------------------------------ weight codes
    def weight(self, w: Tensor, mode: str, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``compute(w.data)`` once per block for each (parameter, mode); later calls return the same array."""
        key = (id(w), mode)
        entry = self._codes.get(key)
        if entry is not None and entry[0] is w.data:
            self.hits += 1
            return entry[1]
        value = compute(w.data)
        self._codes[key] = (w.data, value)  # keeps w.data alive: its id cannot be reused in the block
        return value

    # ------------------------------------------------------------ step-invariant inputs
    def declare_constant(self, array: np.ndarray) -> None:
        """Declare that ``array`` is the input of every step of this batch (direct encoding)."""
        self._constants.append(array)

    def is_constant(self, array: np.ndarray) -> bool:
        for c in self._constants:
            if array is c:
                return True
        return False

    def shared_output(self, layer: Any, x: Tensor, compute: Callable[[Tensor], Tensor]) -> Tensor:
        """``compute(x)`` once per block for ``layer`` fed the declared constant ``x.data``.

        The first call records ``compute``'s graph (if this block records gradients and
        the layer has parameters that need them) and returns its output as a leaf that
        collects the gradients of every step; :meth:`flush` back-propagates their sum.
        """
        key = id(layer)
        entry = self._outputs.get(key)
        if entry is not None and entry[0] is x.data:
            self.hits += 1
            return entry[1]
        if self.record:
            with enable_grad():
                y = compute(x)
        else:
            y = compute(x)
        leaf = Tensor(y.data, requires_grad=y.requires_grad)
        if y.requires_grad:
            self._pending.append((y, leaf))
        self._outputs[key] = (x.data, leaf)
        return leaf

    # ------------------------------------------------------------ leaving
    def flush(self) -> None:
        """Back-propagate the gradient each shared output collected through the graph that made it."""
        pending, self._pending = self._pending, []
        for y, leaf in pending:
            if leaf.grad is not None:
                y.backward(leaf.grad)

    def clear(self) -> None:
        self._codes.clear()
        self._constants.clear()
        self._outputs.clear()
        self._pending.clear()


def active_cache() -> BatchCache | None:
    """The cache of the innermost open :func:`batch_cache` block of this thread, or ``None``."""
    return getattr(_local, "cache", None)


@contextlib.contextmanager
def batch_cache(record: bool = True) -> Iterator[BatchCache | None]:
    """Cache weight codes and step-invariant layer outputs for the duration of one batch.

    ``record``: whether shared outputs keep their graph for the gradient (training) or
    not (evaluation). On a normal exit the collected gradients are back-propagated
    (:meth:`BatchCache.flush`); on an exception they are dropped with the cache. Yields
    the cache, or ``None`` when ``ENABLED`` is False.
    """
    if not ENABLED:
        yield None
        return
    previous = active_cache()
    cache = BatchCache(record)
    _local.cache = cache
    try:
        yield cache
        _local.cache = previous  # the flush runs outside the block: nothing it does is cached
        cache.flush()
    finally:
        _local.cache = previous
        cache.clear()
