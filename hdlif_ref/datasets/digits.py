"""The embedded default: scikit-learn's bundled 8x8 digits (no download; docs/datasets.md).

1,797 grey images of 10 digit classes, pixel values 0..16 (the UCI "optdigits"
test set as shipped inside scikit-learn). The split is fixed: within each
class, the images are permuted with ``np.random.default_rng(SPLIT_SEED)`` and
the first ``round(TEST_FRACTION * n_class)`` go to test, the rest to train
(1,438 train / 359 test).

Normalisation (``normalize="standard"``): ``(pixel / 16 - mean) / std`` with the
mean and std of all pixels of the training split (one number each, computed
at load time, shown by ``describe()``): the training split has mean 0 and std 1.
"""
from __future__ import annotations

import functools

import numpy as np

from .base import ArrayDataset, check_split

SPLIT_SEED = 0
TEST_FRACTION = 0.2
PIXEL_MAX = 16.0
NORMALIZE = ("standard", "unit", "none")
_NOISE_STREAM = {"train": 1, "test": 2}  # seeds the noise of each split independently


@functools.lru_cache(maxsize=1)
def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(images uint8 [1797, 8, 8] in 0..16, labels int64 [1797])``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "the 'digits' datasets (digits, event-digits) read scikit-learn's bundled digits; "
            "install the data extra: pip install 'hdlif-ref[data]'"
        ) from exc
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def stratified_split(labels: np.ndarray, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: per class a seeded permutation, its first ``round(f * n_c)`` are test.

    Both index arrays are sorted, so samples keep the order of the source.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(members.size)]
        n_test = int(round(test_fraction * members.size))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def subsample(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a stratified subset: per class ``max(1, round(fraction * n_c))`` drawn without replacement."""
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * members.size)))
        keep.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(keep))


def check_knobs(train_fraction: float, noise: float, seed: int) -> None:
    if not isinstance(train_fraction, (int, float)) or not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction={train_fraction!r} must lie in (0, 1]")
    if not isinstance(noise, (int, float)) or not noise >= 0.0:
        raise ValueError(f"noise={noise!r} must be a number >= 0")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an int >= 0")


def split_images(split: str, train_fraction: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The fixed split's uint8 images ``[n, 8, 8]`` and labels, with the ``train_fraction`` subset applied."""
    images, labels = load_digits_arrays()
    train_idx, test_idx = stratified_split(labels)
    idx = train_idx if split == "train" else test_idx
    if split == "train" and train_fraction < 1.0:
        rng = np.random.default_rng([seed, 0])
        idx = idx[subsample(labels[idx], train_fraction, rng)]
    return images[idx], labels[idx].copy()


def digits(split: str, root=None, *, upsample: bool = False, normalize: str = "standard",
           train_fraction: float = 1.0, noise: float = 0.0, seed: int = 0) -> ArrayDataset:
    """scikit-learn's digits as float32 ``[N, 1, 8, 8]`` (or ``[N, 1, 16, 16]`` with ``upsample``).

    Parameters
    ----------
    split : ``"train"`` (1,438 images) or ``"test"`` (359), the fixed split of the module docstring.
    root : ignored (the images ship with scikit-learn).
    upsample : repeat every pixel into a 2x2 block (nearest neighbour), giving 16x16.
    normalize : ``"standard"`` (train-split mean/std, see module docstring), ``"unit"``
        (pixel / 16, in [0, 1]) or ``"none"`` (0..16).
    train_fraction : keep a stratified fraction of the training split (at least one image
        per class), drawn with ``default_rng([seed, 0])``; the test split is never reduced.
        The normalisation statistics stay those of the full training split.
    noise : standard deviation of additive Gaussian noise, in the units of the
        normalised images, drawn with ``default_rng([seed, 1])`` for train and
        ``default_rng([seed, 2])`` for test (fixed per image: the same every load).
    seed : seeds ``train_fraction`` and ``noise`` only; the split itself never changes.
    """
    split = check_split(split)
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize={normalize!r}; allowed: {', '.join(NORMALIZE)}")
    check_knobs(train_fraction, noise, seed)
    images, labels = split_images(split, train_fraction, seed)
    x = images.astype(np.float32)[:, None]
    note = "pixels 0..16"
    if normalize in ("standard", "unit"):
        x /= np.float32(PIXEL_MAX)
        note = "pixels/16 in [0, 1]"
    if normalize == "standard":
        mean, std = train_statistics()
        x -= np.float32(mean)
        x /= np.float32(std)
        note = f"pixels/16 standardized with the training split's mean {mean:.6f} and std {std:.6f}"
    if upsample:
        x = x.repeat(2, axis=2).repeat(2, axis=3)
        note += ", upsampled 2x (nearest)"
    if noise > 0.0:
        rng = np.random.default_rng([seed, _NOISE_STREAM[split]])
        x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(noise)
        note += f", Gaussian noise std {noise:g} (seed {seed})"
    if split == "train" and train_fraction < 1.0:
        note += f", {train_fraction:g} of the training split (seed {seed})"
    return ArrayDataset(np.ascontiguousarray(x), labels, 10, "static", "digits", split, [str(i) for i in range(10)],
                        notes=note)


@functools.lru_cache(maxsize=1)
def train_statistics() -> tuple[float, float]:
    """Mean and (population) std of all pixels / 16 of the full training split, in float64."""
    images, labels = load_digits_arrays()
    train_idx, _ = stratified_split(labels)
    values = images[train_idx].astype(np.float64) / PIXEL_MAX
    return float(values.mean()), float(values.std())
