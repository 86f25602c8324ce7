"""MNIST and Fashion-MNIST from their IDX files, raw or gzipped (docs/datasets.md).

IDX: a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the values row-major. Both datasets use unsigned bytes
(type ``0x08``): images have magic 2051 (``0x00000803``: ``[n, rows, cols]``),
labels magic 2049 (``0x00000801``: ``[n]``). The four official files are
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each possibly ``.gz``).
"""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ._io import data_root, find_data_dir, find_file, read_at_most
from .base import ArrayDataset, check_split, normalization, to_float_images
from .errors import DatasetFormatError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_UBYTE = 0x08

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
COUNTS = {"train": 60000, "test": 10000}

# Mean and std of all training pixels / 255, as published with the datasets' common recipes.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def _parse_idx(stream, total_size: int | None, magic: int, path: Path) -> np.ndarray:
    head = read_at_most(stream, 4)
    if len(head) < 4:
        raise DatasetFormatError(f"{path}: {len(head)} bytes, too short for an IDX header")
    found = int.from_bytes(head, "big")
    if found != magic:
        raise DatasetFormatError(
            f"{path}: magic number {found} (0x{found:08x}), expected {magic} (0x{magic:08x}) "
            f"for IDX {'images' if magic == IMAGES_MAGIC else 'labels'}"
        )
    ndim = head[3]
    dims_bytes = read_at_most(stream, 4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DatasetFormatError(f"{path}: truncated IDX header ({len(dims_bytes)} of {4 * ndim} size bytes)")
    dims = tuple(int.from_bytes(dims_bytes[4 * i:4 * i + 4], "big") for i in range(ndim))
    payload = math.prod(dims)
    header = 4 + 4 * ndim
    if total_size is not None and total_size != header + payload:
        raise DatasetFormatError(
            f"{path}: {total_size} bytes, but the header {list(dims)} implies {header} + {payload} = {header + payload}"
        )
    # Read one byte more than needed: a longer (gz) stream is as wrong as a shorter one.
    body = read_at_most(stream, payload + 1)
    if len(body) != payload:
        raise DatasetFormatError(
            f"{path}: {'truncated' if len(body) < payload else 'trailing data'}: the header {list(dims)} "
            f"implies {payload} value bytes"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def read_idx(path, magic: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (``.gz`` by its suffix) after checking ``magic`` and the sizes.

    Every read is bounded: a raw file's size must equal header plus payload before
    the payload is read; a gzip stream is read in chunks up to the payload size.
    """
    path = Path(path)
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as stream:
                return _parse_idx(stream, None, magic, path)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            if isinstance(exc, FileNotFoundError):
                raise
            raise DatasetFormatError(f"{path}: damaged gzip stream ({exc})") from None
    with open(path, "rb") as stream:
        return _parse_idx(stream, path.stat().st_size, magic, path)


def _load(name: str, subdirs: list[str], mean, std, classes, split: str, root, normalize: str,
          check_counts: bool) -> ArrayDataset:
    split = check_split(split)
    images_name, labels_name = FILES[split]
    directory = find_data_dir(f"{name}/{split}", data_root(root), subdirs, FILES[split], gz_ok=True)
    images_path = find_file(directory, images_name, gz_ok=True)
    labels_path = find_file(directory, labels_name, gz_ok=True)
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.ndim != 3 or labels.ndim != 1:
        raise DatasetFormatError(f"{directory}: images must be 3-D and labels 1-D, got {images.shape}, {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetFormatError(f"{directory}: {images.shape[0]} images but {labels.shape[0]} labels")
    if check_counts and images.shape[0] != COUNTS[split]:
        raise DatasetFormatError(f"{images_path}: {images.shape[0]} images, the official file holds {COUNTS[split]} "
                                 "(pass check_counts=False for a subset)")
    if labels.size and labels.max() >= 10:
        raise DatasetFormatError(f"{labels_path}: labels must lie in [0, 10), found {labels.max()}")
    mean, std, scale, note = normalization(normalize, mean, std, 255.0)
    data = to_float_images(images[:, None], mean, std, scale)
    return ArrayDataset(data, labels.astype(np.int64), 10, "static", name, split, classes,
                        notes=f"IDX files from {directory}; {note}")


def mnist(split: str, root=None, *, normalize: str = "standard", check_counts: bool = True) -> ArrayDataset:
    """MNIST digits, float32 ``[N, 1, 28, 28]``.

    Looks for the four official IDX files (raw or ``.gz``) in ``root/mnist``,
    ``root/MNIST/raw`` (torchvision's layout) or ``root`` itself. ``normalize``: ``"standard"``
    (:data:`MNIST_MEAN`/:data:`MNIST_STD` on pixels/255), ``"unit"`` or ``"none"``.
    """
    return _load("mnist", ["mnist", "MNIST/raw", ""], MNIST_MEAN, MNIST_STD, [str(i) for i in range(10)],
                 split, root, normalize, check_counts)


def fashion_mnist(split: str, root=None, *, normalize: str = "standard", check_counts: bool = True) -> ArrayDataset:
    """Fashion-MNIST, float32 ``[N, 1, 28, 28]``; same file names as MNIST.

    Looks in ``root/fashion-mnist``, ``root/FashionMNIST/raw`` or ``root`` itself.
    """
    return _load("fashion-mnist", ["fashion-mnist", "FashionMNIST/raw", ""], FASHION_MNIST_MEAN, FASHION_MNIST_STD,
                 FASHION_CLASSES, split, root, normalize, check_counts)
