"""CIFAR-10 / CIFAR-100 from a local directory, in both official formats (docs/datasets.md).

* Python version (``cifar-10-batches-py/``: ``data_batch_1..5``, ``test_batch``,
  ``batches.meta``; ``cifar-100-python/``: ``train``, ``test``, ``meta``): each
  file is a pickled dict with ``data`` (uint8 ``[n, 3072]``) and ``labels``
  (CIFAR-100: ``fine_labels`` and ``coarse_labels``), read with the restricted
  unpickler of :mod:`._safe_pickle`.
* Binary version (``cifar-10-batches-bin/``: ``data_batch_1..5.bin``,
  ``test_batch.bin``; ``cifar-100-binary/``: ``train.bin``, ``test.bin``):
  fixed-size records, 3073 bytes (label, 3072 pixels) for CIFAR-10 and 3074
  bytes (coarse label, fine label, 3072 pixels) for CIFAR-100.

In both, the 3072 pixels of an image are three 1024-byte planes (R, G, B), each
32 rows of 32 pixels, row-major: ``reshape(3, 32, 32)`` gives ``[C, H, W]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ._io import data_root, find_data_dir, find_file, read_file_bytes
from ._safe_pickle import restricted_loads
from .base import ArrayDataset, check_split, normalization, to_float_images
from .errors import DatasetFormatError, missing_files_error

IMAGE_BYTES = 3 * 32 * 32

# Per-channel mean and (population) std of the 50,000 training images, pixels / 255:
# the statistics published with the datasets' common training recipes.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

FORMATS = ("auto", "python", "binary")


@dataclass(frozen=True)
class CifarLayout:
    """Official directory and file names of one CIFAR variant, with record counts per file."""

    name: str
    python_dir: str
    binary_dir: str
    python_files: dict[str, tuple[str, ...]]
    binary_files: dict[str, tuple[str, ...]]
    records_per_file: dict[str, int]
    label_keys: tuple[str, ...]          # python dict keys, in the binary record's byte order
    label_ranges: tuple[int, ...]        # number of classes per label key
    python_meta: str
    python_meta_keys: tuple[str, ...]
    binary_meta: tuple[str, ...]


CIFAR10 = CifarLayout(
    name="cifar10",
    python_dir="cifar-10-batches-py",
    binary_dir="cifar-10-batches-bin",
    python_files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    binary_files={"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)},
    records_per_file={"train": 10000, "test": 10000},
    label_keys=("labels",),
    label_ranges=(10,),
    python_meta="batches.meta",
    python_meta_keys=("label_names",),
    binary_meta=("batches.meta.txt",),
)

CIFAR100 = CifarLayout(
    name="cifar100",
    python_dir="cifar-100-python",
    binary_dir="cifar-100-binary",
    python_files={"train": ("train",), "test": ("test",)},
    binary_files={"train": ("train.bin",), "test": ("test.bin",)},
    records_per_file={"train": 50000, "test": 10000},
    label_keys=("coarse_labels", "fine_labels"),
    label_ranges=(20, 100),
    python_meta="meta",
    python_meta_keys=("coarse_label_names", "fine_label_names"),
    binary_meta=("coarse_label_names.txt", "fine_label_names.txt"),
)


def _get(d: dict, key: str, path: Path):
    for k in (key.encode("ascii"), key):
        if k in d:
            return d[k]
    raise DatasetFormatError(f"{path}: the pickled dict has no key {key!r} (keys: {list(d)[:8]})")


def _label_array(values, n: int, num_classes: int, what: str) -> np.ndarray:
    """Labels as int64 ``[n]``: a list's type, length and every element's type are checked before NumPy
    sees it (``np.asarray`` of a list nested deep with shared references never ends: issue 18)."""
    if isinstance(values, list):
        if len(values) != n:
            raise DatasetFormatError(f"{what}: expected a list of {n} integer labels, got {len(values)} items")
        for i, v in enumerate(values):
            if type(v) is not int:  # bool is not a label, nor is a list, a float or an array
                raise DatasetFormatError(f"{what}: item [{i}] is a {type(v).__name__}; a label is an int")
        try:
            labels = np.array(values, dtype=np.int64)
        except OverflowError:
            raise DatasetFormatError(f"{what}: a label does not fit in 64 bits") from None
    elif isinstance(values, np.ndarray):
        labels = values
    else:
        raise DatasetFormatError(f"{what}: labels are a {type(values).__name__}; expected a list of {n} integers")
    if labels.dtype.kind not in "iu" or labels.shape != (n,):
        raise DatasetFormatError(f"{what}: expected {n} integer labels, got {labels.dtype} of shape {labels.shape}")
    labels = labels.astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetFormatError(f"{what}: labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
    return labels


def read_cifar_python_batch(path: Path, label_keys: Sequence[str] = ("labels",),
                            label_ranges: Sequence[int] = (10,)) -> tuple[np.ndarray, list[np.ndarray]]:
    """Read one pickled CIFAR batch with the restricted unpickler.

    Returns
    -------
    pixels : uint8 ``[n, 3, 32, 32]`` (channel planes R, G, B).
    labels : one int64 ``[n]`` array per key in ``label_keys``.
    """
    path = Path(path)
    batch = restricted_loads(read_file_bytes(path), source=str(path))
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{path}: a CIFAR batch pickles a dict, got {type(batch).__name__}")
    data = _get(batch, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        shown = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(f"{path}: 'data' must be uint8 of shape [n, {IMAGE_BYTES}], got {shown}")
    n = data.shape[0]
    labels = [_label_array(_get(batch, key, path), n, k, f"{path} '{key}'") for key, k in zip(label_keys, label_ranges)]
    return data.reshape(n, 3, 32, 32), labels


def read_cifar_binary(path: Path, label_bytes: int = 1,
                      label_ranges: Sequence[int] = (10,)) -> tuple[np.ndarray, list[np.ndarray]]:
    """Read one CIFAR binary batch: records of ``label_bytes`` label bytes then 3072 pixel bytes.

    Returns
    -------
    pixels : uint8 ``[n, 3, 32, 32]``.
    labels : one int64 ``[n]`` array per label byte, in file order (CIFAR-100: coarse, fine).
    """
    path = Path(path)
    record = label_bytes + IMAGE_BYTES
    size = path.stat().st_size
    if size == 0 or size % record:
        raise DatasetFormatError(
            f"{path}: {size} bytes is not a positive multiple of the {record}-byte record "
            f"({label_bytes} label byte(s) + {IMAGE_BYTES} pixels); the file is truncated or of another CIFAR variant"
        )
    records = np.frombuffer(read_file_bytes(path), dtype=np.uint8)
    if records.size != size:  # the file changed while being read
        raise DatasetFormatError(f"{path}: read {records.size} bytes, expected {size}")
    records = records.reshape(-1, record)
    n = records.shape[0]
    labels = [_label_array(records[:, i], n, k, f"{path} label byte {i}") for i, k in enumerate(label_ranges)]
    return records[:, label_bytes:].reshape(n, 3, 32, 32), labels


def _names_from_text(path: Path, count: int) -> list[str]:
    lines = [line.strip() for line in read_file_bytes(path, max_bytes=1 << 20).decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if len(lines) != count:
        raise DatasetFormatError(f"{path}: expected {count} class names, found {len(lines)}")
    return lines


def _names_from_pickle(path: Path, key: str, count: int) -> list[str]:
    meta = restricted_loads(read_file_bytes(path, max_bytes=1 << 20), source=str(path))
    if not isinstance(meta, dict):
        raise DatasetFormatError(f"{path}: the meta file pickles a dict, got {type(meta).__name__}")
    names = _get(meta, key, path)
    if type(names) is not list or len(names) != count or not all(type(s) in (bytes, str) for s in names):
        raise DatasetFormatError(f"{path}: {key!r} must be a list of {count} names")
    return [s.decode("utf-8", "replace") if isinstance(s, bytes) else s for s in names]


def _locate(layout: CifarLayout, split: str, root: Path, fmt: str) -> tuple[str, Path]:
    formats = ("python", "binary") if fmt == "auto" else (fmt,)
    searched, wanted = [], []
    for f in formats:
        subdir = layout.python_dir if f == "python" else layout.binary_dir
        files = (layout.python_files if f == "python" else layout.binary_files)[split]
        try:
            return f, find_data_dir(layout.name, root, [subdir, ""], files)
        except FileNotFoundError:
            searched += [root / subdir, root]
            wanted.append(f"{subdir}/{{{', '.join(files)}}}")
    raise missing_files_error(f"{layout.name}/{split}", wanted, dict.fromkeys(searched),
                              hint="extract the official archive (python or binary version) into the data root")


def load_cifar(layout: CifarLayout, split: str, root=None, format: str = "auto", label: str = "fine",
               normalize: str = "standard", check_counts: bool = True) -> ArrayDataset:
    """CIFAR-10 or CIFAR-100 split as an :class:`ArrayDataset` of float32 ``[N, 3, 32, 32]``."""
    split = check_split(split)
    if format not in FORMATS:
        raise ValueError(f"format={format!r}; allowed: {', '.join(FORMATS)}")
    fmt, directory = _locate(layout, split, data_root(root), format)
    label_index = 0
    if layout is CIFAR100:
        if label not in ("fine", "coarse"):
            raise ValueError(f"label={label!r}; allowed: 'fine', 'coarse'")
        label_index = 1 if label == "fine" else 0
    pixels, labels = [], []
    for name in (layout.python_files if fmt == "python" else layout.binary_files)[split]:
        path = directory / name
        if fmt == "python":
            p, ls = read_cifar_python_batch(path, layout.label_keys, layout.label_ranges)
        else:
            p, ls = read_cifar_binary(path, len(layout.label_keys), layout.label_ranges)
        if check_counts and p.shape[0] != layout.records_per_file[split]:
            raise DatasetFormatError(
                f"{path}: {p.shape[0]} images, the official file holds {layout.records_per_file[split]} "
                "(pass check_counts=False for a subset)"
            )
        pixels.append(p)
        labels.append(ls[label_index])
    num_classes = layout.label_ranges[label_index]
    classes = _class_names(layout, fmt, directory, label_index, num_classes)
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if layout is CIFAR10 else (CIFAR100_MEAN, CIFAR100_STD)
    mean, std, scale, note = normalization(normalize, mean, std, 255.0)
    data = to_float_images(np.concatenate(pixels), mean, std, scale)
    name = layout.name + ("" if layout is CIFAR10 else f" ({label} labels)")
    return ArrayDataset(data, np.concatenate(labels), num_classes, "static", name, split, classes,
                        notes=f"{fmt} format from {directory}; {note}")


def _class_names(layout: CifarLayout, fmt: str, directory: Path, label_index: int, count: int) -> list[str] | None:
    if fmt == "python":
        path = find_file(directory, layout.python_meta)
        return _names_from_pickle(path, layout.python_meta_keys[label_index], count) if path else None
    path = find_file(directory, layout.binary_meta[label_index if len(layout.binary_meta) > 1 else 0])
    return _names_from_text(path, count) if path else None


def cifar10(split: str, root=None, *, format: str = "auto", normalize: str = "standard",
            check_counts: bool = True) -> ArrayDataset:
    """CIFAR-10 (10 classes, 50,000 train / 10,000 test images).

    Parameters
    ----------
    split : ``"train"`` or ``"test"``.
    root : data root holding ``cifar-10-batches-py/`` or ``cifar-10-batches-bin/`` (or one of them itself).
    format : ``"auto"`` (python if present, else binary), ``"python"`` or ``"binary"``.
    normalize : ``"standard"`` (per-channel :data:`CIFAR10_MEAN`/:data:`CIFAR10_STD` on pixels/255),
        ``"unit"`` (pixels/255) or ``"none"`` (0..255).
    check_counts : require the official 10,000 images per file.
    """
    return load_cifar(CIFAR10, split, root, format, "fine", normalize, check_counts)


def cifar100(split: str, root=None, *, label: str = "fine", format: str = "auto", normalize: str = "standard",
             check_counts: bool = True) -> ArrayDataset:
    """CIFAR-100 (100 fine / 20 coarse classes, 50,000 train / 10,000 test images).

    Parameters as :func:`cifar10`, plus ``label``: ``"fine"`` (100 classes) or ``"coarse"`` (20).
    """
    return load_cifar(CIFAR100, split, root, format, label, normalize, check_counts)
