"""CIFAR10-DVS: class folders, the 9:1 per-class split, orientation, lazy binning."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hdlif_ref.datasets import DataLoader, DatasetFormatError, bin_events, get_dataset, make_events
from hdlif_ref.datasets.cifar10_dvs import CLASSES

from .formats import aedat2_bytes, random_events


def make_tree(root, per_class, kind="aedat", seed=0):
    """Class folders with recordings named as in the official archive; returns {(class, index): (x, y, t, p)}."""
    rng = np.random.default_rng(seed)
    truth = {}
    for c in CLASSES:
        folder = root / "cifar10-dvs" / c
        folder.mkdir(parents=True)
        for i in range(per_class):
            x, y, t, p = random_events(rng, int(rng.integers(20, 60)))
            name = f"cifar10_{c}_{i}"
            if kind == "aedat":
                (folder / f"{name}.aedat").write_bytes(aedat2_bytes(x, y, t, p))
            else:  # SpikingJelly's events_np: the AEDAT decode mapped by x' = 127 - y, y' = 127 - x, p' = 1 - p
                np.savez(folder / f"{name}.npz", t=t, x=127 - y, y=127 - x, p=1 - p)
            truth[(c, i)] = (x, y, t, p)
    return truth


def test_split_is_first_ceil_90_percent_of_each_class_in_name_order(tmp_path):
    per_class = 12  # names sort as strings: _0, _1, _10, _11, _2, ...
    make_tree(tmp_path, per_class)
    train = get_dataset("cifar10-dvs", "train", tmp_path, check_counts=False, T=2)
    test = get_dataset("cifar10-dvs", "test", tmp_path, check_counts=False, T=2)
    cut = math.ceil(0.9 * per_class)
    names = sorted(f"cifar10_airplane_{i}.aedat" for i in range(per_class))
    assert [p.name for p in train.files[:cut]] == names[:cut]
    assert [p.name for p in test.files[:per_class - cut]] == names[cut:]
    assert len(train) == 10 * cut and len(test) == 10 * (per_class - cut)
    np.testing.assert_array_equal(np.bincount(train.targets), [cut] * 10)
    assert set(train.files).isdisjoint(test.files)


def test_frames_equal_binning_of_the_oriented_events(tmp_path):
    truth = make_tree(tmp_path, 2)
    ds = get_dataset("cifar10-dvs", "train", tmp_path, check_counts=False, T=3, size=48)
    raw = get_dataset("cifar10-dvs", "train", tmp_path, check_counts=False, T=3, size=48, orientation="raw")
    for i, path in enumerate(ds.files):
        c, index = path.parent.name, int(path.stem.rsplit("_", 1)[1])
        x, y, t, p = truth[(c, index)]
        expected = bin_events(make_events(127 - y, 127 - x, t, 1 - p), 3, (128, 128), "number", (48, 48))
        np.testing.assert_array_equal(ds.frames(i), expected)
        plain = bin_events(make_events(x, y, t, p), 3, (128, 128), "number", (48, 48))
        np.testing.assert_array_equal(raw.frames(i), plain)
        assert ds.targets[i] == CLASSES.index(c)


def test_npz_and_aedat_trees_give_the_same_frames(tmp_path):
    make_tree(tmp_path / "a", 2, "aedat", seed=3)
    make_tree(tmp_path / "b", 2, "npz", seed=3)
    a = get_dataset("cifar10-dvs", "test", tmp_path / "a", check_counts=False, T=4, split_by="time")
    b = get_dataset("cifar10-dvs", "test", tmp_path / "b", check_counts=False, T=4, split_by="time")
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.targets, b.targets)


def test_take_data_and_loader_agree(tmp_path):
    make_tree(tmp_path, 2)
    ds = get_dataset("cifar10-dvs", "train", tmp_path, check_counts=False, T=2, size=16)
    x, y = ds.take([3, 0])
    np.testing.assert_array_equal(x, ds.data[[3, 0]])
    assert x.shape == (2, 2, 2, 16, 16) and ds.data.shape == (len(ds), 2, 2, 16, 16) and ds.kind == "events"
    batches = list(DataLoader(ds, 4, prefetch=True))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches], axis=1), ds.data.transpose(1, 0, 2, 3, 4))
    assert "cifar10-dvs/train" in ds.describe()


def test_counts_missing_folders_and_damaged_recording(tmp_path):
    make_tree(tmp_path, 2)
    with pytest.raises(DatasetFormatError, match="1000"):
        get_dataset("cifar10-dvs", "train", tmp_path)
    with pytest.raises(FileNotFoundError, match="airplane/"):
        get_dataset("cifar10-dvs", "train", tmp_path / "nowhere")
    victim = tmp_path / "cifar10-dvs" / "bird" / "cifar10_bird_0.aedat"
    victim.write_bytes(victim.read_bytes()[:-3])
    ds = get_dataset("cifar10-dvs", "train", tmp_path, check_counts=False)
    with pytest.raises(DatasetFormatError, match="truncated"):
        ds.take(np.arange(len(ds)))


@pytest.mark.parametrize("option, value", [("T", 0), ("size", 200), ("split_by", "count"), ("orientation", "flip"),
                                           ("train_ratio", 1.0)])
def test_bad_options(tmp_path, option, value):
    with pytest.raises(ValueError, match=option):
        get_dataset("cifar10-dvs", "train", tmp_path, **{option: value})
