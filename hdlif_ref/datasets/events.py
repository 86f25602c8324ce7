"""Event streams as structured arrays and their binning into frames (docs/datasets.md, "Events").

An event stream is a 1-D structured array of :data:`EVENT_DTYPE` with fields
``x, y, t, p`` as in Tonic: pixel column ``x``, pixel row ``y``, timestamp
``t`` (microseconds) and polarity ``p`` (0 = OFF, brightness fell; 1 = ON).

:func:`bin_events` turns a stream into ``T`` frames ``[T, 2, H, W]`` of event
counts, channel ``p`` holding the events of polarity ``p`` (SpikingJelly's
``integrate_events_by_fixed_frames_number``), with the events cut into frames
by count or by time, and an optional spatial down-sampling that moves each
event to pixel ``(y * H_out // H, x * W_out // W)``, so counts are conserved.
"""
from __future__ import annotations

import numpy as np

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
SPLIT_BY = ("number", "time")
_INT16_MAX = np.iinfo(np.int16).max


def make_events(x, y, t, p, source: str = "events") -> np.ndarray:
    """Build an :data:`EVENT_DTYPE` stream from four 1-D integer (or bool ``p``) columns of equal length.

    Raises ValueError naming ``source`` when the columns are not integer, differ
    in length, ``x``/``y`` fall outside ``[0, 32767]`` or ``p`` outside ``{0, 1}``.
    """
    columns = {"x": np.asarray(x), "y": np.asarray(y), "t": np.asarray(t), "p": np.asarray(p)}
    n = columns["x"].shape
    for name, col in columns.items():
        if col.ndim != 1 or col.dtype.kind not in ("iub" if name == "p" else "iu"):
            raise ValueError(
                f"{source}: event column {name!r} must be a 1-D integer array, got {col.dtype} {col.shape}")
        if col.shape != n:
            lengths = {k: v.shape[0] for k, v in columns.items()}
            raise ValueError(f"{source}: event columns differ in length ({lengths})")
    for name in ("x", "y"):
        col = columns[name]
        if col.size and (col.min() < 0 or col.max() > _INT16_MAX):
            raise ValueError(f"{source}: {name} must lie in [0, {_INT16_MAX}], got [{col.min()}, {col.max()}]")
    p = columns["p"]
    if p.size and p.dtype.kind != "b" and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"{source}: polarity p must be 0 or 1, got values in [{p.min()}, {p.max()}]")
    t = columns["t"]
    if t.dtype == np.uint64 and t.size and t.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{source}: timestamps exceed int64")
    events = np.empty(n, dtype=EVENT_DTYPE)
    for name, col in columns.items():
        events[name] = col
    return events


def _check_events(events: np.ndarray) -> None:
    if not isinstance(events, np.ndarray) or events.ndim != 1 or events.dtype.names is None \
            or not {"x", "y", "t", "p"} <= set(events.dtype.names):
        shown = getattr(events, "dtype", type(events).__name__)
        raise TypeError(f"events must be a 1-D structured array with fields x, y, t, p, got {shown}")


def frame_index(t: np.ndarray, T: int, split_by: str) -> np.ndarray:
    """Frame of every event, int64 ``[N]``, for ``T`` frames.

    ``"number"`` (SpikingJelly's ``split_by="number"``): ``d = N // T`` events per
    frame in stream order, the last frame also takes the ``N % T`` left over:
    ``frame = min(i // d, T - 1)``; if ``N < T`` (``d = 0``) every event lands in
    the last frame, as SpikingJelly's segment indices give.

    ``"time"``: ``T`` equal windows over ``[t_min, t_max]``:
    ``frame = min((t - t_min) * T // (t_max - t_min), T - 1)`` in exact integer
    arithmetic (the last window is closed); if all events share one timestamp
    they all land in frame 0. Events need not be sorted.
    """
    n = t.shape[0]
    if split_by == "number":
        per_frame = n // T
        if per_frame == 0:
            return np.full(n, T - 1, dtype=np.int64)
        return np.minimum(np.arange(n, dtype=np.int64) // per_frame, T - 1)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    t = t.astype(np.int64)
    t0, t1 = int(t.min()), int(t.max())
    span = t1 - t0
    if span == 0:
        return np.zeros(n, dtype=np.int64)
    if span > np.iinfo(np.int64).max // T:
        raise ValueError(f"time span {span} times T={T} overflows int64")
    return np.minimum((t - t0) * T // span, T - 1)


def bin_events(events: np.ndarray, T: int, sensor_size: tuple[int, int] = (128, 128), split_by: str = "number",
               out_size: tuple[int, int] | None = None) -> np.ndarray:
    """Count events into ``T`` frames with polarity channels, optionally down-sampled.

    Parameters
    ----------
    events : structured array with fields ``x, y, t, p`` (:data:`EVENT_DTYPE`), ``[N]``.
    T : number of frames, ``>= 1``.
    sensor_size : ``(H, W)``: ``y`` must lie in ``[0, H)`` and ``x`` in ``[0, W)``.
    split_by : ``"number"`` or ``"time"`` (see :func:`frame_index`).
    out_size : ``(H_out, W_out)``; an event at ``(y, x)`` counts at
        ``(y * H_out // H, x * W_out // W)``. None keeps the sensor size.

    Returns
    -------
    frames : float32 ``[T, 2, H_out, W_out]``; ``frames[f, p, r, c]`` is the number
        of events of polarity ``p`` in frame ``f`` mapped to pixel ``(r, c)``.
        ``frames.sum() == N`` always.
    """
    _check_events(events)
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T={T!r} must be an int >= 1")
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by={split_by!r}; allowed: {', '.join(SPLIT_BY)}")
    H, W = _check_size(sensor_size, "sensor_size")
    Ho, Wo = (H, W) if out_size is None else _check_size(out_size, "out_size")
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = events["p"].astype(np.int64)
    if x.size:
        if x.min() < 0 or x.max() >= W or y.min() < 0 or y.max() >= H:
            raise ValueError(f"events fall outside sensor_size (H, W) = {(H, W)}: "
                             f"x in [{x.min()}, {x.max()}], y in [{y.min()}, {y.max()}]")
        if p.min() < 0 or p.max() > 1:
            raise ValueError(f"polarity p must be 0 or 1, got values in [{p.min()}, {p.max()}]")
    f = frame_index(events["t"], int(T), split_by)
    flat = ((f * 2 + p) * Ho + y * Ho // H) * Wo + x * Wo // W
    counts = np.bincount(flat, minlength=int(T) * 2 * Ho * Wo)
    return counts.astype(np.float32).reshape(int(T), 2, Ho, Wo)


def _check_size(size, name: str) -> tuple[int, int]:
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in size)):
        raise ValueError(f"{name}={size!r} must be (H, W) with two ints >= 1")
    return int(size[0]), int(size[1])
