"""Augmentation on batches, all randomness from an explicit ``np.random.Generator``.

Each transform is a callable ``transform(x, rng) -> x`` on a batch in
sample-first layout, which is how :class:`~.loader.DataLoader` calls it (before
it moves time first for events):

* :class:`RandomCropFlip` for images ``[N, C, H, W]``: pad by ``padding`` with
  ``fill``, crop a random ``H x W`` window, mirror left-right with probability 1/2
  (the CIFAR recipe: ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip``).
* :class:`RandomTranslateFlip` for event frames ``[N, T, 2, H, W]``: shift every
  frame of a sample by the same random ``(dy, dx)`` in ``[-max_shift, max_shift]``
  (events pushed off the sensor are dropped, the uncovered border is empty) and
  mirror left-right with probability 1/2.

Per sample, the draws are in a fixed order (offsets, then flips) so a seeded
generator gives the same batch every time.
"""
from __future__ import annotations

import numpy as np


def _check_batch(x: np.ndarray, ndim: int, layout: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != ndim:
        shown = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"x must be an array {layout}, got {shown}")


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def shift_crop(x: np.ndarray, dy: np.ndarray, dx: np.ndarray, flip: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Per-sample translate by ``(dy[n], dx[n])`` with ``fill`` outside, then mirror the last axis where ``flip[n]``.

    x: ``[N, ..., H, W]``; ``out[n, ..., i, j] = x[n, ..., i - dy[n], j' - dx[n]]`` where
    ``j' = W - 1 - j`` if ``flip[n]`` else ``j``, and ``fill`` where the source is off the image.
    """
    h, w = x.shape[-2:]
    pad = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(pad, pad), (pad, pad)], constant_values=fill)
    out = np.empty_like(x)
    for n in range(x.shape[0]):  # one slice copy per sample: cheaper than a fancy-index gather
        top, left = pad - int(dy[n]), pad - int(dx[n])
        window = padded[n, ..., top:top + h, left:left + w]
        out[n] = window[..., ::-1] if flip[n] else window
    return out


class RandomCropFlip:
    """Random crop with zero-padding and horizontal flip for images ``[N, C, H, W]``.

    Equivalent to padding by ``padding`` and cropping at a uniform offset in
    ``[0, 2 * padding]`` per axis, i.e. a shift ``padding - offset``.
    ``fill`` is the padded value *in the batch's units* (0 is the mean for standardized data).
    """

    def __init__(self, padding: int = 4, flip: bool = True, fill: float = 0.0):
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding={padding!r} must be an int >= 0")
        self.padding, self.flip, self.fill = padding, bool(flip), float(fill)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_batch(x, 4, "[N, C, H, W]")
        _check_rng(rng)
        n = x.shape[0]
        offsets = rng.integers(0, 2 * self.padding + 1, size=(n, 2))
        flips = rng.random(n) < 0.5 if self.flip else np.zeros(n, dtype=bool)
        return shift_crop(x, self.padding - offsets[:, 0], self.padding - offsets[:, 1], flips, self.fill)

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip}, fill={self.fill})"


class RandomTranslateFlip:
    """Random translation and horizontal flip for event frames ``[N, T, 2, H, W]``, the same for all ``T``."""

    def __init__(self, max_shift: int = 5, flip: bool = True):
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise ValueError(f"max_shift={max_shift!r} must be an int >= 0")
        self.max_shift, self.flip = max_shift, bool(flip)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_batch(x, 5, "[N, T, 2, H, W]")
        _check_rng(rng)
        n = x.shape[0]
        shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=(n, 2))
        flips = rng.random(n) < 0.5 if self.flip else np.zeros(n, dtype=bool)
        return shift_crop(x, shifts[:, 0], shifts[:, 1], flips, 0.0)

    def __repr__(self) -> str:
        return f"RandomTranslateFlip(max_shift={self.max_shift}, flip={self.flip})"
