"""DataLoader: layouts, seeded shuffling across epochs, drop_last, transforms, the prefetch thread."""
from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

from hdlif_ref.datasets import ArrayDataset, DataLoader, RandomCropFlip, RandomTranslateFlip


def static_dataset(n=23):
    data = np.arange(n * 2 * 3 * 3, dtype=np.float32).reshape(n, 2, 3, 3)
    return ArrayDataset(data, np.arange(n, dtype=np.int64) % 4, 4, "static", "toy", "train")


def event_dataset(n=10, T=3):
    data = np.random.default_rng(0).integers(0, 4, (n, T, 2, 4, 4)).astype(np.float32)
    return ArrayDataset(data, np.arange(n, dtype=np.int64) % 2, 2, "events", "toy-events", "train")


def epoch(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def test_static_batches_in_order_without_shuffle():
    ds = static_dataset()
    batches = epoch(DataLoader(ds, 5))
    assert len(batches) == len(DataLoader(ds, 5)) == 5
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), ds.data)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), ds.targets)
    assert all(x.dtype == np.float32 and y.dtype == np.int64 for x, y in batches)
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]


def test_drop_last():
    loader = DataLoader(static_dataset(), 5, drop_last=True)
    assert len(loader) == 4 and [len(y) for _, y in epoch(loader)] == [5, 5, 5, 5]
    assert len(DataLoader(static_dataset(3), 5, drop_last=True)) == 0


def test_events_come_time_first():
    ds = event_dataset()
    (x, y), *_ = epoch(DataLoader(ds, 4))
    assert x.shape == (3, 4, 2, 4, 4) and x.flags.c_contiguous
    for n in range(4):
        np.testing.assert_array_equal(x[:, n], ds.data[n])


def test_same_seed_same_batches_and_epochs_differ():
    ds = static_dataset()
    a, b = DataLoader(ds, 4, shuffle=True, seed=11), DataLoader(ds, 4, shuffle=True, seed=11)
    a1, a2 = epoch(a), epoch(a)
    b1, b2 = epoch(b), epoch(b)
    for u, v in zip(a1 + a2, b1 + b2):
        np.testing.assert_array_equal(u[0], v[0])
        np.testing.assert_array_equal(u[1], v[1])
    order1 = np.concatenate([x[:, 0, 0, 0] for x, _ in a1])
    order2 = np.concatenate([x[:, 0, 0, 0] for x, _ in a2])
    assert not np.array_equal(order1, order2)
    # each epoch is a permutation: every sample exactly once
    np.testing.assert_array_equal(np.sort(order1), ds.data[:, 0, 0, 0])
    other = np.concatenate([x[:, 0, 0, 0] for x, _ in epoch(DataLoader(ds, 4, shuffle=True, seed=12))])
    assert not np.array_equal(order1, other)


def test_the_epoch_order_is_the_generators_permutation():
    ds = static_dataset()
    got = np.concatenate([y for _, y in epoch(DataLoader(ds, 4, shuffle=True, rng=np.random.default_rng(3)))])
    np.testing.assert_array_equal(got, ds.targets[np.random.default_rng(3).permutation(len(ds))])


@pytest.mark.parametrize("make, transform", [(static_dataset, RandomCropFlip(1)),
                                             (event_dataset, RandomTranslateFlip(1))])
def test_prefetch_gives_the_same_batches(make, transform):
    ds = make()
    plain = DataLoader(ds, 4, shuffle=True, seed=5, transform=transform)
    ahead = DataLoader(ds, 4, shuffle=True, seed=5, transform=transform, prefetch=True)
    for _ in range(2):
        for (x1, y1), (x2, y2) in zip(epoch(plain), epoch(ahead), strict=True):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)


def test_transform_receives_sample_first_batches_and_its_rng():
    seen = []

    def record(x, rng):
        seen.append((x.shape, isinstance(rng, np.random.Generator)))
        return x

    epoch(DataLoader(event_dataset(), 4, seed=0, transform=record))
    assert seen[0] == ((4, 3, 2, 4, 4), True)


class _Exploding(ArrayDataset):
    def take(self, indices):
        if indices[0] >= 8:
            raise RuntimeError("disk on fire")
        return super().take(indices)


def test_prefetch_reraises_errors_in_the_consumer():
    base = static_dataset()
    ds = _Exploding(base.data, base.targets, 4, "static", "x", "train")
    it = iter(DataLoader(ds, 4, prefetch=True))
    next(it), next(it)
    with pytest.raises(RuntimeError, match="disk on fire"):
        next(it)


def test_abandoned_prefetch_thread_stops():
    before = {t.ident for t in threading.enumerate()}
    it = iter(DataLoader(static_dataset(200), 1, prefetch=True))
    next(it)
    worker = [t for t in threading.enumerate() if t.ident not in before and t.name == "hdlif-ref-prefetch"]
    assert len(worker) == 1
    del it
    gc.collect()
    worker[0].join(timeout=5)
    assert not worker[0].is_alive()


def test_argument_errors():
    ds = static_dataset()
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, 0)
    with pytest.raises(ValueError, match="seed= or rng="):
        DataLoader(ds, 2, shuffle=True)
    with pytest.raises(ValueError, match="not both"):
        DataLoader(ds, 2, seed=1, rng=np.random.default_rng(1))
    with pytest.raises(TypeError, match="Generator"):
        DataLoader(ds, 2, rng=1)
    with pytest.raises(TypeError, match="take"):
        DataLoader(np.zeros((3, 2)), 2)
