"""Progress reporting and the JSON-lines metrics log of a training run.

``Progress`` shows a tqdm bar per epoch when tqdm is importable and the stream is
a terminal, and otherwise prints one plain line per epoch; tqdm is optional and
its absence is never an error. ``MetricsLog`` adds one JSON object per epoch to
a JSON-lines file, rewriting it atomically each time, so a crashed run keeps every
finished epoch and the file is never half-written.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, TextIO

from .._safe_files import atomic_write

import numpy as np


def _tqdm_class() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def format_metrics(metrics: dict[str, Any]) -> str:
    """``key value`` pairs on one line: floats with 4 significant digits, lists abbreviated."""
    parts = []
    for key, value in metrics.items():
        value = _plain(value)
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, list):
            shown = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in value[:4])
            text = f"[{shown}{', ...' if len(value) > 4 else ''}]"
        else:
            text = str(value)
        parts.append(f"{key} {text}")
    return "  ".join(parts)


class Progress:
    """Epoch and batch progress: tqdm bars on a terminal, one line per epoch elsewhere.

    Parameters
    ----------
    epochs : int
        Number of epochs of the run (shown as ``epoch e/epochs``).
    stream : text stream, default ``sys.stderr``
    bars : bool or None
        ``None`` (default): bars when tqdm is importable and ``stream.isatty()``;
        ``False``: plain lines; ``True``: bars if tqdm is importable, else plain lines.

    Use ``start_epoch(epoch, batches)``, ``update(n=1, **postfix)`` after each batch,
    ``end_epoch(epoch, metrics)``; ``close()`` (or a ``with`` block) at the end.
    Epochs are counted from 1 in the text.
    """

    def __init__(self, epochs: int, stream: TextIO | None = None, bars: bool | None = None, desc: str = "epoch"):
        self.epochs = int(epochs)
        self.stream = sys.stderr if stream is None else stream
        self.desc = desc
        tqdm = _tqdm_class()
        if bars is None:
            isatty = getattr(self.stream, "isatty", None)
            bars = bool(isatty and isatty())
        self._tqdm = tqdm if bars else None
        self._bar: Any = None

    @property
    def uses_bars(self) -> bool:
        """True when tqdm bars are shown."""
        return self._tqdm is not None

    def start_epoch(self, epoch: int, batches: int | None = None) -> None:
        """Begin epoch ``epoch`` (0-based) of ``batches`` batches (``None``: unknown)."""
        self._close_bar()
        if self._tqdm is not None:
            self._bar = self._tqdm(total=batches, desc=f"{self.desc} {epoch + 1}/{self.epochs}",
                                   file=self.stream, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1, **postfix: Any) -> None:
        """``n`` more batches done; ``postfix`` (e.g. ``loss=0.3``) is shown beside the bar."""
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix_str(format_metrics(postfix), refresh=False)

    def end_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Close the epoch's bar and print one line ``epoch e/E  key value  ...``."""
        self._close_bar()
        line = f"{self.desc} {epoch + 1}/{self.epochs}  {format_metrics(metrics)}"
        self.write(line)

    def write(self, line: str) -> None:
        """Print a line without breaking a bar."""
        if self._tqdm is not None:
            self._tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        self._close_bar()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _plain(value: Any) -> Any:
    """A JSON-ready copy: numpy scalars and arrays to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """A JSON-lines file: ``write(record)`` adds one JSON object and rewrites the file atomically.

    Numpy scalars and arrays become numbers and lists; non-finite floats (a
    diverged loss) become ``null`` so every line is standard JSON. The records
    already in the file are kept, so a resumed run continues the same log; with
    ``after_epoch`` the records of later epochs are dropped (a run resumed from an
    earlier checkpoint repeats them). An unfinished last line (a crash of an older
    writer mid-line) is dropped.
    """

    def __init__(self, path: str | os.PathLike, after_epoch: int | None = None):
        self.path = os.fspath(path)
        self._lines: list[str] | None = []
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().split("\n")
            lines = [line for line in lines[:-1] if line.strip()]  # the last piece has no newline yet
            if after_epoch is not None:
                lines = [line for n, line in enumerate(lines, start=1)
                         if not _epoch_of(line, self.path, n) > after_epoch]
            self._lines = lines

    def write(self, record: dict[str, Any]) -> None:
        if not isinstance(record, dict):
            raise TypeError(f"MetricsLog.write: record must be a dict, got {type(record).__name__}")
        if self._lines is None:
            raise ValueError(f"MetricsLog.write: the log {self.path!r} is closed")
        self._lines.append(json.dumps(_plain(record), allow_nan=False))
        atomic_write(self.path, "".join(line + "\n" for line in self._lines), binary=False)

    def close(self) -> None:
        self._lines = None

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _epoch_of(line: str, path: str, number: int) -> float:
    try:
        epoch = json.loads(line).get("epoch")
    except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"metrics log {path!r} line {number} is not a JSON object: {e}") from None
    return epoch if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else -math.inf


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a metrics log, in order; an unfinished last line (a crash mid-write) is dropped."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # no newline yet: the write did not finish
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"read_metrics: {os.fspath(path)!r} line {number} is not JSON: {e}") from e
    return records
