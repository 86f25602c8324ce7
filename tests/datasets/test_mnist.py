"""MNIST / Fashion-MNIST IDX files, raw and gzipped."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from hdlif_ref.datasets import DatasetFormatError, get_dataset, read_idx
from hdlif_ref.datasets.mnist import IMAGES_MAGIC, LABELS_MAGIC, MNIST_MEAN, MNIST_STD

from .formats import idx_bytes, write_idx


def make_mnist(directory, rng, n=5, gz=False):
    directory.mkdir(parents=True, exist_ok=True)
    truth = {}
    for split, (img, lab) in {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.items():
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(directory / img, images, gz)
        write_idx(directory / lab, labels, gz)
        truth[split] = (images, labels)
    return truth


def test_magic_numbers_are_the_documented_ones():
    assert IMAGES_MAGIC == 0x00000803 == 2051 and LABELS_MAGIC == 0x00000801 == 2049


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name, subdir", [("mnist", "mnist"), ("fashion-mnist", "fashion-mnist"),
                                          ("mnist", "MNIST/raw"), ("mnist", "")])
def test_round_trip(tmp_path, gz, name, subdir):
    truth = make_mnist(tmp_path / subdir if subdir else tmp_path, np.random.default_rng(0), gz=gz)
    for split in ("train", "test"):
        ds = get_dataset(name, split, tmp_path, normalize="none", check_counts=False)
        images, labels = truth[split]
        assert ds.data.shape == (5, 1, 28, 28) and ds.data.dtype == np.float32
        np.testing.assert_array_equal(ds.data[:, 0], images)   # row-major: byte 16 + 28 r + c is pixel (r, c)
        np.testing.assert_array_equal(ds.targets, labels)


def test_pixel_order_is_row_major(tmp_path):
    raw = idx_bytes(np.arange(6, dtype=np.uint8).reshape(1, 2, 3))
    path = tmp_path / "i"
    path.write_bytes(raw)
    got = read_idx(path, IMAGES_MAGIC)
    for r in range(2):
        for c in range(3):
            assert got[0, r, c] == raw[16 + 3 * r + c]


def test_standard_normalisation(tmp_path):
    truth = make_mnist(tmp_path / "mnist", np.random.default_rng(1))
    ds = get_dataset("mnist", "test", tmp_path, check_counts=False)
    expected = (truth["test"][0] / 255.0 - MNIST_MEAN[0]) / MNIST_STD[0]
    np.testing.assert_allclose(ds.data[:, 0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gz", [False, True])
def test_wrong_magic_truncation_and_trailing_bytes(tmp_path, gz):
    images = np.zeros((2, 4, 4), np.uint8)
    path = write_idx(tmp_path / "labels-as-images", images, gz)
    with pytest.raises(DatasetFormatError, match="magic number 2051.*expected 2049"):
        read_idx(path, LABELS_MAGIC)
    raw = idx_bytes(images)
    for damaged, message in ((raw[:-1], "truncated|implies"), (raw + b"\0", "trailing|implies"), (raw[:6], "header")):
        target = tmp_path / ("d.gz" if gz else "d")
        target.write_bytes(gzip.compress(damaged) if gz else damaged)
        with pytest.raises(DatasetFormatError, match=message):
            read_idx(target, IMAGES_MAGIC)


def test_corrupt_gzip_is_a_format_error(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DatasetFormatError, match="gzip"):
        read_idx(path, IMAGES_MAGIC)


def test_count_mismatch_labels_range_and_official_counts(tmp_path):
    d = tmp_path / "mnist"
    make_mnist(d, np.random.default_rng(2))
    with pytest.raises(DatasetFormatError, match="60000"):
        get_dataset("mnist", "train", tmp_path)
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DatasetFormatError, match="5 images but 4 labels"):
        get_dataset("mnist", "test", tmp_path, check_counts=False)
    write_idx(d / "t10k-labels-idx1-ubyte", np.full(5, 10, np.uint8))
    with pytest.raises(DatasetFormatError, match=r"\[0, 10\)"):
        get_dataset("mnist", "test", tmp_path, check_counts=False)


def test_missing_files_named(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        get_dataset("fashion-mnist", "test", tmp_path)
    for expected in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", str(tmp_path / "fashion-mnist")):
        assert expected in str(info.value)
