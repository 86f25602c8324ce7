"""CIFAR-10 / CIFAR-100 in both official formats, read back exactly from tiny files."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from hdlif_ref.datasets import DatasetFormatError, get_dataset, read_cifar_binary, read_cifar_python_batch
from hdlif_ref.datasets.cifar import CIFAR10_MEAN, CIFAR10_STD

from .formats import cifar_records, py2_cifar_pickle


def _pixels(rng, n):
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def _expected_from_record(record: bytes, label_bytes: int) -> np.ndarray:
    """Pixel (c, h, w) of a record is byte label_bytes + 1024 c + 32 h + w (the format's definition)."""
    out = np.empty((3, 32, 32), np.uint8)
    for c in range(3):
        for h in range(32):
            for w in range(32):
                out[c, h, w] = record[label_bytes + 1024 * c + 32 * h + w]
    return out


def make_cifar10_binary(root, rng, n_per_file=2):
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    truth = {}
    for split, names in (("train", [f"data_batch_{i}.bin" for i in range(1, 6)]), ("test", ["test_batch.bin"])):
        px, lab = [], []
        for name in names:
            p, y = _pixels(rng, n_per_file), rng.integers(0, 10, n_per_file)
            (d / name).write_bytes(cifar_records(p, [y]))
            px.append(p), lab.append(y)
        truth[split] = (np.concatenate(px), np.concatenate(lab))
    (d / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n\n")
    return truth


def make_cifar10_python(root, rng, n_per_file=2, writer="py2"):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    truth = {}
    for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        px, lab = [], []
        for name in names:
            p, y = _pixels(rng, n_per_file), rng.integers(0, 10, n_per_file)
            entry = {b"batch_label": [b"x"], b"labels": [int(v) for v in y], b"data": p.reshape(n_per_file, 3072),
                     b"filenames": [b"f%d.png" % i for i in range(n_per_file)]}
            blob = py2_cifar_pickle(entry) if writer == "py2" else pickle.dumps(entry, protocol=4)
            (d / name).write_bytes(blob)
            px.append(p), lab.append(y)
        truth[split] = (np.concatenate(px), np.concatenate(lab))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (d / "batches.meta").write_bytes(py2_cifar_pickle({b"label_names": names}))
    return truth


def test_binary_record_layout_is_label_then_rgb_planes(tmp_path):
    rng = np.random.default_rng(0)
    pixels, labels = _pixels(rng, 3), np.array([9, 0, 4])
    raw = cifar_records(pixels, [labels])
    path = tmp_path / "b.bin"
    path.write_bytes(raw)
    got, (got_labels,) = read_cifar_binary(path, 1, (10,))
    np.testing.assert_array_equal(got_labels, [9, 0, 4])
    for i in range(3):
        np.testing.assert_array_equal(got[i], _expected_from_record(raw[i * 3073:(i + 1) * 3073], 1))


def test_cifar100_binary_has_coarse_then_fine(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "cifar-100-binary"
    d.mkdir()
    truth = {}
    for split in ("train", "test"):
        p, coarse, fine = _pixels(rng, 3), rng.integers(0, 20, 3), rng.integers(0, 100, 3)
        (d / f"{split}.bin").write_bytes(cifar_records(p, [coarse, fine]))
        truth[split] = (p, coarse, fine)
    for split in ("train", "test"):
        p, coarse, fine = truth[split]
        ds = get_dataset("cifar100", split, tmp_path, normalize="none", check_counts=False)
        np.testing.assert_array_equal(ds.data, p.astype(np.float32))
        np.testing.assert_array_equal(ds.targets, fine)
        assert ds.num_classes == 100
        ds = get_dataset("cifar100", split, tmp_path, normalize="none", check_counts=False, label="coarse")
        np.testing.assert_array_equal(ds.targets, coarse)
        assert ds.num_classes == 20


@pytest.mark.parametrize("fmt", ["binary", "python"])
def test_cifar10_round_trip_both_formats(tmp_path, fmt):
    rng = np.random.default_rng(2)
    truth = (make_cifar10_binary if fmt == "binary" else make_cifar10_python)(tmp_path, rng)
    for split in ("train", "test"):
        ds = get_dataset("cifar10", split, tmp_path, normalize="none", check_counts=False, format=fmt)
        pixels, labels = truth[split]
        assert ds.data.dtype == np.float32 and ds.data.shape == pixels.shape
        np.testing.assert_array_equal(ds.data, pixels.astype(np.float32))
        np.testing.assert_array_equal(ds.targets, labels)
        assert ds.targets.dtype == np.int64 and ds.kind == "static" and ds.num_classes == 10
        assert ds.classes[0] in ("class0", "airplane")


def test_python_batches_written_by_python3_also_read(tmp_path):
    truth = make_cifar10_python(tmp_path, np.random.default_rng(3), writer="py3")
    ds = get_dataset("cifar10", "test", tmp_path, normalize="none", check_counts=False)
    np.testing.assert_array_equal(ds.data, truth["test"][0])


def test_cifar100_python_format(tmp_path):
    rng = np.random.default_rng(4)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    p, coarse, fine = _pixels(rng, 4), rng.integers(0, 20, 4), rng.integers(0, 100, 4)
    entry = {b"data": p.reshape(4, 3072), b"fine_labels": list(map(int, fine)),
             b"coarse_labels": list(map(int, coarse))}
    for name in ("train", "test"):
        (d / name).write_bytes(py2_cifar_pickle(entry))
    ds = get_dataset("cifar100", "train", tmp_path, normalize="none", check_counts=False)
    np.testing.assert_array_equal(ds.data, p)
    np.testing.assert_array_equal(ds.targets, fine)
    ds = get_dataset("cifar100", "test", tmp_path, normalize="none", check_counts=False, label="coarse")
    np.testing.assert_array_equal(ds.targets, coarse)


def test_standard_normalisation_is_per_channel(tmp_path):
    truth = make_cifar10_binary(tmp_path, np.random.default_rng(5))
    ds = get_dataset("cifar10", "test", tmp_path, check_counts=False)
    pixels = truth["test"][0].astype(np.float64) / 255.0
    for c in range(3):
        expected = (pixels[:, c] - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
        np.testing.assert_allclose(ds.data[:, c], expected, rtol=1e-5, atol=1e-6)
    unit = get_dataset("cifar10", "test", tmp_path, check_counts=False, normalize="unit")
    np.testing.assert_allclose(unit.data, pixels, rtol=1e-6)


def test_official_counts_are_checked(tmp_path):
    make_cifar10_binary(tmp_path, np.random.default_rng(6))
    with pytest.raises(DatasetFormatError, match="10000"):
        get_dataset("cifar10", "train", tmp_path)


def test_wrong_record_size_and_truncation(tmp_path):
    rng = np.random.default_rng(7)
    two_cifar100_records = cifar_records(_pixels(rng, 2), [np.array([1, 2]), np.array([3, 4])])
    path = tmp_path / "x.bin"
    path.write_bytes(two_cifar100_records)  # 6148 bytes: not a multiple of 3073
    with pytest.raises(DatasetFormatError, match="3073-byte record"):
        read_cifar_binary(path, 1, (10,))
    path.write_bytes(two_cifar100_records[:-1])
    with pytest.raises(DatasetFormatError, match="3074-byte record"):
        read_cifar_binary(path, 2, (20, 100))
    path.write_bytes(b"")
    with pytest.raises(DatasetFormatError):
        read_cifar_binary(path, 1, (10,))


def test_label_out_of_range(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(cifar_records(_pixels(np.random.default_rng(8), 1), [np.array([10])]))
    with pytest.raises(DatasetFormatError, match=r"\[0, 10\)"):
        read_cifar_binary(path, 1, (10,))


@pytest.mark.parametrize("entry, message", [
    ({b"labels": [1]}, "no key 'data'"),
    ({b"data": np.zeros((1, 100), np.uint8), b"labels": [1]}, "3072"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, "2 integer labels"),
])
def test_python_batch_structure_is_checked(tmp_path, entry, message):
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_cifar_pickle(entry))
    with pytest.raises(DatasetFormatError, match=message):
        read_cifar_python_batch(path)


def test_missing_files_name_the_official_files_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        get_dataset("cifar10", "train", tmp_path)
    message = str(info.value)
    for expected in ("data_batch_1", "data_batch_5.bin", "cifar-10-batches-py", "cifar-10-batches-bin", str(tmp_path)):
        assert expected in message
    with pytest.raises(FileNotFoundError, match="test.bin"):
        get_dataset("cifar100", "test", tmp_path)
