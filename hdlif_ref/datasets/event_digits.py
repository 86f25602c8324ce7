"""Event-digits: a small neuromorphic dataset made from the digits images, no download.

How a sample is made (docs/datasets.md, "Event-digits"; every step vectorized
over the split, the whole dataset in well under a second):

1. Scene: the 8x8 digit (pixel / 16, in [0, 1]) on a black ``size x size``
   canvas (default 16).
2. Motion: the digit glides in a straight line, one of 8 directions
   (``dx, dy`` in {-1, 0, 1}, not both 0), over ``L = size - 8`` pixels along
   each moving axis during ``T`` steps, from the side it leaves (a still axis
   gets a random integer offset in ``[0, L]``). The scene is rendered at the
   ``T + 1`` instants ``k = 0..T`` at position ``start + (dx, dy) * L * k / T``,
   with bilinear weights for sub-pixel positions.
3. Sensor (the DVS temporal-contrast model): each pixel keeps a reference
   log intensity ``ref``, first ``log(EPS + I_0)``; at instant ``k`` it emits
   ``n = trunc((log(EPS + I_k) - ref) / C)`` events, ON if ``n > 0``, OFF if
   ``n < 0``, and moves ``ref`` by ``n * C``. Frame ``k - 1`` holds the counts
   emitted at instant ``k``: ``[T, 2, size, size]``, channel 0 OFF, 1 ON.
4. Optional sensor noise: each pixel, polarity and frame gets one extra event
   with probability ``noise``.

Directions, still-axis offsets and noise come from
``np.random.default_rng([seed, 1 (train) or 2 (test)])``: a dataset is a pure
function of its options. Labels are the digit classes; the train/test split is
the fixed digits split (:mod:`.digits`), 1,438 / 359 samples.

Why time matters: summed over time, a moving digit smears into a blur along
its path; each frame shows sharp edges (ON at the leading edges, OFF at the
trailing ones, so the polarity layout also tells the direction). A linear
classifier on the summed frames beats chance but stays well below one that
sees the frames (docs/datasets.md gives the measured numbers; the test
``test_event_digits.py`` checks both claims).
"""
from __future__ import annotations

import numpy as np

from .base import ArrayDataset, check_split
from .digits import PIXEL_MAX, check_knobs, split_images

EPS = 0.1            # keeps log() finite on the black background: log(0.1) = -2.30
C = 0.4              # contrast threshold in log-intensity units: black -> white gives 5 ON events
DIGIT = 8
DIRECTIONS = np.array([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)], dtype=np.int64)
_STREAM = {"train": 1, "test": 2}


def render(images: np.ndarray, px: np.ndarray, py: np.ndarray, size: int) -> np.ndarray:
    """Place each ``[8, 8]`` image with its top-left corner at real ``(px, py)``, bilinear, on a black canvas.

    images: float ``[N, 8, 8]``; px, py: float ``[N]`` in ``[0, size - 8]``.
    Returns float64 ``[N, size, size]``.
    """
    n = images.shape[0]
    canvas = np.zeros((n, size + 1, size + 1))  # one spare row/column for the right/bottom bilinear tap
    ix, iy = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    fx, fy = px - ix, py - iy
    rows = np.arange(DIGIT)
    sample = np.arange(n)[:, None, None]
    for oy, wy in ((0, 1.0 - fy), (1, fy)):
        for ox, wx in ((0, 1.0 - fx), (1, fx)):
            r = (iy + oy)[:, None, None] + rows[None, :, None]
            c = (ix + ox)[:, None, None] + rows[None, None, :]
            # within one tap every sample's 64 pixels land on distinct cells, so "+=" is exact
            canvas[sample, r, c] += (wy * wx)[:, None, None] * images
    return canvas[:, :size, :size]


def contrast_events(scenes: np.ndarray) -> np.ndarray:
    """DVS temporal contrast of renders ``[N, T+1, H, W]`` -> counts float32 ``[N, T, 2, H, W]`` (OFF, ON)."""
    log_i = np.log(EPS + scenes)
    ref = log_i[:, 0].copy()
    n, steps = scenes.shape[0], scenes.shape[1] - 1
    frames = np.zeros((n, steps, 2) + scenes.shape[2:], dtype=np.float32)
    for k in range(1, steps + 1):
        events = np.trunc((log_i[:, k] - ref) / C)
        ref += events * C
        frames[:, k - 1, 1] = np.maximum(events, 0.0)
        frames[:, k - 1, 0] = np.maximum(-events, 0.0)
    return frames


def make_event_digits(images: np.ndarray, T: int, size: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Frames float32 ``[N, T, 2, size, size]`` for uint8 digit images ``[N, 8, 8]`` (module docstring)."""
    n = images.shape[0]
    span = size - DIGIT
    direction = DIRECTIONS[rng.integers(0, len(DIRECTIONS), size=n)]
    still = rng.integers(0, span + 1, size=(n, 2))
    # start on the side the digit leaves from; a still axis keeps its random offset
    start = np.where(direction > 0, 0, np.where(direction < 0, span, still)).astype(np.float64)
    scale = images.astype(np.float64) / PIXEL_MAX
    scenes = np.empty((n, T + 1, size, size))
    for k in range(T + 1):
        pos = start + direction * (span * k / T)
        scenes[:, k] = render(scale, pos[:, 0], pos[:, 1], size)
    frames = contrast_events(scenes)
    if noise > 0.0:
        frames += (rng.random(frames.shape) < noise).astype(np.float32)
    return frames


def event_digits(split: str, root=None, *, T: int = 8, size: int = 16, noise: float = 0.0,
                 train_fraction: float = 1.0, seed: int = 0) -> ArrayDataset:
    """Event-digits as float32 frames ``[N, T, 2, size, size]`` (event counts; module docstring).

    Parameters
    ----------
    split : ``"train"`` (1,438) or ``"test"`` (359): the fixed digits split.
    root : ignored (made from scikit-learn's bundled digits).
    T : time steps, ``>= 1`` (default 8: one pixel of motion per step at size 16).
    size : canvas side, ``>= 9`` so the digit can move (default 16).
    noise : probability of a spurious event per pixel, polarity and frame.
    train_fraction : stratified fraction of the training split (as in :func:`~.digits.digits`).
    seed : seeds directions, offsets, noise and the ``train_fraction`` subset.
    """
    split = check_split(split)
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T={T!r} must be an int >= 1")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < DIGIT + 1:
        raise ValueError(f"size={size!r} must be an int >= {DIGIT + 1}")
    check_knobs(train_fraction, noise, seed)
    if noise > 1.0:
        raise ValueError(f"noise={noise!r} is a probability, must lie in [0, 1]")
    images, labels = split_images(split, train_fraction, seed)
    rng = np.random.default_rng([seed, _STREAM[split]])
    frames = make_event_digits(images, int(T), int(size), float(noise), rng)
    note = (f"moving digits through a DVS contrast model (C={C}, eps={EPS}), T={T}, {size}x{size}, seed {seed}"
            + (f", noise {noise:g}" if noise else "")
            + (f", {train_fraction:g} of the training split" if split == "train" and train_fraction < 1.0 else ""))
    return ArrayDataset(frames, labels, 10, "events", "event-digits", split, [str(i) for i in range(10)], notes=note)
