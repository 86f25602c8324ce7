"""The two error types a dataset reader raises for a bad file (docs/datasets.md).

* :class:`FileNotFoundError` (builtin): a directory or file is missing; the
  message names the expected official file names and the directories searched.
* :class:`DatasetFormatError` (a ``ValueError``): a file exists but is not in
  its format: truncated, wrong magic number, wrong record size, wrong counts,
  labels out of range, or (subclass :class:`UnsafePickleError`) a pickle that
  asks for anything but containers, bytes, numbers and NumPy arrays.

Readers never let another exception type escape from a damaged file: every
parser step that can fail on bad bytes is wrapped (tests/datasets/test_damaged_files.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable


class DatasetFormatError(ValueError):
    """A dataset file exists but its bytes do not follow the documented format."""


class UnsafePickleError(DatasetFormatError):
    """A pickle asked for a global outside the allow-list; nothing of it was run."""


def missing_files_error(what: str, files: Iterable[str], searched: Iterable[Path], hint: str = "") -> FileNotFoundError:
    """Build the error for missing data files, naming the files and the directories searched."""
    files = list(files)
    searched = [str(p) for p in searched]
    message = (
        f"{what}: expected the file(s) {', '.join(files)} in one of: {', '.join(searched)}"
        + (f"; {hint}" if hint else "")
        + " (nothing is downloaded; see docs/datasets.md for where to get the official files)"
    )
    return FileNotFoundError(message)
