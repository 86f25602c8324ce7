"""File helpers shared by the readers: data root, directory search, bounded reads."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from .errors import DatasetFormatError, missing_files_error

ENV_DATA_ROOT = "HDLIF_REF_DATA"
_CHUNK = 1 << 20


def data_root(root: str | os.PathLike | None) -> Path:
    """``root`` if given, else ``$HDLIF_REF_DATA``, else ``./data``."""
    if root is None:
        root = os.environ.get(ENV_DATA_ROOT, "data")
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root={root!r} must be a path (str or os.PathLike) or None")
    return Path(root).expanduser()


def find_file(directory: Path, name: str, gz_ok: bool = False) -> Path | None:
    """``directory/name`` (or ``name.gz`` when ``gz_ok``) if it is a file, else None."""
    for candidate in ([name, name + ".gz"] if gz_ok else [name]):
        path = directory / candidate
        if path.is_file():
            return path
    return None


def find_data_dir(what: str, root: Path, subdirs: Sequence[str], required: Iterable[str],
                  gz_ok: bool = False, hint: str = "") -> Path:
    """First of ``root/sub`` for ``sub`` in ``subdirs`` that holds every ``required`` file.

    ``""`` in ``subdirs`` stands for ``root`` itself. Raises FileNotFoundError
    naming the files and every directory searched.
    """
    required = list(required)
    searched = [root / sub if sub else root for sub in subdirs]
    for directory in searched:
        if directory.is_dir() and all(find_file(directory, name, gz_ok) for name in required):
            return directory
    shown = [name + ("[.gz]" if gz_ok else "") for name in required]
    raise missing_files_error(what, shown, searched, hint)


def read_at_most(stream, limit: int) -> bytes:
    """Read up to ``limit`` bytes in chunks, so a damaged size field never allocates more than the data."""
    parts, remaining = [], limit
    while remaining > 0:
        block = stream.read(min(remaining, _CHUNK))
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return b"".join(parts)


def read_file_bytes(path: Path, max_bytes: int | None = None) -> bytes:
    """Whole file as bytes; its size bounds the read. ``max_bytes`` refuses larger files."""
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise DatasetFormatError(f"{path}: {size} bytes, more than the {max_bytes} this format allows")
    with open(path, "rb") as f:
        return read_at_most(f, size)
