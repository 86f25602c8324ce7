"""CIFAR10-DVS: 10,000 DVS128 recordings of CIFAR-10 images, binned lazily into frames.

Layout: one folder per class (``airplane, automobile, bird, cat, deer, dog,
frog, horse, ship, truck``; label = position in this list), each holding the
recordings of that class as ``.aedat`` (the original AEDAT 2.0 files), or
``.npz`` (SpikingJelly's ``events_np`` conversion), or ``.h5``/``.hdf5``.

Split (SpikingJelly's ``split_to_train_test_set(0.9, ..., random_split=False)``):
within each class, files sorted by name (plain string order, as
``torchvision.datasets.DatasetFolder``), the first ``ceil(0.9 * n)`` are train
and the rest test: 900 / 100 per class.

Orientation: SpikingJelly decodes the AEDAT files and then stores
``x' = 127 - y, y' = 127 - x, p' = 1 - p`` in its ``.npz`` files (see
:func:`to_spikingjelly_orientation`). With ``orientation="spikingjelly"`` (the
default) ``.aedat`` recordings get the same mapping, so frames do not depend on
which of the two file kinds is on disk; ``.npz`` and HDF5 files are taken as stored.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np

from ._io import data_root
from .base import check_split
from .errors import DatasetFormatError, missing_files_error
from .event_files import EVENT_SUFFIXES, read_events
from .events import SPLIT_BY, bin_events

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SENSOR_SIZE = (128, 128)
RECORDINGS_PER_CLASS = 1000
ORIENTATIONS = ("spikingjelly", "raw")
SUBDIRS = ("cifar10-dvs", "CIFAR10-DVS", "CIFAR10DVS", "CIFAR10DVS/events_np", "events_np", "")


def to_spikingjelly_orientation(events: np.ndarray, sensor: int = 128) -> np.ndarray:
    """``x' = sensor-1-y, y' = sensor-1-x, p' = 1-p``: SpikingJelly's CIFAR10-DVS mapping of decoded AEDAT."""
    out = events.copy()
    out["x"] = sensor - 1 - events["y"]
    out["y"] = sensor - 1 - events["x"]
    out["p"] = 1 - events["p"]
    return out


def split_per_class(files_by_class: list[list[Path]], split: str, train_ratio: float = 0.9
                    ) -> tuple[list[Path], np.ndarray]:
    """Per-class split: sorted by name, first ``ceil(train_ratio * n)`` train, the rest test."""
    files, labels = [], []
    for label, class_files in enumerate(files_by_class):
        ordered = sorted(class_files, key=lambda p: p.name)
        cut = math.ceil(len(ordered) * train_ratio)
        chosen = ordered[:cut] if split == "train" else ordered[cut:]
        files += chosen
        labels += [label] * len(chosen)
    return files, np.asarray(labels, dtype=np.int64)


class EventFileDataset:
    """Event recordings on disk, binned into frames ``[T, 2, H, W]`` on first access and cached.

    Same interface as :class:`~.base.ArrayDataset` with ``kind == "events"``:
    ``targets``, ``num_classes``, ``len()``, ``take(indices)``, ``describe()``,
    and ``data`` (float32 ``[N, T, 2, H, W]``), which bins every recording
    once; it needs ``N * T * 2 * H * W * 4`` bytes (1.7 GB for the 9,000
    training recordings at T=10, 48x48), so loaders call :meth:`take` instead.
    Access is thread-safe (the loader's prefetch thread may bin).
    """

    kind = "events"

    def __init__(self, files: list[Path], targets: np.ndarray, num_classes: int, name: str, split: str, T: int,
                 split_by: str, sensor_size: tuple[int, int], out_size: tuple[int, int], orientation: str,
                 classes=None, cache: bool = True):
        self.files = list(files)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.num_classes = num_classes
        self.name, self.split = name, split
        self.T, self.split_by = T, split_by
        self.sensor_size, self.out_size = sensor_size, out_size
        self.orientation = orientation
        self.classes = list(classes) if classes is not None else None
        self.cache = cache
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self._data: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.T, 2) + tuple(self.out_size)

    def frames(self, index: int) -> np.ndarray:
        """Frames of recording ``index``: float32 ``[T, 2, H, W]`` event counts."""
        index = int(index)
        if self._data is not None:
            return self._data[index]
        with self._lock:
            cached = self._cache.get(index)
        if cached is not None:
            return cached
        path = self.files[index]
        events = read_events(path)
        if self.orientation == "spikingjelly" and path.suffix.lower() == ".aedat":
            events = to_spikingjelly_orientation(events, self.sensor_size[0])
        try:
            frames = bin_events(events, self.T, self.sensor_size, self.split_by, self.out_size)
        except ValueError as exc:
            raise DatasetFormatError(f"{path}: {exc}") from None
        if self.cache:
            with self._lock:
                self._cache[index] = frames
        return frames

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.int64]:
        return self.frames(index), self.targets[index]

    def take(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``[n, T, 2, H, W]`` and labels ``[n]`` of the recordings at ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        x = np.empty((indices.size,) + self.sample_shape, dtype=np.float32)
        for row, i in enumerate(indices):
            x[row] = self.frames(i)
        return x, self.targets[indices]

    @property
    def data(self) -> np.ndarray:
        """All frames, float32 ``[N, T, 2, H, W]`` (binned once; see the class docstring for its size)."""
        if self._data is None:
            self._data, _ = self.take(np.arange(len(self)))
            self._cache.clear()
        return self._data

    def describe(self) -> str:
        return (f"{self.name}/{self.split}: {len(self)} events samples of shape {list(self.sample_shape)}, "
                f"{self.num_classes} classes, float32; {self.T} frames split by {self.split_by}, "
                f"{self.sensor_size[0]}x{self.sensor_size[1]} -> {self.out_size[0]}x{self.out_size[1]}, "
                f"orientation {self.orientation}, binned on first access")

    def __repr__(self) -> str:
        return f"<EventFileDataset {self.describe()}>"


def _find_class_folders(root: Path) -> tuple[Path, list[list[Path]]]:
    searched = [root / sub if sub else root for sub in SUBDIRS]
    for directory in searched:
        if all((directory / c).is_dir() for c in CLASSES):
            files = [[p for p in sorted((directory / c).iterdir())
                      if p.suffix.lower() in EVENT_SUFFIXES and p.is_file()] for c in CLASSES]
            return directory, files
    raise missing_files_error("cifar10-dvs", ["class folders " + " ".join(c + "/" for c in CLASSES)], searched,
                              hint="each class folder holds that class's recordings as .aedat (official AEDAT 2.0), "
                                   ".npz (SpikingJelly's events_np) or .h5 files")


def cifar10_dvs(split: str, root=None, *, T: int = 10, split_by: str = "number", size: int = 48,
                orientation: str = "spikingjelly", train_ratio: float = 0.9, check_counts: bool = True,
                cache: bool = True) -> EventFileDataset:
    """CIFAR10-DVS split as an :class:`EventFileDataset` of ``[T, 2, size, size]`` frames.

    Parameters
    ----------
    T : frames per recording (default 10).
    split_by : ``"number"`` (equal event counts, SpikingJelly's default) or ``"time"`` (equal windows).
    size : output side; the 128x128 sensor is down-sampled by event coordinates
        (``x * size // 128``), counts conserved (default 48).
    orientation : ``"spikingjelly"`` or ``"raw"`` (for ``.aedat`` files; see the module docstring).
    train_ratio : fraction of each class for training (0.9: the 9:1 split).
    check_counts : require 1,000 recordings per class.
    cache : keep binned frames in memory.
    """
    split = check_split(split)
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by={split_by!r}; allowed: {', '.join(SPLIT_BY)}")
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation={orientation!r}; allowed: {', '.join(ORIENTATIONS)}")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T={T!r} must be an int >= 1")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= SENSOR_SIZE[0]:
        raise ValueError(f"size={size!r} must be an int in [1, {SENSOR_SIZE[0]}]")
    if not 0.0 < train_ratio < 1.0:
        raise ValueError(f"train_ratio={train_ratio!r} must lie in (0, 1)")
    directory, files_by_class = _find_class_folders(data_root(root))
    suffixes = {p.suffix.lower() for class_files in files_by_class for p in class_files}
    if len(suffixes) > 1:
        raise DatasetFormatError(f"{directory}: mixed event file kinds {sorted(suffixes)}; keep one kind")
    for c, class_files in zip(CLASSES, files_by_class):
        if check_counts and len(class_files) != RECORDINGS_PER_CLASS:
            raise DatasetFormatError(f"{directory / c}: {len(class_files)} recordings, the official set has "
                                     f"{RECORDINGS_PER_CLASS} (pass check_counts=False for a subset)")
        if not class_files:
            raise missing_files_error("cifar10-dvs", ["*.aedat, *.npz or *.h5 recordings"], [directory / c])
    files, targets = split_per_class(files_by_class, split, train_ratio)
    return EventFileDataset(files, targets, len(CLASSES), "cifar10-dvs", split, T, split_by, SENSOR_SIZE,
                            (size, size), orientation, CLASSES, cache)
