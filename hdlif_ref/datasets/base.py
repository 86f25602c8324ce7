"""The in-memory dataset object every reader returns (docs/datasets.md, "The dataset object")."""
from __future__ import annotations

from typing import Sequence

import numpy as np

KINDS = ("static", "events")


class ArrayDataset:
    """Samples held as arrays: ``data`` float32, ``targets`` int64.

    Attributes
    ----------
    data : np.ndarray, float32
        Images ``[N, C, H, W]`` (``kind == "static"``) or event frames
        ``[N, T, 2, H, W]`` (``kind == "events"``; channel ``p`` holds the
        events of polarity ``p``: 0 = OFF, 1 = ON).
    targets : np.ndarray, int64 ``[N]``
        Class indices in ``[0, num_classes)``.
    num_classes : int
    kind : ``"static"`` or ``"events"``
    name, split : str
        Registry name and ``"train"``/``"test"``.
    classes : list of str or None
        Class names, when the source files carry them.
    notes : str
        One line on how the arrays were made (normalisation, binning), shown by :meth:`describe`.
    """

    def __init__(self, data: np.ndarray, targets: np.ndarray, num_classes: int, kind: str, name: str,
                 split: str, classes: Sequence[str] | None = None, notes: str = ""):
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}; allowed: {', '.join(KINDS)}")
        data = np.asarray(data)
        targets = np.asarray(targets)
        if data.dtype != np.float32:
            raise TypeError(f"data must be float32, got {data.dtype}")
        expected_ndim = 4 if kind == "static" else 5
        if data.ndim != expected_ndim:
            raise ValueError(f"{kind} data must have {expected_ndim} dims, got shape {data.shape}")
        if targets.dtype != np.int64 or targets.shape != (data.shape[0],):
            raise ValueError(f"targets must be int64 of shape ({data.shape[0]},), got {targets.dtype} {targets.shape}")
        if targets.size and (targets.min() < 0 or targets.max() >= num_classes):
            raise ValueError(f"targets must lie in [0, {num_classes}), got [{targets.min()}, {targets.max()}]")
        self.data = data
        self.targets = targets
        self.num_classes = int(num_classes)
        self.kind = kind
        self.name = name
        self.split = split
        self.classes = list(classes) if classes is not None else None
        self.notes = notes

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.int64]:
        return self.data[index], self.targets[index]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` or ``(T, 2, H, W)``."""
        return tuple(self.data.shape[1:])

    def take(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The samples at ``indices`` as new arrays ``(x [n, ...], y [n])`` (what the loader calls)."""
        return self.data[indices], self.targets[indices]

    def describe(self) -> str:
        """One line: name, split, size, sample shape, classes, and how the arrays were made."""
        line = (f"{self.name}/{self.split}: {len(self)} {self.kind} samples of shape "
                f"{list(self.sample_shape)}, {self.num_classes} classes, float32")
        return line + (f"; {self.notes}" if self.notes else "")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def to_float_images(pixels: np.ndarray, mean: Sequence[float] | None, std: Sequence[float] | None,
                    scale: float) -> np.ndarray:
    """uint8 ``[N, C, H, W]`` -> float32 ``(pixels / scale - mean[c]) / std[c]`` (mean/std None: no shift)."""
    x = pixels.astype(np.float32)
    x /= np.float32(scale)
    if mean is not None:
        x -= np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        x /= np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return x


NORMALIZE_CHOICES = ("standard", "unit", "none")


def normalization(normalize: str, mean: Sequence[float], std: Sequence[float], scale: float):
    """``(mean, std, scale, note)`` for a ``normalize`` option of the image datasets."""
    if normalize == "standard":
        return mean, std, scale, f"pixels/{scale:g} standardized with mean {tuple(mean)} std {tuple(std)}"
    if normalize == "unit":
        return None, None, scale, f"pixels/{scale:g} in [0, 1]"
    if normalize == "none":
        return None, None, 1.0, "raw pixel values as float32"
    raise ValueError(f"normalize={normalize!r}; allowed: {', '.join(NORMALIZE_CHOICES)}")


def check_split(split: object) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; allowed: 'train', 'test'")
    return split  # type: ignore[return-value]
