"""How the neuron kernels cut a ``[T, N, F]`` tensor into cache-sized work items.

The neurons of SPEC E1-E9 are element-wise in space and recursive in time. A
kernel that walks ``t`` innermost strides through memory by a whole step per
iteration (slow); one that walks ``t`` outermost over the whole tensor has to
stream the state ``u`` through memory at every step. The kernels here do both
right: a *work item* is a run of at most ``BLOCK`` consecutive elements of one
sample row; the state of those elements lives in a small local buffer (in L1/L2)
while the item walks ``t = 0..T-1``, and each inner loop over the item's
elements is contiguous, so it vectorizes.

Layout: a step tensor ``[N, C, *spatial]`` is viewed as ``[N_rows, F]`` rows of
``F = C * S`` elements (``S`` spatial elements per channel); a per-layer
parameter (shape ``[T]``) is handled as one channel (``C = 1``) and the whole
tensor as a single row, which gives more, longer items. An item ``(n, f0, f1)``
crosses channel boundaries; its inner loops run over one channel segment at a
time so that ``lam[t, c]`` and ``theta[t, c]`` are loop constants.

Reductions (the ``[T, C]`` gradients of ``lam`` and ``theta``) go to a partial
array ``[n_items, T, C]``: each item writes only its own slot, so ``prange``
iterations never share an accumulator and the result does not depend on the
thread count; the wrapper sums the slots with ``np.sum`` (a fixed order).
Within an item, sums run over 8 independent lanes (:func:`lane_sum`): with
``fastmath=False`` LLVM may not reorder one float accumulator, so a single
accumulator would be latency-bound, while eight independent chains are not.
(``lane_sum`` is an ordinary jitted function, not ``inline="always"``: Numba-level
inlining tripled the compile time of the backward kernels, and LLVM inlines it anyway.)
"""
from __future__ import annotations

import numpy as np

from ._config import njit
from ._threads import run

#: Elements per work item. 2048 float32 = 8 KiB per array: the state, the
#: recomputed history and the loop's streams of one item stay in L1/L2.
BLOCK = 2048


def n_blocks(F: int, block: int = BLOCK) -> int:
    """Number of work items per row of ``F`` elements."""
    return (F + block - 1) // block


def partial_sums(g: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
    """Two zeroed ``[n_items, T, C]`` arrays for the per-item partial sums of two ``[T, C]`` gradients of a
    ``[T, N, F]`` gradient ``g`` (its dtype), one slot per work item (module docstring)."""
    T, N, F = g.shape
    shape = (N * n_blocks(F), T, C)
    return np.zeros(shape, dtype=g.dtype), np.zeros(shape, dtype=g.dtype)


def launch(kernel, elements: int, *args) -> None:
    """Call a ``prange`` kernel over work items of about :data:`BLOCK` elements by :func:`._threads.run`:
    on one thread below ``PARALLEL_MIN_ELEMENTS`` (waking the other threads costs more than
    the work: tens of microseconds when idle, milliseconds when the cores are busy with
    other processes), else handing the items out dynamically.

    Numba's thread count is per calling thread and is restored afterwards, so a
    thread policy set elsewhere is left as it was.
    """
    run(kernel, elements, n_blocks(elements), *args)


@njit
def lane_sum(x, a, b):
    """``sum(x[a:b])`` over 8 independent accumulators (no single latency-bound chain, fixed order)."""
    z = x.dtype.type(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    k = a
    while k + 8 <= b:
        s0 += x[k]
        s1 += x[k + 1]
        s2 += x[k + 2]
        s3 += x[k + 3]
        s4 += x[k + 4]
        s5 += x[k + 5]
        s6 += x[k + 6]
        s7 += x[k + 7]
        k += 8
    while k < b:
        s0 += x[k]
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit
def lane_sum2(x, y, a, b):
    """``(sum(x[a:b]), sum(y[a:b]))`` in one pass, each as :func:`lane_sum` (same order, same result)."""
    z = x.dtype.type(0)
    x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = z
    y0 = y1 = y2 = y3 = y4 = y5 = y6 = y7 = z
    k = a
    while k + 8 <= b:
        x0 += x[k]
        x1 += x[k + 1]
        x2 += x[k + 2]
        x3 += x[k + 3]
        x4 += x[k + 4]
        x5 += x[k + 5]
        x6 += x[k + 6]
        x7 += x[k + 7]
        y0 += y[k]
        y1 += y[k + 1]
        y2 += y[k + 2]
        y3 += y[k + 3]
        y4 += y[k + 4]
        y5 += y[k + 5]
        y6 += y[k + 6]
        y7 += y[k + 7]
        k += 8
    while k < b:
        x0 += x[k]
        y0 += y[k]
        k += 1
    return (((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)),
            ((y0 + y1) + (y2 + y3)) + ((y4 + y5) + (y6 + y7)))


@njit
def lane_dot(x, y, a, b):
    """``sum(x[a:b] * y[a:b])`` over 8 independent accumulators: the products rounded one by one, then
    summed as :func:`lane_sum` sums (the same bits as storing the products and calling ``lane_sum``)."""
    z = x.dtype.type(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    k = a
    while k + 8 <= b:
        s0 += x[k] * y[k]
        s1 += x[k + 1] * y[k + 1]
        s2 += x[k + 2] * y[k + 2]
        s3 += x[k + 3] * y[k + 3]
        s4 += x[k + 4] * y[k + 4]
        s5 += x[k + 5] * y[k + 5]
        s6 += x[k + 6] * y[k + 6]
        s7 += x[k + 7] * y[k + 7]
        k += 8
    while k < b:
        s0 += x[k] * y[k]
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
