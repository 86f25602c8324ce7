"""Batches from a dataset: seeded shuffling, ``drop_last``, augmentation, optional prefetch thread.

Layout of a batch ``(x, y)``: ``x`` float32 ``[N, C, H, W]`` for static images
and ``[T, N, 2, H, W]`` for events (time first, SpikingJelly's multi-step
layout, what ``forward_seq`` takes); ``y`` int64 ``[N]``.

Randomness: one ``np.random.Generator`` per loader (from ``seed`` or passed as
``rng``). Each ``iter(loader)`` (an epoch) draws, in this order, the
permutation (if ``shuffle``) and then one 63-bit seed for the epoch's
augmentation generator (if ``transform``). So epochs differ, a run is
reproducible from the seed, and the prefetch thread (which only uses the
epoch's own augmentation generator) gives the very same batches as the
synchronous path.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import numpy as np

_DONE, _BATCH, _ERROR = "done", "batch", "error"


class DataLoader:
    """Iterate a dataset in batches.

    Parameters
    ----------
    dataset : an ``ArrayDataset`` or ``EventFileDataset`` (anything with ``kind``,
        ``len()`` and ``take(indices) -> (x, y)``).
    batch_size : int >= 1.
    shuffle : draw a new permutation each epoch (needs ``seed`` or ``rng``).
    seed, rng : an int seed or a ``np.random.Generator`` (at most one); the
        loader keeps drawing from it epoch after epoch.
    drop_last : skip the last batch when it is smaller than ``batch_size``.
    transform : ``transform(x, rng) -> x`` on the sample-first batch
        (``[N, C, H, W]`` / ``[N, T, 2, H, W]``), e.g. :class:`~.augment.RandomCropFlip`
        (needs ``seed`` or ``rng``).
    prefetch : prepare the next batches in a background thread (queue of 2).
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool = False, seed: int | None = None,
                 rng: np.random.Generator | None = None, drop_last: bool = False,
                 transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                 prefetch: bool = False):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be an int >= 1")
        if getattr(dataset, "kind", None) not in ("static", "events") or not hasattr(dataset, "take"):
            raise TypeError(
                f"dataset must have kind 'static' or 'events' and a take() method, got {type(dataset).__name__}")
        if seed is not None and rng is not None:
            raise ValueError("pass seed or rng, not both")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed={seed!r} must be an int >= 0")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable as transform(x, rng), got {type(transform).__name__}")
        if (shuffle or transform is not None) and seed is None and rng is None:
            raise ValueError("shuffle=True or a transform needs randomness: pass seed= or rng= "
                             "(the library never seeds itself)")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.prefetch = bool(prefetch)
        self.rng = rng if rng is not None else (np.random.default_rng(seed) if seed is not None else None)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _epoch_plan(self) -> tuple[np.ndarray, np.random.Generator | None]:
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        aug_rng = None
        if self.transform is not None:
            aug_rng = np.random.default_rng(int(self.rng.integers(0, 2 ** 63 - 1)))
        return order, aug_rng

    def _batches(self, order: np.ndarray, aug_rng) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        events = self.dataset.kind == "events"
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x, y = self.dataset.take(idx)
            if self.transform is not None:
                x = self.transform(x, aug_rng)
            x = np.asarray(x, dtype=np.float32)
            if events:
                x = x.transpose(1, 0, *range(2, x.ndim))      # [N, T, ...] -> [T, N, ...]
            yield np.ascontiguousarray(x), np.asarray(y, dtype=np.int64)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order, aug_rng = self._epoch_plan()
        batches = self._batches(order, aug_rng)
        return _PrefetchIterator(batches) if self.prefetch else batches

    def __repr__(self) -> str:
        name = getattr(self.dataset, "name", type(self.dataset).__name__)
        return (f"DataLoader({name}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, transform={self.transform!r}, "
                f"prefetch={self.prefetch})")


def _put(q: queue.Queue, stop: threading.Event, item) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _produce(batches: Iterator, q: queue.Queue, stop: threading.Event) -> None:
    # A plain function, not a method: the thread must not keep the iterator alive,
    # so that dropping the iterator (GC -> __del__) stops the thread.
    try:
        for batch in batches:
            if not _put(q, stop, (_BATCH, batch)):
                return
        _put(q, stop, (_DONE, None))
    except BaseException as exc:  # handed to the consumer, re-raised there
        _put(q, stop, (_ERROR, exc))


class _PrefetchIterator:
    """Runs a batch generator in a daemon thread, two batches ahead; errors re-raise in the consumer.

    Abandoning the iterator (``close()`` or garbage collection) stops the thread
    at its next batch; it never blocks on a full queue for more than 0.1 s.
    """

    def __init__(self, batches: Iterator):
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=_produce, args=(batches, self._queue, self._stop), daemon=True,
                                        name="hdlif-ref-prefetch")
        self._thread.start()

    def __iter__(self) -> "_PrefetchIterator":
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        kind, item = self._queue.get()
        if kind == _BATCH:
            return item
        self._finished = True
        self._thread.join()
        if kind == _ERROR:
            raise item
        raise StopIteration

    def close(self) -> None:
        """Stop the background thread and wait for it."""
        self._stop.set()
        self._finished = True
        self._thread.join()

    def __del__(self):
        self._stop.set()
